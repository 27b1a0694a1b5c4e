//! `/v1/node/history`: this node's recent metrics samples, as kept by its
//! sampler (crate::telemetry::history), for the console's charts.

use axum::extract::{RawQuery, State};
use axum::Json;

use super::files::query_number;
use crate::admin::error::ApiError;
use crate::admin::AppState;
use crate::telemetry::history::Page;

/// `GET /v1/node/history[?since_seq=N]` [read]: the kept samples, oldest
/// first; a client that remembers `next_seq` asks only for new ones.
pub(super) async fn history(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page>, ApiError> {
    let since_seq =
        query_number::<u64>(raw.as_deref(), "since_seq", "a non-negative integer")?.unwrap_or(0);
    Ok(Json(state.history.page(since_seq)))
}
