//! Scheduled backups (`[backup]` in the node's configuration,
//! docs/backup.md): the `backup/schedule` actor takes a snapshot of the
//! cluster into its directory every `interval_ms`, through the node's own
//! files coordinator ([`NodeSource`](super::source::NodeSource)), then
//! applies retention (`keep`, [`BackupDir::prune`]). One run at a time: a
//! run is a task the actor owns (aborted when it stops), reporting back
//! with a message; a tick that finds a run in progress does nothing, so a
//! run longer than the interval only delays the next. When runs are due
//! is the pure [`plan::next_due`], read off the node's injected clock.
//!
//! The directory is the durable state: an incarnation (after a crash, or
//! a node restart) learns the last snapshot from it and is due one
//! interval after that snapshot started. A failed run (the cluster not
//! readable, the disk full) is an outcome, logged with its reason,
//! counted and retried, never a panic. The last runs and the next due
//! time are shared with the admin API ([`BackupStatus`],
//! `GET /v1/backup/status`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hypha_core::clock::SharedClock;
use hypha_supervisors::CrashMessage;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use tokio::task::JoinSet;

use super::create::{blocking, create, Quiet};
use super::dir::{BackupDir, MARKER};
use super::plan::{self, LastRun};
use super::source::BackupSource;
use super::BackupError;

/// Chunks a scheduled run fetches at once (the CLI's default too).
pub const CHUNKS_AT_ONCE: usize = 8;
/// Longest time between two checks of whether a run is due.
const MAX_TICK_MS: u64 = 1_000;

/// What the schedule does: where, how often, how many snapshots it keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// The backup directory.
    pub dir: PathBuf,
    /// Time between the starts of two runs.
    pub interval_ms: u64,
    /// Snapshots retained (at least 1).
    pub keep: usize,
}

/// One run, as `GET /v1/backup/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    /// Start (Unix ms).
    pub started_ms: u64,
    /// End (Unix ms).
    pub finished_ms: u64,
    /// `ok` or `failed`.
    pub result: &'static str,
    /// The snapshot written (its id), if the run got that far.
    pub snapshot: Option<String>,
    /// Files in the snapshot.
    pub files: usize,
    /// Chunk and index bytes written.
    pub bytes_written: u64,
    /// Snapshots removed by retention.
    pub snapshots_pruned: usize,
    /// Chunks removed by retention.
    pub chunks_pruned: usize,
    /// Why it failed.
    pub error: Option<String>,
}

impl RunRecord {
    /// A run that started (and, so far, ended) at `at_ms` and failed, or
    /// will unless it gets further.
    fn failed(at_ms: u64, error: Option<String>) -> Self {
        Self {
            started_ms: at_ms,
            finished_ms: at_ms,
            result: "failed",
            snapshot: None,
            files: 0,
            bytes_written: 0,
            snapshots_pruned: 0,
            chunks_pruned: 0,
            error,
        }
    }

    fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The schedule's state as the admin API serves it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusDoc {
    /// Whether this node runs scheduled backups (`[backup] dir` set).
    pub scheduled: bool,
    /// The settings, when scheduled.
    pub schedule: Option<Schedule>,
    /// A run is in progress.
    pub running: bool,
    /// Start of the run in progress.
    pub running_since_ms: Option<u64>,
    /// Successful runs since the node started.
    pub runs_ok: u64,
    /// Failed runs since the node started.
    pub runs_failed: u64,
    /// The last run that ended.
    pub last_run: Option<RunRecord>,
    /// End of the last successful run (from the directory after a
    /// restart).
    pub last_success_ms: Option<u64>,
    /// When the next run is due (Unix ms).
    pub next_due_ms: Option<u64>,
}

/// The status shared by the schedule actor (every incarnation) and the
/// admin API; created once per node.
#[derive(Debug, Clone, Default)]
pub struct BackupStatus(Arc<Mutex<StatusDoc>>);

impl BackupStatus {
    /// The status of a node with `schedule` (`None`: not scheduled).
    pub fn new(schedule: Option<Schedule>) -> Self {
        Self(Arc::new(Mutex::new(StatusDoc {
            scheduled: schedule.is_some(),
            schedule,
            ..StatusDoc::default()
        })))
    }

    /// A copy of the current status.
    pub fn doc(&self) -> StatusDoc {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut StatusDoc)) {
        change(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// Messages of the schedule actor (local only).
pub enum ScheduleMessage {
    /// Check whether a run is due.
    Tick,
    /// The run in progress ended.
    Finished(Box<RunRecord>),
    /// Chaos: panic inside the handler.
    Crash,
}

impl ractor::Message for ScheduleMessage {}

impl CrashMessage for ScheduleMessage {
    fn crash() -> Self {
        ScheduleMessage::Crash
    }
}

/// The schedule behaviour.
pub struct Scheduler;

/// What each incarnation is given.
#[derive(Clone)]
pub struct SchedulerArgs {
    /// Where, how often, how many.
    pub schedule: Schedule,
    /// What is backed up.
    pub source: Arc<dyn BackupSource>,
    /// The node's clock: due times and snapshot ids are read from it.
    pub clock: SharedClock,
    /// Shared with the admin API.
    pub status: BackupStatus,
}

/// State of one incarnation.
pub struct SchedulerState {
    args: SchedulerArgs,
    due_ms: u64,
    running: bool,
    /// The run in progress (at most one), aborted on stop.
    tasks: JoinSet<()>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

/// Start and end (Unix ms) of the newest snapshot in `dir`, if any.
fn newest_snapshot(dir: &Path) -> Result<Option<(u64, u64)>, BackupError> {
    if !dir.join(MARKER).exists() {
        return Ok(None);
    }
    let dir = BackupDir::open(dir)?;
    match dir.snapshot_ids()?.last() {
        None => Ok(None),
        Some(id) => {
            let s = dir.snapshot(id)?;
            Ok(Some((s.started_ms, s.finished_ms)))
        }
    }
}

/// One run: a snapshot, then retention. Never fails: the outcome is the
/// record.
async fn run_once(
    source: &dyn BackupSource,
    schedule: &Schedule,
    clock: &SharedClock,
) -> RunRecord {
    let mut record = RunRecord::failed(clock.wall_ms(), None);
    match create(source, &schedule.dir, CHUNKS_AT_ONCE, clock, &Quiet).await {
        Ok(created) => {
            record.snapshot = Some(created.snapshot);
            record.files = created.files;
            record.bytes_written = created.bytes_written;
            let root = schedule.dir.clone();
            let keep = schedule.keep;
            match blocking(move || BackupDir::open(&root)?.prune(keep)).await {
                Ok(pruned) => {
                    record.result = "ok";
                    record.snapshots_pruned = pruned.snapshots.len();
                    record.chunks_pruned = pruned.chunks.len();
                }
                Err(e) => record.error = Some(format!("retention: {e}")),
            }
        }
        Err(e) => record.error = Some(e.to_string()),
    }
    record.finished_ms = clock.wall_ms();
    record
}

impl SchedulerState {
    fn interval_ms(&self) -> u64 {
        self.args.schedule.interval_ms
    }

    fn tick(&mut self, myself: &ActorRef<ScheduleMessage>) {
        // A run task that ended without reporting (it panicked) is a
        // failed run.
        while let Some(joined) = self.tasks.try_join_next() {
            if let Err(e) = joined {
                let error = format!("the run ended without a result: {e}");
                self.finished(RunRecord::failed(self.args.clock.wall_ms(), Some(error)));
            }
        }
        let now = self.args.clock.wall_ms();
        if !plan::should_start(now, self.due_ms, self.running) {
            return;
        }
        self.running = true;
        self.args.status.update(|d| {
            d.running = true;
            d.running_since_ms = Some(now);
        });
        tracing::info!(dir = %self.args.schedule.dir.display(), "scheduled backup started");
        let (source, schedule, clock) = (
            self.args.source.clone(),
            self.args.schedule.clone(),
            self.args.clock.clone(),
        );
        let myself = myself.clone();
        self.tasks.spawn(async move {
            let record = run_once(source.as_ref(), &schedule, &clock).await;
            // The actor may be stopping; then nobody needs the news.
            let _ = myself.cast(ScheduleMessage::Finished(Box::new(record)));
        });
    }

    fn finished(&mut self, record: RunRecord) {
        self.running = false;
        let last = if record.ok() {
            metrics::counter!("hypha_backup_runs_total", "result" => "ok").increment(1);
            metrics::gauge!("hypha_backup_last_success_unix_ms").set(record.finished_ms as f64);
            tracing::info!(
                snapshot = record.snapshot.as_deref().unwrap_or(""),
                files = record.files,
                bytes_written = record.bytes_written,
                snapshots_pruned = record.snapshots_pruned,
                chunks_pruned = record.chunks_pruned,
                duration_ms = record.finished_ms.saturating_sub(record.started_ms),
                "scheduled backup done"
            );
            LastRun::Succeeded {
                started_ms: record.started_ms,
            }
        } else {
            metrics::counter!("hypha_backup_runs_total", "result" => "failed").increment(1);
            tracing::warn!(
                dir = %self.args.schedule.dir.display(),
                "scheduled backup failed: {}",
                record.error.as_deref().unwrap_or("unknown")
            );
            LastRun::Failed {
                finished_ms: record.finished_ms,
            }
        };
        metrics::counter!("hypha_backup_written_bytes_total").increment(record.bytes_written);
        self.due_ms = plan::next_due(last, self.interval_ms(), self.args.clock.wall_ms());
        let due = self.due_ms;
        self.args.status.update(|d| {
            d.running = false;
            d.running_since_ms = None;
            if record.ok() {
                d.runs_ok += 1;
                d.last_success_ms = Some(record.finished_ms);
            } else {
                d.runs_failed += 1;
            }
            d.last_run = Some(record);
            d.next_due_ms = Some(due);
        });
    }
}

impl Actor for Scheduler {
    type Msg = ScheduleMessage;
    type State = SchedulerState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ScheduleMessage>,
        args: SchedulerArgs,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        // The directory is the durable state: the newest snapshot in it
        // sets when the next run is due.
        let dir = args.schedule.dir.clone();
        let newest = match blocking(move || newest_snapshot(&dir)).await {
            Ok(newest) => newest,
            Err(e) => {
                // The run will meet the same problem and report it.
                tracing::warn!("backup directory not read at start: {e}");
                None
            }
        };
        let now = args.clock.wall_ms();
        let last = newest.map_or(LastRun::None, |(started_ms, _)| LastRun::Succeeded {
            started_ms,
        });
        let due_ms = plan::next_due(last, args.schedule.interval_ms, now);
        if let Some((_, finished_ms)) = newest {
            metrics::gauge!("hypha_backup_last_success_unix_ms").set(finished_ms as f64);
        }
        args.status.update(|d| {
            d.running = false;
            d.running_since_ms = None;
            d.next_due_ms = Some(due_ms);
            if d.last_success_ms.is_none() {
                d.last_success_ms = newest.map(|(_, finished)| finished);
            }
        });
        let tick = Duration::from_millis(args.schedule.interval_ms.clamp(1, MAX_TICK_MS));
        let ticker = myself.send_interval(tick, || ScheduleMessage::Tick);
        Ok(SchedulerState {
            args,
            due_ms,
            running: false,
            tasks: JoinSet::new(),
            ticker: Some(ticker),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ScheduleMessage>,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        // A run cut here leaves the earlier snapshots whole (chunks and
        // indexes are written atomically, the index last).
        state.tasks.abort_all();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ScheduleMessage>,
        message: ScheduleMessage,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ScheduleMessage::Tick => state.tick(&myself),
            ScheduleMessage::Finished(record) => state.finished(*record),
            ScheduleMessage::Crash => panic!("chaos: injected panic in the backup schedule"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use hypha_core::clock::ManualClock;

    use super::*;
    use crate::backup::index::{ChunkEntry, FileEntry, Hash32};
    use crate::backup::source::{Page, SourceError};

    /// One partition with one small (inline) file and one chunked file;
    /// the first listing fails.
    struct Fake {
        fail_once: AtomicBool,
    }

    fn entry(name: &str, content: &[u8], inline: bool) -> FileEntry {
        let root = Hash32::of(content);
        FileEntry {
            name: name.into(),
            size: content.len() as u64,
            root,
            content_type: "text/plain".into(),
            labels: Default::default(),
            created_ms: 1,
            modified_ms: 1,
            version: "v".into(),
            partition: 0,
            chunks: if inline {
                Vec::new()
            } else {
                vec![ChunkEntry {
                    hash: root,
                    len: content.len() as u32,
                }]
            },
            inline: inline.then(|| hex::encode(content)),
        }
    }

    #[async_trait]
    impl BackupSource for Fake {
        fn describe(&self) -> String {
            "fake".into()
        }
        async fn partitions(&self) -> Result<u32, SourceError> {
            if self.fail_once.swap(false, Ordering::SeqCst) {
                return Err(SourceError::Remote("not settled yet".into()));
            }
            Ok(1)
        }
        async fn page(&self, _p: u32, _after: Option<Hash32>) -> Result<Page, SourceError> {
            Ok(Page {
                files: vec![entry("a", b"small", true), entry("b", b"chunked", false)],
                next: None,
            })
        }
        async fn chunk(&self, _c: ChunkEntry, _p: u16) -> Result<Vec<u8>, SourceError> {
            Ok(b"chunked".to_vec())
        }
    }

    /// Runs happen one interval apart on the injected clock, a failure is
    /// counted and retried, retention keeps `keep` snapshots, and a new
    /// incarnation learns the last snapshot from the directory.
    #[tokio::test]
    async fn runs_are_scheduled_counted_and_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let schedule = Schedule {
            dir: tmp.path().join("b"),
            interval_ms: 20,
            keep: 2,
        };
        let manual = ManualClock::new(1_000_000);
        let status = BackupStatus::new(Some(schedule.clone()));
        let args = SchedulerArgs {
            schedule: schedule.clone(),
            source: Arc::new(Fake {
                fail_once: AtomicBool::new(true),
            }),
            clock: SharedClock::new(manual.clone()),
            status: status.clone(),
        };
        let (actor, handle) = Actor::spawn(None, Scheduler, args.clone()).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while status.doc().runs_ok < 4 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", status.doc());
            manual.advance(Duration::from_millis(20));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The clock stops: no run becomes due; wait for the one running.
        while status.doc().running {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        actor.stop(None);
        handle.await.unwrap();
        let doc = status.doc();
        assert_eq!(doc.runs_failed, 1, "{doc:?}");
        let last = doc.last_run.clone().unwrap();
        assert_eq!(last.result, "ok");
        assert_eq!(last.files, 2);
        let dir = BackupDir::open(&schedule.dir).unwrap();
        let ids = dir.snapshot_ids().unwrap();
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert_eq!(ids.last(), last.snapshot.as_ref());
        assert_eq!(dir.chunks().unwrap().len(), 2);

        // A new incarnation: due one interval after the newest snapshot.
        let fresh = BackupStatus::new(Some(schedule.clone()));
        let (actor, handle) = Actor::spawn(
            None,
            Scheduler,
            SchedulerArgs {
                status: fresh.clone(),
                ..args
            },
        )
        .await
        .unwrap();
        let newest: u64 = ids.last().unwrap().parse().unwrap();
        assert_eq!(fresh.doc().next_due_ms, Some(newest + 20));
        let written = dir.snapshot(ids.last().unwrap()).unwrap();
        assert_eq!(fresh.doc().last_success_ms, Some(written.finished_ms));
        assert!(written.finished_ms <= last.finished_ms);
        actor.stop(None);
        handle.await.unwrap();
    }
}
