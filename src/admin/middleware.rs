//! Request metrics, role checks and the security headers every response
//! carries.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::PoisonError;
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::auth::{AuthError, Role};

/// Count requests and time them, by matched route (bounded label values).
pub(crate) async fn track_metrics(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let started = state.clock.now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("hypha_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("hypha_http_request_duration_seconds", "route" => route, "method" => method)
        .record(
            state
                .clock
                .now()
                .saturating_duration_since(started)
                .as_secs_f64(),
        );
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Let a request through if its credential has `role` and is within its
/// rate limit; the [`crate::auth::Principal`] goes into the request's extensions.
pub(crate) async fn require(
    State((state, role)): State<(AppState, Role)>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match state.tokens.authorize(header, role) {
        Ok(p) => p,
        Err(err) => {
            metrics::counter!("hypha_http_auth_refusals_total", "reason" => refusal_label(&err))
                .increment(1);
            return ApiError::from(err).into_response();
        }
    };
    if let Err(wait) = state.rate.check(&principal.key) {
        metrics::counter!("hypha_http_rate_limited_total").increment(1);
        return too_many("rate_limited", "too many requests for this token", wait);
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Answer only requests that address the node by a name it holds (the
/// Host allow-list, [`crate::admin::host`]): 421 otherwise.
pub(crate) async fn check_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let host = request.uri().authority().map(|a| a.as_str()).or_else(|| {
        request
            .headers()
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("\u{0}"))
    });
    if state.hosts.allows(host) {
        return next.run(request).await;
    }
    metrics::counter!("hypha_http_host_refused_total").increment(1);
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "host_not_allowed",
        "this node does not answer to that host name; add it to http.allowed_hosts",
    )
    .into_response()
}

/// Refuse a source that has failed authentication too often, before its
/// credential is looked at; count a failure when a request that presented
/// a credential is answered 401. Wraps every route that takes a
/// credential (docs/security.md).
pub(crate) async fn throttle_auth_failures(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let since_origin = state
        .clock
        .now()
        .saturating_duration_since(state.clock_origin);
    let now_ms = u64::try_from(since_origin.as_millis()).unwrap_or(u64::MAX);
    let blocked = state
        .auth_failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .blocked(source, now_ms);
    if let Err(wait) = blocked {
        metrics::counter!("hypha_http_auth_throttled_total").increment(1);
        return too_many(
            "auth_throttled",
            "too many failed authentications from this address",
            wait,
        );
    }
    let presented = request.headers().contains_key(header::AUTHORIZATION);
    let response = next.run(request).await;
    if presented && response.status() == StatusCode::UNAUTHORIZED {
        state
            .auth_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed(source, now_ms);
    }
    response
}

/// 429 with `code`, and `Retry-After` in whole seconds (rounded up).
fn too_many(code: &'static str, what: &str, wait: Duration) -> Response {
    let retry_after_s = wait.as_secs() + 1;
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        code,
        format!("{what}; retry in {retry_after_s} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    response
}

fn refusal_label(err: &AuthError) -> &'static str {
    match err {
        AuthError::Missing => "missing",
        AuthError::Invalid => "invalid",
        AuthError::Expired => "expired",
        AuthError::Forbidden(_) => "forbidden",
    }
}

/// The policy of every response that sets none of its own (API answers,
/// downloads): nothing in it may run, load or be framed, even if a
/// browser is made to render it.
pub(crate) const LOCKED_CSP: &str = "sandbox; default-src 'none'; frame-ancestors 'none'";

/// `nosniff` on every response (a browser must not guess a type the node
/// did not send), and [`LOCKED_CSP`] where a route set no policy of its
/// own (the console sets a looser one for its own page).
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(LOCKED_CSP),
        );
    }
    response
}
