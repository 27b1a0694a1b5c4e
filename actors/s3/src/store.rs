//! The access keys in the cluster's files, as s3s asks for them: the
//! secret of an access key (Signature V4 is checked by s3s with it), and
//! whether the key's role allows the operation. Records are cached for
//! [`CACHE_TTL_MS`], so a deleted key stops working within that.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hypha_dht::files::{Files, FilesError, PutMeta};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

use crate::keys::{self, KeyError, KeyRecord, KeyRole, SealKey};
use crate::naming::{key_record, KEY_PREFIX};

/// How long a looked-up key is trusted before it is read again.
pub const CACHE_TTL_MS: u64 = 10_000;
/// Largest key record read back.
const MAX_RECORD_BYTES: usize = 4096;
/// Most keys a listing shows.
const MAX_KEYS_LISTED: usize = 1000;

/// Operations a `read` key may make.
const READ_OPERATIONS: [&str; 10] = [
    "ListBuckets",
    "HeadBucket",
    "GetBucketLocation",
    "GetObject",
    "HeadObject",
    "ListObjects",
    "ListObjectsV2",
    "ListParts",
    "ListMultipartUploads",
    "GetObjectAttributes",
];

/// The operations this endpoint implements, then `other`: the values of
/// `hypha_s3_requests_total`'s `op` label.
pub const OPERATION_LABELS: [&str; 23] = [
    "ListBuckets",
    "CreateBucket",
    "DeleteBucket",
    "HeadBucket",
    "GetBucketLocation",
    "PutObject",
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "DeleteObjects",
    "CopyObject",
    "ListObjects",
    "ListObjectsV2",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
    "ListMultipartUploads",
    "GetObjectAttributes",
    "UploadPartCopy",
    "PutObjectTagging",
    "other",
];

/// `op` as a label value: itself when listed, else `other`.
pub fn op_label(op: &str) -> &'static str {
    OPERATION_LABELS
        .iter()
        .find(|o| **o == op)
        .copied()
        .unwrap_or("other")
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The files refused or failed.
    #[error("files: {0}")]
    Files(#[from] FilesError),
    /// A record does not open.
    #[error(transparent)]
    Key(#[from] KeyError),
}

type Cached = (Option<(KeyRecord, String)>, Instant);

/// Access keys: made, listed, deleted, looked up.
#[derive(Clone)]
pub struct KeyStore {
    files: Files,
    seal: SealKey,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl KeyStore {
    /// Keys kept in `files`, sealed with `seal`.
    pub fn new(files: Files, seal: SealKey) -> Self {
        Self {
            files,
            seal,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Make a key with `role`; answers the record and the secret (shown
    /// once: only the sealed form is kept).
    pub async fn create(
        &self,
        role: KeyRole,
        description: &str,
        now_ms: u64,
    ) -> Result<(KeyRecord, String), StoreError> {
        let (access_key, secret, nonce) = {
            let mut rng = rand::rng();
            let (a, s) = keys::generate(&mut rng);
            (a, s, rand::random::<[u8; 12]>())
        };
        let record = KeyRecord {
            version: keys::KEY_RECORD_VERSION,
            sealed_secret: self.seal.seal(&access_key, &secret, nonce),
            access_key,
            role,
            description: description.chars().take(200).collect(),
            created_ms: now_ms,
        };
        let bytes = keys::encode(&record)?;
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
        let meta = PutMeta {
            content_type: "application/x-hypha-s3-key".into(),
            labels: BTreeMap::new(),
        };
        self.files
            .put(&key_record(&record.access_key), meta, body)
            .await?;
        Ok((record, secret))
    }

    /// Every key's record (secrets stay sealed).
    pub async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let query = crate::objects::list_query(KEY_PREFIX, "", MAX_KEYS_LISTED);
        let (page, _) = self.files.list(&query).await?;
        let mut out = Vec::new();
        for entry in page.entries {
            if let Some(access) = entry.name.strip_prefix(KEY_PREFIX) {
                if let Some(r) = self.read(access).await? {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Delete a key; `false` when there was none.
    pub async fn delete(&self, access_key: &str) -> Result<bool, StoreError> {
        if self.read(access_key).await?.is_none() {
            return Ok(false);
        }
        self.files.delete(&key_record(access_key)).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(access_key);
        }
        Ok(true)
    }

    async fn read(&self, access_key: &str) -> Result<Option<KeyRecord>, StoreError> {
        if !keys::plausible_access_key(access_key) {
            return Ok(None);
        }
        let name = key_record(access_key);
        let read = crate::objects::read_record(&self.files, &name, MAX_RECORD_BYTES);
        let bytes = match read.await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(crate::objects::RecordError::Files(e)) => return Err(e.into()),
            Err(crate::objects::RecordError::TooLarge) => {
                return Err(KeyError::Corrupt("larger than any key record".into()).into())
            }
        };
        Ok(Some(keys::decode(&bytes)?))
    }

    /// The record and secret of `access_key`, from the cache while fresh.
    async fn lookup(&self, access_key: &str) -> Result<Option<(KeyRecord, String)>, StoreError> {
        let ttl = Duration::from_millis(CACHE_TTL_MS);
        if let Ok(cache) = self.cache.lock() {
            if let Some((found, at)) = cache.get(access_key) {
                if at.elapsed() < ttl {
                    return Ok(found.clone());
                }
            }
        }
        let found = match self.read(access_key).await? {
            Some(r) => {
                let secret = self.seal.open(&r)?;
                Some((r, secret))
            }
            None => None,
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(access_key.to_owned(), (found.clone(), Instant::now()));
        }
        Ok(found)
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyStore {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.lookup(access_key).await {
            Ok(Some((_, secret))) => Ok(SecretKey::from(secret)),
            Ok(None) => Err(s3_error!(InvalidAccessKeyId)),
            Err(e) => {
                tracing::warn!(access_key, "s3 key lookup failed: {e}");
                Err(s3_error!(
                    ServiceUnavailable,
                    "the key store is unavailable; retry"
                ))
            }
        }
    }
}

#[async_trait::async_trait]
impl S3Access for KeyStore {
    /// Signed requests only; a `read` key only for the read operations.
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let access_key = creds.access_key.clone();
        let role = match self.lookup(&access_key).await {
            Ok(Some((r, _))) => r.role,
            _ => return Err(s3_error!(AccessDenied)),
        };
        let op = cx.s3_op().name();
        metrics::counter!("hypha_s3_requests_total", "op" => op_label(op)).increment(1);
        if role == KeyRole::Read && !READ_OPERATIONS.contains(&op) {
            return Err(s3_error!(AccessDenied, "a read key may not {op}"));
        }
        Ok(())
    }
}
