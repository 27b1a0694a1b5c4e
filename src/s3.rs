//! The node's S3-compatible endpoint: `hypha_s3`'s service (s3s over the
//! cluster's files) behind an axum router, so that it is served by the same
//! accept loop as the admin API (bounded connections, header deadline,
//! graceful drain, HTTPS when the admin API has it) by a second `http`
//! actor, `s3`, under the `admin` supervisor. docs/s3.md.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hypha_s3::KeyStore;

/// The router of the S3 listener: every request goes to s3s.
pub fn router(files: hypha_dht::files::Files, keys: KeyStore) -> Router {
    let service = Arc::new(hypha_s3::service(files, keys));
    Router::new().fallback(handle).with_state(service)
}

async fn handle(State(service): State<Arc<s3s::service::S3Service>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let req = hyper::Request::from_parts(parts, s3s::Body::http_body_unsync(body));
    let response = match service.call(req).await {
        Ok(res) => res.map(Body::new).into_response(),
        // s3s turns S3 errors into XML answers itself; what reaches here
        // failed before (an unreadable request).
        Err(e) => {
            let status = e
                .status_code()
                .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
            (status, e.to_string()).into_response()
        }
    };
    let class = match response.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("hypha_s3_responses_total", "status" => class).increment(1);
    metrics::histogram!("hypha_s3_request_seconds").record(started.elapsed().as_secs_f64());
    response
}
