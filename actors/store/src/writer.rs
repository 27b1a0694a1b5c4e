//! Group commit: one writer thread applies every write batch and flushes
//! once for all batches that queued up meanwhile, then answers each. sled's
//! flush covers everything applied before it, so N concurrent writers pay
//! for one flush instead of N — the difference between hundreds and
//! thousands of durable small writes per second.
//!
//! The thread also keeps the free-space reserve: below it, batches that add
//! data are refused with `DiskFull` (deletes still pass, to free space),
//! before sled ever meets ENOSPC, which it does not recover from cleanly.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use ractor::RpcReplyPort;
use tokio::sync::mpsc;

use super::batch::{SpaceClass, WriteBatch};
use super::engine::KvEngine;
use super::error::StoreError;

/// Writes waiting for the writer; a full queue makes the store actor wait
/// (callers' timeouts bound the wait).
pub const WRITE_QUEUE: usize = 1024;
/// Most batches folded into one flush.
const GROUP_MAX_BATCHES: usize = 512;
/// Most payload bytes folded into one flush.
const GROUP_MAX_BYTES: usize = 32 << 20;

/// One queued write.
pub struct WriteJob {
    /// The changes.
    pub batch: WriteBatch,
    /// Answered after the flush that covers the batch.
    pub reply: RpcReplyPort<Result<(), StoreError>>,
}

/// Where and how much space must stay free.
#[derive(Debug, Clone)]
pub struct DiskReserve {
    /// A path on the database's file system (None: no check).
    pub path: Option<PathBuf>,
    /// Writes that add data are refused below this many free bytes.
    pub min_free_bytes: u64,
}

/// The writer thread and its queue.
pub struct Writer {
    tx: Option<mpsc::Sender<WriteJob>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Start the thread.
    pub fn start(engine: Arc<dyn KvEngine>, reserve: DiskReserve) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("hypha-store-writer".into())
            .spawn(move || run(engine.as_ref(), rx, reserve))
            .map_err(|e| StoreError::Io(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// A writer that refuses everything (after `stop`).
    pub fn stopped() -> Self {
        Self {
            tx: None,
            thread: None,
        }
    }

    /// Queue a write (waits while the queue is full).
    pub async fn submit(&self, job: WriteJob) {
        let Some(tx) = &self.tx else {
            let _ = job
                .reply
                .send(Err(StoreError::Unavailable("store is stopping".into())));
            return;
        };
        if let Err(mpsc::error::SendError(job)) = tx.send(job).await {
            let _ = job
                .reply
                .send(Err(StoreError::Unavailable("writer thread ended".into())));
        }
    }

    /// Close the queue and wait for the thread to drain it (blocks).
    pub fn stop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Without a join: a crashed actor's state is dropped on an async
        // thread. Closing the queue lets the thread drain and end by itself.
        self.tx.take();
    }
}

/// sled appends every value to its log and rewrites live data when it
/// cleans segments, so a write can take several times its size on disk
/// before old segments are reclaimed. The reserve is kept against this
/// multiple of what a group adds (measured on a filling tmpfs: 9 files of
/// 4 MiB took 70 MiB before segment cleaning caught up).
const SPACE_AMPLIFICATION: u64 = 3;

struct FreeSpace {
    reserve: DiskReserve,
}

impl FreeSpace {
    /// Bytes that may still be written before the reserve, and before
    /// its lower half (for recovery writes), read now: one statvfs per
    /// group commit, microseconds beside the flush.
    fn budget(&self) -> Budget {
        let unlimited = Budget {
            data: u64::MAX,
            recovery: u64::MAX,
        };
        let Some(path) = &self.reserve.path else {
            return unlimited;
        };
        let reserve = self.reserve.min_free_bytes;
        if reserve == 0 {
            return unlimited;
        }
        match nix::sys::statvfs::statvfs(path.as_path()) {
            // The field types differ between platforms (u32 on some).
            #[allow(clippy::useless_conversion)]
            Ok(s) => {
                let free =
                    u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size()));
                metrics::gauge!("hypha_store_free_bytes").set(free as f64);
                Budget {
                    data: free.saturating_sub(reserve),
                    recovery: free.saturating_sub(reserve / 2),
                }
            }
            // Unknown free space: let sled report a real ENOSPC.
            Err(_) => unlimited,
        }
    }
}

/// What a group commit may still add, by [`SpaceClass`].
struct Budget {
    data: u64,
    recovery: u64,
}

impl Budget {
    /// Take `batch`'s share, or say the disk is full for it.
    fn take(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        if !batch.grows() {
            return Ok(());
        }
        let need = (batch.payload_bytes() as u64).saturating_mul(SPACE_AMPLIFICATION);
        let available = match batch.space_class() {
            SpaceClass::Data => self.data,
            SpaceClass::Recovery => self.recovery,
        };
        if need > available {
            return Err(StoreError::DiskFull);
        }
        self.data = self.data.saturating_sub(need);
        self.recovery = self.recovery.saturating_sub(need);
        Ok(())
    }
}

fn run(engine: &dyn KvEngine, mut rx: mpsc::Receiver<WriteJob>, reserve: DiskReserve) {
    let space = FreeSpace { reserve };
    while let Some(first) = rx.blocking_recv() {
        let group = collect_group(first, &mut rx);
        commit(engine, group, &space);
    }
}

fn collect_group(first: WriteJob, rx: &mut mpsc::Receiver<WriteJob>) -> Vec<WriteJob> {
    let mut bytes = first.batch.payload_bytes();
    let mut group = vec![first];
    while group.len() < GROUP_MAX_BATCHES && bytes < GROUP_MAX_BYTES {
        match rx.try_recv() {
            Ok(job) => {
                bytes += job.batch.payload_bytes();
                group.push(job);
            }
            Err(_) => break,
        }
    }
    group
}

fn commit(engine: &dyn KvEngine, group: Vec<WriteJob>, space: &FreeSpace) {
    let mut budget = space.budget();
    let mut applied = Vec::with_capacity(group.len());
    for job in group {
        let result = budget
            .take(&job.batch)
            .and_then(|()| engine.apply(&job.batch));
        match result {
            Ok(()) => applied.push(job),
            Err(err) => {
                count_error(&err);
                let _ = job.reply.send(Err(err));
            }
        }
    }
    if applied.is_empty() {
        return;
    }
    let flushed = engine.flush();
    metrics::histogram!("hypha_store_group_commit_batches").record(applied.len() as f64);
    for job in applied {
        let result = match &flushed {
            Ok(_) => {
                metrics::counter!("hypha_store_writes_total").increment(job.batch.len() as u64);
                Ok(())
            }
            Err(err) => {
                count_error(err);
                Err(err.clone())
            }
        };
        let _ = job.reply.send(result);
    }
}

fn count_error(err: &StoreError) {
    let reason = match err {
        StoreError::DiskFull => "disk_full",
        StoreError::ConditionFailed(_) => "condition",
        _ => "io",
    };
    metrics::counter!("hypha_store_write_errors_total", "reason" => reason).increment(1);
}
