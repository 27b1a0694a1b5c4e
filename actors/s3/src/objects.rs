//! Reading and writing objects as files: the body streamed into chunks
//! with its MD5 computed on the way (the ETag), conditional headers, and
//! the mapping of the files' errors onto S3's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hypha_dht::files::{Files, FilesError, PutMeta, PutReport, ReadConsistency};
use hypha_dht::manifest::Manifest;
use md5::{Digest, Md5};
use s3s::dto::{StreamingBlob, Timestamp};
use s3s::{s3_error, S3Error, S3ErrorCode};

use crate::naming::{etag_matches, etag_of, ETAG_LABEL};

/// The S3 error for a files error.
pub fn files_error(e: FilesError) -> S3Error {
    let code = match &e {
        FilesError::NotFound(_) => S3ErrorCode::NoSuchKey,
        FilesError::BadRequest(_) => S3ErrorCode::InvalidArgument,
        FilesError::TooLarge { .. } => S3ErrorCode::EntityTooLarge,
        FilesError::Body(_) => S3ErrorCode::IncompleteBody,
        _ => S3ErrorCode::ServiceUnavailable,
    };
    S3Error::with_message(code, e.to_string())
}

/// Unix milliseconds as S3's timestamp.
pub fn timestamp_ms(ms: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// The time of a file version, as S3 shows it.
pub fn modified_of(m: &Manifest) -> Timestamp {
    timestamp_ms(m.modified.unix_ms())
}

/// A listing of the files named `prefix…`, after `after`, `limit` a page.
pub fn list_query(prefix: &str, after: &str, limit: usize) -> hypha_dht::files::ListQuery {
    hypha_dht::files::ListQuery {
        prefix: prefix.to_owned(),
        after: after.to_owned(),
        limit,
        labels: BTreeMap::new(),
        min_size: None,
        max_size: None,
        modified_after_ms: None,
        modified_before_ms: None,
    }
}

/// Why a small record file could not be read whole.
pub enum RecordError {
    /// The files refused or failed.
    Files(FilesError),
    /// It is larger than any record of its kind.
    TooLarge,
}

/// A small record file (a bucket, an upload, an access key) read whole by
/// quorum; `None` when there is none.
pub async fn read_record(
    files: &Files,
    name: &str,
    max_bytes: usize,
) -> Result<Option<Vec<u8>>, RecordError> {
    let opened = match files.open(name, None, ReadConsistency::Quorum).await {
        Ok(o) => o,
        Err(FilesError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(RecordError::Files(e)),
    };
    let mut body = opened.body;
    let mut bytes = Vec::new();
    while let Some(piece) = body.next().await {
        bytes.extend(piece.map_err(RecordError::Files)?);
        if bytes.len() > max_bytes {
            return Err(RecordError::TooLarge);
        }
    }
    Ok(Some(bytes))
}

/// Whether the file exists (by quorum).
pub async fn exists(files: &Files, name: &str) -> Result<bool, S3Error> {
    match files.stat(name, ReadConsistency::Quorum).await {
        Ok(_) => Ok(true),
        Err(FilesError::NotFound(_)) => Ok(false),
        Err(e) => Err(files_error(e)),
    }
}

/// Store `body` as `name`, acknowledged at W, with the labels and type
/// given and the body's MD5 as its ETag (`etag` overrides it: a
/// multipart object's). Answers the write and the MD5.
pub async fn put_streamed<S, E>(
    files: &Files,
    name: &str,
    body: S,
    content_type: String,
    mut labels: BTreeMap<String, String>,
    etag: Option<String>,
) -> Result<(PutReport, [u8; 16]), S3Error>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    let md5 = Arc::new(Mutex::new(Md5::new()));
    let hashing = md5.clone();
    let body = body.inspect(move |piece| {
        if let (Ok(bytes), Ok(mut h)) = (piece, hashing.lock()) {
            h.update(bytes);
        }
    });
    let digest = Arc::new(Mutex::new([0u8; 16]));
    let seen = digest.clone();
    let report = files
        .put_then(name, body, move || {
            let sum: [u8; 16] = md5
                .lock()
                .map(|h| h.clone().finalize().into())
                .unwrap_or_default();
            if let Ok(mut d) = seen.lock() {
                *d = sum;
            }
            labels.insert(ETAG_LABEL.into(), etag.unwrap_or_else(|| hex::encode(sum)));
            PutMeta {
                content_type,
                labels,
            }
        })
        .await
        .map_err(files_error)?;
    let sum = digest.lock().map(|d| *d).unwrap_or_default();
    Ok((report, sum))
}

/// A file's bytes as a body s3s streams out.
pub fn blob(
    body: futures::stream::BoxStream<'static, Result<Vec<u8>, FilesError>>,
) -> StreamingBlob {
    StreamingBlob::wrap(SyncStream(Mutex::new(body)).map(|piece| piece.map(Bytes::from)))
}

/// A `Send` stream made `Sync` (s3s wants both) without locking: it is
/// only ever polled through `&mut`, so the mutex is never contended.
struct SyncStream<S>(Mutex<S>);

impl<S: Stream + Unpin> Stream for SyncStream<S> {
    type Item = S::Item;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        match self.get_mut().0.get_mut() {
            Ok(inner) => std::pin::Pin::new(inner).poll_next(cx),
            // Poisoned only by a panic inside a poll: end the body.
            Err(_) => std::task::Poll::Ready(None),
        }
    }
}

/// GET/HEAD preconditions (RFC 9110 order): 412 or 304 when they fail.
pub struct Conditions<'a> {
    /// If-Match.
    pub if_match: Option<&'a str>,
    /// If-None-Match.
    pub if_none_match: Option<&'a str>,
    /// If-Modified-Since.
    pub if_modified_since: Option<&'a Timestamp>,
    /// If-Unmodified-Since.
    pub if_unmodified_since: Option<&'a Timestamp>,
}

impl Conditions<'_> {
    /// Check against the object's manifest.
    pub fn check(&self, m: &Manifest) -> Result<(), S3Error> {
        let etag = etag_of(&m.labels, &m.root);
        let modified = SystemTime::UNIX_EPOCH + Duration::from_millis(m.modified.unix_ms());
        let secs = |t: &Timestamp| -> Option<SystemTime> { system_time(t) };
        if let Some(c) = self.if_match {
            if !etag_matches(c, &etag) {
                return Err(s3_error!(PreconditionFailed));
            }
        } else if let Some(t) = self.if_unmodified_since.and_then(secs) {
            if whole_seconds(modified) > whole_seconds(t) {
                return Err(s3_error!(PreconditionFailed));
            }
        }
        if let Some(c) = self.if_none_match {
            if etag_matches(c, &etag) {
                return Err(s3_error!(NotModified));
            }
        } else if let Some(t) = self.if_modified_since.and_then(secs) {
            if whole_seconds(modified) <= whole_seconds(t) {
                return Err(s3_error!(NotModified));
            }
        }
        Ok(())
    }
}

fn system_time(t: &Timestamp) -> Option<SystemTime> {
    let mut buf = Vec::new();
    t.format(s3s::dto::TimestampFormat::EpochSeconds, &mut buf)
        .ok()?;
    let secs: f64 = std::str::from_utf8(&buf).ok()?.parse().ok()?;
    (secs >= 0.0).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_errors_map_to_s3_codes() {
        let code = |e| files_error(e).code().clone();
        assert_eq!(
            code(FilesError::NotFound("x".into())),
            S3ErrorCode::NoSuchKey
        );
        assert_eq!(
            code(FilesError::BadRequest("x".into())),
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(
            code(FilesError::NotSettled),
            S3ErrorCode::ServiceUnavailable
        );
    }
}
