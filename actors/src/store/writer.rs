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
use std::time::{Duration, Instant};

use ractor::RpcReplyPort;
use tokio::sync::mpsc;

use super::batch::WriteBatch;
use super::engine::KvEngine;
use super::error::StoreError;

/// Writes waiting for the writer; a full queue makes the store actor wait
/// (callers' timeouts bound the wait).
pub const WRITE_QUEUE: usize = 1024;
/// Most batches folded into one flush.
const GROUP_MAX_BATCHES: usize = 512;
/// Most payload bytes folded into one flush.
const GROUP_MAX_BYTES: usize = 32 << 20;
/// How stale the free-space reading may be.
const FREE_SPACE_RECHECK: Duration = Duration::from_millis(500);

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

struct FreeSpace {
    reserve: DiskReserve,
    checked: Option<Instant>,
    full: bool,
}

impl FreeSpace {
    fn is_full(&mut self) -> bool {
        let Some(path) = &self.reserve.path else {
            return false;
        };
        if self.reserve.min_free_bytes == 0 {
            return false;
        }
        let stale = self
            .checked
            .is_none_or(|t| t.elapsed() >= FREE_SPACE_RECHECK);
        if stale {
            self.checked = Some(Instant::now());
            self.full = match nix::sys::statvfs::statvfs(path.as_path()) {
                // The field types differ between platforms (u32 on some).
                #[allow(clippy::useless_conversion)]
                Ok(s) => {
                    let free = u64::from(s.blocks_available())
                        .saturating_mul(u64::from(s.fragment_size()));
                    metrics::gauge!("hypha_store_free_bytes").set(free as f64);
                    free < self.reserve.min_free_bytes
                }
                // Unknown free space: let sled report a real ENOSPC.
                Err(_) => false,
            };
        }
        self.full
    }
}

fn run(engine: &dyn KvEngine, mut rx: mpsc::Receiver<WriteJob>, reserve: DiskReserve) {
    let mut space = FreeSpace {
        reserve,
        checked: None,
        full: false,
    };
    while let Some(first) = rx.blocking_recv() {
        let group = collect_group(first, &mut rx);
        commit(engine, group, &mut space);
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

fn commit(engine: &dyn KvEngine, group: Vec<WriteJob>, space: &mut FreeSpace) {
    let full = space.is_full();
    let mut applied = Vec::with_capacity(group.len());
    for job in group {
        let result = if full && job.batch.grows() {
            Err(StoreError::DiskFull)
        } else {
            engine.apply(&job.batch)
        };
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
