//! Where a backup reads the cluster from: a [`BackupSource`] answers the
//! three reads a backup makes (the partition count, a page of a
//! partition's live files, one chunk's bytes). Two implementations: the
//! admin API of a node, over HTTP (`hypha backup create`,
//! `src/commands/backup.rs`), and [`NodeSource`], the node's own files
//! coordinator, in process (the scheduled backup, [`super::schedule`]).
//! The admin routes serve exactly what [`NodeSource`] reads
//! ([`node_page`]), so both see the same snapshot of a partition.

use std::time::Duration;

use async_trait::async_trait;
use hypha_dht::files::{Files, FilesError};
use hypha_dht::keyspace::Partition;
use hypha_dht::manifest::{is_reserved, ChunkRef};
use thiserror::Error;

use super::index::{ChunkEntry, FileEntry, Hash32};

/// Names per replica in one page unless a caller asks otherwise.
pub const DEFAULT_PAGE: u32 = 256;

/// Why a read of the source failed.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The node's files coordinator refused or failed the read.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The node behind the admin API answered an error or could not be
    /// reached (the client's own description, with its context).
    #[error("{0}")]
    Remote(String),
    /// The node's answer did not have the expected shape.
    #[error("unexpected answer: {0}")]
    Malformed(String),
    /// A read took longer than its bound.
    #[error("no answer within {0} ms")]
    Timeout(u64),
}

/// One page of a partition's live files.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The files (a small file with its inline content).
    pub files: Vec<FileEntry>,
    /// Where the next page starts; `None` at the partition's end.
    pub next: Option<Hash32>,
}

/// The reads a backup makes of a cluster.
#[async_trait]
pub trait BackupSource: Send + Sync {
    /// What the snapshot names as its source (a URL, a node).
    fn describe(&self) -> String;
    /// How many partitions to read (pinned classes included).
    async fn partitions(&self) -> Result<u32, SourceError>;
    /// The page of `partition` after name key `after` (from its start if
    /// `None`).
    async fn page(&self, partition: u32, after: Option<Hash32>) -> Result<Page, SourceError>;
    /// A chunk's bytes, from the replicas of `partition` (the caller
    /// verifies them against the hash).
    async fn chunk(&self, chunk: ChunkEntry, partition: u16) -> Result<Vec<u8>, SourceError>;
}

/// One page of `partition` read through the node's coordinator, as the
/// admin route `/v1/backup/partitions/{p}` serves it: the node's own
/// records (`.hypha/`) left out, since the API cannot write them back.
pub async fn node_page(
    files: &Files,
    partition: u16,
    after: Option<Hash32>,
    limit: u32,
) -> Result<Page, FilesError> {
    let page = files
        .partition_page(Partition(partition), after.map(|h| h.0), limit)
        .await?;
    Ok(Page {
        files: page
            .manifests
            .iter()
            .filter(|m| !is_reserved(&m.name))
            .map(|m| FileEntry::of_manifest(m, partition))
            .collect(),
        next: page.next_key.map(Hash32),
    })
}

/// A node's own files coordinator as the source (no HTTP, no token).
#[derive(Clone)]
pub struct NodeSource {
    files: Files,
    name: String,
    timeout: Duration,
}

impl NodeSource {
    /// Read through `files`; each read bounded by `timeout`. `name`
    /// names the node in the snapshots.
    pub fn new(files: Files, name: impl Into<String>, timeout: Duration) -> Self {
        Self {
            files,
            name: name.into(),
            timeout,
        }
    }

    async fn bounded<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, FilesError>> + Send,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.timeout, read).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(SourceError::Timeout(
                u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            )),
        }
    }
}

#[async_trait]
impl BackupSource for NodeSource {
    fn describe(&self) -> String {
        format!("node {}", self.name)
    }

    async fn partitions(&self) -> Result<u32, SourceError> {
        Ok(self.files.partitioning().count())
    }

    async fn page(&self, partition: u32, after: Option<Hash32>) -> Result<Page, SourceError> {
        let partition = u16::try_from(partition)
            .map_err(|_| SourceError::Malformed(format!("partition {partition}")))?;
        self.bounded(node_page(&self.files, partition, after, DEFAULT_PAGE))
            .await
    }

    async fn chunk(&self, chunk: ChunkEntry, partition: u16) -> Result<Vec<u8>, SourceError> {
        let wanted = ChunkRef {
            hash: chunk.hash.0,
            len: chunk.len,
        };
        self.bounded(self.files.chunk(Partition(partition), wanted))
            .await
    }
}
