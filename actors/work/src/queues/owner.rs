//! What the queues actor does with each message: the books of the queues
//! this node owns, their durable writes (one in flight per job, the latest
//! record next), takeover and hand-back as ownership moves, lease expiry,
//! requeue of Down workers' jobs, and placement. Network and DHT calls run
//! in the actor's task set and report back by message.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use ractor::{ActorRef, RpcReplyPort};
use tokio::task::JoinSet;

use super::actor::QueuesArgs;
use super::messages::QueuesMessage;
use crate::book::{Book, BookError, Finish, Verdict};
use crate::job::{AttemptEnd, JobId, JobRecord, JobSpec, JobState};
use crate::placement::Candidate;
use crate::wire::{ErrorCode, OfferAnswer, QueueFigures, WireError, WorkRequest, WorkResponse};
use crate::{now_ms, owner_of};
use hypha_cluster::membership::{ClusterView, MemberKey, MemberState};

/// Records read at once while loading a queue.
const LOAD_CONCURRENCY: usize = 16;
/// A worker that declined an offer gets none for this many ticks.
const BUSY_TICKS: u64 = 5;

/// An offer about to be sent.
struct Offer {
    queue: String,
    id: JobId,
    spec: JobSpec,
    attempt: u32,
    worker: String,
}

/// A queue this node owns.
pub struct Owned {
    book: Book,
    loaded: bool,
    loading: bool,
    /// When the log was last read into the book (Unix ms).
    loaded_ms: u64,
    dead_letters: u64,
}

/// An owner reads each owned queue's log again every this many scans.
/// While ownership moves, two nodes can both believe they own a queue
/// for a moment; a job the old owner acknowledged after the new one
/// read the log would otherwise sit queued in the log with no owner
/// holding it (found by the chaos harness's worker-kill scenario). The
/// reread adds only records still queued when read by quorum, so a job
/// already done or held is never taken twice.
const RELOAD_EVERY_SCANS: u64 = 5;

/// The actor's state.
pub struct Owner {
    args: QueuesArgs,
    myself: ActorRef<QueuesMessage>,
    owned: BTreeMap<String, Owned>,
    known: BTreeSet<String>,
    registered: HashSet<String>,
    submitting: HashSet<JobId>,
    /// Jobs with a write in flight → the record to write next, if any.
    writing: HashMap<JobId, Option<JobRecord>>,
    /// Failed writes, retried on the next tick.
    retry: Vec<JobRecord>,
    /// Answers sent once the job's next terminal record is durable.
    waiters: HashMap<JobId, Vec<(RpcReplyPort<WorkResponse>, WorkResponse)>>,
    scanning: bool,
    /// A scan of the queue registry has completed since this incarnation began.
    scanned_once: bool,
    busy_until: HashMap<String, u64>,
    /// Timers, aborted on stop.
    pub timers: Vec<tokio::task::JoinHandle<()>>,
    /// DHT writes, loads and calls to workers.
    pub tasks: JoinSet<()>,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> WorkResponse {
    WorkResponse::Error(WireError::new(code, message))
}

fn book_error(e: BookError) -> WorkResponse {
    match e {
        BookError::Unknown(_) => refuse(ErrorCode::NotFound, e.to_string()),
        other => refuse(ErrorCode::Conflict, other.to_string()),
    }
}

impl Owner {
    /// A node that owns nothing yet.
    pub fn new(args: QueuesArgs, myself: ActorRef<QueuesMessage>) -> Self {
        Self {
            args,
            myself,
            owned: BTreeMap::new(),
            known: BTreeSet::new(),
            registered: HashSet::new(),
            submitting: HashSet::new(),
            writing: HashMap::new(),
            retry: Vec::new(),
            waiters: HashMap::new(),
            scanning: false,
            scanned_once: false,
            busy_until: HashMap::new(),
            timers: Vec::new(),
            tasks: JoinSet::new(),
        }
    }

    fn owns(&self, queue: &str) -> bool {
        owner_of(&self.args.placement.borrow(), queue).as_ref() == Some(&self.args.me)
    }

    fn not_owner(&self, queue: &str) -> WorkResponse {
        refuse(
            ErrorCode::NotOwner,
            format!("{} does not own queue {queue}", self.args.me.link_name()),
        )
    }

    /// Answer a request from a client or a worker.
    pub fn request(&mut self, request: WorkRequest, reply: RpcReplyPort<WorkResponse>) {
        let answer = match request {
            WorkRequest::Submit { id, spec } => return self.submit(id, spec, reply),
            WorkRequest::Finished {
                worker,
                id,
                spec,
                attempt,
                end,
                result,
            } => return self.finished(&worker, id, spec, attempt, end, result, reply),
            WorkRequest::Cancel { queue, id } => return self.cancel(&queue, id, reply),
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
            WorkRequest::Queues => WorkResponse::Queues(self.figures()),
            WorkRequest::Heartbeat {
                worker,
                queue,
                jobs,
            } => self.heartbeat(&worker, &queue, &jobs),
            WorkRequest::Offer { .. } | WorkRequest::Abort { .. } => refuse(
                ErrorCode::BadRequest,
                "sent to the owner; meant for a worker",
            ),
        };
        let _ = reply.send(answer);
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

    fn figures(&self) -> Vec<QueueFigures> {
        let now = now_ms();
        self.owned
            .iter()
            .map(|(queue, o)| {
                let s = o.book.stats(now);
                QueueFigures {
                    queue: queue.clone(),
                    owner: self.args.me.link_name(),
                    depth: s.queued as u64,
                    in_flight: (s.offered + s.running) as u64,
                    dead_letters: o.dead_letters,
                    oldest_queued_ms: s.oldest_queued_ms,
                    loaded: o.loaded,
                }
            })
            .collect()
    }

    fn heartbeat(&mut self, worker: &str, queue: &str, jobs: &[(JobId, u32)]) -> WorkResponse {
        if !self.owns(queue) {
            return self.not_owner(queue);
        }
        self.ensure_owned(queue);
        let Some(o) = self.owned.get_mut(queue) else {
            return self.not_owner(queue);
        };
        let abort = o
            .book
            .heartbeat(worker, jobs, now_ms())
            .into_iter()
            .filter(|(_, v)| *v == Verdict::Abort)
            .map(|(id, _)| id)
            .collect();
        WorkResponse::Abort(abort)
    }

    /// Take `queue` into this node's care (new queue, or takeover): its
    /// book starts empty and fills from the log.
    fn ensure_owned(&mut self, queue: &str) {
        if !self.owned.contains_key(queue) {
            tracing::info!(queue, "owning queue; loading its log");
            self.owned.insert(
                queue.to_owned(),
                Owned {
                    book: Book::new(self.args.settings.lease_ms),
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
            self.start_load(queue);
        }
    }

    fn start_load(&mut self, queue: &str) {
        if let Some(o) = self.owned.get_mut(queue) {
            o.loading = true;
        }
        let log = self.args.log.clone();
        let myself = self.myself.clone();
        let queue = queue.to_owned();
        self.tasks.spawn(async move {
            let (records, dead_letters, complete) = load(&log, &queue).await;
            let _ = myself.cast(QueuesMessage::Loaded {
                queue,
                records,
                dead_letters,
                complete,
            });
        });
    }

    /// A queue's log was read: its queued jobs join the book.
    pub fn loaded(
        &mut self,
        queue: &str,
        records: Vec<JobRecord>,
        dead_letters: u64,
        complete: bool,
    ) {
        let Some(o) = self.owned.get_mut(queue) else {
            return;
        };
        let now = now_ms();
        let mut added = 0;
        for r in records {
            if !r.state.is_terminal() && o.book.insert(r, now).is_ok() {
                added += 1;
            }
        }
        o.loading = false;
        o.loaded = complete;
        o.loaded_ms = now;
        o.dead_letters = o.dead_letters.max(dead_letters);
        if added > 0 || !complete {
            tracing::info!(queue, added, complete, "queue log loaded");
        }
        metrics::counter!("hypha_jobs_takeover_loaded_total").increment(added);
    }

    fn submit(&mut self, id: JobId, spec: JobSpec, reply: RpcReplyPort<WorkResponse>) {
        let queue = spec.queue.clone();
        if !self.owns(&queue) {
            let _ = reply.send(self.not_owner(&queue));
            return;
        }
        self.ensure_owned(&queue);
        let Some(o) = self.owned.get(&queue) else {
            return;
        };
        if let Some(r) = o.book.get(&id) {
            let _ = reply.send(WorkResponse::Submitted {
                record: r.clone(),
                existing: true,
            });
            return;
        }
        if self.submitting.contains(&id) {
            let _ = reply.send(refuse(
                ErrorCode::Conflict,
                "this job is being submitted; retry",
            ));
            return;
        }
        if o.book.len() >= self.args.settings.max_queue_jobs {
            let _ = reply.send(refuse(
                ErrorCode::Unavailable,
                format!(
                    "queue {queue} holds {} unfinished jobs; retry later",
                    o.book.len()
                ),
            ));
            return;
        }
        self.submitting.insert(id);
        let register = !self.registered.contains(&queue);
        let log = self.args.log.clone();
        let myself = self.myself.clone();
        self.tasks.spawn(async move {
            let message = write_submit(&log, id, spec, register, reply).await;
            let _ = myself.cast(message);
        });
    }

    /// A submit's write ended: the job joins the book and the client hears.
    pub fn submitted(
        &mut self,
        record: JobRecord,
        existing: bool,
        result: Result<(), String>,
        reply: RpcReplyPort<WorkResponse>,
    ) {
        self.submitting.remove(&record.id);
        if let Err(why) = result {
            metrics::counter!("hypha_jobs_submit_failures_total").increment(1);
            let _ = reply.send(refuse(
                ErrorCode::Unavailable,
                format!("not durable: {why}"),
            ));
            return;
        }
        let queue = record.spec.queue.clone();
        self.registered.insert(queue.clone());
        if let Some(o) = self.owned.get_mut(&queue) {
            if !record.state.is_terminal() {
                let _ = o.book.insert(record.clone(), now_ms());
            }
        }
        if !existing {
            metrics::counter!("hypha_jobs_submitted_total").increment(1);
        }
        let _ = reply.send(WorkResponse::Submitted { record, existing });
    }

    #[allow(clippy::too_many_arguments)]
    fn finished(
        &mut self,
        worker: &str,
        id: JobId,
        spec: JobSpec,
        attempt: u32,
        end: AttemptEnd,
        result: Vec<u8>,
        reply: RpcReplyPort<WorkResponse>,
    ) {
        let queue = spec.queue.clone();
        if !self.owns(&queue) {
            let _ = reply.send(self.not_owner(&queue));
            return;
        }
        self.ensure_owned(&queue);
        let now = now_ms();
        let succeeded = end == AttemptEnd::Succeeded;
        let failed = !succeeded;
        let Some(o) = self.owned.get_mut(&queue) else {
            return;
        };
        match o
            .book
            .finished(worker, &id, attempt, end, result.clone(), now)
        {
            Finish::Changed(record) => {
                count_transition(&record, failed);
                self.persist(*record, Some((reply, WorkResponse::Ok)));
            }
            Finish::Ignored => {
                let _ = reply.send(WorkResponse::Ok);
            }
            Finish::Unknown if succeeded => {
                // Not in the book (this owner is new and has not loaded it,
                // or it finished here already and was forgotten): record
                // the result; last writer wins over an older queued record.
                let mut record = JobRecord::new(id, spec, now);
                record.note_attempt(worker, attempt, now);
                record.end_attempt(attempt, AttemptEnd::Succeeded, now);
                record.state = JobState::Done;
                record.finished_ms = Some(now);
                record.result = result;
                count_transition(&record, false);
                self.persist(record, Some((reply, WorkResponse::Ok)));
            }
            Finish::Unknown => {
                let _ = reply.send(WorkResponse::Ok);
            }
        }
    }

    fn cancel(&mut self, queue: &str, id: JobId, reply: RpcReplyPort<WorkResponse>) {
        if !self.owns(queue) {
            let _ = reply.send(self.not_owner(queue));
            return;
        }
        let Some(o) = self.owned.get_mut(queue) else {
            let _ = reply.send(refuse(
                ErrorCode::NotFound,
                format!("job {id} is not queued here"),
            ));
            return;
        };
        match o.book.cancel(&id, now_ms()) {
            Ok((record, worker)) => {
                metrics::counter!("hypha_jobs_cancelled_total").increment(1);
                if let Some(worker) = worker {
                    self.abort_on(&worker, id);
                }
                let answer = WorkResponse::Record(Some(record.clone()));
                self.persist(record, Some((reply, answer)));
            }
            Err(e) => {
                let _ = reply.send(book_error(e));
            }
        }
    }

    fn abort_on(&mut self, worker: &str, id: JobId) {
        let Some(member) = MemberKey::from_link_name(worker) else {
            return;
        };
        let client = self.args.client.clone();
        let timeout_ms = self.args.settings.rpc_timeout_ms;
        self.tasks.spawn(async move {
            // Best effort: a worker that misses it learns at its next heartbeat.
            let _ = client
                .call(&member, WorkRequest::Abort { id }, timeout_ms)
                .await;
        });
    }

    /// Write `record`; one write per job in flight, the newest next.
    fn persist(
        &mut self,
        record: JobRecord,
        waiter: Option<(RpcReplyPort<WorkResponse>, WorkResponse)>,
    ) {
        let id = record.id;
        if let Some(w) = waiter {
            self.waiters.entry(id).or_default().push(w);
        }
        if let Some(next) = self.writing.get_mut(&id) {
            *next = Some(record);
            return;
        }
        self.writing.insert(id, None);
        let log = self.args.log.clone();
        let myself = self.myself.clone();
        self.tasks.spawn(async move {
            let ok = match log.put(&record).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(job = %record.id, "job record not written: {e}");
                    false
                }
            };
            let _ = myself.cast(QueuesMessage::Persisted { record, ok });
        });
    }

    /// A record write ended.
    pub fn persisted(&mut self, record: JobRecord, ok: bool) {
        let id = record.id;
        let next = self.writing.remove(&id).flatten();
        if !ok {
            metrics::counter!("hypha_jobs_write_failures_total").increment(1);
            self.retry.push(next.unwrap_or(record));
            return;
        }
        if let Some(next) = next {
            self.persist(next, None);
            return;
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
            for (reply, answer) in self.waiters.remove(&id).unwrap_or_default() {
                let _ = reply.send(answer);
            }
        }
    }

    /// Timer: expire leases, requeue Down workers' jobs, retry writes,
    /// place jobs, publish gauges.
    pub fn tick(&mut self) {
        let now = now_ms();
        let view = self.args.view.borrow().clone();
        let mut changed = Vec::new();
        for o in self.owned.values_mut() {
            let expired = o.book.expire(now);
            metrics::counter!("hypha_jobs_lease_expiries_total").increment(expired.len() as u64);
            changed.extend(expired);
            for worker in o.book.workers() {
                if !worker_alive(&view, &worker) {
                    changed.extend(o.book.worker_down(&worker, now));
                }
            }
        }
        for record in changed {
            count_transition(&record, true);
            self.persist(record, None);
        }
        for record in std::mem::take(&mut self.retry) {
            self.persist(record, None);
        }
        self.dispatch(&view, now);
        self.publish(now);
    }

    fn publish(&self, now: u64) {
        let (mut queued, mut in_flight, mut dead) = (0usize, 0usize, 0u64);
        for o in self.owned.values() {
            let s = o.book.stats(now);
            queued += s.queued;
            in_flight += s.offered + s.running;
            dead += o.dead_letters;
        }
        metrics::gauge!("hypha_jobs_queued").set(queued as f64);
        metrics::gauge!("hypha_jobs_in_flight").set(in_flight as f64);
        metrics::gauge!("hypha_jobs_dead_letters").set(dead as f64);
        metrics::gauge!("hypha_jobs_owned_queues").set(self.owned.len() as f64);
        if let Some(cell) = ractor::registry::where_is(self.args.membership.clone()) {
            let _ = cell.send_message(
                hypha_cluster::membership::MembershipMessage::SetJobQueueDepth(queued as u64),
            );
        }
    }

    fn in_flight_offers(&self) -> usize {
        self.owned.values().map(|o| o.book.stats(0).offered).sum()
    }

    /// Offer ready jobs to workers chosen by the policy.
    fn dispatch(&mut self, view: &ClusterView, now: u64) {
        if self.owned.values().all(|o| o.book.queued() == 0) {
            return;
        }
        let budget = self
            .args
            .settings
            .max_offers_in_flight
            .saturating_sub(self.in_flight_offers());
        if budget == 0 {
            return;
        }
        let started = std::time::Instant::now();
        let mut candidates = self.candidates(view, now);
        let mut offers: Vec<Offer> = Vec::new();
        'queues: for (queue, o) in &self.owned {
            let ready: Vec<(JobId, JobSpec, u32)> = o
                .book
                .ready()
                .take(budget)
                .map(|r| (r.id, r.spec.clone(), r.attempts + 1))
                .collect();
            for (id, spec, attempt) in ready {
                if offers.len() >= budget || candidates.iter().all(|c| c.free() == 0) {
                    break 'queues;
                }
                self.mark_holders(&spec, &mut candidates);
                if let Some(i) = self.args.policy.choose(&spec, &candidates) {
                    candidates[i].busy += 1;
                    offers.push(Offer {
                        queue: queue.clone(),
                        id,
                        spec,
                        attempt,
                        worker: candidates[i].worker.clone(),
                    });
                }
            }
        }
        if !offers.is_empty() {
            metrics::histogram!("hypha_jobs_placement_seconds")
                .record(started.elapsed().as_secs_f64() / offers.len() as f64);
        }
        for offer in offers {
            self.offer(offer);
        }
    }

    fn mark_holders(&self, spec: &JobSpec, candidates: &mut [Candidate]) {
        let holders: HashSet<String> = match spec.payload.file() {
            Some(name) => self
                .args
                .log
                .files()
                .placement_of(name)
                .1
                .iter()
                .map(MemberKey::link_name)
                .collect(),
            None => HashSet::new(),
        };
        for c in candidates {
            c.holds_input = holders.contains(&c.worker);
        }
    }

    fn offer(&mut self, offer: Offer) {
        let Offer {
            queue,
            id,
            spec,
            attempt,
            worker,
        } = offer;
        let Some(o) = self.owned.get_mut(&queue) else {
            return;
        };
        if o.book.offer(&id, &worker, now_ms()).is_err() {
            return;
        }
        let Some(member) = MemberKey::from_link_name(&worker) else {
            let _ = o.book.declined(&id, &worker, now_ms());
            return;
        };
        let request = WorkRequest::Offer {
            owner: self.args.me.link_name(),
            id,
            spec,
            attempt,
            lease_ms: self.args.settings.lease_ms,
        };
        let client = self.args.client.clone();
        let timeout_ms = self.args.settings.rpc_timeout_ms;
        let myself = self.myself.clone();
        self.tasks.spawn(async move {
            let answer = match client.call(&member, request, timeout_ms).await {
                Ok(WorkResponse::Offer(a)) => Ok(a),
                Ok(other) => Err(format!("unexpected answer {other:?}")),
                Err(e) => Err(e.to_string()),
            };
            let _ = myself.cast(QueuesMessage::OfferAnswered {
                queue,
                id,
                worker,
                answer,
            });
        });
    }

    /// A worker answered (or did not): lease, or back to the queue.
    pub fn offer_answered(
        &mut self,
        queue: &str,
        id: JobId,
        worker: &str,
        answer: Result<OfferAnswer, String>,
    ) {
        let now = now_ms();
        let Some(o) = self.owned.get_mut(queue) else {
            return;
        };
        match answer {
            Ok(OfferAnswer::Accepted) => {
                if o.book.accepted(&id, worker, now).is_err() {
                    // Cancelled or finished meanwhile.
                    self.abort_on(worker, id);
                }
            }
            other => {
                let _ = o.book.declined(&id, worker, now);
                if let Err(why) = other {
                    tracing::debug!(job = %id, worker, "offer failed: {why}");
                }
                let busy_ms = BUSY_TICKS * self.args.settings.tick_ms;
                self.busy_until.insert(worker.to_owned(), now + busy_ms);
            }
        }
    }

    /// Workers this owner may offer to, with what it knows of their load.
    fn candidates(&self, view: &ClusterView, now: u64) -> Vec<Candidate> {
        let mut ours: HashMap<String, u32> = HashMap::new();
        for worker in self.owned.values().flat_map(|o| o.book.holders()) {
            *ours.entry(worker.to_owned()).or_default() += 1;
        }
        let placement = self.args.placement.borrow().clone();
        placement
            .live()
            .iter()
            .filter_map(|m| view.member(&m.node_id).filter(|s| s.key == *m))
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
                if self.busy_until.get(&worker).is_some_and(|t| *t > now) {
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

    /// Timer: read the registry (in a task).
    pub fn scan(&mut self) {
        if self.scanning {
            return;
        }
        self.scanning = true;
        let log = self.args.log.clone();
        let myself = self.myself.clone();
        self.tasks.spawn(async move {
            let queues = log.queues().await.ok().map(|(q, _)| q);
            let _ = myself.cast(QueuesMessage::Scanned(queues));
        });
    }

    /// The registry was read: take over queues this node now owns, let go
    /// of those it no longer owns, retry incomplete loads.
    pub fn scanned(&mut self, queues: Option<Vec<String>>) {
        self.scanning = false;
        if let Some(queues) = queues {
            self.scanned_once = true;
            self.registered.extend(queues.iter().cloned());
            self.known.extend(queues);
        }
        let reload_ms = RELOAD_EVERY_SCANS * self.args.settings.scan_ms;
        let now = now_ms();
        let stale: Vec<String> = self
            .owned
            .iter()
            .filter(|(_, o)| o.loaded && !o.loading && now >= o.loaded_ms + reload_ms)
            .map(|(q, _)| q.clone())
            .collect();
        for queue in stale {
            self.start_load(&queue);
        }
        let all: Vec<String> = self.known.iter().cloned().collect();
        for queue in all {
            let owns = self.owns(&queue);
            if owns {
                self.ensure_owned(&queue);
            } else if self.owned.remove(&queue).is_some() {
                // Its workers heartbeat to the new owner, which adopts
                // their jobs; nothing here needs to be written.
                tracing::info!(queue, "queue now owned elsewhere; letting go");
            }
        }
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

async fn write_submit(
    log: &crate::log::JobLog,
    id: JobId,
    spec: JobSpec,
    register: bool,
    reply: RpcReplyPort<WorkResponse>,
) -> QueuesMessage {
    let now = now_ms();
    if spec.idempotency_key.is_some() {
        match log.get(id).await {
            Ok(Some(record)) => {
                return QueuesMessage::Submitted {
                    record,
                    existing: true,
                    result: Ok(()),
                    reply,
                }
            }
            Ok(None) => {}
            Err(e) => {
                return QueuesMessage::Submitted {
                    record: JobRecord::new(id, spec, now),
                    existing: false,
                    result: Err(e.to_string()),
                    reply,
                }
            }
        }
    }
    let record = JobRecord::new(id, spec, now);
    let mut result = Ok(());
    if register {
        result = log
            .register_queue(&record.spec.queue)
            .await
            .map_err(|e| e.to_string());
    }
    if result.is_ok() {
        result = log.put(&record).await.map_err(|e| e.to_string());
    }
    QueuesMessage::Submitted {
        record,
        existing: false,
        result,
        reply,
    }
}

/// Read a queue's queued records and count its dead letters.
async fn load(log: &crate::log::JobLog, queue: &str) -> (Vec<JobRecord>, u64, bool) {
    let (ids, mut complete) = match log.ids(Some(queue), Some(JobState::Queued)).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(queue, "cannot list the queue's log: {e}");
            return (Vec::new(), 0, false);
        }
    };
    let dead = match log.ids(Some(queue), Some(JobState::DeadLetter)).await {
        Ok((d, c)) => {
            complete &= c;
            d.len() as u64
        }
        Err(_) => 0,
    };
    let log = Arc::new(log.clone());
    let reads: Vec<Option<JobRecord>> = futures::stream::iter(ids)
        .map(|id| {
            let log = log.clone();
            async move { log.get(id).await }
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .map(|r| match r {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("cannot read a job record: {e}");
                None
            }
        })
        .collect()
        .await;
    let failed = reads.iter().filter(|r| r.is_none()).count();
    let records: Vec<JobRecord> = reads.into_iter().flatten().collect();
    (records, dead, complete && failed == 0)
}
