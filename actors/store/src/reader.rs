//! Reader threads: a small fixed pool that answers store reads from one
//! bounded queue, so that sled never runs on an async worker thread and a
//! read does not cost a `spawn_blocking` each.
//!
//! Why not `spawn_blocking`: every read then allocated a task, went
//! through tokio's shared blocking pool and parked and woke its threads;
//! on the small-operation path that pool was 30% of the machine's CPU while
//! the reads themselves were 1% (docs/benchmarks.md). Threads that stay
//! and drain the queue while it holds work take reads without a wake-up
//! each. More than one, because a read of a page not in cache blocks on
//! the disk: the others go on meanwhile.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::engine::KvEngine;
use super::error::StoreError;

/// Reads waiting for a reader; a full queue makes the store actor wait.
pub const READ_QUEUE: usize = 1024;
/// Reader threads per store.
pub const READER_THREADS: usize = 4;

/// One read: runs against the engine and answers its caller itself.
pub type ReadJob = Box<dyn FnOnce(&dyn KvEngine) + Send>;

/// The reader threads and their queue.
pub struct Readers {
    tx: Option<mpsc::Sender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Start `READER_THREADS` readers on `engine`.
    pub fn start(engine: Arc<dyn KvEngine>) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel(READ_QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(READER_THREADS);
        for i in 0..READER_THREADS {
            let (engine, rx) = (engine.clone(), rx.clone());
            let thread = std::thread::Builder::new()
                .name(format!("hypha-store-read-{i}"))
                .spawn(move || run(engine.as_ref(), &rx))
                .map_err(|e| StoreError::Io(format!("cannot start a reader thread: {e}")))?;
            threads.push(thread);
        }
        Ok(Self {
            tx: Some(tx),
            threads,
        })
    }

    /// Readers that refuse everything (after `stop`).
    pub fn stopped() -> Self {
        Self {
            tx: None,
            threads: Vec::new(),
        }
    }

    /// Queue a read (waits while the queue is full). A stopped pool drops
    /// the job, and with it the caller's reply port: the caller's call
    /// fails rather than waits.
    pub async fn submit(&self, job: ReadJob) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job).await;
        }
    }

    /// Close the queue and wait for the readers to drain it (blocks).
    pub fn stop(&mut self) {
        self.tx.take();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("store reader thread panicked");
            }
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        // Without a join, as for the writer: closing the queue lets the
        // threads drain it and end by themselves.
        self.tx.take();
    }
}

fn run(engine: &dyn KvEngine, rx: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        // One reader waits on the queue at a time; the others wait for the
        // lock. The lock is released before the read runs.
        let job = match rx.lock() {
            Ok(mut rx) => rx.blocking_recv(),
            Err(_) => return,
        };
        let Some(job) = job else { return };
        // A panicking read drops its reply port (its caller gets an error)
        // and must not take the reader with it.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(engine)));
        if ran.is_err() {
            tracing::error!("a store read panicked; its caller gets an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Tree, WriteBatch};
    use crate::engine::SledEngine;
    use tokio::sync::oneshot;

    fn engine() -> (tempfile::TempDir, Arc<dyn KvEngine>) {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(dir.path()).unwrap();
        let batch = WriteBatch::new().put(Tree::Meta, b"k".to_vec(), b"v".to_vec());
        engine.apply(&batch).unwrap();
        (dir, Arc::new(engine))
    }

    /// Queue a read of `key` in `Tree::Meta`; its answer.
    async fn read(readers: &Readers, key: &'static [u8]) -> Option<Option<Vec<u8>>> {
        let (tx, rx) = oneshot::channel();
        readers
            .submit(Box::new(move |e: &dyn KvEngine| {
                let _ = tx.send(e.get(Tree::Meta, key).ok().flatten());
            }))
            .await;
        rx.await.ok()
    }

    #[tokio::test]
    async fn reads_are_answered_by_the_pool() {
        let (_dir, engine) = engine();
        let readers = Readers::start(engine).unwrap();
        assert_eq!(read(&readers, b"k").await, Some(Some(b"v".to_vec())));
        assert_eq!(read(&readers, b"absent").await, Some(None));
        let many = futures::future::join_all((0..100).map(|_| read(&readers, b"k"))).await;
        assert!(many.iter().all(|r| r == &Some(Some(b"v".to_vec()))));
    }

    #[tokio::test]
    async fn a_panicking_read_fails_its_caller_and_spares_the_readers() {
        let (_dir, engine) = engine();
        let readers = Readers::start(engine).unwrap();
        for _ in 0..READER_THREADS + 1 {
            let (tx, rx) = oneshot::channel::<()>();
            readers
                .submit(Box::new(move |_: &dyn KvEngine| {
                    let _keep = tx;
                    panic!("a read that panics");
                }))
                .await;
            assert!(rx.await.is_err(), "the caller sees its reply dropped");
        }
        assert_eq!(read(&readers, b"k").await, Some(Some(b"v".to_vec())));
    }

    #[tokio::test]
    async fn stopping_drains_what_was_queued_then_refuses() {
        let (_dir, engine) = engine();
        let mut readers = Readers::start(engine).unwrap();
        let (tx, rx) = oneshot::channel();
        readers
            .submit(Box::new(move |e: &dyn KvEngine| {
                let _ = tx.send(e.get(Tree::Meta, b"k").ok().flatten());
            }))
            .await;
        let readers = tokio::task::spawn_blocking(move || {
            readers.stop();
            readers
        })
        .await
        .unwrap();
        assert_eq!(rx.await.ok(), Some(Some(b"v".to_vec())));
        assert_eq!(
            read(&readers, b"k").await,
            None,
            "a stopped pool drops the read"
        );
    }
}
