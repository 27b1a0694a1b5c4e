//! `/v1/dht/partitions`: anti-entropy's record of every partition this
//! node replicates or hands off — replicas, last exchanges, divergence,
//! confirmation — with this node's entry count and digest root, so that
//! comparing the answers of all nodes shows whether replicas converged.
//! `/v1/dht/cache`: the node's edge chunk cache.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use hypha_dht::anti_entropy::view::PartitionView;
use hypha_dht::anti_entropy::AntiEntropyMessage;
use hypha_dht::files::CacheStats;
use serde::Serialize;

use super::files::query_number;
use crate::admin::error::ApiError;
use crate::admin::AppState;

/// Bound on the exchange actor's answer.
const STATUS_TIMEOUT_MS: u64 = 5_000;

#[derive(Serialize)]
pub(super) struct Partitions {
    partitions: Vec<PartitionView>,
}

/// `GET /v1/dht/partitions[?partition=N]` [read].
pub(super) async fn partitions(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Partitions>, ApiError> {
    let only = query_number::<u16>(raw.as_deref(), "partition", "a number 0-65535")?;
    let cell = ractor::registry::where_is(state.dht.exchange_name.clone())
        .ok_or_else(|| ApiError::unavailable("anti-entropy is restarting"))?;
    let actor: ractor::ActorRef<AntiEntropyMessage> = cell.into();
    let mut views = ractor::call_t!(
        actor,
        |reply| AntiEntropyMessage::Status { reply },
        STATUS_TIMEOUT_MS
    )
    .map_err(|e| ApiError::unavailable(format!("anti-entropy did not answer: {e}")))?;
    if let Some(p) = only {
        views.retain(|v| v.partition == p);
    }
    for view in &mut views {
        view.fill(&state.dht.store)
            .await
            .map_err(|e| ApiError::unavailable(format!("store: {e}")))?;
    }
    Ok(Json(Partitions { partitions: views }))
}

/// `GET /v1/dht/cache` [read].
pub(super) async fn cache(State(state): State<AppState>) -> Json<CacheStats> {
    Json(state.dht.files.cache().stats())
}

/// `DELETE /v1/dht/cache` [admin].
pub(super) async fn clear_cache(State(state): State<AppState>) -> StatusCode {
    state.dht.files.cache().clear();
    StatusCode::NO_CONTENT
}
