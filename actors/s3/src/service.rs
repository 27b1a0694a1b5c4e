//! The S3 operations over the cluster's files ([`HyphaS3`], s3s's `S3`
//! trait). Every write is acknowledged at W, every read is verified, as
//! through the files API; operations not implemented here answer s3s's
//! `NotImplemented`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hypha_dht::files::{ByteRange, Files, FilesError, ListQuery, PutMeta, ReadConsistency};
use hypha_dht::manifest::Manifest;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};

use crate::listing::{self, Collector, Feed};
use crate::naming::{self, bucket_files, bucket_record, object_file, STORED_HEADERS};
use crate::objects::{self, files_error, modified_of, Conditions};

/// The label of a bucket record naming the access key (lowercased) that
/// made it.
const OWNER_LABEL: &str = "s3.owner";

/// The one version id of every object: buckets are never versioned.
const NULL_VERSION: &str = "null";

/// Keys per listing page asked of the files layer.
const LIST_PAGE: usize = 1000;
/// Most keys one ListObjects answers.
const MAX_KEYS: i32 = 1000;
/// Most buckets listed.
const MAX_BUCKETS: usize = 1000;

/// The S3 service of one node.
#[derive(Clone)]
pub struct HyphaS3 {
    pub(crate) files: Files,
    /// Buckets seen to exist, and when: a write into a bucket checks its
    /// record at most every [`BUCKET_SEEN_MS`] (a quorum read each time
    /// cost a small PUT a fifth of its rate).
    seen: Arc<Mutex<HashMap<String, Instant>>>,
}

/// How long a bucket seen to exist is taken to exist. A bucket deleted on
/// another node can take a write for this long after (the object then
/// sits under a prefix no bucket names; recreating the bucket shows it).
const BUCKET_SEEN_MS: u64 = 5_000;

impl HyphaS3 {
    /// S3 over `files`.
    pub fn new(files: Files) -> Self {
        Self {
            files,
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn seen_lately(&self, bucket: &str) -> bool {
        let fresh = Duration::from_millis(BUCKET_SEEN_MS);
        self.seen
            .lock()
            .ok()
            .and_then(|seen| seen.get(bucket).map(|at| at.elapsed() < fresh))
            .unwrap_or(false)
    }

    fn forget_bucket(&self, bucket: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(bucket);
        }
    }

    pub(crate) async fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        naming::check_bucket(bucket).map_err(|_| s3_error!(NoSuchBucket))?;
        if self.seen_lately(bucket) {
            return Ok(());
        }
        if !objects::exists(&self.files, &bucket_record(bucket)).await? {
            return Err(s3_error!(NoSuchBucket));
        }
        if let Ok(mut seen) = self.seen.lock() {
            if seen.len() > 10_000 {
                seen.clear();
            }
            seen.insert(bucket.to_owned(), Instant::now());
        }
        Ok(())
    }

    pub(crate) fn file_of(bucket: &str, key: &str) -> S3Result<String> {
        naming::check_key(key)
            .map_err(|e| S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string()))?;
        Ok(object_file(bucket, key))
    }

    /// The object's manifest; NoSuchKey (or NoSuchBucket) when absent.
    async fn object(&self, bucket: &str, key: &str) -> S3Result<(String, Manifest)> {
        let name = Self::file_of(bucket, key)?;
        match self.files.stat(&name, ReadConsistency::Quorum).await {
            Ok((m, _)) => Ok((name, m)),
            Err(FilesError::NotFound(_)) => {
                self.require_bucket(bucket).await?;
                Err(s3_error!(NoSuchKey))
            }
            Err(e) => Err(files_error(e)),
        }
    }

    /// One page of keys and common prefixes of `bucket`.
    async fn collect(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        max_keys: i32,
        after: &str,
    ) -> S3Result<(Collector, Vec<Object>)> {
        self.require_bucket(bucket).await?;
        let base = bucket_files(bucket);
        let max = usize::try_from(max_keys.clamp(0, MAX_KEYS)).unwrap_or(0);
        let mut c = Collector::new(prefix, delimiter, max);
        if max == 0 {
            // `max-keys=0` asks for nothing, and S3 answers it untruncated.
            return Ok((c, Vec::new()));
        }
        let mut objects_out = Vec::new();
        let mut query = ListQuery {
            prefix: format!("{base}{prefix}"),
            after: if after.is_empty() {
                String::new()
            } else {
                format!("{base}{after}")
            },
            limit: LIST_PAGE,
            labels: BTreeMap::new(),
            min_size: None,
            max_size: None,
            modified_after_ms: None,
            modified_before_ms: None,
        };
        loop {
            let (page, incomplete) = self.files.list(&query).await.map_err(files_error)?;
            if incomplete {
                return Err(S3Error::with_message(
                    S3ErrorCode::ServiceUnavailable,
                    "some partitions did not answer the listing; retry",
                ));
            }
            let mut resume = page.next_cursor.clone();
            for entry in page.entries {
                let Some(key) = entry.name.strip_prefix(&base) else {
                    continue;
                };
                match c.feed(key) {
                    Feed::Next => {
                        if c.keys.last().map(String::as_str) == Some(key) {
                            objects_out.push(Object {
                                key: Some(key.to_owned()),
                                size: i64::try_from(entry.size).ok(),
                                e_tag: Some(naming::etag_of(&entry.labels, &entry.root)),
                                last_modified: Some(objects::timestamp_ms(
                                    entry.modified.unix_ms(),
                                )),
                                ..Default::default()
                            });
                        }
                    }
                    Feed::SkipTo(skip) => {
                        resume = Some(format!("{base}{skip}"));
                        break;
                    }
                    Feed::Full => return Ok((c, objects_out)),
                }
            }
            match resume {
                Some(next) => query.after = next,
                None => return Ok((c, objects_out)),
            }
        }
    }
}

/// How keys and prefixes go into a listing's answer.
#[derive(Clone, Copy)]
enum KeyEncoding {
    Raw,
    Url,
}

impl KeyEncoding {
    fn of(requested: Option<&EncodingType>) -> Self {
        match requested {
            Some(e) if e.as_str().eq_ignore_ascii_case("url") => Self::Url,
            _ => Self::Raw,
        }
    }

    fn apply(self, text: String) -> String {
        match self {
            Self::Raw => text,
            Self::Url => listing::url_encode(&text),
        }
    }

    fn opt(self, text: Option<String>) -> Option<String> {
        text.map(|t| self.apply(t))
    }

    fn objects(self, mut objects: Vec<Object>) -> Vec<Object> {
        for o in &mut objects {
            o.key = self.opt(o.key.take());
        }
        objects
    }
}

fn prefixes(c: &Collector, enc: KeyEncoding) -> Option<Vec<CommonPrefix>> {
    (!c.prefixes.is_empty()).then(|| {
        c.prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc.apply(p.clone())),
            })
            .collect()
    })
}

/// The headers an object keeps, from a request.
fn stored_headers(
    cache_control: Option<&String>,
    content_disposition: Option<&String>,
    content_encoding: Option<&String>,
    content_language: Option<&String>,
) -> BTreeMap<&'static str, String> {
    STORED_HEADERS
        .into_iter()
        .zip([
            cache_control,
            content_disposition,
            content_encoding,
            content_language,
        ])
        .filter_map(|(name, v)| Some((name, v?.clone())))
        .collect()
}

fn metadata_map(m: Option<&Metadata>) -> BTreeMap<String, String> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn bad_metadata(e: naming::NameError) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string())
}

fn content_type_of(m: &Manifest) -> Option<ContentType> {
    m.content_type.parse().ok()
}

fn header(m: &Manifest, name: &str) -> Option<String> {
    naming::stored_header(&m.labels, name).map(str::to_owned)
}

fn user_metadata(m: &Manifest) -> Option<Metadata> {
    let meta = naming::metadata_of(&m.labels);
    (!meta.is_empty()).then(|| meta.into_iter().collect())
}

#[async_trait::async_trait]
impl S3 for HyphaS3 {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let query = objects::list_query(naming::BUCKET_PREFIX, "", MAX_BUCKETS);
        let (page, _) = self.files.list(&query).await.map_err(files_error)?;
        let buckets = page
            .entries
            .iter()
            .filter_map(|e| {
                Some(Bucket {
                    name: Some(e.name.strip_prefix(naming::BUCKET_PREFIX)?.to_owned()),
                    creation_date: Some(objects::timestamp_ms(e.created.unix_ms())),
                    ..Default::default()
                })
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = req.input.bucket;
        naming::check_bucket(&bucket)
            .map_err(|e| S3Error::with_message(S3ErrorCode::InvalidBucketName, e.to_string()))?;
        // The key that made a bucket is its owner: another key creating
        // the same name is told it exists, its owner that it has it.
        let owner = req
            .credentials
            .map(|c| c.access_key.to_ascii_lowercase())
            .unwrap_or_default();
        let record = bucket_record(&bucket);
        match self.files.stat(&record, ReadConsistency::Quorum).await {
            Ok((m, _)) if m.labels.get(OWNER_LABEL) == Some(&owner) => {
                return Err(s3_error!(BucketAlreadyOwnedByYou))
            }
            Ok(_) => return Err(s3_error!(BucketAlreadyExists)),
            Err(FilesError::NotFound(_)) => {}
            Err(e) => return Err(files_error(e)),
        }
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(
            bucket.clone().into_bytes(),
        )]);
        let meta = PutMeta {
            content_type: "application/x-hypha-s3-bucket".into(),
            labels: BTreeMap::from([(OWNER_LABEL.to_owned(), owner)]),
        };
        self.files
            .put(&record, meta, body)
            .await
            .map_err(files_error)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket;
        self.require_bucket(&bucket).await?;
        let (c, _) = self.collect(&bucket, "", None, 1, "").await?;
        if !c.keys.is_empty() {
            return Err(s3_error!(BucketNotEmpty));
        }
        self.forget_bucket(&bucket);
        self.files
            .delete(&bucket_record(&bucket))
            .await
            .map_err(files_error)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        let name = Self::file_of(&input.bucket, &input.key)?;
        let headers = stored_headers(
            input.cache_control.as_ref(),
            input.content_disposition.as_ref(),
            input.content_encoding.as_ref(),
            input.content_language.as_ref(),
        );
        let labels = naming::labels_of(&metadata_map(input.metadata.as_ref()), &headers)
            .map_err(bad_metadata)?;
        let content_type = input
            .content_type
            .map_or_else(|| "binary/octet-stream".to_owned(), |m| m.to_string());
        let body = input.body.ok_or_else(|| s3_error!(IncompleteBody))?;
        let (_, md5) =
            objects::put_streamed(&self.files, &name, body, content_type, labels, None).await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(format!("\"{}\"", hex::encode(md5))),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let name = Self::file_of(&input.bucket, &input.key)?;
        let conditions = Conditions {
            if_match: input.if_match.as_deref(),
            if_none_match: input.if_none_match.as_deref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        };
        // A ranged read needs the size first; a whole one opens at once
        // (one manifest read, not two: a stat first cost a 4 KiB GET a
        // third of its rate).
        let range = match &input.range {
            None => None,
            Some(r) => {
                let (_, m) = self.object(&input.bucket, &input.key).await?;
                conditions.check(&m)?;
                let bytes = r.check(m.size).map_err(|_| s3_error!(InvalidRange))?;
                Some(ByteRange {
                    start: bytes.start,
                    end: bytes.end,
                })
            }
        };
        let opened = match self.files.open(&name, range, ReadConsistency::Quorum).await {
            Ok(o) => o,
            Err(FilesError::NotFound(_)) => {
                self.require_bucket(&input.bucket).await?;
                return Err(s3_error!(NoSuchKey));
            }
            Err(e) => return Err(files_error(e)),
        };
        // Checked against the version being sent (for a ranged read, again:
        // it may have been overwritten since the stat).
        conditions.check(&opened.manifest)?;
        let m = opened.manifest;
        let length = opened.range.end - opened.range.start;
        let content_range = range.map(|_| {
            format!(
                "bytes {}-{}/{}",
                opened.range.start,
                opened.range.end.saturating_sub(1),
                m.size
            )
        });
        Ok(S3Response::new(GetObjectOutput {
            body: Some(objects::blob(opened.body)),
            content_length: i64::try_from(length).ok(),
            content_range,
            accept_ranges: Some("bytes".into()),
            content_type: content_type_of(&m),
            e_tag: Some(naming::etag_of(&m.labels, &m.root)),
            last_modified: Some(modified_of(&m)),
            metadata: user_metadata(&m),
            cache_control: header(&m, "cache-control"),
            content_disposition: header(&m, "content-disposition"),
            content_encoding: header(&m, "content-encoding"),
            content_language: header(&m, "content-language"),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let (_, m) = self.object(&input.bucket, &input.key).await?;
        Conditions {
            if_match: input.if_match.as_deref(),
            if_none_match: input.if_none_match.as_deref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        }
        .check(&m)?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: i64::try_from(m.size).ok(),
            accept_ranges: Some("bytes".into()),
            content_type: content_type_of(&m),
            e_tag: Some(naming::etag_of(&m.labels, &m.root)),
            last_modified: Some(modified_of(&m)),
            metadata: user_metadata(&m),
            cache_control: header(&m, "cache-control"),
            content_disposition: header(&m, "content-disposition"),
            content_encoding: header(&m, "content-encoding"),
            content_language: header(&m, "content-language"),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        let name = Self::file_of(&input.bucket, &input.key)?;
        match self.files.delete(&name).await {
            // Deleting what is not there succeeds, as in S3.
            Ok(()) | Err(FilesError::NotFound(_)) => {}
            Err(e) => return Err(files_error(e)),
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        if input.delete.objects.len() > 1000 {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "at most 1000 keys per request",
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for id in input.delete.objects {
            let versioned = id.version_id.as_deref().is_some_and(|v| v != NULL_VERSION);
            let outcome = if versioned {
                Err(s3_error!(NoSuchVersion))
            } else {
                self.delete_one(&input.bucket, &id.key).await
            };
            match outcome {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(id.key),
                    ..Default::default()
                }),
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(id.key),
                    message: e.message().map(str::to_owned),
                    ..Default::default()
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            ..
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "copies from access points are not supported"
            ));
        };
        let (src_name, src) = self.object(src_bucket, src_key).await?;
        Conditions {
            if_match: input.copy_source_if_match.as_deref(),
            if_none_match: input.copy_source_if_none_match.as_deref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        }
        .check(&src)
        .map_err(|e| {
            if *e.code() == S3ErrorCode::NotModified {
                s3_error!(PreconditionFailed)
            } else {
                e
            }
        })?;
        self.require_bucket(&input.bucket).await?;
        let dst_name = Self::file_of(&input.bucket, &input.key)?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && dst_name == src_name {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "copying an object onto itself needs the REPLACE metadata directive",
            ));
        }
        let (content_type, labels) = if replace {
            let headers = stored_headers(
                input.cache_control.as_ref(),
                input.content_disposition.as_ref(),
                input.content_encoding.as_ref(),
                input.content_language.as_ref(),
            );
            let labels = naming::labels_of(&metadata_map(input.metadata.as_ref()), &headers)
                .map_err(bad_metadata)?;
            let ct = input
                .content_type
                .map_or_else(|| src.content_type.clone(), |m| m.to_string());
            (ct, labels)
        } else {
            let mut labels = src.labels.clone();
            labels.remove(naming::ETAG_LABEL);
            (src.content_type.clone(), labels)
        };
        let opened = self
            .files
            .open(&src_name, None, ReadConsistency::Quorum)
            .await
            .map_err(files_error)?;
        let body = opened.body.map(|p| p.map(bytes::Bytes::from));
        // A multipart source keeps its ETag; a single-part one gets the
        // MD5 of the bytes copied, the same value.
        let etag = src
            .labels
            .get(naming::ETAG_LABEL)
            .filter(|t| t.contains('-'))
            .cloned();
        let (report, md5) = objects::put_streamed(
            &self.files,
            &dst_name,
            Box::pin(body),
            content_type,
            labels,
            etag.clone(),
        )
        .await?;
        let etag = etag.unwrap_or_else(|| hex::encode(md5));
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(format!("\"{etag}\"")),
                last_modified: Some(modified_of(&report.manifest)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = match &input.continuation_token {
            Some(t) => listing::untoken(t).ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "the continuation token is not one this service gave",
                )
            })?,
            None => input.start_after.clone().unwrap_or_default(),
        };
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let (c, contents) = self
            .collect(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                max_keys,
                &after,
            )
            .await?;
        let key_count = i32::try_from(c.keys.len() + c.prefixes.len()).unwrap_or(i32::MAX);
        let enc = KeyEncoding::of(input.encoding_type.as_ref());
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: enc.opt(input.prefix),
            delimiter: enc.opt(input.delimiter.filter(|d| !d.is_empty())),
            max_keys: Some(max_keys.clamp(0, MAX_KEYS)),
            key_count: Some(key_count),
            is_truncated: Some(c.truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: c.resume_after().map(listing::token),
            start_after: enc.opt(input.start_after),
            common_prefixes: prefixes(&c, enc),
            contents: Some(enc.objects(contents)),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = input.marker.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let (c, contents) = self
            .collect(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                max_keys,
                &after,
            )
            .await?;
        // v1's NextMarker is a key (or prefix) clients send back as Marker;
        // with a delimiter S3 gives it, and clients take the last key
        // otherwise. A common prefix's marker is the prefix itself: listing
        // after it would repeat keys under it, so it is skipped past.
        let next_marker = c.truncated.then(|| {
            c.prefixes
                .last()
                .filter(|p| c.keys.last().is_none_or(|k| k < *p))
                .map(|p| listing::past(p))
                .or_else(|| c.keys.last().cloned())
        });
        let enc = KeyEncoding::of(input.encoding_type.as_ref());
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: enc.opt(input.prefix),
            delimiter: enc.opt(input.delimiter.filter(|d| !d.is_empty())),
            marker: enc.opt(input.marker),
            max_keys: Some(max_keys.clamp(0, MAX_KEYS)),
            is_truncated: Some(c.truncated),
            next_marker: enc.opt(next_marker.flatten()),
            common_prefixes: prefixes(&c, enc),
            contents: Some(enc.objects(contents)),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    /// Buckets are never versioned: every object is its one version,
    /// `null`, as S3 lists the objects of a bucket that never had
    /// versioning on (backup tools and cleanup scripts ask this).
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = input.key_marker.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let (c, contents) = self
            .collect(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                max_keys,
                &after,
            )
            .await?;
        let enc = KeyEncoding::of(input.encoding_type.as_ref());
        let versions = enc
            .objects(contents)
            .into_iter()
            .map(|o| ObjectVersion {
                key: o.key,
                size: o.size,
                e_tag: o.e_tag,
                last_modified: o.last_modified,
                is_latest: Some(true),
                version_id: Some(NULL_VERSION.into()),
                ..Default::default()
            })
            .collect();
        let next = c.resume_after().map(str::to_owned);
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: enc.opt(input.prefix),
            delimiter: enc.opt(input.delimiter.filter(|d| !d.is_empty())),
            key_marker: enc.opt(input.key_marker),
            max_keys: Some(max_keys.clamp(0, MAX_KEYS)),
            is_truncated: Some(c.truncated),
            next_version_id_marker: next.as_ref().map(|_| NULL_VERSION.to_owned()),
            next_key_marker: enc.opt(next),
            common_prefixes: prefixes(&c, enc),
            versions: Some(versions),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        crate::multipart::create(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        crate::multipart::upload_part(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        crate::multipart::complete(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        crate::multipart::abort(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        crate::multipart::list_parts(self, req.input)
            .await
            .map(S3Response::new)
    }
}

impl HyphaS3 {
    /// Delete one object; what is absent is deleted already.
    async fn delete_one(&self, bucket: &str, key: &str) -> S3Result<()> {
        let name = Self::file_of(bucket, key)?;
        match self.files.delete(&name).await {
            Ok(()) | Err(FilesError::NotFound(_)) => Ok(()),
            Err(e) => Err(files_error(e)),
        }
    }
}

/// Read a small record file whole (bucket and upload records).
pub(crate) async fn read_small(files: &Files, name: &str, max: usize) -> S3Result<Option<Vec<u8>>> {
    objects::read_record(files, name, max)
        .await
        .map_err(|e| match e {
            objects::RecordError::Files(e) => files_error(e),
            objects::RecordError::TooLarge => {
                s3_error!(InternalError, "a record is larger than it can be")
            }
        })
}
