//! `/v1/jobs` and `/v1/queues`: submit, inspect, list and cancel jobs,
//! and the figures of every queue. Any node answers; it forwards to the
//! queue's owner (docs/jobs.md).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hypha_work::chain::{self, ChainStatus};
use hypha_work::fanout::MapPlan;
use hypha_work::job::{Attempt, Constraints, JobId, JobRecord, JobSpec, JobState, Payload, Step};
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
    /// Follow-up steps: each runs on the result of the one before.
    #[serde(default)]
    then: Vec<StepBody>,
}

/// A follow-up step: a kind and its arguments.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepBody {
    kind: String,
    #[serde(default)]
    args: BTreeMap<String, String>,
}

impl From<StepBody> for Step {
    fn from(s: StepBody) -> Self {
        Step {
            kind: s.kind,
            args: s.args,
        }
    }
}

impl From<Step> for StepBody {
    fn from(s: Step) -> Self {
        StepBody {
            kind: s.kind,
            args: s.args,
        }
    }
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
    /// The latest attempt's log (a wasm module's stderr), as text.
    log: Option<String>,
    /// Follow-up steps still to run after this job.
    then: Vec<StepBody>,
    /// The id of the next step's job (it exists once this one is done).
    next: Option<String>,
}

impl From<JobRecord> for JobView {
    fn from(r: JobRecord) -> Self {
        let next = chain::next_id(&r).map(|id| id.to_string());
        let log = (!r.log.is_empty()).then(|| String::from_utf8_lossy(&r.log).into_owned());
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
            log,
            then: r.spec.then.into_iter().map(StepBody::from).collect(),
            next,
        }
    }
}

fn constraints_of(c: ConstraintsBody) -> Constraints {
    Constraints {
        labels: c.labels,
        zone: c.zone,
        min_cores: c.min_cores,
        min_memory_bytes: c.min_memory_bytes,
        min_disk_bytes: c.min_disk_bytes,
    }
}

fn spec_of(state: &AppState, body: SubmitBody) -> Result<JobSpec, ApiError> {
    let payload = match (body.payload, body.file) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give payload or file, not both")),
        (_, Some(file)) => Payload::File(file),
        (text, None) => Payload::Bytes(text.unwrap_or_default().into_bytes()),
    };
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
        constraints: constraints_of(body.constraints),
        then: body.then.into_iter().map(Step::from).collect(),
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

/// A chain's status and, once it is done, its result.
#[derive(Serialize)]
pub(super) struct ChainView {
    #[serde(flatten)]
    status: ChainStatus,
    /// The last step's result as text (UTF-8), once the chain is done.
    result: Option<String>,
    /// The last step's result size in bytes, once the chain is done.
    result_bytes: Option<usize>,
}

/// `GET /v1/jobs/{id}/chain` [read]: every step of the chain that starts
/// with the job: its state, worker and error, and where the chain stopped.
pub(super) async fn chain(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ChainView>, ApiError> {
    let (status, last) = state.work.chain(job_id(&id)?).await?;
    let done = status.state == chain::ChainState::Done;
    Ok(Json(ChainView {
        status,
        result_bytes: done.then_some(last.result.len()),
        result: done.then(|| String::from_utf8(last.result).ok()).flatten(),
    }))
}

/// A fan-out: one `wasm` job per stored file under `prefix`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MapBody {
    queue: String,
    module: String,
    prefix: String,
    #[serde(default)]
    out: Option<String>,
    #[serde(default)]
    args: BTreeMap<String, String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    constraints: ConstraintsBody,
    #[serde(default)]
    then: Vec<StepBody>,
}

/// One input of a fan-out, as the API shows it.
#[derive(Serialize)]
struct MappedView {
    input: String,
    /// The job, when the submit was taken.
    job: Option<JobView>,
    /// The job existed already (a re-run).
    existing: bool,
    /// Why the submit was refused.
    error: Option<String>,
}

#[derive(Serialize)]
pub(super) struct MapView {
    module_hash: String,
    inputs: usize,
    submitted: usize,
    existing: usize,
    refused: usize,
    jobs: Vec<MappedView>,
}

/// `POST /v1/jobs/map` [write]: submit one job per input file (by module
/// hash and input name, so a re-run adds only what is missing) and answer
/// each input's job; 200 even when some submits were refused (`refused`).
pub(super) async fn map(
    State(state): State<AppState>,
    body: Result<Json<MapBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<MapView>, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if b.prefix.is_empty() {
        return Err(ApiError::bad_request("prefix must not be empty"));
    }
    let plan = MapPlan {
        queue: b.queue,
        module: b.module,
        module_hash: String::new(),
        prefix: b.prefix,
        out: b.out,
        args: b.args,
        priority: b.priority,
        max_attempts: b
            .max_attempts
            .unwrap_or(state.work.defaults.default_max_attempts),
        timeout_ms: b
            .timeout_ms
            .unwrap_or(state.work.defaults.default_timeout_ms),
        constraints: constraints_of(b.constraints),
        then: b.then.into_iter().map(Step::from).collect(),
    };
    let (plan, mut mapped) = state.work.map(plan).await?;
    mapped.sort_by(|a, b| a.input.cmp(&b.input));
    let mut view = MapView {
        module_hash: plan.module_hash,
        inputs: mapped.len(),
        submitted: 0,
        existing: 0,
        refused: 0,
        jobs: Vec::with_capacity(mapped.len()),
    };
    for m in mapped {
        let row = match m.outcome {
            Ok((record, existing)) => {
                if existing {
                    view.existing += 1;
                } else {
                    view.submitted += 1;
                }
                MappedView {
                    input: m.input,
                    job: Some(record.into()),
                    existing,
                    error: None,
                }
            }
            Err(e) => {
                view.refused += 1;
                MappedView {
                    input: m.input,
                    job: None,
                    existing: false,
                    error: Some(e.to_string()),
                }
            }
        };
        view.jobs.push(row);
    }
    Ok(Json(view))
}
