//! Taking a snapshot into a backup directory from any [`BackupSource`]:
//! list every partition's live files, store small files' inline content
//! as chunks, fetch and write the chunks the directory lacks
//! ([`plan::chunks_to_write`]), then write the index. The same code runs
//! for `hypha backup create` (over the admin API) and the node's
//! scheduled backup (in process). Every disk access runs on the blocking
//! pool, never on an async worker thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::{stream, StreamExt, TryStreamExt};
use hypha_core::clock::SharedClock;
use serde::Serialize;

use super::dir::BackupDir;
use super::index::{ChunkEntry, FileEntry, Hash32, Snapshot};
use super::plan;
use super::source::BackupSource;
use super::BackupError;

/// Partitions read at once.
const PARTITIONS_AT_ONCE: usize = 8;

/// What a progress display is told.
pub trait Progress: Sync {
    /// A phase begins with `total` units to go (partitions, then chunk
    /// bytes).
    fn start(&self, _phase: Phase, _total: u64) {}
    /// `n` more units of the current phase are done.
    fn advance(&self, _n: u64) {}
    /// The snapshot is being written: no more progress.
    fn finish(&self) {}
}

/// The phases of a backup, as a progress display sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Listing partitions (units: partitions).
    Listing,
    /// Fetching new chunks (units: bytes).
    Chunks,
}

/// No progress display.
pub struct Quiet;

impl Progress for Quiet {}

/// What one backup did (`hypha backup create --json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct CreateSummary {
    /// The snapshot's id.
    pub snapshot: String,
    /// Its root hash.
    pub root: Hash32,
    /// Partitions read.
    pub partitions: u32,
    /// Files backed up.
    pub files: usize,
    /// Bytes of the files backed up.
    pub bytes: u64,
    /// Distinct chunks the snapshot references.
    pub chunks: usize,
    /// Chunks written by this backup.
    pub chunks_written: usize,
    /// Chunks the directory already held.
    pub chunks_skipped: usize,
    /// Chunk bytes written plus the index.
    pub bytes_written: u64,
    /// Chunk bytes written.
    pub chunk_bytes_written: u64,
    /// Bytes of the index.
    pub index_bytes: u64,
    /// From start to the index being durable.
    pub duration_ms: u64,
}

/// Run `job` (disk I/O) on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| BackupError::Task(e.to_string()))?
}

/// Every live file of partition `p`, page by page.
async fn partition_files<S: BackupSource + ?Sized>(
    source: &S,
    p: u32,
) -> Result<Vec<FileEntry>, BackupError> {
    let mut files = Vec::new();
    let mut after = None;
    loop {
        let page = source.page(p, after).await?;
        files.extend(page.files);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(files),
        }
    }
}

/// A small file's inline content, checked against its root; the entry
/// then lists it as its one chunk (hash = root).
fn take_inline(file: &mut FileEntry) -> Result<Option<Vec<u8>>, BackupError> {
    let Some(text) = file.inline.take() else {
        return Ok(None);
    };
    let bad = |reason: &str| BackupError::Inline {
        name: file.name.clone(),
        reason: reason.to_owned(),
    };
    let bytes = hex::decode(&text).map_err(|_| bad("not hex"))?;
    if Hash32::of(&bytes) != file.root {
        return Err(bad("does not match its root"));
    }
    let len = u32::try_from(bytes.len()).map_err(|_| bad("too large"))?;
    file.chunks = vec![ChunkEntry {
        hash: file.root,
        len,
    }];
    Ok(Some(bytes))
}

/// Take a snapshot of the cluster behind `source` into the backup
/// directory `root` (created if needed), fetching up to `concurrency`
/// chunks at once. Times are read from `clock`.
pub async fn create<S: BackupSource + ?Sized>(
    source: &S,
    root: &Path,
    concurrency: usize,
    clock: &SharedClock,
    progress: &dyn Progress,
) -> Result<CreateSummary, BackupError> {
    let started = clock.now();
    let started_ms = clock.wall_ms();
    let dir = {
        let root: PathBuf = root.to_owned();
        blocking(move || BackupDir::create(&root)).await?
    };
    let partitions = source.partitions().await?;
    if partitions == 0 {
        return Err(BackupError::NoPartitions);
    }

    progress.start(Phase::Listing, u64::from(partitions));
    let mut files: Vec<FileEntry> = stream::iter(0..partitions)
        .map(|p| async move {
            let files = partition_files(source, p).await;
            progress.advance(1);
            files
        })
        .buffer_unordered(PARTITIONS_AT_ONCE)
        .try_concat()
        .await?;

    let mut inline = Vec::new();
    for file in &mut files {
        if let Some(bytes) = take_inline(file)? {
            inline.push((file.root, bytes));
        }
    }
    // One trip to the disk: the inline chunks the directory lacks are
    // written, then the chunks still to fetch are those it lacks.
    let (files, inline_written, todo) = {
        let dir = dir.clone();
        blocking(move || {
            let mut written = (0usize, 0u64);
            for (hash, bytes) in inline {
                if !dir.has_chunk(&hash) {
                    dir.write_chunk(&hash, &bytes)?;
                    written.0 += 1;
                    written.1 += bytes.len() as u64;
                }
            }
            let todo = plan::chunks_to_write(&files, |h| dir.has_chunk(h));
            Ok((files, written, todo))
        })
        .await?
    };
    let partition_of: BTreeMap<Hash32, u16> = files
        .iter()
        .flat_map(|f| f.chunks.iter().map(move |c| (c.hash, f.partition)))
        .collect();

    progress.start(Phase::Chunks, todo.iter().map(|c| u64::from(c.len)).sum());
    let fetched: Vec<u64> = stream::iter(todo)
        .map(|c| {
            let partition = partition_of.get(&c.hash).copied().unwrap_or(0);
            let dir = dir.clone();
            async move {
                let bytes = source.chunk(c, partition).await?;
                if bytes.len() != c.len as usize || Hash32::of(&bytes) != c.hash {
                    return Err(BackupError::ChunkMismatch(c.hash));
                }
                let n = bytes.len() as u64;
                blocking(move || dir.write_chunk(&c.hash, &bytes)).await?;
                progress.advance(n);
                Ok(n)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    progress.finish();

    let snapshot = Snapshot::new(
        format!("{started_ms:013}"),
        started_ms,
        clock.wall_ms(),
        source.describe(),
        partitions,
        files,
    );
    let chunks = snapshot.chunk_set().len();
    let summary = CreateSummary {
        snapshot: snapshot.id.clone(),
        root: snapshot.root,
        partitions,
        files: snapshot.files.len(),
        bytes: snapshot.bytes(),
        chunks,
        chunks_written: inline_written.0 + fetched.len(),
        chunks_skipped: 0,
        bytes_written: 0,
        chunk_bytes_written: inline_written.1 + fetched.iter().sum::<u64>(),
        index_bytes: 0,
        duration_ms: 0,
    };
    let index_bytes = blocking(move || dir.write_snapshot(&snapshot)).await?;
    Ok(CreateSummary {
        chunks_skipped: chunks.saturating_sub(summary.chunks_written),
        bytes_written: summary.chunk_bytes_written + index_bytes,
        index_bytes,
        duration_ms: u64::try_from(clock.now().saturating_duration_since(started).as_millis())
            .unwrap_or(u64::MAX),
        ..summary
    })
}
