//! `/v1/actors` (the live supervision tree) and the chaos endpoint.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use hypha_supervisors::{FaultMode, SupervisorSnapshot};
use serde::{Deserialize, Serialize};

use crate::admin::error::ApiError;
use crate::admin::AppState;
use crate::node::ROOT_PATH;

pub(super) async fn tree(
    State(state): State<AppState>,
) -> Result<Json<SupervisorSnapshot>, ApiError> {
    Ok(Json(state.root()?.snapshot().await?))
}

#[derive(Deserialize)]
pub(super) struct ChaosQuery {
    mode: Option<String>,
}

#[derive(Serialize)]
pub(super) struct ChaosAccepted {
    path: String,
    mode: &'static str,
    status: &'static str,
}

/// `POST /v1/chaos/actors/{path}/kill?mode=panic|kill`; `path` is relative
/// to the root (`store`, `admin/http`), with or without a leading `node/`.
pub(super) async fn chaos_kill(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    Query(query): Query<ChaosQuery>,
) -> Result<(StatusCode, Json<ChaosAccepted>), ApiError> {
    let target = rest
        .strip_suffix("/kill")
        .ok_or_else(|| ApiError::not_found("chaos routes end in /kill"))?;
    let (mode, mode_name) = match query.mode.as_deref().unwrap_or("panic") {
        "panic" => (FaultMode::Panic, "panic"),
        "kill" => (FaultMode::Kill, "kill"),
        other => {
            return Err(ApiError::bad_request(format!(
                "mode must be panic or kill, not {other:?}"
            )))
        }
    };
    let target = target
        .strip_prefix(&format!("{ROOT_PATH}/"))
        .unwrap_or(target);
    let segments: Vec<&str> = target.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return Err(ApiError::bad_request(
            "name an actor below the root, e.g. store",
        ));
    }
    state.root()?.inject_fault(&segments, mode).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ChaosAccepted {
            path: format!("{ROOT_PATH}/{}", segments.join("/")),
            mode: mode_name,
            status: "fault delivered; the supervisor restarts the actor per its spec",
        }),
    ))
}
