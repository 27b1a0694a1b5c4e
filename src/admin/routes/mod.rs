//! Route table of the admin API.

mod actors;
mod cluster;
mod dht;
mod files;
mod health;
mod jobs;
mod node;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::{middleware, Router};

use super::error::ApiError;
use super::middleware::{require_admin, require_read, require_write, track_metrics};
use super::AppState;

pub(super) fn router(state: AppState, max_body_bytes: usize) -> Router {
    let open = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        // Checks the token itself: it answers for every role.
        .route("/v1/auth/whoami", get(node::whoami));
    let read = Router::new()
        .route("/v1/node", get(node::info))
        .route("/v1/node/labels", get(node::labels))
        .route("/v1/actors", get(actors::tree))
        .route("/v1/cluster/members", get(cluster::members))
        .route("/v1/dht/partitions", get(dht::partitions))
        .route("/v1/files", get(files::list))
        .route("/v1/files/{*name}", get(files::get))
        .route("/v1/stat/{*name}", get(files::stat))
        .route("/v1/jobs", get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::status))
        .route("/v1/jobs/{id}/result", get(jobs::result))
        .route("/v1/queues", get(jobs::queues))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_read));
    // Uploads stream with their own limit (dht.max_file_bytes), not the
    // small default body limit of the other routes.
    let write = Router::new()
        .route(
            "/v1/files/{*name}",
            put(files::put)
                .delete(files::delete)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/jobs", post(jobs::submit))
        .route("/v1/jobs/{id}", axum::routing::delete(jobs::cancel))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_write));
    let admin = Router::new()
        .route(
            "/v1/node/labels/{key}",
            put(node::put_label).delete(node::delete_label),
        )
        .route("/v1/chaos/actors/{*path}", post(actors::chaos_kill))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    open.merge(read)
        .merge(write)
        .merge(admin)
        .route_layer(middleware::from_fn(track_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}
