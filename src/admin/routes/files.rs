//! `/v1/files`: streaming upload and download (with single byte ranges),
//! stat, delete, and cluster-wide listing with filters. The coordinator
//! ([`Files`](hypha_dht::files::Files)) does the distributed work;
//! this module parses HTTP and maps outcomes to status codes.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use hypha_dht::files::{ByteRange, FilesError, ListQuery, PutMeta, ReadConsistency};
use hypha_dht::manifest::{is_reserved, Manifest, RESERVED_PREFIX};
use hypha_dht::wire::{FileSummary, MAX_LIST};
use serde::Serialize;

use crate::admin::error::ApiError;
use crate::admin::AppState;
use crate::auth::{Principal, Role};

/// Default page size of listings.
const DEFAULT_LIMIT: usize = 100;
/// Header flagging a read answered without its quorum.
const READ_HEADER: &str = "hypha-read";

impl From<FilesError> for ApiError {
    fn from(err: FilesError) -> Self {
        let (status, code) = match &err {
            FilesError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            FilesError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            FilesError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            FilesError::Quorum { .. } => (StatusCode::SERVICE_UNAVAILABLE, "quorum_unavailable"),
            FilesError::DiskFull(_) => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
            FilesError::Unreadable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unreadable"),
            FilesError::NotSettled => (StatusCode::SERVICE_UNAVAILABLE, "node_joining"),
            FilesError::NoMajority { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_majority"),
            FilesError::Rejoining { .. } => (StatusCode::SERVICE_UNAVAILABLE, "rejoining"),
            FilesError::Pinned(_) => (StatusCode::SERVICE_UNAVAILABLE, "zone_pin_unmet"),
            FilesError::Body(_) => (StatusCode::BAD_REQUEST, "bad_body"),
            FilesError::TooSlow(_) => (StatusCode::REQUEST_TIMEOUT, "upload_too_slow"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

/// A file as the API shows it.
#[derive(Serialize)]
pub(crate) struct FileJson {
    name: String,
    size: u64,
    root: String,
    content_type: String,
    labels: BTreeMap<String, String>,
    created_ms: u64,
    modified_ms: u64,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunks: Option<usize>,
}

impl FileJson {
    fn of(f: &FileSummary, chunks: Option<usize>) -> Self {
        Self {
            name: f.name.clone(),
            size: f.size,
            root: hex::encode(f.root),
            content_type: f.content_type.clone(),
            labels: f.labels.clone(),
            created_ms: f.created.unix_ms(),
            modified_ms: f.modified.unix_ms(),
            version: format!("{:016x}.{}", f.modified.0, hex::encode(&f.writer[..4])),
            chunks,
        }
    }

    fn of_manifest(m: &Manifest) -> Self {
        Self::of(&FileSummary::of(m), Some(m.chunks.len()))
    }
}

#[derive(Serialize)]
pub(super) struct PutJson {
    #[serde(flatten)]
    file: FileJson,
    acks: usize,
    superseded: bool,
}

pub(super) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Query parameter `key` as a number (`None` when absent); a 400 saying
/// "`key` must be `what`" when it does not parse.
pub(super) fn query_number<T: std::str::FromStr>(
    raw: Option<&str>,
    key: &str,
    what: &str,
) -> Result<Option<T>, ApiError> {
    query_pairs(raw)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| {
            v.parse::<T>()
                .map_err(|_| ApiError::bad_request(format!("{key} must be {what}")))
        })
        .transpose()
}

fn parse_label(raw: &str) -> Result<(String, String), ApiError> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| ApiError::bad_request(format!("label {raw:?} is not key=value")))
}

fn consistency(pairs: &[(String, String)]) -> Result<ReadConsistency, ApiError> {
    match pairs
        .iter()
        .find(|(k, _)| k == "consistency")
        .map(|(_, v)| v.as_str())
    {
        None | Some("available") => Ok(ReadConsistency::Available),
        Some("quorum") => Ok(ReadConsistency::Quorum),
        Some(other) => Err(ApiError::bad_request(format!(
            "consistency must be quorum or available, got {other:?}"
        ))),
    }
}

/// What an API client may do with a name under [`RESERVED_PREFIX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReservedUse {
    /// Store or delete: never through the API (the node's own writers
    /// call the DHT directly).
    Change,
    /// Read, stat or list: admins only, for debugging.
    Read,
}

/// Refuse `name` if it is reserved and `role` may not use it that way.
fn check_reserved(name: &str, what: ReservedUse, role: Role) -> Result<(), ApiError> {
    let allowed = match what {
        ReservedUse::Change => false,
        ReservedUse::Read => role >= Role::Admin,
    };
    if !is_reserved(name) || allowed {
        return Ok(());
    }
    let message = match what {
        ReservedUse::Change => {
            format!("names under {RESERVED_PREFIX} are the node's own records and cannot be written or deleted through the API")
        }
        ReservedUse::Read => {
            format!("names under {RESERVED_PREFIX} are the node's own records; only an admin may read them")
        }
    };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "reserved_name",
        message,
    ))
}

/// The caller's role (routes with a role check always have a principal;
/// without one, the lowest role).
fn role_of(principal: Option<Extension<Principal>>) -> Role {
    principal.map_or(Role::Read, |Extension(p)| p.role)
}

/// `PUT /v1/files/{name}` [write]: the body is the content; `?label=k=v`
/// (repeatable) sets labels, `Content-Type` is kept.
pub(super) async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<PutJson>), ApiError> {
    check_reserved(&name, ReservedUse::Change, Role::Admin)?;
    let limit = state.files.config().max_file_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(FilesError::TooLarge { limit_bytes: limit }.into());
    }
    let mut labels = BTreeMap::new();
    for (key, value) in query_pairs(raw.as_deref()) {
        if key == "label" {
            let (k, v) = parse_label(&value)?;
            labels.insert(k, v);
        } else {
            return Err(ApiError::bad_request(format!("unknown parameter {key:?}")));
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::bad_request("Content-Type is not ASCII"))
        })
        .transpose()?
        .unwrap_or_else(|| "application/octet-stream".into());
    let meta = PutMeta {
        content_type,
        labels,
    };
    let report = state
        .files
        .put(&name, meta, body.into_data_stream())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PutJson {
            file: FileJson::of_manifest(&report.manifest),
            acks: report.acks,
            superseded: report.superseded,
        }),
    ))
}

/// A parsed `Range` header.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Whole file.
    All,
    /// One satisfiable range.
    Part(ByteRange),
    /// Not satisfiable (416).
    Unsatisfiable,
}

/// A position in a `Range` header: digits only, possibly beyond `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// Fits in a u64.
    At(u64),
    /// More digits than a u64 holds: past the end of any file.
    Beyond,
}

/// Digits as a [`Pos`]; `None` if empty or not all ASCII digits.
fn parse_pos(digits: &str) -> Option<Pos> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().map_or(Pos::Beyond, Pos::At))
}

/// Parse a single `bytes=` range against a file of `size` bytes (RFC 9110
/// §14.1.2). Forms other than one byte range (multiple ranges, other
/// units, bad syntax) are served as the whole file, as RFC 9110 allows.
/// Positions of any length are taken without overflow: a last position
/// at or past the end means the end, a first position past it is 416.
fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::All;
    };
    if spec.contains(',') {
        return RangeRequest::All;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::All;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // Suffix: the last N bytes.
        match parse_pos(last) {
            None => return RangeRequest::All,
            Some(Pos::At(0)) => return RangeRequest::Unsatisfiable,
            Some(Pos::At(n)) => ByteRange {
                start: size.saturating_sub(n),
                end: size,
            },
            Some(Pos::Beyond) => ByteRange {
                start: 0,
                end: size,
            },
        }
    } else {
        let start = match parse_pos(first) {
            None => return RangeRequest::All,
            Some(Pos::Beyond) => return RangeRequest::Unsatisfiable,
            Some(Pos::At(start)) => start,
        };
        let end = match (last.is_empty(), parse_pos(last)) {
            (true, _) | (false, Some(Pos::Beyond)) => size,
            (false, Some(Pos::At(l))) if l >= start => l.saturating_add(1).min(size),
            (false, _) => return RangeRequest::All,
        };
        ByteRange { start, end }
    };
    if range.start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Part(range)
}

/// Stored types a browser may show inline: none of them runs script on
/// the node's origin (the console's). Anything else, `text/html` and
/// `image/svg+xml` first, is served as an attachment.
const INLINE_SAFE_TYPES: &[&str] = &[
    "text/plain",
    "application/octet-stream",
    "application/json",
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
];

/// Whether a stored Content-Type may be shown inline: its essence (before
/// any `;` parameter), case-insensitively, is on [`INLINE_SAFE_TYPES`].
fn inline_safe(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    INLINE_SAFE_TYPES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(essence))
}

/// `Content-Disposition` for a download: `attachment` with the name's last
/// segment (reduced to safe ASCII) unless the type is [`inline_safe`].
fn disposition(name: &str, content_type: &str) -> Option<String> {
    if inline_safe(content_type) {
        return None;
    }
    let base = name.rsplit('/').next().unwrap_or_default();
    let safe: String = base
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    Some(if safe.is_empty() {
        "attachment".to_owned()
    } else {
        format!("attachment; filename=\"{safe}\"")
    })
}

fn file_headers(m: &Manifest, degraded: bool) -> Result<HeaderMap, ApiError> {
    let mut h = HeaderMap::new();
    let value = |s: &str| {
        HeaderValue::from_str(s)
            .map_err(|_| ApiError::bad_request("stored metadata is not a valid header"))
    };
    h.insert(header::CONTENT_TYPE, value(&m.content_type)?);
    if let Some(d) = disposition(&m.name, &m.content_type) {
        h.insert(header::CONTENT_DISPOSITION, value(&d)?);
    }
    // Stated here as well as by the global layer: a download must never
    // render with the console's powers, whatever layer order does.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::admin::middleware::LOCKED_CSP),
    );
    h.insert(
        header::ETAG,
        value(&format!("\"{}\"", hex::encode(m.root)))?,
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let modified = UNIX_EPOCH + Duration::from_millis(m.modified.unix_ms());
    h.insert(
        header::LAST_MODIFIED,
        value(&httpdate::fmt_http_date(modified))?,
    );
    if degraded {
        h.insert(READ_HEADER, HeaderValue::from_static("degraded"));
    }
    Ok(h)
}

/// `GET|HEAD /v1/files/{name}` [read]: the content (or one byte range).
/// `?consistency=quorum` fails with 503 instead of reading from fewer
/// replicas than the read quorum.
pub(super) async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_reserved(&name, ReservedUse::Read, role_of(principal))?;
    let pairs = query_pairs(raw.as_deref());
    let (manifest, degraded) = state.files.stat(&name, consistency(&pairs)?).await?;
    let mut out = file_headers(&manifest, degraded)?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, range) = match parse_range(range, manifest.size) {
        RangeRequest::All => (
            StatusCode::OK,
            ByteRange {
                start: 0,
                end: manifest.size,
            },
        ),
        RangeRequest::Part(r) => {
            let content_range = format!("bytes {}-{}/{}", r.start, r.end - 1, manifest.size);
            out.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&content_range)
                    .map_err(|_| ApiError::bad_request("range"))?,
            );
            (StatusCode::PARTIAL_CONTENT, r)
        }
        RangeRequest::Unsatisfiable => {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", manifest.size)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            let err = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "range outside the file",
            );
            return Ok((h, err).into_response());
        }
    };
    out.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(range.end - range.start),
    );
    let body = first_chunk_checked(state.files.read(&manifest, range)).await?;
    Ok((status, out, Body::from_stream(body)).into_response())
}

/// The download stream, once its first piece was read: a file whose first
/// chunk no replica can supply is answered 503 `unreadable` before any
/// header, not 200 with an empty body. A chunk that fails later ends the
/// stream with an error: the server closes the connection short of the
/// `Content-Length` it sent, which every HTTP client reports as an error
/// (curl: "transfer closed with N bytes remaining"; reqwest: a body
/// error). The client never sees unverified bytes (docs/dht.md).
async fn first_chunk_checked(
    mut body: futures::stream::BoxStream<'static, Result<Vec<u8>, FilesError>>,
) -> Result<impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>>, ApiError> {
    let first = body.next().await.transpose()?;
    let rest = futures::stream::iter(first.map(Ok)).chain(body);
    Ok(rest.map(|item| {
        item.map_err(|err| {
            metrics::counter!("hypha_files_downloads_cut_total").increment(1);
            tracing::error!(%err, "download cut short");
            std::io::Error::other(err.to_string())
        })
    }))
}

#[derive(Serialize)]
pub(super) struct StatJson {
    #[serde(flatten)]
    file: FileJson,
    partition: u16,
    replicas: Vec<String>,
}

/// `GET /v1/stat/{name}` [read]: metadata as JSON, with the partition and
/// the node ids of its replica set as this node sees it.
pub(super) async fn stat(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    principal: Option<Extension<Principal>>,
) -> Result<Response, ApiError> {
    check_reserved(&name, ReservedUse::Read, role_of(principal))?;
    let pairs = query_pairs(raw.as_deref());
    let (manifest, degraded) = state.files.stat(&name, consistency(&pairs)?).await?;
    let mut headers = HeaderMap::new();
    if degraded {
        headers.insert(READ_HEADER, HeaderValue::from_static("degraded"));
    }
    let (partition, replicas) = state.files.placement_of(&name);
    let body = StatJson {
        file: FileJson::of_manifest(&manifest),
        partition: partition.0,
        replicas: replicas.into_iter().map(|m| m.node_id).collect(),
    };
    Ok((headers, Json(body)).into_response())
}

/// `DELETE /v1/files/{name}` [write]: 204, or 404 if there is no such file.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_reserved(&name, ReservedUse::Change, Role::Admin)?;
    state.files.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub(super) struct ListJson {
    files: Vec<FileJson>,
    next_cursor: Option<String>,
    incomplete: bool,
}

fn parse_number(key: &str, value: &str) -> Result<u64, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{key} must be a non-negative integer")))
}

fn list_query(raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        ..ListQuery::default()
    };
    for (key, value) in query_pairs(raw) {
        match key.as_str() {
            "prefix" => q.prefix = value,
            "cursor" => q.after = value,
            "limit" => {
                let limit = parse_number(&key, &value)?;
                if limit == 0 || limit > u64::from(MAX_LIST) {
                    return Err(ApiError::bad_request(format!("limit must be 1-{MAX_LIST}")));
                }
                q.limit = usize::try_from(limit).unwrap_or(DEFAULT_LIMIT);
            }
            "label" => {
                let (k, v) = parse_label(&value)?;
                q.labels.insert(k, v);
            }
            "min_size" => q.min_size = Some(parse_number(&key, &value)?),
            "max_size" => q.max_size = Some(parse_number(&key, &value)?),
            "modified_after_ms" => q.modified_after_ms = Some(parse_number(&key, &value)?),
            "modified_before_ms" => q.modified_before_ms = Some(parse_number(&key, &value)?),
            _ => return Err(ApiError::bad_request(format!("unknown parameter {key:?}"))),
        }
    }
    Ok(q)
}

/// `GET /v1/files?prefix=&label=k=v&min_size=&max_size=&modified_after_ms=
/// &modified_before_ms=&limit=&cursor=` [read]: one page, sorted by name.
/// Names under [`RESERVED_PREFIX`] are listed only to an admin who asks
/// for them by prefix; everyone else's pages leave them out (a page can
/// then be shorter than `limit`: follow `next_cursor` as always).
pub(super) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    principal: Option<Extension<Principal>>,
) -> Result<Json<ListJson>, ApiError> {
    let query = list_query(raw.as_deref())?;
    let asks_reserved = is_reserved(&query.prefix);
    if asks_reserved {
        check_reserved(&query.prefix, ReservedUse::Read, role_of(principal))?;
    }
    let (page, incomplete) = state.files.list(&query).await?;
    Ok(Json(ListJson {
        files: page
            .entries
            .iter()
            .filter(|f| asks_reserved || !is_reserved(&f.name))
            .map(|f| FileJson::of(f, None))
            .collect(),
        next_cursor: page.next_cursor,
        incomplete,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        let r = |start, end| RangeRequest::Part(ByteRange { start, end });
        assert_eq!(parse_range(None, 10), RangeRequest::All);
        assert_eq!(parse_range(Some("bytes=0-4"), 10), r(0, 5));
        assert_eq!(parse_range(Some("bytes=5-"), 10), r(5, 10));
        assert_eq!(parse_range(Some("bytes=-3"), 10), r(7, 10));
        assert_eq!(parse_range(Some("bytes=-30"), 10), r(0, 10));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), r(8, 10));
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), RangeRequest::All);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), RangeRequest::All);
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeRequest::All);
        assert_eq!(
            parse_range(Some("bytes=0-0"), 0),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn huge_positions_neither_overflow_nor_panic() {
        let r = |start, end| RangeRequest::Part(ByteRange { start, end });
        let max = u64::MAX;
        assert_eq!(parse_range(Some(&format!("bytes=5-{max}")), 20), r(5, 20));
        assert_eq!(
            parse_range(Some("bytes=5-99999999999999999999999"), 20),
            r(5, 20)
        );
        assert_eq!(
            parse_range(Some(&format!("bytes={max}-{max}")), 20),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=99999999999999999999999-"), 20),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=-99999999999999999999"), 20),
            r(0, 20)
        );
        assert_eq!(parse_range(Some(&format!("bytes=-{max}")), 20), r(0, 20));
        assert_eq!(parse_range(Some("bytes=-"), 20), RangeRequest::All);
        assert_eq!(parse_range(Some("bytes=+1-2"), 20), RangeRequest::All);
        assert_eq!(parse_range(Some("bytes=1-+2"), 20), RangeRequest::All);
    }

    proptest::proptest! {
        /// Any header, any size: no panic, and a served range lies inside
        /// the file and is not empty.
        #[test]
        fn any_header_gives_a_range_inside_the_file(header in "(bytes=)?[-0-9, a-z]{0,40}", size in proptest::prelude::any::<u64>()) {
            if let RangeRequest::Part(r) = parse_range(Some(&header), size) {
                proptest::prop_assert!(r.start < r.end && r.end <= size);
            }
        }

        /// Well-formed `first-last` ranges follow RFC 9110 for any numbers.
        #[test]
        fn numeric_ranges_follow_the_rfc(first: u64, last: u64, size: u64) {
            let got = parse_range(Some(&format!("bytes={first}-{last}")), size);
            let want = if last < first {
                RangeRequest::All
            } else if first >= size {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(ByteRange { start: first, end: last.saturating_add(1).min(size) })
            };
            proptest::prop_assert_eq!(got, want);
        }

        /// Suffix ranges give the last N bytes, the whole file if N is larger.
        #[test]
        fn suffix_ranges_follow_the_rfc(n: u64, size: u64) {
            let got = parse_range(Some(&format!("bytes=-{n}")), size);
            let want = if n == 0 || size == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(ByteRange { start: size.saturating_sub(n), end: size })
            };
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn only_inert_types_are_shown_inline() {
        for t in ["text/plain; charset=utf-8", "IMAGE/PNG", "application/json"] {
            assert!(inline_safe(t), "{t}");
            assert_eq!(disposition("a/b.txt", t), None);
        }
        for t in [
            "text/html",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/javascript",
            "text/plain2",
            "",
        ] {
            assert!(!inline_safe(t), "{t}");
        }
        assert_eq!(
            disposition("dir/x\"y<z>.html", "text/html").unwrap(),
            "attachment; filename=\"x_y_z_.html\""
        );
        assert_eq!(disposition("dir/", "text/html").unwrap(), "attachment");
    }

    #[test]
    fn list_queries_are_checked() {
        let q = list_query(Some("prefix=a%2F&label=zone%3Deu&limit=5&min_size=3")).unwrap();
        assert_eq!(q.prefix, "a/");
        assert_eq!(q.labels.get("zone").map(String::as_str), Some("eu"));
        assert_eq!((q.limit, q.min_size), (5, Some(3)));
        assert!(list_query(Some("limit=0")).is_err());
        assert!(list_query(Some("limit=x")).is_err());
        assert!(list_query(Some("bogus=1")).is_err());
        assert!(list_query(Some("label=novalue")).is_err());
    }
}
