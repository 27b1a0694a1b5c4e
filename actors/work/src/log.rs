//! The queues' durable log, kept in the DHT: one small file per job
//! (`.hypha/jobs/<id>`, the encoded [`JobRecord`], labelled with its queue
//! and state) and one per queue (`.hypha/queues/<name>`). The DHT
//! replicates them to R nodes, acknowledges at W, repairs them by
//! anti-entropy and orders versions last-writer-wins, so a new owner
//! rebuilds a queue from here.

use std::collections::BTreeMap;

use futures::StreamExt;
use thiserror::Error;

use super::job::{
    queue_name, record_name, JobId, JobRecord, JobState, LABEL_QUEUE, LABEL_STATE, QUEUE_PREFIX,
    RECORD_PREFIX, RECORD_VERSION,
};
use hypha_core::codec;
use hypha_dht::files::{Files, FilesError, ListQuery, PutMeta, ReadConsistency};

mod legacy;

/// Largest record read back (payload and result are each at most 256 KiB).
const MAX_RECORD_BYTES: usize = 1 << 20;
/// Names per listing page.
const PAGE: usize = 1000;

/// Why the log could not be read or written.
#[derive(Debug, Clone, Error)]
pub enum LogError {
    /// The DHT refused or failed.
    #[error("dht: {0}")]
    Dht(#[from] FilesError),
    /// A stored record does not decode.
    #[error("record {name}: {message}")]
    Corrupt {
        /// File name.
        name: String,
        /// Why.
        message: String,
    },
}

/// Reads and writes job records through the file coordinator.
#[derive(Clone)]
pub struct JobLog {
    files: Files,
}

/// Encode a record with its version.
pub fn encode_record(record: &JobRecord) -> Result<Vec<u8>, codec::CodecError> {
    codec::encode_versioned(RECORD_VERSION, record)
}

/// Decode a stored record.
pub fn decode_record(bytes: &[u8]) -> Result<JobRecord, String> {
    let (version, body) =
        codec::split_version(bytes).ok_or_else(|| "shorter than its header".to_string())?;
    match version {
        RECORD_VERSION => codec::decode(body).map_err(|e| e.to_string()),
        1 => legacy::decode_v1(body),
        _ => Err(format!(
            "record version {version}; this node reads 1 to {RECORD_VERSION}"
        )),
    }
}

impl JobLog {
    /// The log over `files`.
    pub fn new(files: Files) -> Self {
        Self { files }
    }

    /// The file coordinator (handlers read their input through it).
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// Store `record`, durable on W replicas when this returns.
    pub async fn put(&self, record: &JobRecord) -> Result<(), LogError> {
        let bytes = encode_record(record).map_err(|e| LogError::Corrupt {
            name: record_name(record.id),
            message: e.to_string(),
        })?;
        let meta = PutMeta {
            content_type: "application/x-hypha-job".into(),
            labels: BTreeMap::from([
                (LABEL_QUEUE.to_owned(), record.spec.queue.clone()),
                (LABEL_STATE.to_owned(), record.state.as_str().to_owned()),
            ]),
        };
        let body = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
        self.files
            .put(&record_name(record.id), meta, Box::pin(body))
            .await?;
        Ok(())
    }

    /// The stored record of `id`, if any, from the replicas that answer.
    pub async fn get(&self, id: JobId) -> Result<Option<JobRecord>, LogError> {
        self.get_with(id, ReadConsistency::Available).await
    }

    /// The stored record of `id`, if any, read with `consistency`.
    pub async fn get_with(
        &self,
        id: JobId,
        consistency: ReadConsistency,
    ) -> Result<Option<JobRecord>, LogError> {
        let name = record_name(id);
        let opened = match self.files.open(&name, None, consistency).await {
            Ok(o) => o,
            Err(FilesError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut body = opened.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            bytes.extend(chunk?);
            if bytes.len() > MAX_RECORD_BYTES {
                return Err(LogError::Corrupt {
                    name,
                    message: "larger than any record".into(),
                });
            }
        }
        decode_record(&bytes)
            .map(Some)
            .map_err(|message| LogError::Corrupt { name, message })
    }

    /// Register `queue` so that owners find it after a restart.
    pub async fn register_queue(&self, queue: &str) -> Result<(), LogError> {
        let body = futures::stream::once(async { Ok::<_, std::io::Error>(b"1".to_vec()) });
        self.files
            .put(&queue_name(queue), PutMeta::default(), Box::pin(body))
            .await?;
        Ok(())
    }

    /// Every registered queue; `false` when some member did not answer.
    pub async fn queues(&self) -> Result<(Vec<String>, bool), LogError> {
        let (names, complete) = self.names(QUEUE_PREFIX, BTreeMap::new()).await?;
        let queues = names
            .into_iter()
            .filter_map(|n| n.strip_prefix(QUEUE_PREFIX).map(str::to_owned))
            .collect();
        Ok((queues, complete))
    }

    /// Ids of the records of `queue` (all queues: `None`) stored in `state`;
    /// `false` when some member did not answer.
    pub async fn ids(
        &self,
        queue: Option<&str>,
        state: Option<JobState>,
    ) -> Result<(Vec<JobId>, bool), LogError> {
        let mut labels = BTreeMap::new();
        if let Some(q) = queue {
            labels.insert(LABEL_QUEUE.to_owned(), q.to_owned());
        }
        if let Some(s) = state {
            labels.insert(LABEL_STATE.to_owned(), s.as_str().to_owned());
        }
        let (names, complete) = self.names(RECORD_PREFIX, labels).await?;
        let ids = names
            .iter()
            .filter_map(|n| JobId::parse(n.strip_prefix(RECORD_PREFIX)?))
            .collect();
        Ok((ids, complete))
    }

    async fn names(
        &self,
        prefix: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(Vec<String>, bool), LogError> {
        let mut query = ListQuery {
            prefix: prefix.to_owned(),
            after: String::new(),
            limit: PAGE,
            labels,
            min_size: None,
            max_size: None,
            modified_after_ms: None,
            modified_before_ms: None,
        };
        let mut names = Vec::new();
        let mut complete = true;
        loop {
            let (page, incomplete) = self.files.list(&query).await?;
            complete &= !incomplete;
            names.extend(page.entries.into_iter().map(|e| e.name));
            match page.next_cursor {
                Some(cursor) => query.after = cursor,
                None => return Ok((names, complete)),
            }
        }
    }
}
