//! `/v1/node` (identity, generation, addresses), node labels, and the
//! restart request of a rolling restart.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hypha_cluster::peers::tls::LinkTls;
use hypha_core::labels::{self, LabelError, MAX_LABELS};
use hypha_store::{Condition, StoreError, Tree, WriteBatch};
use serde::Serialize;

use crate::admin::error::ApiError;
use crate::admin::AppState;
use crate::node::{read_generation, read_labels};

#[derive(Serialize)]
pub(super) struct NodeInfo {
    id: String,
    name: String,
    version: &'static str,
    generation: u64,
    started_unix_ms: u64,
    /// The node's wall clock as it answered: its offset from the
    /// caller's shows clock skew (HTTP `Date` cannot: hyper caches it and
    /// holds it still while a clock steps back).
    clock_unix_ms: u64,
    http: String,
    cluster: String,
    gossip: String,
    bulk: String,
    /// The S3 endpoint, when this node serves one.
    s3: Option<String>,
    labels: BTreeMap<String, String>,
}

pub(super) async fn info(State(state): State<AppState>) -> Result<Json<NodeInfo>, ApiError> {
    let facts = &state.facts;
    Ok(Json(NodeInfo {
        id: facts.id.to_hex(),
        name: facts.name.clone(),
        version: env!("CARGO_PKG_VERSION"),
        generation: read_generation(&state.store).await?,
        started_unix_ms: facts.started_unix_ms,
        clock_unix_ms: state.clock.wall_ms(),
        http: facts.listen.http.to_string(),
        cluster: facts.listen.cluster.to_string(),
        gossip: facts.listen.gossip.to_string(),
        bulk: facts.listen.bulk.to_string(),
        s3: facts.listen.s3.map(|a| a.to_string()),
        labels: read_labels(&state.store).await?,
    }))
}

#[derive(Serialize)]
pub(super) struct WhoAmI {
    role: &'static str,
    max_file_bytes: u64,
}

/// `GET /v1/auth/whoami`: the role the presented token grants (401 for a
/// missing or unknown one), and the node's upload limit. Clients ask
/// before streaming an upload: a node refuses an unauthorised or oversize
/// upload without reading it, which a client still writing its body sees
/// only as a broken connection.
pub(super) async fn whoami(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<WhoAmI>, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let role = state.tokens.role_of(header)?;
    Ok(Json(WhoAmI {
        role: role.as_str(),
        max_file_bytes: state.files.config().max_file_bytes,
    }))
}

pub(super) async fn labels(
    State(state): State<AppState>,
) -> Result<Json<BTreeMap<String, String>>, ApiError> {
    Ok(Json(read_labels(&state.store).await?))
}

fn label_error(err: LabelError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_label",
        err.to_string(),
    )
}

fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "body_too_large"
    } else {
        "bad_body"
    };
    ApiError::new(status, code, rejection.body_text())
}

/// `PUT /v1/node/labels/{key}` with the value as the (UTF-8) body.
/// Answers 200 only once the label is durable.
pub(super) async fn put_label(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BTreeMap<String, String>>, ApiError> {
    let body = body.map_err(body_error)?;
    let value = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the label value must be UTF-8"))?
        .trim_end_matches(['\r', '\n']);
    labels::validate_key(&key).map_err(label_error)?;
    labels::validate_value(value).map_err(label_error)?;
    // The cap is checked by the store in the same step as the write, so
    // concurrent PUTs cannot exceed it.
    let batch = WriteBatch::new()
        .put(Tree::NodeLabels, key.as_bytes(), value.as_bytes())
        .require(Condition::RoomFor {
            tree: Tree::NodeLabels,
            key: key.as_bytes().to_vec(),
            max: MAX_LABELS,
        })
        // Settings stay writable on a full disk, like deletes.
        .recovery();
    match state.store.write(batch).await {
        Err(StoreError::ConditionFailed(_)) => return Err(label_error(LabelError::TooMany)),
        other => other?,
    }
    Ok(Json(published_labels(&state).await?))
}

/// The labels as stored, handed to membership to publish (a zone change
/// reaches every node's placement within a gossip round or two).
async fn published_labels(state: &AppState) -> Result<BTreeMap<String, String>, ApiError> {
    let labels = read_labels(&state.store).await?;
    state.labels.send_replace(labels.clone());
    Ok(labels)
}

/// `DELETE /v1/node/labels/{key}`: 200 once durable, 404 if absent.
pub(super) async fn delete_label(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<BTreeMap<String, String>>, ApiError> {
    if state
        .store
        .get(Tree::NodeLabels, key.as_bytes())
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no label {key:?}")));
    }
    state
        .store
        .write(WriteBatch::new().delete(Tree::NodeLabels, key.as_bytes()))
        .await?;
    Ok(Json(published_labels(&state).await?))
}

/// Node-link TLS as the node uses it now.
#[derive(Serialize)]
pub(super) struct TlsInfo {
    /// `mutual-tls` or `plaintext`.
    links: &'static str,
    /// The directory the material is read from.
    dir: Option<String>,
    /// BLAKE3 (hex) of the node certificate's DER.
    cert_blake3: Option<String>,
    /// CA certificates trusted.
    trusted_cas: usize,
    /// Successful reloads since start.
    reloads: u64,
    /// The admin API's HTTPS certificate; null when it serves plain HTTP.
    admin: Option<crate::admin::tls::AdminTlsStatus>,
}

impl TlsInfo {
    fn of(state: &AppState) -> Self {
        Self {
            admin: state.admin_tls.as_ref().map(|t| t.status()),
            ..Self::links(state.tls.as_ref())
        }
    }

    fn links(tls: Option<&LinkTls>) -> Self {
        match tls.map(LinkTls::status) {
            Some(status) => Self {
                links: "mutual-tls",
                dir: Some(status.dir.display().to_string()),
                cert_blake3: Some(status.cert_blake3),
                trusted_cas: status.trusted_cas,
                reloads: status.reloads,
                admin: None,
            },
            None => Self {
                links: "plaintext",
                dir: None,
                cert_blake3: None,
                trusted_cas: 0,
                reloads: 0,
                admin: None,
            },
        }
    }
}

pub(super) async fn tls_status(State(state): State<AppState>) -> Json<TlsInfo> {
    Json(TlsInfo::of(&state))
}

/// `POST /v1/node/tls/reload`: re-reads the link TLS directory and the
/// admin HTTPS certificate, each that is configured; 409 if neither is, or
/// if either holds nothing usable (what failed keeps what it had, what
/// succeeded is in use).
pub(super) async fn tls_reload(State(state): State<AppState>) -> Result<Json<TlsInfo>, ApiError> {
    if state.tls.is_none() && state.admin_tls.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "links_plaintext",
            "node links are plaintext and the admin API serves HTTP: there is no TLS material to reload",
        ));
    }
    let mut failures = Vec::new();
    if let Some(tls) = &state.tls {
        if let Err(e) = crate::cluster::reload_link_tls(tls).await {
            failures.push(format!("node links: {e}"));
        }
    }
    if let Some(admin) = &state.admin_tls {
        if let Err(e) = crate::admin::tls::reload_admin_tls(admin).await {
            failures.push(format!("admin HTTPS: {e}"));
        }
    }
    if !failures.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "tls_reload_failed",
            failures.join("; "),
        ));
    }
    Ok(Json(TlsInfo::of(&state)))
}

fn gossip_keys(state: &AppState) -> Result<&crate::gossip_keys::GossipKeys, ApiError> {
    state.gossip_keys.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "gossip_unsealed",
            "this node's gossip is not sealed (an in-process test node)",
        )
    })
}

/// `GET /v1/node/gossip/keys`: key ids only, never the keys.
pub(super) async fn gossip_keys_status(
    State(state): State<AppState>,
) -> Result<Json<crate::gossip_keys::GossipKeysStatus>, ApiError> {
    Ok(Json(gossip_keys(&state)?.status()))
}

/// `POST /v1/node/gossip/keys/reload`: 409 when the ring is the cookie or
/// the file is unusable (the ring in use is then kept).
pub(super) async fn gossip_keys_reload(
    State(state): State<AppState>,
) -> Result<Json<crate::gossip_keys::GossipKeysStatus>, ApiError> {
    let status = gossip_keys(&state)?.reload().await.map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            "gossip_keys_reload_failed",
            e.to_string(),
        )
    })?;
    Ok(Json(status))
}

#[derive(Serialize)]
pub(super) struct Restarting {
    restarting: bool,
    id: String,
    name: String,
    /// The generation that is stopping; the restarted node has the next.
    generation: u64,
}

/// `POST /v1/node/restart` [admin]: leave the cluster gracefully (hand-off
/// included, as on SIGTERM), stop, and start again in place (the binary
/// re-executes itself with its arguments). Answers 202 at once; the
/// server drains this answer before it stops. One step of a rolling
/// restart (docs/operations.md).
pub(super) async fn restart(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Restarting>), ApiError> {
    let generation = read_generation(&state.store).await?;
    tracing::info!(generation, "restart requested through the admin API");
    state.restart.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(Restarting {
            restarting: true,
            id: state.facts.id.to_hex(),
            name: state.facts.name.clone(),
            generation,
        }),
    ))
}
