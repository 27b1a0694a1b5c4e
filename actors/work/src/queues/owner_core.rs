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
//!
//! This module holds the state, the effects and the requests answered
//! from the books; taking over and reading queue logs is in `ownership`,
//! durable writes and the answers held for them in `writes`, offers to
//! workers in `offers`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::book::{Book, BookError, Verdict};
use crate::job::{JobId, JobRecord, JobState};
use crate::owner_of;
use crate::placement::{PlacementPolicy, WarmCode};

/// Modules whose warm workers an owner remembers.
const WARM_CODES: usize = 256;
/// Workers remembered per module.
const WARM_WORKERS_PER_CODE: usize = 8;
use crate::wire::{ErrorCode, QueueFigures, WireError, WorkRequest, WorkResponse};
use hypha_cluster::membership::{ClusterView, MemberKey};
use hypha_dht::placement::Placement;

use crate::settings::WorkSettings;

mod offers;
mod ownership;
mod writes;

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
        /// The next step of its chain (a done job that names one): made
        /// durable first, unless the log holds it already (read by
        /// quorum), then reported with [`OwnerCore::chained`].
        next: Option<Box<JobRecord>>,
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

/// The owner's state: its queues' books and what is in flight.
pub struct OwnerCore<R> {
    me: MemberKey,
    settings: WorkSettings,
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
    /// Which workers ran which wasm module lately (placement prefers them).
    warm: WarmCode,
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
        settings: WorkSettings,
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
            warm: WarmCode::new(WARM_CODES, WARM_WORKERS_PER_CODE),
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

fn abort_on<R>(worker: &str, id: JobId, fx: &mut Effects<R>) {
    if let Some(member) = MemberKey::from_link_name(worker) {
        fx.push(Effect::Abort { member, id });
    }
}

#[cfg(test)]
mod tests;
