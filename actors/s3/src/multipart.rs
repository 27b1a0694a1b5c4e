//! Multipart uploads. An upload is a record (`.hypha/s3/uploads/<id>`:
//! the bucket, key, type and metadata given at create) and one file per
//! part (`…/<id>.parts/<n>`), each streamed into chunks as it arrives and
//! labelled with its MD5. Completing streams the named parts, in order,
//! into the object (acknowledged at W like any write), then deletes the
//! parts: the bytes are written twice, never held whole. The ETag is S3's
//! multipart form, MD5 of the parts' MD5s then `-N`.

use std::collections::BTreeMap;

use futures::StreamExt;
use hypha_dht::files::{FilesError, PutMeta, ReadConsistency};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};
use serde::{Deserialize, Serialize};

use crate::naming::{self, part_file, parts_prefix, upload_record, ETAG_LABEL};
use crate::objects::{self, files_error};
use crate::service::{read_small, HyphaS3};

/// Most parts in one upload (as S3).
const MAX_PARTS: i32 = 10_000;
/// Largest upload record.
const MAX_RECORD_BYTES: usize = 64 * 1024;

/// What an upload's record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct UploadRecord {
    bucket: String,
    key: String,
    content_type: String,
    labels: BTreeMap<String, String>,
}

fn no_upload() -> S3Error {
    s3_error!(NoSuchUpload)
}

fn check_upload_id(id: &str) -> S3Result<()> {
    let ok = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(()).ok_or_else(no_upload)
}

async fn record(s3: &HyphaS3, id: &str, bucket: &str, key: &str) -> S3Result<UploadRecord> {
    check_upload_id(id)?;
    let bytes = read_small(&s3.files, &upload_record(id), MAX_RECORD_BYTES)
        .await?
        .ok_or_else(no_upload)?;
    let r: UploadRecord = serde_json::from_slice(&bytes).map_err(|_| no_upload())?;
    if r.bucket != bucket || r.key != key {
        return Err(no_upload());
    }
    Ok(r)
}

pub(crate) async fn create(
    s3: &HyphaS3,
    input: CreateMultipartUploadInput,
) -> S3Result<CreateMultipartUploadOutput> {
    s3.require_bucket(&input.bucket).await?;
    HyphaS3::file_of(&input.bucket, &input.key)?;
    let headers: BTreeMap<&'static str, String> = naming::STORED_HEADERS
        .into_iter()
        .zip([
            input.cache_control.as_ref(),
            input.content_disposition.as_ref(),
            input.content_encoding.as_ref(),
            input.content_language.as_ref(),
        ])
        .filter_map(|(n, v)| Some((n, v?.clone())))
        .collect();
    let meta: BTreeMap<String, String> = input
        .metadata
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let labels = naming::labels_of(&meta, &headers)
        .map_err(|e| S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string()))?;
    let record = UploadRecord {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        content_type: input
            .content_type
            .map_or_else(|| "binary/octet-stream".to_owned(), |m| m.to_string()),
        labels,
    };
    let id = hex::encode(rand::random::<[u8; 16]>());
    let bytes = serde_json::to_vec(&record).map_err(|e| s3_error!(InternalError, "{e}"))?;
    let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
    let meta = PutMeta {
        content_type: "application/json".into(),
        labels: BTreeMap::new(),
    };
    s3.files
        .put(&upload_record(&id), meta, body)
        .await
        .map_err(files_error)?;
    Ok(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(id),
        ..Default::default()
    })
}

pub(crate) async fn upload_part(
    s3: &HyphaS3,
    input: UploadPartInput,
) -> S3Result<UploadPartOutput> {
    if !(1..=MAX_PARTS).contains(&input.part_number) {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!("part numbers are 1-{MAX_PARTS}"),
        ));
    }
    record(s3, &input.upload_id, &input.bucket, &input.key).await?;
    let body = input.body.ok_or_else(|| s3_error!(IncompleteBody))?;
    let name = part_file(&input.upload_id, input.part_number);
    let (_, md5) = objects::put_streamed(
        &s3.files,
        &name,
        body,
        "application/octet-stream".into(),
        BTreeMap::new(),
        None,
    )
    .await?;
    Ok(UploadPartOutput {
        e_tag: Some(format!("\"{}\"", hex::encode(md5))),
        ..Default::default()
    })
}

/// The stored parts of an upload: number, file summary.
async fn stored_parts(
    s3: &HyphaS3,
    id: &str,
) -> S3Result<BTreeMap<i32, hypha_dht::wire::FileSummary>> {
    let mut query = objects::list_query(&parts_prefix(id), "", 1000);
    let mut parts = BTreeMap::new();
    loop {
        let (page, incomplete) = s3.files.list(&query).await.map_err(files_error)?;
        if incomplete {
            return Err(S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                "some partitions did not answer the listing of the parts; retry",
            ));
        }
        for e in page.entries {
            let n = e
                .name
                .strip_prefix(&query.prefix)
                .and_then(|n| n.parse::<i32>().ok());
            if let Some(n) = n {
                parts.insert(n, e);
            }
        }
        match page.next_cursor {
            Some(c) => query.after = c,
            None => return Ok(parts),
        }
    }
}

fn md5_of(summary: &hypha_dht::wire::FileSummary) -> Option<[u8; 16]> {
    let tag = summary.labels.get(ETAG_LABEL)?;
    hex::decode(tag).ok()?.try_into().ok()
}

pub(crate) async fn complete(
    s3: &HyphaS3,
    input: CompleteMultipartUploadInput,
) -> S3Result<CompleteMultipartUploadOutput> {
    let rec = record(s3, &input.upload_id, &input.bucket, &input.key).await?;
    let named = input
        .multipart_upload
        .and_then(|m| m.parts)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| S3Error::with_message(S3ErrorCode::MalformedXML, "no parts named"))?;
    let stored = stored_parts(s3, &input.upload_id).await?;
    let mut order = Vec::with_capacity(named.len());
    let mut md5s = Vec::with_capacity(named.len());
    let mut last = 0;
    for part in &named {
        let n = part.part_number.ok_or_else(|| s3_error!(InvalidPart))?;
        if n <= last {
            return Err(s3_error!(InvalidPartOrder));
        }
        last = n;
        let summary = stored.get(&n).ok_or_else(|| s3_error!(InvalidPart))?;
        let md5 = md5_of(summary).ok_or_else(|| s3_error!(InvalidPart))?;
        let given = part
            .e_tag
            .as_deref()
            .map(|t| t.trim_matches('"').to_ascii_lowercase());
        if given.is_some_and(|g| g != hex::encode(md5)) {
            return Err(s3_error!(InvalidPart));
        }
        order.push(summary.name.clone());
        md5s.push(md5);
    }
    let name = HyphaS3::file_of(&rec.bucket, &rec.key)?;
    let etag = naming::multipart_etag(&md5s);
    let files = s3.files.clone();
    let body = futures::stream::iter(order.clone())
        .then(move |part| {
            let files = files.clone();
            async move { files.open(&part, None, ReadConsistency::Quorum).await }
        })
        .flat_map(|opened| match opened {
            Ok(o) => o.body,
            Err(e) => futures::stream::once(async move { Err::<Vec<u8>, FilesError>(e) }).boxed(),
        })
        .map(|p| p.map(bytes::Bytes::from));
    objects::put_streamed(
        &s3.files,
        &name,
        Box::pin(body),
        rec.content_type,
        rec.labels,
        Some(etag.clone()),
    )
    .await?;
    cleanup(
        s3,
        &input.upload_id,
        stored.values().map(|s| s.name.clone()),
    )
    .await;
    Ok(CompleteMultipartUploadOutput {
        bucket: Some(rec.bucket),
        key: Some(rec.key),
        e_tag: Some(format!("\"{etag}\"")),
        ..Default::default()
    })
}

/// Delete an upload's parts and record (best effort: a part left behind
/// is only space, and the record going last keeps the upload findable
/// until its parts are gone).
async fn cleanup(s3: &HyphaS3, id: &str, parts: impl Iterator<Item = String>) {
    for part in parts {
        if let Err(e) = s3.files.delete(&part).await {
            tracing::warn!(upload = id, part, "multipart part not deleted: {e}");
        }
    }
    if let Err(e) = s3.files.delete(&upload_record(id)).await {
        tracing::warn!(upload = id, "multipart record not deleted: {e}");
    }
}

pub(crate) async fn abort(
    s3: &HyphaS3,
    input: AbortMultipartUploadInput,
) -> S3Result<AbortMultipartUploadOutput> {
    record(s3, &input.upload_id, &input.bucket, &input.key).await?;
    let stored = stored_parts(s3, &input.upload_id).await?;
    cleanup(s3, &input.upload_id, stored.into_values().map(|s| s.name)).await;
    Ok(AbortMultipartUploadOutput::default())
}

pub(crate) async fn list_parts(s3: &HyphaS3, input: ListPartsInput) -> S3Result<ListPartsOutput> {
    record(s3, &input.upload_id, &input.bucket, &input.key).await?;
    let stored = stored_parts(s3, &input.upload_id).await?;
    let after = input
        .part_number_marker
        .as_deref()
        .and_then(|m| m.parse::<i32>().ok())
        .unwrap_or(0);
    let max = input.max_parts.unwrap_or(1000).clamp(1, 1000);
    let mut parts: Vec<Part> = Vec::new();
    let mut truncated = false;
    for (n, s) in stored.range(after + 1..) {
        if parts.len() >= usize::try_from(max).unwrap_or(1000) {
            truncated = true;
            break;
        }
        parts.push(Part {
            part_number: Some(*n),
            size: i64::try_from(s.size).ok(),
            e_tag: md5_of(s).map(|m| format!("\"{}\"", hex::encode(m))),
            last_modified: Some(objects::timestamp_ms(s.modified.unix_ms())),
            ..Default::default()
        });
    }
    let next = parts
        .last()
        .and_then(|p| p.part_number)
        .map(|n| n.to_string());
    Ok(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(max),
        is_truncated: Some(truncated),
        next_part_number_marker: if truncated { next } else { None },
        parts: Some(parts),
        ..Default::default()
    })
}
