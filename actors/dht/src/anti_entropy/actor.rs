//! The exchange actor's shell: on each tick it collects finished
//! exchanges into the [`Schedule`], follows placement (a changed replica
//! set is due at once), looks for partitions held here that moved away,
//! and starts due work in a bounded task set that dies with the actor. A
//! restart starts the schedule over from placement and the store: every
//! partition is exchanged again at once, and nothing is confirmed — or
//! caught up ([`CaughtUp`]) — until it is.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::caught_up::CaughtUp;
use super::confirmed::Confirmed;
use super::messages::{AntiEntropyMessage, TaskDone};
use super::run::{Direction, HandOff, Report, Runner};
use super::schedule::{
    Completeness, Exchanged, PeerResult, Role, Schedule, ScheduleSettings, Task, ViewState,
};
use super::view::PartitionView;
use crate::keyspace::Partition;
use crate::placement::Placement;
use crate::storage::DhtStore;
use crate::storage::Rebuild;
use hypha_cluster::fence::{Fence, Standing as LeaseStanding};
use hypha_cluster::membership::MemberKey;
use hypha_core::clock::SharedClock;

/// Settings of the exchange actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AeSettings {
    /// Exchange timing.
    pub schedule: ScheduleSettings,
    /// How often the actor looks at its work.
    pub tick_ms: u64,
    /// Exchanges and hand-offs running at once.
    pub concurrency: usize,
    /// Replicas per partition (R), for the under-replicated gauge.
    pub replicas: usize,
    /// Partitions checked per tick for data held here that moved away.
    pub held_checks_per_tick: u32,
    /// One partition's digests are checked against its manifests (and
    /// fixed) this often; 0: never.
    pub rebuild_every_ms: u64,
}

/// The exchange actor.
pub struct AntiEntropy;

/// How many times `concurrency` hand-offs run at once while leaving.
const LEAVE_CONCURRENCY_BOOST: usize = 4;

/// What each incarnation is given.
#[derive(Clone)]
pub struct AntiEntropyArgs {
    /// This member.
    pub me: MemberKey,
    /// The node's placement.
    pub placement: watch::Receiver<Arc<Placement>>,
    /// Runs exchanges.
    pub runner: Runner,
    /// The node's DHT store.
    pub store: DhtStore,
    /// Shared with the collector.
    pub confirmed: Confirmed,
    /// Shared with the request handler.
    pub caught_up: CaughtUp,
    /// Settings.
    pub settings: AeSettings,
    /// The node's clock.
    pub clock: SharedClock,
    /// The node's majority lease: a break in it starts every catch-up
    /// over.
    pub fence: Fence,
}

/// State of one incarnation.
pub struct AntiEntropyState {
    args: AntiEntropyArgs,
    schedule: Schedule,
    seen: Option<Arc<Placement>>,
    sets: Vec<Vec<MemberKey>>,
    leaving: bool,
    tasks: JoinSet<()>,
    running: HashMap<tokio::task::Id, u16>,
    busy: BTreeMap<u16, usize>,
    held_cursor: u32,
    rebuild_cursor: u32,
    next_rebuild_ms: u64,
    ticker: Option<tokio::task::JoinHandle<()>>,
    myself: Option<ActorRef<AntiEntropyMessage>>,
    /// Start of the last lease hold seen (None: none seen yet).
    lease_since: Option<Instant>,
}

impl AntiEntropyState {
    fn new(args: AntiEntropyArgs) -> Self {
        let schedule = Schedule::new(args.me.clone(), args.settings.schedule);
        Self {
            args,
            schedule,
            seen: None,
            sets: Vec::new(),
            leaving: false,
            tasks: JoinSet::new(),
            running: HashMap::new(),
            busy: BTreeMap::new(),
            held_cursor: 0,
            rebuild_cursor: 0,
            next_rebuild_ms: 0,
            ticker: None,
            myself: None,
            lease_since: None,
        }
    }

    /// After a break in the majority lease, start every catch-up over
    /// (the schedule says why): the hold seen now started later than the
    /// one seen before. The first hold an incarnation sees is no break
    /// (nothing is caught up at its start anyway).
    fn follow_lease(&mut self, now_ms: u64) {
        let since = match self.args.fence.standing(self.args.clock.now()) {
            LeaseStanding::Held { since, .. } => Some(since),
            LeaseStanding::Probation { .. } | LeaseStanding::Lost { .. } => None,
        };
        let Some(since) = since else {
            return;
        };
        if self.lease_since.is_some_and(|seen| seen != since) {
            tracing::info!(
                "majority lease held again after a break: catching up on every partition"
            );
            self.schedule.restart_catch_up(now_ms);
        }
        self.lease_since = Some(since);
    }

    async fn tick(&mut self) {
        let now = self.args.clock.wall_ms();
        self.reap(now);
        self.follow(now);
        self.follow_lease(now);
        self.scan_held(now).await;
        self.start_due(now);
        self.start_rebuild(now);
        self.publish_caught_up();
        self.gauges();
    }

    /// Tell the handler which partitions this node has caught up on. Once
    /// a tick, not after every task: it walks every partition, tasks finish
    /// a hundred times a second, and the actor that starts them must keep
    /// up. A partition thus counts as caught up at most a tick late, which
    /// only delays when its answers count toward read quorums.
    fn publish_caught_up(&mut self) {
        let Some(placement) = self.seen.clone() else {
            return;
        };
        let is_live = |m: &MemberKey| placement.is_live(m);
        let view = if placement.settled() {
            ViewState::Settled
        } else {
            ViewState::Unsettled
        };
        let caught_up = self.schedule.caught_up(view, &is_live);
        metrics::gauge!("hypha_ae_partitions_caught_up").set(caught_up.len() as f64);
        self.args.caught_up.replace(caught_up);
    }

    /// Free a finished task's partition.
    fn release(&mut self, id: tokio::task::Id) -> Option<u16> {
        let partition = self.running.remove(&id)?;
        if let Some(count) = self.busy.get_mut(&partition) {
            *count -= 1;
            if *count == 0 {
                self.busy.remove(&partition);
            }
        }
        Some(partition)
    }

    /// Reap tasks; one that panicked sent no result, so its partition is
    /// freed here and retried later.
    fn reap(&mut self, now: u64) {
        while let Some(joined) = self.tasks.try_join_next_with_id() {
            if let Err(err) = joined {
                if let Some(partition) = self.release(err.id()) {
                    tracing::error!(partition, "an exchange task failed: {err}");
                    self.schedule.retry_later(partition, now);
                }
            }
        }
    }

    /// A task's result: record it and start what is due without waiting
    /// for the next tick (the tick would cap the exchange rate).
    fn finished(&mut self, id: tokio::task::Id, done: TaskDone) {
        let now = self.args.clock.wall_ms();
        self.release(id);
        match done {
            TaskDone::Exchanged {
                partition,
                peer,
                result,
            } => self.exchanged(partition, &peer, result, now),
            TaskDone::HandedOff { partition, result } => self.handed_off(partition, result, now),
            TaskDone::Rebuilt { partition, result } => rebuilt(partition, result),
        }
        self.reap(now);
        self.start_due(now);
    }

    fn exchanged(
        &mut self,
        partition: u16,
        peer: &MemberKey,
        result: Result<Report, String>,
        now: u64,
    ) {
        let jitter = rand::random::<u64>() % self.args.settings.schedule.period_ms.max(1);
        let (outcome, complete, differing, started) = match &result {
            Ok(r) => {
                record_report(r);
                let outcome = if r.equal {
                    PeerResult::Equal
                } else {
                    PeerResult::Repaired
                };
                let complete = if r.skipped == 0 && r.deferred_buckets == 0 {
                    Completeness::Complete
                } else {
                    Completeness::Partial
                };
                (outcome, complete, r.differing_buckets, r.started_ms)
            }
            Err(err) => {
                tracing::debug!(partition, peer = %peer.link_name(), "exchange failed: {err}");
                (PeerResult::Failed, Completeness::Partial, 0, now)
            }
        };
        let label = match outcome {
            PeerResult::Equal => "equal",
            PeerResult::Repaired => "repaired",
            PeerResult::Failed => "failed",
        };
        metrics::counter!("hypha_ae_exchanges_total", "result" => label).increment(1);
        let exchange = Exchanged {
            result: outcome,
            complete,
            differing_buckets: differing,
            started_ms: started,
        };
        let recorded = self
            .schedule
            .exchanged(partition, peer, exchange, now, jitter);
        if let Some(at) = recorded.confirmed_ms {
            self.args.confirmed.set(partition, at);
        }
        if let Some(ms) = recorded.converged_after_ms {
            metrics::histogram!("hypha_ae_convergence_seconds").record(ms as f64 / 1_000.0);
        }
    }

    fn handed_off(&mut self, partition: u16, result: Result<HandOff, String>, now: u64) {
        let done = match result {
            Ok(h) => {
                metrics::counter!("hypha_ae_entries_repaired_total", "direction" => "push")
                    .increment(h.pushed as u64);
                metrics::counter!("hypha_ae_handoff_dropped_total").increment(h.dropped as u64);
                if h.done {
                    tracing::info!(partition, dropped = h.dropped, "partition handed off");
                }
                h.done
            }
            Err(err) => {
                tracing::debug!(partition, "hand-off attempt failed: {err}");
                false
            }
        };
        self.schedule.handed_off(partition, done, now);
    }

    /// Take a new placement (or the leaving flag) into the schedule.
    fn follow(&mut self, now: u64) {
        let placement = self.args.placement.borrow().clone();
        if self
            .seen
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &placement))
        {
            return;
        }
        let me = &self.args.me;
        let count = placement.partitioning().count();
        self.sets = (0..count)
            .filter_map(|p| u16::try_from(p).ok())
            .map(|p| {
                if self.leaving {
                    placement.replicas_without(Partition(p), me)
                } else {
                    placement.replicas(Partition(p))
                }
            })
            .collect();
        for partition in self.schedule.place(&self.sets, now) {
            self.args.confirmed.clear(partition);
        }
        self.seen = Some(placement);
    }

    /// Look at a few partitions this node neither replicates nor hands
    /// off: data there (left from before a restart, or written by a node
    /// with an older placement) is handed off.
    async fn scan_held(&mut self, now: u64) {
        let count = self.sets.len() as u32;
        if count == 0 {
            return;
        }
        for _ in 0..self.args.settings.held_checks_per_tick.min(count) {
            let p = self.held_cursor % count;
            self.held_cursor = self.held_cursor.wrapping_add(1);
            let Some(set) = self.sets.get(p as usize) else {
                continue;
            };
            let Ok(partition) = u16::try_from(p) else {
                continue;
            };
            if set.contains(&self.args.me) || self.schedule.knows(partition) {
                continue;
            }
            if let Ok(true) = self.args.store.holds(Partition(partition)).await {
                self.schedule.held(partition, set, now);
            }
        }
    }

    fn start_due(&mut self, now: u64) {
        // Leaving is the last thing the node does, under a deadline: it
        // may use more of the machine than the background pace.
        let boost = if self.leaving {
            LEAVE_CONCURRENCY_BOOST
        } else {
            1
        };
        let room = (self.args.settings.concurrency * boost).saturating_sub(self.tasks.len());
        let Some(placement) = self.seen.clone() else {
            return;
        };
        if room == 0 {
            return;
        }
        let busy: BTreeSet<u16> = self.busy.keys().copied().collect();
        let is_live = |m: &MemberKey| placement.is_live(m);
        let (tasks, lone) = self.schedule.due(now, &is_live, &busy, room);
        for partition in lone {
            self.args.confirmed.set(partition, now);
        }
        for task in tasks {
            self.spawn(task);
        }
    }

    fn spawn(&mut self, task: Task) {
        let runner = self.args.runner.clone();
        let myself = self.myself.clone();
        let report = move |done: TaskDone| {
            if let Some(actor) = myself {
                let id = tokio::task::id();
                // The actor may be stopping; then nobody needs the news.
                let _ = actor.cast(AntiEntropyMessage::Finished { id, done });
            }
        };
        let (partition, handle) = match task {
            Task::Exchange { partition, peer } => {
                let handle = self.tasks.spawn(async move {
                    let result = runner
                        .exchange(Partition(partition), &peer, Direction::Both)
                        .await
                        .map_err(|e| e.to_string());
                    report(TaskDone::Exchanged {
                        partition,
                        peer,
                        result,
                    });
                });
                (partition, handle)
            }
            Task::HandOff {
                partition,
                replicas,
            } => {
                let handle = self.tasks.spawn(async move {
                    let result = runner
                        .hand_off(Partition(partition), &replicas)
                        .await
                        .map_err(|e| e.to_string());
                    report(TaskDone::HandedOff { partition, result });
                });
                (partition, handle)
            }
        };
        self.running.insert(handle.id(), partition);
        *self.busy.entry(partition).or_insert(0) += 1;
    }

    /// Check the next partition held here against its manifests, one per
    /// `rebuild_every_ms` (the throttle: a rebuild reads the whole
    /// partition).
    fn start_rebuild(&mut self, now: u64) {
        let every = self.args.settings.rebuild_every_ms;
        if every == 0 || now < self.next_rebuild_ms || self.sets.is_empty() {
            return;
        }
        self.next_rebuild_ms = now + every;
        let count = self.sets.len() as u32;
        let found = (0..count)
            .map(|i| (self.rebuild_cursor + i) % count)
            .filter_map(|p| u16::try_from(p).ok())
            .find(|p| self.schedule.knows(*p) && !self.busy.contains_key(p));
        let Some(partition) = found else { return };
        self.rebuild_cursor = u32::from(partition) + 1;
        let store = self.args.store.clone();
        let myself = self.myself.clone();
        let handle = self.tasks.spawn(async move {
            let result = store
                .rebuild_digests(Partition(partition))
                .await
                .map_err(|e| e.to_string());
            if let Some(actor) = myself {
                let id = tokio::task::id();
                let done = TaskDone::Rebuilt { partition, result };
                let _ = actor.cast(AntiEntropyMessage::Finished { id, done });
            }
        });
        self.running.insert(handle.id(), partition);
        *self.busy.entry(partition).or_insert(0) += 1;
    }

    fn gauges(&self) {
        let Some(placement) = &self.seen else { return };
        let is_live = |m: &MemberKey| placement.is_live(m);
        let under = self
            .schedule
            .under_replicated(self.args.settings.replicas, &is_live);
        metrics::gauge!("hypha_ae_under_replicated_partitions").set(under as f64);
        let handing_off = self
            .schedule
            .status()
            .filter(|s| s.role == Role::HandingOff)
            .count();
        metrics::gauge!("hypha_ae_handoff_partitions").set(handing_off as f64);
    }

    fn views(&self) -> Vec<PartitionView> {
        let Some(placement) = &self.seen else {
            return Vec::new();
        };
        self.schedule
            .status()
            .map(|s| PartitionView::of(s, &self.args.me, placement))
            .collect()
    }

    fn leave(&mut self, now: u64) -> usize {
        if !self.leaving {
            self.leaving = true;
            self.seen = None;
            self.follow(now);
            self.start_due(now);
        }
        self.schedule
            .status()
            .filter(|s| s.role == Role::HandingOff)
            .count()
    }
}

fn rebuilt(partition: u16, result: Result<Rebuild, String>) {
    match result {
        Ok(r) if r.changed() => {
            tracing::warn!(
                partition,
                ?r,
                "digests had drifted from the manifests; fixed"
            );
            let fixed = r.entries_fixed + r.entries_removed + r.rows_fixed;
            metrics::counter!("hypha_ae_digest_repairs_total").increment(fixed as u64);
        }
        Ok(_) => {}
        Err(err) => tracing::debug!(partition, "digest rebuild failed: {err}"),
    }
    metrics::counter!("hypha_ae_rebuilds_total").increment(1);
}

fn record_report(r: &Report) {
    metrics::counter!("hypha_ae_round_trips_total").increment(u64::from(r.round_trips));
    metrics::counter!("hypha_ae_bytes_total", "kind" => "protocol").increment(r.protocol_bytes);
    metrics::counter!("hypha_ae_bytes_total", "kind" => "repair").increment(r.moved_bytes);
    metrics::counter!("hypha_ae_entries_repaired_total", "direction" => "pull")
        .increment(r.pulled as u64);
    metrics::counter!("hypha_ae_entries_repaired_total", "direction" => "push")
        .increment(r.pushed as u64);
    if r.skipped > 0 {
        metrics::counter!("hypha_ae_entries_skipped_total").increment(r.skipped as u64);
    }
}

impl Actor for AntiEntropy {
    type Msg = AntiEntropyMessage;
    type State = AntiEntropyState;
    type Arguments = AntiEntropyArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AntiEntropyMessage>,
        args: AntiEntropyArgs,
    ) -> Result<AntiEntropyState, ActorProcessingErr> {
        let tick = Duration::from_millis(args.settings.tick_ms.max(1));
        // A new schedule knows of no exchange yet: until it has made them,
        // no partition counts as caught up.
        args.caught_up.replace(BTreeSet::new());
        let mut state = AntiEntropyState::new(args);
        state.myself = Some(myself.clone());
        state.ticker = Some(myself.send_interval(tick, || AntiEntropyMessage::Tick));
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<AntiEntropyMessage>,
        state: &mut AntiEntropyState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        state.tasks.abort_all();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<AntiEntropyMessage>,
        message: AntiEntropyMessage,
        state: &mut AntiEntropyState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AntiEntropyMessage::Tick => state.tick().await,
            AntiEntropyMessage::Finished { id, done } => state.finished(id, done),
            AntiEntropyMessage::Status { reply } => {
                let _ = reply.send(state.views());
            }
            AntiEntropyMessage::Leave { reply } => {
                let left = state.leave(state.args.clock.wall_ms());
                let _ = reply.send(left);
            }
            AntiEntropyMessage::Crash => panic!("chaos: injected panic in anti-entropy"),
        }
        Ok(())
    }
}
