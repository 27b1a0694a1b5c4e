//! `/v1/backup`: the reads a backup makes (docs/backup.md). The partition
//! count; one page of a partition's live manifests, gathered from its
//! replicas at one moment, with chunk lists (and a small file's inline
//! content); one chunk's bytes, verified against its hash before they are
//! sent. Read-only, admin role: a backup reads every file. The node's own
//! records (names under `.hypha/`) are left out: the API cannot write them
//! back. And the state of this node's scheduled backups (read role).

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hypha_dht::chunker::MAX_CHUNK_BYTES;
use hypha_dht::keyspace::Partition;
use hypha_dht::manifest::ChunkRef;
use hypha_dht::wire::MAX_LIST;
use serde::Serialize;

use super::files::{query_number, query_pairs};
use crate::admin::error::ApiError;
use crate::admin::AppState;
use crate::backup::index::{FileEntry, Hash32};
use crate::backup::schedule::StatusDoc;
use crate::backup::source::{node_page, DEFAULT_PAGE};

#[derive(Serialize)]
pub(super) struct PartitionsJson {
    partitions: u32,
    partition_bits: u8,
}

/// `GET /v1/backup/partitions` [admin]: how many partitions to read.
pub(super) async fn partitions(State(state): State<AppState>) -> Json<PartitionsJson> {
    let p = state.files.partitioning();
    Json(PartitionsJson {
        partitions: p.count(),
        partition_bits: p.bits(),
    })
}

#[derive(Serialize)]
pub(super) struct PageJson {
    partition: u16,
    files: Vec<FileEntry>,
    /// Give as `after` for the next page; absent at the partition's end.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// A 64-hex-digit hash, or a 400 naming `what`.
fn hash_param(text: &str, what: &str) -> Result<Hash32, ApiError> {
    Hash32::parse(text)
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be 64 hex digits")))
}

/// `GET /v1/backup/partitions/{p}?after=KEY&limit=N` [admin].
pub(super) async fn partition(
    State(state): State<AppState>,
    Path(p): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<PageJson>, ApiError> {
    let partition = p
        .parse::<u16>()
        .map_err(|_| ApiError::bad_request("partition must be a number 0-65535"))?;
    let mut after = None;
    for (key, value) in query_pairs(raw.as_deref()) {
        match key.as_str() {
            "after" => after = Some(hash_param(&value, "after")?),
            "limit" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?}"
                )))
            }
        }
    }
    let limit = query_number::<u32>(raw.as_deref(), "limit", &format!("a number 1-{MAX_LIST}"))?
        .unwrap_or(DEFAULT_PAGE);
    let page = node_page(&state.files, partition, after, limit).await?;
    Ok(Json(PageJson {
        partition,
        files: page.files,
        next_cursor: page.next.map(|h| h.to_hex()),
    }))
}

/// `GET /v1/backup/status` [read]: this node's backup schedule, its last
/// run and when the next is due.
pub(super) async fn status(State(state): State<AppState>) -> Json<StatusDoc> {
    Json(state.backup.doc())
}

/// `GET /v1/backup/chunks/{hash}?partition=P&len=N` [admin]: the chunk's
/// bytes, verified.
pub(super) async fn chunk(
    State(state): State<AppState>,
    Path(hash): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let hash = hash_param(&hash, "the chunk hash")?;
    let partition = query_number::<u16>(raw.as_deref(), "partition", "a number 0-65535")?
        .ok_or_else(|| ApiError::bad_request("partition is required"))?;
    let len = query_number::<u32>(raw.as_deref(), "len", "a chunk length in bytes")?
        .ok_or_else(|| ApiError::bad_request("len is required"))?;
    if len == 0 || len as usize > MAX_CHUNK_BYTES {
        return Err(ApiError::bad_request(format!(
            "len must be 1-{MAX_CHUNK_BYTES}"
        )));
    }
    let bytes = state
        .files
        .chunk(Partition(partition), ChunkRef { hash: hash.0, len })
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        bytes,
    )
        .into_response())
}
