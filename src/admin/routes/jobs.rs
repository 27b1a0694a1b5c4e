//! `/v1/jobs` and `/v1/queues`: submit, inspect, list and cancel jobs,
//! and the figures of every queue. Any node answers; it forwards to the
//! queue's owner (docs/jobs.md).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hypha_work::job::{Attempt, Constraints, JobId, JobRecord, JobSpec, JobState, Payload};
use hypha_work::wire::{QueueFigures, MAX_LIST_JOBS};
use serde::{Deserialize, Serialize};

use super::files::query_pairs;
use crate::admin::error::ApiError;
use crate::admin::AppState;
use crate::work::JobsError;

impl From<JobsError> for ApiError {
    fn from(e: JobsError) -> Self {
        match e {
            JobsError::BadRequest(m) => ApiError::bad_request(m),
            JobsError::NotFound(m) => ApiError::not_found(m),
            JobsError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            JobsError::Unavailable(m) => ApiError::unavailable(m),
        }
    }
}

/// A submit. `payload` is UTF-8 text given inline; `file` names a stored
/// file instead.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubmitBody {
    queue: String,
    kind: String,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    args: BTreeMap<String, String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    constraints: ConstraintsBody,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConstraintsBody {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    min_cores: u32,
    #[serde(default)]
    min_memory_bytes: u64,
    #[serde(default)]
    min_disk_bytes: u64,
}

/// A job as the API shows it.
#[derive(Serialize)]
pub(super) struct JobView {
    id: String,
    queue: String,
    kind: String,
    state: &'static str,
    priority: i32,
    attempts: u32,
    max_attempts: u32,
    timeout_ms: u64,
    submitted_ms: u64,
    finished_ms: Option<u64>,
    input_file: Option<String>,
    args: BTreeMap<String, String>,
    history: Vec<Attempt>,
    error: Option<String>,
    result_bytes: usize,
    /// The result as text when it is UTF-8 (else use `/result`).
    result: Option<String>,
}

impl From<JobRecord> for JobView {
    fn from(r: JobRecord) -> Self {
        Self {
            id: r.id.to_string(),
            queue: r.spec.queue,
            kind: r.spec.kind,
            state: r.state.as_str(),
            priority: r.spec.priority,
            attempts: r.attempts,
            max_attempts: r.spec.max_attempts,
            timeout_ms: r.spec.timeout_ms,
            submitted_ms: r.submitted_ms,
            finished_ms: r.finished_ms,
            input_file: r.spec.payload.file().map(str::to_owned),
            args: r.spec.args,
            history: r.history,
            error: r.error,
            result_bytes: r.result.len(),
            result: String::from_utf8(r.result).ok(),
        }
    }
}

fn spec_of(state: &AppState, body: SubmitBody) -> Result<JobSpec, ApiError> {
    let payload = match (body.payload, body.file) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give payload or file, not both")),
        (_, Some(file)) => Payload::File(file),
        (text, None) => Payload::Bytes(text.unwrap_or_default().into_bytes()),
    };
    let c = body.constraints;
    let spec = JobSpec {
        queue: body.queue,
        kind: body.kind,
        payload,
        args: body.args,
        idempotency_key: body.idempotency_key,
        priority: body.priority,
        max_attempts: body
            .max_attempts
            .unwrap_or(state.work.defaults.default_max_attempts),
        timeout_ms: body
            .timeout_ms
            .unwrap_or(state.work.defaults.default_timeout_ms),
        constraints: Constraints {
            labels: c.labels,
            zone: c.zone,
            min_cores: c.min_cores,
            min_memory_bytes: c.min_memory_bytes,
            min_disk_bytes: c.min_disk_bytes,
        },
    };
    spec.validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(spec)
}

/// `POST /v1/jobs` [write]: 201 with the job once durable; 200 with the
/// existing job when the idempotency key names one.
pub(super) async fn submit(
    State(state): State<AppState>,
    body: Result<Json<SubmitBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let spec = spec_of(&state, body)?;
    let (record, existing) = state.work.submit(spec).await?;
    let status = if existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(JobView::from(record))).into_response())
}

fn job_id(raw: &str) -> Result<JobId, ApiError> {
    JobId::parse(raw).ok_or_else(|| ApiError::bad_request("a job id is 32 hex digits"))
}

/// `GET /v1/jobs/{id}` [read].
pub(super) async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.work.status(job_id(&id)?).await?.into()))
}

/// `GET /v1/jobs/{id}/result` [read]: the raw result of a done job.
pub(super) async fn result(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = state.work.status(job_id(&id)?).await?;
    if record.state != JobState::Done {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_done",
            format!("job {id} is {}", record.state.as_str()),
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        record.result,
    )
        .into_response())
}

#[derive(Serialize)]
pub(super) struct JobList {
    jobs: Vec<JobView>,
}

/// `GET /v1/jobs?queue=&state=&limit=` [read].
pub(super) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<JobList>, ApiError> {
    let pairs = query_pairs(raw.as_deref());
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let job_state = match get("state") {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "state is one of queued, offered, running, done, dead_letter, cancelled",
            )
        })?),
    };
    let limit = match get("limit") {
        None => 100,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIST_JOBS).contains(l))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be 1-{MAX_LIST_JOBS}")))?,
    };
    let jobs = state.work.list(get("queue"), job_state, limit).await?;
    Ok(Json(JobList {
        jobs: jobs.into_iter().map(JobView::from).collect(),
    }))
}

/// `DELETE /v1/jobs/{id}` [write]: cancel; 409 once finished.
pub(super) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.work.cancel(job_id(&id)?).await?.into()))
}

#[derive(Serialize)]
pub(super) struct QueueList {
    queues: Vec<QueueFigures>,
}

/// `GET /v1/queues` [read]: depth, in flight and dead letters per queue.
pub(super) async fn queues(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    Ok(Json(QueueList {
        queues: state.work.queues().await?,
    }))
}
