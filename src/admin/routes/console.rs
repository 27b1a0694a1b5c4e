//! The web console: static HTML, JavaScript and CSS compiled into the
//! binary (no build step, no files to deploy), and the one open route it
//! needs to know whether reads need a token. The page only reads the
//! admin API, with the token the user types in; see
//! `src/admin/console/README.md`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use crate::admin::AppState;

const INDEX_HTML: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const STYLE_CSS: &str = include_str!("../console/style.css");

/// The page runs only its own script and style (no inline code, no
/// `eval`), talks only to its own origin, may be framed by nobody, and
/// cannot be re-based or post forms elsewhere. `data:` images are its
/// icon; downloads use `blob:` links, which are navigations, not loads.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub(super) async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(super) async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(super) async fn style_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// What a client without a token may do.
#[derive(Serialize)]
pub(super) struct AuthPolicy {
    /// Read routes answer without a token.
    open_reads: bool,
}

pub(super) async fn policy(State(state): State<AppState>) -> Json<AuthPolicy> {
    Json(AuthPolicy {
        open_reads: state.tokens.open_reads(),
    })
}
