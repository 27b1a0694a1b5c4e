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

/// Largest body of a request that is not an object's bytes (the XML of
/// DeleteObjects, CompleteMultipartUpload, bucket settings): s3s gathers
/// those whole before it parses them, and 1,000 keys of 1 KiB fit.
pub const MAX_XML_BODY_BYTES: usize = 2 << 20;

/// Whether a request's body is an object's bytes, streamed into chunks and
/// bounded only by the node's file size limit: a PUT to a key (PutObject,
/// UploadPart, a presigned PUT). Every other body is held to
/// [`MAX_XML_BODY_BYTES`].
pub fn streams_body(method: &axum::http::Method, uri: &axum::http::Uri) -> bool {
    let has_key = uri
        .path()
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    let object_query = uri.query().is_none_or(|q| {
        q.split('&').filter(|p| !p.is_empty()).all(|p| {
            let name = p.split_once('=').map_or(p, |(n, _)| n);
            matches!(name, "partNumber" | "uploadId")
                || name.to_ascii_lowercase().starts_with("x-amz-")
        })
    });
    method == axum::http::Method::PUT && has_key && object_query
}

async fn handle(State(service): State<Arc<s3s::service::S3Service>>, req: Request) -> Response {
    let started = Instant::now();
    let streamed = streams_body(req.method(), req.uri());
    if !streamed && declared_length(req.headers()).is_some_and(|n| n > MAX_XML_BODY_BYTES as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let body = if streamed {
        s3s::Body::http_body_unsync(body)
    } else {
        s3s::Body::http_body_unsync(http_body_util::Limited::new(body, MAX_XML_BODY_BYTES))
    };
    let req = hyper::Request::from_parts(parts, body);
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

fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// S3's answer to a request body over the bound (an undeclared length
/// past it is cut while s3s reads it, and s3s answers InternalError).
fn too_large() -> Response {
    metrics::counter!("hypha_s3_responses_total", "status" => "4xx").increment(1);
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>MaxMessageLengthExceeded</Code>\
         <Message>request bodies other than an object's bytes are at most {MAX_XML_BODY_BYTES} bytes</Message></Error>"
    );
    (
        axum::http::StatusCode::BAD_REQUEST,
        [(axum::http::header::CONTENT_TYPE, "application/xml")],
        xml,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Method, Uri};

    fn streams(method: Method, uri: &str) -> bool {
        streams_body(&method, &uri.parse::<Uri>().unwrap_or_default())
    }

    #[test]
    fn only_object_bytes_stream_unbounded() {
        assert!(streams(Method::PUT, "/b/k"));
        assert!(streams(Method::PUT, "/b/dir/k?partNumber=2&uploadId=ab"));
        assert!(streams(
            Method::PUT,
            "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00"
        ));
        assert!(!streams(Method::PUT, "/b"), "CreateBucket's configuration");
        assert!(!streams(Method::PUT, "/b/"));
        assert!(!streams(Method::PUT, "/b/k?tagging"));
        assert!(!streams(Method::POST, "/b?delete"), "DeleteObjects");
        assert!(
            !streams(Method::POST, "/b/k?uploadId=ab"),
            "CompleteMultipartUpload"
        );
    }
}
