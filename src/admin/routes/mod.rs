//! The route table of the admin and data API.
//!
//! Every route is one entry of [`entries`]: method, path, who may call it,
//! and what the OpenAPI spec says about it. The router, the auth layer of
//! each route and the spec at `/openapi.json` are all built from that one
//! table, so a route cannot exist without its access rule, nor be
//! documented differently from how it is served.

mod actors;
mod backup;
mod cluster;
mod console;
mod dht;
mod files;
mod health;
mod history;
mod jobs;
mod node;
mod s3;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{middleware, Router};

use super::error::ApiError;
use super::middleware::{
    check_host, require, security_headers, throttle_auth_failures, track_metrics,
};
use super::AppState;
use crate::auth::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, readiness, metrics, the spec).
    Open,
    /// Any valid credential; the handler reports which role it has.
    AnyToken,
    /// A credential with at least this role.
    Needs(Role),
}

/// What a route takes as its request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// A JSON object.
    Json,
    /// Raw bytes, streamed.
    Bytes,
    /// UTF-8 text.
    Text,
}

/// A query parameter: name and meaning.
pub type QueryParam = (&'static str, &'static str);

/// One route of the API.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    /// HTTP method (GET routes answer HEAD too).
    pub method: Method,
    /// Path pattern in axum syntax: `{x}` one segment, `{*x}` the rest.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// One line for the spec.
    pub summary: &'static str,
    /// Query parameters.
    pub query: &'static [QueryParam],
    /// Request body.
    pub body: BodyKind,
    /// Status of a successful answer.
    pub ok_status: u16,
}

impl RouteInfo {
    /// Whether calling it changes state.
    pub fn is_mutating(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }
}

struct Entry {
    info: RouteInfo,
    handler: MethodRouter<AppState>,
}

fn entry(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    handler: MethodRouter<AppState>,
) -> Entry {
    let ok_status = match method {
        Method::POST | Method::PUT => 201,
        _ => 200,
    };
    Entry {
        info: RouteInfo {
            method,
            path,
            access,
            summary,
            query: &[],
            body: BodyKind::None,
            ok_status,
        },
        handler,
    }
}

impl Entry {
    fn query(mut self, query: &'static [QueryParam]) -> Self {
        self.info.query = query;
        self
    }

    fn body(mut self, body: BodyKind) -> Self {
        self.info.body = body;
        self
    }

    fn ok(mut self, status: u16) -> Self {
        self.info.ok_status = status;
        self
    }
}

const READ: Access = Access::Needs(Role::Read);
const WRITE: Access = Access::Needs(Role::Write);
const ADMIN: Access = Access::Needs(Role::Admin);

const FILE_LIST_QUERY: &[QueryParam] = &[
    ("prefix", "only names starting with this"),
    ("label", "k=v: only files with this label (repeatable)"),
    ("min_size", "bytes"),
    ("max_size", "bytes"),
    ("modified_after_ms", "Unix ms"),
    ("modified_before_ms", "Unix ms"),
    ("limit", "page size"),
    ("cursor", "next_cursor of the previous page"),
];

fn entries() -> Vec<Entry> {
    use Method as M;
    vec![
        entry(
            M::GET,
            "/",
            Access::Open,
            "the web console (HTML)",
            get(console::index),
        ),
        entry(
            M::GET,
            "/console/app.js",
            Access::Open,
            "the web console's script",
            get(console::app_js),
        ),
        entry(
            M::GET,
            "/console/style.css",
            Access::Open,
            "the web console's style sheet",
            get(console::style_css),
        ),
        entry(
            M::GET,
            "/v1/auth/policy",
            Access::Open,
            "whether reads need a token",
            get(console::policy),
        ),
        entry(
            M::GET,
            "/health",
            Access::Open,
            "the process serves",
            get(health::health),
        ),
        entry(
            M::GET,
            "/ready",
            Access::Open,
            "every supervised actor runs",
            get(health::ready),
        ),
        entry(
            M::GET,
            "/metrics",
            Access::Open,
            "Prometheus metrics",
            get(health::metrics),
        ),
        entry(
            M::GET,
            "/openapi.json",
            Access::Open,
            "this spec",
            get(super::openapi::serve),
        ),
        entry(
            M::GET,
            "/v1/auth/whoami",
            Access::AnyToken,
            "the caller's role and the upload limit",
            get(node::whoami),
        ),
        entry(
            M::GET,
            "/v1/node",
            READ,
            "this node: id, version, addresses, labels",
            get(node::info),
        ),
        entry(
            M::GET,
            "/v1/node/history",
            READ,
            "this node's recent metrics, one sample per interval (the console's charts)",
            get(history::history),
        )
        .query(&[("since_seq", "only samples with this seq or later")]),
        entry(
            M::GET,
            "/v1/node/labels",
            READ,
            "this node's labels",
            get(node::labels),
        ),
        entry(
            M::PUT,
            "/v1/node/labels/{key}",
            ADMIN,
            "set a label (body: the value)",
            put(node::put_label),
        )
        .body(BodyKind::Text)
        .ok(200),
        entry(
            M::DELETE,
            "/v1/node/labels/{key}",
            ADMIN,
            "remove a label",
            delete(node::delete_label),
        ),
        entry(
            M::GET,
            "/v1/node/tls",
            READ,
            "node-link TLS and admin HTTPS: the certificates and CAs in use",
            get(node::tls_status),
        ),
        entry(
            M::POST,
            "/v1/node/restart",
            ADMIN,
            "leave gracefully (with hand-off), stop and start again in place: one step of a rolling restart",
            post(node::restart),
        )
        .ok(202),
        entry(
            M::POST,
            "/v1/node/tls/reload",
            ADMIN,
            "re-read the link TLS directory and admin HTTPS certificate (as SIGHUP does); links and connections stay up",
            post(node::tls_reload),
        )
        .ok(200),
        entry(
            M::GET,
            "/v1/node/gossip/keys",
            READ,
            "sealed gossip: ids of the sealing and accepted keys",
            get(node::gossip_keys_status),
        ),
        entry(
            M::POST,
            "/v1/node/gossip/keys/reload",
            ADMIN,
            "re-read the gossip keys file (as SIGHUP does)",
            post(node::gossip_keys_reload),
        )
        .ok(200),
        entry(
            M::GET,
            "/v1/actors",
            READ,
            "the live supervision tree",
            get(actors::tree),
        ),
        entry(
            M::POST,
            "/v1/s3/keys",
            ADMIN,
            "make an S3 access key (its secret is shown once)",
            post(s3::create),
        )
        .body(BodyKind::Json)
        .ok(201),
        entry(
            M::GET,
            "/v1/s3/keys",
            ADMIN,
            "list S3 access keys (no secrets)",
            get(s3::list),
        ),
        entry(
            M::DELETE,
            "/v1/s3/keys/{access_key}",
            ADMIN,
            "delete an S3 access key",
            delete(s3::delete),
        )
        .ok(204),
        entry(
            M::POST,
            "/v1/chaos/actors/{*path}",
            ADMIN,
            "fault an actor: PATH/kill",
            post(actors::chaos_kill),
        )
        .query(&[("mode", "panic (default) or kill")])
        .ok(202),
        entry(
            M::GET,
            "/v1/cluster/members",
            READ,
            "the membership view",
            get(cluster::members),
        ),
        entry(
            M::POST,
            "/v1/cluster/restart",
            ADMIN,
            "rolling restart run by this node, one node at a time, events streamed as NDJSON",
            post(cluster::restart),
        )
        .query(&[
            ("rolling", "must be true"),
            ("step_timeout_s", "bound of one step (default 300)"),
        ]),
        entry(
            M::GET,
            "/v1/dht/partitions",
            READ,
            "partitions and replica health",
            get(dht::partitions),
        )
        .query(&[("partition", "only this partition")]),
        entry(
            M::GET,
            "/v1/dht/cache",
            READ,
            "the edge chunk cache: policy, bounds, hits, misses",
            get(dht::cache),
        ),
        entry(
            M::DELETE,
            "/v1/dht/cache",
            ADMIN,
            "drop every cached chunk",
            delete(dht::clear_cache),
        )
        .ok(204),
        entry(
            M::GET,
            "/v1/files",
            READ,
            "list files, sorted by name",
            get(files::list),
        )
        .query(FILE_LIST_QUERY),
        entry(
            M::GET,
            "/v1/files/{*name}",
            READ,
            "a file's content (Range supported)",
            get(files::get),
        )
        .query(&[("consistency", "available (default) or quorum")]),
        // Uploads stream with their own limit (dht.max_file_bytes), not the
        // small body limit of the other routes.
        entry(
            M::PUT,
            "/v1/files/{*name}",
            WRITE,
            "store a file (body: its content)",
            put(files::put).layer(DefaultBodyLimit::disable()),
        )
        .query(&[("label", "k=v (repeatable)")])
        .body(BodyKind::Bytes),
        entry(
            M::DELETE,
            "/v1/files/{*name}",
            WRITE,
            "delete a file",
            delete(files::delete),
        )
        .ok(204),
        entry(
            M::GET,
            "/v1/stat/{*name}",
            READ,
            "a file's metadata, partition and replicas",
            get(files::stat),
        ),
        entry(
            M::GET,
            "/v1/backup/status",
            READ,
            "backups: this node's schedule (settings, last run, next due)",
            get(backup::status),
        ),
        entry(
            M::GET,
            "/v1/backup/partitions",
            ADMIN,
            "backups: how many partitions the cluster has",
            get(backup::partitions),
        ),
        entry(
            M::GET,
            "/v1/backup/partitions/{partition}",
            ADMIN,
            "backups: a page of a partition's live files with their chunk lists, read from its replicas at one moment",
            get(backup::partition),
        )
        .query(&[
            ("after", "next_cursor of the previous page (64 hex digits)"),
            ("limit", "names per replica and page (1-1000, default 256)"),
        ]),
        entry(
            M::GET,
            "/v1/backup/chunks/{hash}",
            ADMIN,
            "backups: a chunk's bytes, verified against its hash",
            get(backup::chunk),
        )
        .query(&[
            ("partition", "the partition of a file holding the chunk"),
            ("len", "the chunk's length in bytes"),
        ]),
        entry(
            M::GET,
            "/v1/jobs",
            READ,
            "list jobs, oldest first",
            get(jobs::list),
        )
        .query(&[
            ("queue", "only this queue"),
            ("state", "only this state"),
            ("limit", "at most this many"),
        ]),
        entry(
            M::POST,
            "/v1/jobs",
            WRITE,
            "submit a job",
            post(jobs::submit),
        )
        .body(BodyKind::Json),
        entry(
            M::POST,
            "/v1/jobs/map",
            WRITE,
            "submit one wasm job per stored file under a prefix",
            post(jobs::map),
        )
        .body(BodyKind::Json),
        entry(
            M::GET,
            "/v1/jobs/{id}/chain",
            READ,
            "every step of the chain a job starts",
            get(jobs::chain),
        ),
        entry(
            M::GET,
            "/v1/jobs/{id}",
            READ,
            "a job's state, attempts and result",
            get(jobs::status),
        ),
        entry(
            M::DELETE,
            "/v1/jobs/{id}",
            WRITE,
            "cancel a job",
            delete(jobs::cancel),
        ),
        entry(
            M::GET,
            "/v1/jobs/{id}/result",
            READ,
            "a done job's raw result",
            get(jobs::result),
        ),
        entry(
            M::GET,
            "/v1/queues",
            READ,
            "depth, in-flight and dead letters per queue",
            get(jobs::queues),
        ),
    ]
}

/// Every route the API serves.
pub fn route_table() -> Vec<RouteInfo> {
    entries().into_iter().map(|e| e.info).collect()
}

pub(super) fn router(state: AppState, max_body_bytes: usize) -> Router {
    let mut router = Router::new();
    for Entry { info, handler } in entries() {
        let handler = match info.access {
            Access::Open | Access::AnyToken => handler,
            Access::Needs(role) => handler.route_layer(middleware::from_fn_with_state(
                (state.clone(), role),
                require,
            )),
        };
        // Outermost on every route that takes a credential: a source that
        // keeps failing is refused before its credential is checked.
        let handler = match info.access {
            Access::Open => handler,
            Access::AnyToken | Access::Needs(_) => handler.route_layer(
                middleware::from_fn_with_state(state.clone(), throttle_auth_failures),
            ),
        };
        // Routes of one path with different methods merge into one.
        router = router.route(info.path, handler);
    }
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), track_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .layer(middleware::map_response(security_headers))
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
