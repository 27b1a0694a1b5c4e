//! The queue owner's decisions, with no I/O: which queues this node owns
//! and when to load their logs, submits (idempotency, the queue cap), the
//! durable writes (one in flight per job, the newest record next, failed
//! ones retried at the next tick), answers held until a terminal record is
//! durable, offers to workers (placement, the offer budget, a decliner's
//! busy period), leases and their expiry, requeue of Down workers' jobs,
//! takeover, hand-back and the periodic reread of the log.
//!
//! [`OwnerCore`] takes each event with the time (Unix ms) and returns the
//! [`Effect`]s to carry out; the actor in `owner.rs` carries them out and
//! reports their outcomes back as further events. The core is generic over
//! the reply handle `R` so tests drive it with plain numbers. Counters go
//! to the `metrics` facade from here (no I/O); gauges and everything that
//! leaves the process are effects. The rules are those of docs/jobs.md.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::book::{Book, BookError, Finish, Verdict};
use crate::job::{AttemptEnd, JobId, JobRecord, JobSpec, JobState};
use crate::owner_of;
use crate::placement::{Candidate, PlacementPolicy};
use crate::wire::{ErrorCode, OfferAnswer, QueueFigures, WireError, WorkRequest, WorkResponse};
use hypha_cluster::membership::{ClusterView, MemberKey, MemberState};
use hypha_dht::placement::Placement;

use super::actor::QueueSettings;

/// A worker that declined an offer gets none for this many ticks.
const BUSY_TICKS: u64 = 5;

/// An owner reads each owned queue's log again every this many scans.
/// While ownership moves, two nodes can both believe they own a queue
/// for a moment; a job the old owner acknowledged after the new one
/// read the log would otherwise sit queued in the log with no owner
/// holding it (found by the chaos harness's worker-kill scenario). The
/// reread adds only records still queued when read by quorum, so a job
/// already done or held is never taken twice.
const RELOAD_EVERY_SCANS: u64 = 5;

/// Something the actor must do for the core.
#[derive(Debug)]
pub enum Effect<R> {
    /// Answer a request.
    Reply {
        /// Whom.
        to: R,
        /// With what.
        answer: WorkResponse,
    },
    /// Read `queue`'s queued records and count its dead letters, then
    /// report [`OwnerCore::loaded`].
    Load {
        /// The queue.
        queue: String,
    },
    /// Make a new job durable (first looking it up by id if it carries an
    /// idempotency key, and registering its queue if `register`), then
    /// report [`OwnerCore::submitted`].
    Submit {
        /// The record to write.
        record: JobRecord,
        /// The queue is not known to be in the registry yet.
        register: bool,
        /// The client, answered through [`OwnerCore::submitted`].
        reply: R,
    },
    /// Write a record to the log, then report [`OwnerCore::persisted`].
    Write {
        /// The record.
        record: JobRecord,
    },
    /// Offer a job to a worker, then report [`OwnerCore::offer_answered`].
    Offer {
        /// Queue.
        queue: String,
        /// Job.
        id: JobId,
        /// The worker (`<node id>.<generation>`).
        worker: String,
        /// Its member key.
        member: MemberKey,
        /// The offer to send.
        request: WorkRequest,
    },
    /// Tell a worker to stop a job (best effort: a worker that misses it
    /// learns at its next heartbeat).
    Abort {
        /// The worker's member key.
        member: MemberKey,
        /// Job.
        id: JobId,
    },
    /// Read the queue registry, then report [`OwnerCore::scanned`].
    ReadRegistry,
    /// Publish the owner's gauges (metrics, and the queue depth in gossip).
    Gauges(Gauges),
}

/// The owner's figures over all its queues, published every tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gauges {
    /// Jobs waiting for a worker.
    pub queued: u64,
    /// Jobs offered or leased.
    pub in_flight: u64,
    /// Dead letters counted.
    pub dead_letters: u64,
    /// Queues owned.
    pub owned_queues: u64,
}

/// A queue this node owns.
struct Owned {
    book: Book,
    loaded: bool,
    loading: bool,
    /// When the log was last read into the book (Unix ms).
    loaded_ms: u64,
    dead_letters: u64,
}

/// An offer about to be sent.
struct Planned {
    queue: String,
    id: JobId,
    spec: JobSpec,
    attempt: u32,
    worker: String,
}

/// The owner's state: its queues' books and what is in flight.
pub struct OwnerCore<R> {
    me: MemberKey,
    settings: QueueSettings,
    policy: Arc<dyn PlacementPolicy>,
    placement: Arc<Placement>,
    view: Arc<ClusterView>,
    owned: BTreeMap<String, Owned>,
    known: BTreeSet<String>,
    registered: HashSet<String>,
    submitting: HashSet<JobId>,
    /// Jobs with a write in flight → the record to write next, if any.
    writing: HashMap<JobId, Option<JobRecord>>,
    /// Failed writes, retried on the next tick.
    retry: Vec<JobRecord>,
    /// Answers sent once the job's next terminal record is durable.
    waiters: HashMap<JobId, Vec<(R, WorkResponse)>>,
    scanning: bool,
    /// A scan of the queue registry has completed since this incarnation began.
    scanned_once: bool,
    busy_until_ms: HashMap<String, u64>,
}

/// Effects collected while handling one event.
type Effects<R> = Vec<Effect<R>>;

fn refuse(code: ErrorCode, message: impl Into<String>) -> WorkResponse {
    WorkResponse::Error(WireError::new(code, message))
}

fn book_error(e: BookError) -> WorkResponse {
    match e {
        BookError::Unknown(_) => refuse(ErrorCode::NotFound, e.to_string()),
        other => refuse(ErrorCode::Conflict, other.to_string()),
    }
}

fn reply<R>(fx: &mut Effects<R>, to: R, answer: WorkResponse) {
    fx.push(Effect::Reply { to, answer });
}

impl<R> OwnerCore<R> {
    /// A node that owns nothing yet, placing jobs by `policy` over the
    /// given placement and view (replaced by [`OwnerCore::observe`]).
    pub fn new(
        me: MemberKey,
        settings: QueueSettings,
        policy: Arc<dyn PlacementPolicy>,
        placement: Arc<Placement>,
        view: Arc<ClusterView>,
    ) -> Self {
        Self {
            me,
            settings,
            policy,
            placement,
            view,
            owned: BTreeMap::new(),
            known: BTreeSet::new(),
            registered: HashSet::new(),
            submitting: HashSet::new(),
            writing: HashMap::new(),
            retry: Vec::new(),
            waiters: HashMap::new(),
            scanning: false,
            scanned_once: false,
            busy_until_ms: HashMap::new(),
        }
    }

    /// The live members and their states now (ownership, candidates,
    /// Down workers).
    pub fn observe(&mut self, placement: Arc<Placement>, view: Arc<ClusterView>) {
        self.placement = placement;
        self.view = view;
    }

    fn owns(&self, queue: &str) -> bool {
        owner_of(&self.placement, queue).as_ref() == Some(&self.me)
    }

    /// `to` back if this node owns `queue`; otherwise `to` hears NotOwner.
    fn if_owner(&self, queue: &str, to: R, fx: &mut Effects<R>) -> Option<R> {
        if self.owns(queue) {
            return Some(to);
        }
        reply(fx, to, self.not_owner(queue));
        None
    }

    fn not_owner(&self, queue: &str) -> WorkResponse {
        refuse(
            ErrorCode::NotOwner,
            format!("{} does not own queue {queue}", self.me.link_name()),
        )
    }

    /// Answer a request from a client or a worker.
    pub fn request(&mut self, now_ms: u64, request: WorkRequest, to: R) -> Effects<R> {
        let mut fx = Vec::new();
        let answer = match request {
            WorkRequest::Submit { id, spec } => {
                self.submit(now_ms, id, spec, to, &mut fx);
                return fx;
            }
            report @ WorkRequest::Finished { .. } => {
                self.finished(now_ms, report, to, &mut fx);
                return fx;
            }
            WorkRequest::Cancel { queue, id } => {
                self.cancel(now_ms, &queue, id, to, &mut fx);
                return fx;
            }
            WorkRequest::Status { queue, id } => WorkResponse::Record(
                self.owned
                    .get(&queue)
                    .and_then(|o| o.book.get(&id).cloned()),
            ),
            WorkRequest::List {
                queue,
                state,
                limit,
            } => self.list(&queue, state, limit),
            WorkRequest::Queues => WorkResponse::Queues(self.figures(now_ms)),
            WorkRequest::Heartbeat {
                worker,
                queue,
                jobs,
            } => self.heartbeat(now_ms, &worker, &queue, &jobs, &mut fx),
            WorkRequest::Offer { .. } | WorkRequest::Abort { .. } => refuse(
                ErrorCode::BadRequest,
                "sent to the owner; meant for a worker",
            ),
        };
        reply(&mut fx, to, answer);
        fx
    }

    fn list(&self, queue: &str, state: Option<JobState>, limit: u32) -> WorkResponse {
        let Some(o) = self.owned.get(queue) else {
            // A queue this node owns that no scan of the registry has found
            // has no live jobs. One the registry lists but not loaded yet,
            // or any before the first scan, may: the client retries.
            // (Answering NotOwner made clients retry for 10 s, then 503.)
            let loading = !self.scanned_once || self.known.contains(queue);
            return match (self.owns(queue), loading) {
                (true, false) => WorkResponse::Records(Vec::new()),
                (true, true) => refuse(ErrorCode::Unavailable, "the queue is being loaded"),
                (false, _) => self.not_owner(queue),
            };
        };
        let mut records: Vec<JobRecord> = o
            .book
            .records()
            .filter(|r| state.is_none_or(|s| r.state == s))
            .cloned()
            .collect();
        records.sort_by_key(|r| (r.submitted_ms, r.id));
        records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        WorkResponse::Records(records)
    }

    fn figures(&self, now_ms: u64) -> Vec<QueueFigures> {
        self.owned
            .iter()
            .map(|(queue, o)| {
                let s = o.book.stats(now_ms);
                QueueFigures {
                    queue: queue.clone(),
                    owner: self.me.link_name(),
                    depth: s.queued as u64,
                    in_flight: (s.offered + s.running) as u64,
                    dead_letters: o.dead_letters,
                    oldest_queued_ms: s.oldest_queued_ms,
                    loaded: o.loaded,
                }
            })
            .collect()
    }

    fn heartbeat(
        &mut self,
        now_ms: u64,
        worker: &str,
        queue: &str,
        jobs: &[(JobId, u32)],
        fx: &mut Effects<R>,
    ) -> WorkResponse {
        if !self.owns(queue) {
            return self.not_owner(queue);
        }
        self.ensure_owned(queue, fx);
        let Some(o) = self.owned.get_mut(queue) else {
            return self.not_owner(queue);
        };
        let abort = o
            .book
            .heartbeat(worker, jobs, now_ms)
            .into_iter()
            .filter(|(_, v)| *v == Verdict::Abort)
            .map(|(id, _)| id)
            .collect();
        WorkResponse::Abort(abort)
    }

    /// Take `queue` into this node's care (new queue, or takeover): its
    /// book starts empty and fills from the log.
    fn ensure_owned(&mut self, queue: &str, fx: &mut Effects<R>) {
        if !self.owned.contains_key(queue) {
            tracing::info!(queue, "owning queue; loading its log");
            self.owned.insert(
                queue.to_owned(),
                Owned {
                    book: Book::new(self.settings.lease_ms),
                    loaded: false,
                    loading: false,
                    loaded_ms: 0,
                    dead_letters: 0,
                },
            );
            self.known.insert(queue.to_owned());
        }
        let load = self
            .owned
            .get(queue)
            .is_some_and(|o| !o.loaded && !o.loading);
        if load {
            self.start_load(queue, fx);
        }
    }

    fn start_load(&mut self, queue: &str, fx: &mut Effects<R>) {
        if let Some(o) = self.owned.get_mut(queue) {
            o.loading = true;
            fx.push(Effect::Load {
                queue: queue.to_owned(),
            });
        }
    }

    /// A queue's log was read (`complete`: every member answered): its
    /// queued jobs join the book.
    pub fn loaded(
        &mut self,
        now_ms: u64,
        queue: &str,
        records: Vec<JobRecord>,
        dead_letters: u64,
        complete: bool,
    ) {
        let Some(o) = self.owned.get_mut(queue) else {
            return;
        };
        let mut added = 0;
        for r in records {
            if !r.state.is_terminal() && o.book.insert(r, now_ms).is_ok() {
                added += 1;
            }
        }
        o.loading = false;
        o.loaded = complete;
        o.loaded_ms = now_ms;
        o.dead_letters = o.dead_letters.max(dead_letters);
        if added > 0 || !complete {
            tracing::info!(queue, added, complete, "queue log loaded");
        }
        metrics::counter!("hypha_jobs_takeover_loaded_total").increment(added);
    }

    fn submit(&mut self, now_ms: u64, id: JobId, spec: JobSpec, to: R, fx: &mut Effects<R>) {
        let queue = spec.queue.clone();
        let Some(to) = self.if_owner(&queue, to, fx) else {
            return;
        };
        self.ensure_owned(&queue, fx);
        let Some(o) = self.owned.get(&queue) else {
            return;
        };
        if let Some(r) = o.book.get(&id) {
            let answer = WorkResponse::Submitted {
                record: r.clone(),
                existing: true,
            };
            reply(fx, to, answer);
            return;
        }
        if self.submitting.contains(&id) {
            let answer = refuse(ErrorCode::Conflict, "this job is being submitted; retry");
            reply(fx, to, answer);
            return;
        }
        if o.book.len() >= self.settings.max_queue_jobs {
            let why = format!(
                "queue {queue} holds {} unfinished jobs; retry later",
                o.book.len()
            );
            reply(fx, to, refuse(ErrorCode::Unavailable, why));
            return;
        }
        self.submitting.insert(id);
        fx.push(Effect::Submit {
            record: JobRecord::new(id, spec, now_ms),
            register: !self.registered.contains(&queue),
            reply: to,
        });
    }

    /// A submit's write ended (`existing`: the idempotency key named a job
    /// already in the log, whose record this is): the job joins the book
    /// and the client hears.
    pub fn submitted(
        &mut self,
        now_ms: u64,
        record: JobRecord,
        existing: bool,
        result: Result<(), String>,
        to: R,
    ) -> Effects<R> {
        let mut fx = Vec::new();
        self.submitting.remove(&record.id);
        if let Err(why) = result {
            metrics::counter!("hypha_jobs_submit_failures_total").increment(1);
            let answer = refuse(ErrorCode::Unavailable, format!("not durable: {why}"));
            reply(&mut fx, to, answer);
            return fx;
        }
        let queue = record.spec.queue.clone();
        self.registered.insert(queue.clone());
        if let Some(o) = self.owned.get_mut(&queue) {
            if !record.state.is_terminal() {
                let _ = o.book.insert(record.clone(), now_ms);
            }
        }
        if !existing {
            metrics::counter!("hypha_jobs_submitted_total").increment(1);
        }
        reply(&mut fx, to, WorkResponse::Submitted { record, existing });
        fx
    }

    /// A worker's report that an attempt ended.
    fn finished(&mut self, now_ms: u64, report: WorkRequest, to: R, fx: &mut Effects<R>) {
        let WorkRequest::Finished {
            worker,
            id,
            spec,
            attempt,
            end,
            result,
        } = report
        else {
            return;
        };
        let queue = spec.queue.clone();
        let Some(to) = self.if_owner(&queue, to, fx) else {
            return;
        };
        self.ensure_owned(&queue, fx);
        let Some(o) = self.owned.get_mut(&queue) else {
            return;
        };
        let succeeded = end == AttemptEnd::Succeeded;
        match o
            .book
            .finished(&worker, &id, attempt, end, result.clone(), now_ms)
        {
            Finish::Changed(record) => {
                count_transition(&record, !succeeded);
                self.persist(*record, Some((to, WorkResponse::Ok)), fx);
            }
            Finish::Unknown if succeeded => {
                // Not in the book (this owner is new and has not loaded it,
                // or it finished here already and was forgotten): record
                // the result; last writer wins over an older queued record.
                let record = done_elsewhere(id, spec, &worker, attempt, result, now_ms);
                count_transition(&record, false);
                self.persist(record, Some((to, WorkResponse::Ok)), fx);
            }
            Finish::Ignored | Finish::Unknown => reply(fx, to, WorkResponse::Ok),
        }
    }

    fn cancel(&mut self, now_ms: u64, queue: &str, id: JobId, to: R, fx: &mut Effects<R>) {
        let Some(to) = self.if_owner(queue, to, fx) else {
            return;
        };
        let Some(o) = self.owned.get_mut(queue) else {
            let why = format!("job {id} is not queued here");
            reply(fx, to, refuse(ErrorCode::NotFound, why));
            return;
        };
        match o.book.cancel(&id, now_ms) {
            Ok((record, worker)) => {
                metrics::counter!("hypha_jobs_cancelled_total").increment(1);
                if let Some(worker) = worker {
                    abort_on(&worker, id, fx);
                }
                let answer = WorkResponse::Record(Some(record.clone()));
                self.persist(record, Some((to, answer)), fx);
            }
            Err(e) => reply(fx, to, book_error(e)),
        }
    }

    /// Write `record`; one write per job in flight, the newest next.
    fn persist(
        &mut self,
        record: JobRecord,
        waiter: Option<(R, WorkResponse)>,
        fx: &mut Effects<R>,
    ) {
        let id = record.id;
        if let Some(w) = waiter {
            self.waiters.entry(id).or_default().push(w);
        }
        // A record waiting to be retried is older than this one: retried
        // after it, it would put the job back in an earlier state (found by
        // the proptest: a failed requeue write retried after a cancel left
        // the job queued in the log and the cancel unanswered).
        self.retry.retain(|r| r.id != id);
        if let Some(next) = self.writing.get_mut(&id) {
            *next = Some(record);
            return;
        }
        self.writing.insert(id, None);
        fx.push(Effect::Write { record });
    }

    /// A record write ended: the next one for the job goes out; a terminal
    /// record that is durable lets the job leave the book and its waiters
    /// hear; a failed write is retried at the next tick.
    pub fn persisted(&mut self, record: JobRecord, ok: bool) -> Effects<R> {
        let mut fx = Vec::new();
        let id = record.id;
        let next = self.writing.remove(&id).flatten();
        if !ok {
            metrics::counter!("hypha_jobs_write_failures_total").increment(1);
            self.retry.push(next.unwrap_or(record));
            return fx;
        }
        if let Some(next) = next {
            self.persist(next, None, &mut fx);
            return fx;
        }
        if record.state.is_terminal() {
            if let Some(o) = self.owned.get_mut(&record.spec.queue) {
                o.book.forget(&id);
                if record.state == JobState::DeadLetter {
                    o.dead_letters += 1;
                }
            }
            if let Some(latency_ms) = record
                .finished_ms
                .map(|f| f.saturating_sub(record.submitted_ms))
            {
                if record.state == JobState::Done {
                    metrics::histogram!("hypha_jobs_latency_seconds")
                        .record(latency_ms as f64 / 1e3);
                }
            }
            for (to, answer) in self.waiters.remove(&id).unwrap_or_default() {
                reply(&mut fx, to, answer);
            }
        }
        fx
    }

    /// Timer, first half: expire leases, requeue Down workers' jobs, retry
    /// failed writes. Then [`OwnerCore::dispatch`] and
    /// [`OwnerCore::gauges`].
    pub fn tick(&mut self, now_ms: u64) -> Effects<R> {
        let mut fx = Vec::new();
        let view = self.view.clone();
        let mut changed = Vec::new();
        for o in self.owned.values_mut() {
            let expired = o.book.expire(now_ms);
            metrics::counter!("hypha_jobs_lease_expiries_total").increment(expired.len() as u64);
            changed.extend(expired);
            for worker in o.book.workers() {
                if !worker_alive(&view, &worker) {
                    changed.extend(o.book.worker_down(&worker, now_ms));
                }
            }
        }
        for record in changed {
            count_transition(&record, true);
            self.persist(record, None, &mut fx);
        }
        for record in std::mem::take(&mut self.retry) {
            self.persist(record, None, &mut fx);
        }
        fx
    }

    /// The owner's figures now, as an effect.
    pub fn gauges(&self, now_ms: u64) -> Effect<R> {
        let mut g = Gauges {
            owned_queues: self.owned.len() as u64,
            ..Gauges::default()
        };
        for o in self.owned.values() {
            let s = o.book.stats(now_ms);
            g.queued += s.queued as u64;
            g.in_flight += (s.offered + s.running) as u64;
            g.dead_letters += o.dead_letters;
        }
        Effect::Gauges(g)
    }

    fn in_flight_offers(&self) -> usize {
        self.owned.values().map(|o| o.book.stats(0).offered).sum()
    }

    /// Offer ready jobs to workers chosen by the policy, at most
    /// `max_offers_in_flight` outstanding. `holders` names the workers
    /// holding a replica of a stored input file (for the locality policy).
    pub fn dispatch(
        &mut self,
        now_ms: u64,
        holders: &dyn Fn(&str) -> HashSet<String>,
    ) -> Effects<R> {
        let mut fx = Vec::new();
        if self.owned.values().all(|o| o.book.queued() == 0) {
            return fx;
        }
        let budget = self
            .settings
            .max_offers_in_flight
            .saturating_sub(self.in_flight_offers());
        if budget == 0 {
            return fx;
        }
        for planned in self.plan(now_ms, budget, holders) {
            self.offer(now_ms, planned, &mut fx);
        }
        fx
    }

    fn plan(
        &self,
        now_ms: u64,
        budget: usize,
        holders: &dyn Fn(&str) -> HashSet<String>,
    ) -> Vec<Planned> {
        let mut candidates = self.candidates(now_ms);
        let mut offers: Vec<Planned> = Vec::new();
        for (queue, o) in &self.owned {
            for r in o.book.ready().take(budget) {
                if offers.len() >= budget || candidates.iter().all(|c| c.free() == 0) {
                    return offers;
                }
                let held = r.spec.payload.file().map(holders).unwrap_or_default();
                for c in candidates.iter_mut() {
                    c.holds_input = held.contains(&c.worker);
                }
                if let Some(i) = self.policy.choose(&r.spec, &candidates) {
                    candidates[i].busy += 1;
                    offers.push(Planned {
                        queue: queue.clone(),
                        id: r.id,
                        spec: r.spec.clone(),
                        attempt: r.attempts + 1,
                        worker: candidates[i].worker.clone(),
                    });
                }
            }
        }
        offers
    }

    fn offer(&mut self, now_ms: u64, planned: Planned, fx: &mut Effects<R>) {
        let Planned {
            queue,
            id,
            spec,
            attempt,
            worker,
        } = planned;
        let Some(o) = self.owned.get_mut(&queue) else {
            return;
        };
        if o.book.offer(&id, &worker, now_ms).is_err() {
            return;
        }
        let Some(member) = MemberKey::from_link_name(&worker) else {
            let _ = o.book.declined(&id, &worker, now_ms);
            return;
        };
        let request = WorkRequest::Offer {
            owner: self.me.link_name(),
            id,
            spec,
            attempt,
            lease_ms: self.settings.lease_ms,
        };
        fx.push(Effect::Offer {
            queue,
            id,
            worker,
            member,
            request,
        });
    }

    /// A worker answered an offer (or did not): lease, or back to the
    /// queue with the worker counted busy for a few ticks.
    pub fn offer_answered(
        &mut self,
        now_ms: u64,
        queue: &str,
        id: JobId,
        worker: &str,
        answer: Result<OfferAnswer, String>,
    ) -> Effects<R> {
        let mut fx = Vec::new();
        let Some(o) = self.owned.get_mut(queue) else {
            return fx;
        };
        match answer {
            Ok(OfferAnswer::Accepted) => {
                if o.book.accepted(&id, worker, now_ms).is_err() {
                    // Cancelled or finished meanwhile.
                    abort_on(worker, id, &mut fx);
                }
            }
            other => {
                let _ = o.book.declined(&id, worker, now_ms);
                if let Err(why) = other {
                    tracing::debug!(job = %id, worker, "offer failed: {why}");
                }
                let busy_ms = BUSY_TICKS * self.settings.tick_ms;
                self.busy_until_ms
                    .insert(worker.to_owned(), now_ms + busy_ms);
            }
        }
        fx
    }

    /// Workers this owner may offer to, with what it knows of their load.
    fn candidates(&self, now_ms: u64) -> Vec<Candidate> {
        let mut ours: HashMap<String, u32> = HashMap::new();
        for worker in self.owned.values().flat_map(|o| o.book.holders()) {
            *ours.entry(worker.to_owned()).or_default() += 1;
        }
        self.placement
            .live()
            .iter()
            .filter_map(|m| self.view.member(&m.node_id).filter(|s| s.key == *m))
            .filter_map(|s| {
                let info = s.info.as_ref()?;
                let load = s.load.unwrap_or_default();
                let worker = s.key.link_name();
                let slots = if load.job_slots > 0 {
                    load.job_slots
                } else {
                    info.capacity.cores.max(1)
                };
                let mut busy = load
                    .jobs_running
                    .max(ours.get(&worker).copied().unwrap_or(0));
                if self.busy_until_ms.get(&worker).is_some_and(|t| *t > now_ms) {
                    busy = slots;
                }
                Some(Candidate {
                    worker,
                    cores: info.capacity.cores,
                    memory_bytes: info.capacity.memory_bytes,
                    free_disk_bytes: load.free_disk_bytes.max(info.capacity.free_disk_bytes),
                    labels: info.labels.clone(),
                    slots,
                    busy,
                    load_avg_1m: load.load_avg_1m,
                    holds_input: false,
                })
            })
            .collect()
    }

    /// Timer: read the registry, unless a read is under way.
    pub fn scan(&mut self) -> Effects<R> {
        if self.scanning {
            return Vec::new();
        }
        self.scanning = true;
        vec![Effect::ReadRegistry]
    }

    /// The registry was read (`None`: the read failed): take over queues
    /// this node now owns, let go of those it no longer owns, retry
    /// incomplete loads and reread loaded logs every few scans.
    pub fn scanned(&mut self, now_ms: u64, queues: Option<Vec<String>>) -> Effects<R> {
        let mut fx = Vec::new();
        self.scanning = false;
        if let Some(queues) = queues {
            self.scanned_once = true;
            self.registered.extend(queues.iter().cloned());
            self.known.extend(queues);
        }
        let reload_ms = RELOAD_EVERY_SCANS * self.settings.scan_ms;
        let stale: Vec<String> = self
            .owned
            .iter()
            .filter(|(_, o)| o.loaded && !o.loading && now_ms >= o.loaded_ms + reload_ms)
            .map(|(q, _)| q.clone())
            .collect();
        for queue in stale {
            self.start_load(&queue, &mut fx);
        }
        let all: Vec<String> = self.known.iter().cloned().collect();
        for queue in all {
            if self.owns(&queue) {
                self.ensure_owned(&queue, &mut fx);
            } else if self.owned.remove(&queue).is_some() {
                // Its workers heartbeat to the new owner, which adopts
                // their jobs; nothing here needs to be written.
                tracing::info!(queue, "queue now owned elsewhere; letting go");
            }
        }
        fx
    }

    /// Every book's own invariants hold, and the core's bookkeeping agrees
    /// with them (checked after every step of the property test).
    pub fn check(&self) -> Result<(), String> {
        for (queue, o) in &self.owned {
            o.book.check().map_err(|e| format!("queue {queue}: {e}"))?;
        }
        // An answer waits for the job's next terminal record: one being
        // written, or one still to come for a job a book holds.
        for id in self.waiters.keys() {
            let pending = self.writing.contains_key(id)
                || self.retry.iter().any(|r| r.id == *id)
                || self.owned.values().any(|o| o.book.get(id).is_some());
            if !pending {
                return Err(format!("job {id} has waiters but nothing to wait for"));
            }
        }
        if self.in_flight_offers() > self.settings.max_offers_in_flight {
            return Err("more offers outstanding than max_offers_in_flight".into());
        }
        Ok(())
    }
}

/// The record of a job that succeeded but is not in the book.
fn done_elsewhere(
    id: JobId,
    spec: JobSpec,
    worker: &str,
    attempt: u32,
    result: Vec<u8>,
    now_ms: u64,
) -> JobRecord {
    let mut record = JobRecord::new(id, spec, now_ms);
    record.note_attempt(worker, attempt, now_ms);
    record.end_attempt(attempt, AttemptEnd::Succeeded, now_ms);
    record.state = JobState::Done;
    record.finished_ms = Some(now_ms);
    record.result = result;
    record
}

fn abort_on<R>(worker: &str, id: JobId, fx: &mut Effects<R>) {
    if let Some(member) = MemberKey::from_link_name(worker) {
        fx.push(Effect::Abort { member, id });
    }
}

fn count_transition(record: &JobRecord, failure: bool) {
    match record.state {
        JobState::Done => metrics::counter!("hypha_jobs_completed_total").increment(1),
        JobState::DeadLetter => metrics::counter!("hypha_jobs_dead_lettered_total").increment(1),
        JobState::Queued if failure => metrics::counter!("hypha_jobs_retried_total").increment(1),
        _ => {}
    }
    if failure && record.state != JobState::Queued {
        metrics::counter!("hypha_jobs_failed_attempts_total").increment(1);
    }
}

/// Whether the worker process `worker` (`<node id>.<generation>`) is
/// still a member that can run jobs.
fn worker_alive(view: &ClusterView, worker: &str) -> bool {
    let Some(key) = MemberKey::from_link_name(worker) else {
        return false;
    };
    match view.member(&key.node_id) {
        Some(m) if m.key.generation == key.generation => {
            !matches!(m.state, MemberState::Down | MemberState::Left)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
