//! `/health` (the process answers), `/ready` (every supervised child runs),
//! `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::admin::error::ApiError;
use crate::admin::AppState;

pub(super) async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn ready(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = state.root()?.snapshot().await?;
    let status = if snapshot.all_running() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let ready = status == StatusCode::OK;
    Ok((status, Json(json!({ "ready": ready }))).into_response())
}

pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let handle = state
        .prometheus
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("metrics recorder not installed"))?;
    let body = crate::telemetry::render(handle);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
