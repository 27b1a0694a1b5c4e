//! The queue state machine an owner keeps for each queue it owns: which
//! jobs wait (in priority order), which are offered or leased to which
//! worker and until when, and every transition between them — submit,
//! offer, accept, decline, heartbeat, finish, lease expiry, a worker's
//! node going Down, cancel. Pure: time is a parameter and the caller
//! persists the records a transition returns.
//!
//! A job is in exactly one state; the ready set holds exactly the queued
//! jobs and the lease table exactly the running ones (checked by
//! [`Book::check`], which the property tests call after every step).
//! Delivery is at-least-once: a job leaves the book only after its
//! terminal record was persisted ([`Book::forget`]).
//!
//! The owner ticks every few tens of milliseconds over books of up to
//! `max_queue_jobs`, so everything a tick asks — counts, the oldest wait,
//! expiries, who holds what — is answered from indexes over the waiting
//! and in-flight jobs, never by walking every job.
//!
//! This module holds the types, the indexes and the queries; the
//! transitions the owner and workers drive are in `lifecycle`, lease
//! expiry and a worker's node going Down in `expiry`, the invariants in
//! `check`.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use thiserror::Error;

use super::job::{JobId, JobRecord, JobState};

/// A transition the book refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BookError {
    /// No such job in this book.
    #[error("job {0} is not in this queue's book")]
    Unknown(JobId),
    /// The job is already in the book.
    #[error("job {0} already exists")]
    Exists(JobId),
    /// The job is not in a state that allows this.
    #[error("job {id} is {}", state.as_str())]
    State {
        /// Job.
        id: JobId,
        /// Its state.
        state: JobState,
    },
}

/// A lease held by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Worker member (`<node id>.<generation>`).
    pub worker: String,
    /// Attempt number.
    pub attempt: u32,
    /// Expires at (Unix ms) unless a heartbeat extends it.
    pub expires_ms: u64,
}

type ReadyKey = (Reverse<i32>, u64, JobId);

struct Entry {
    record: JobRecord,
    ready: Option<ReadyKey>,
    offered_to: Option<String>,
    offered_ms: u64,
    lease: Option<Lease>,
    queued_since_ms: u64,
}

/// What a heartbeat tells the worker about one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep running it (lease extended).
    Keep,
    /// Stop: cancelled, finished, or leased to someone else.
    Abort,
}

/// What a finish report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The record changed: persist it.
    Changed(Box<JobRecord>),
    /// Already terminal, or a stale failure report: nothing to do.
    Ignored,
    /// Not in this book (the owner may be new): the caller decides.
    Unknown,
}

/// Counts shown by `GET /v1/queues`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookStats {
    /// Waiting for a worker.
    pub queued: usize,
    /// Offered, not yet accepted.
    pub offered: usize,
    /// Leased.
    pub running: usize,
    /// Terminal, waiting for their record to be persisted.
    pub finishing: usize,
    /// Age of the oldest queued job (ms).
    pub oldest_queued_ms: u64,
}

/// One queue's jobs.
pub struct Book {
    lease_ms: u64,
    jobs: HashMap<JobId, Entry>,
    ready: BTreeSet<ReadyKey>,
    /// The queued jobs by the time they started waiting (oldest wait).
    waiting: BTreeSet<(u64, JobId)>,
    /// Offered and running jobs → their holder (offer or lease).
    in_flight: HashMap<JobId, String>,
    seq: u64,
}

mod check;
mod expiry;
mod lifecycle;

impl Book {
    /// An empty book whose leases last `lease_ms` between heartbeats.
    pub fn new(lease_ms: u64) -> Self {
        Self {
            lease_ms,
            jobs: HashMap::new(),
            ready: BTreeSet::new(),
            waiting: BTreeSet::new(),
            in_flight: HashMap::new(),
            seq: 0,
        }
    }

    /// Jobs in the book (terminal ones not yet forgotten included).
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether the book holds no job.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Jobs waiting for a worker (the ready set: O(1)).
    pub fn queued(&self) -> usize {
        self.ready.len()
    }

    /// A job's record.
    pub fn get(&self, id: &JobId) -> Option<&JobRecord> {
        self.jobs.get(id).map(|e| &e.record)
    }

    /// A running job's lease.
    pub fn lease(&self, id: &JobId) -> Option<&Lease> {
        self.jobs.get(id).and_then(|e| e.lease.as_ref())
    }

    /// The worker a job is leased or offered to.
    pub fn holder(&self, id: &JobId) -> Option<&str> {
        self.in_flight.get(id).map(String::as_str)
    }

    /// The holder of every offered or running job (O(in flight)).
    pub fn holders(&self) -> impl Iterator<Item = &str> {
        self.in_flight.values().map(String::as_str)
    }

    fn holder_of(e: &Entry) -> Option<&str> {
        e.lease
            .as_ref()
            .map(|l| l.worker.as_str())
            .or(e.offered_to.as_deref())
    }

    /// Bring the in-flight index in line with `id`'s entry; every
    /// transition that changes an offer or a lease ends here.
    fn track(&mut self, id: &JobId) {
        match self.jobs.get(id).and_then(|e| Self::holder_of(e)) {
            Some(worker) => {
                if self.in_flight.get(id).map(String::as_str) != Some(worker) {
                    self.in_flight.insert(*id, worker.to_owned());
                }
            }
            None => {
                self.in_flight.remove(id);
            }
        }
    }

    /// Every record, in no particular order.
    pub fn records(&self) -> impl Iterator<Item = &JobRecord> {
        self.jobs.values().map(|e| &e.record)
    }

    /// Queued jobs, highest priority first, oldest first within one.
    pub fn ready(&self) -> impl Iterator<Item = &JobRecord> {
        self.ready
            .iter()
            .filter_map(|(_, _, id)| self.jobs.get(id).map(|e| &e.record))
    }

    /// Queue `id` (again), waiting since `since_ms` (a declined offer
    /// keeps the wait it had).
    fn enqueue(&mut self, id: JobId, now_ms: u64, since_ms: u64) {
        self.unready(&id);
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.jobs.get_mut(&id) {
            e.record.state = JobState::Queued;
            e.offered_to = None;
            e.lease = None;
            e.queued_since_ms = since_ms.min(now_ms);
            let key = (Reverse(e.record.spec.priority), seq, id);
            e.ready = Some(key);
            self.ready.insert(key);
            self.waiting.insert((e.queued_since_ms, id));
        }
        self.track(&id);
    }

    fn unready(&mut self, id: &JobId) {
        if let Some(e) = self.jobs.get_mut(id) {
            if let Some(key) = e.ready.take() {
                self.ready.remove(&key);
                self.waiting.remove(&(e.queued_since_ms, *id));
            }
        }
    }

    fn entry(&mut self, id: &JobId, want: JobState) -> Result<&mut Entry, BookError> {
        let e = self.jobs.get_mut(id).ok_or(BookError::Unknown(*id))?;
        if e.record.state != want {
            return Err(BookError::State {
                id: *id,
                state: e.record.state,
            });
        }
        Ok(e)
    }

    fn in_flight_entries(&self) -> impl Iterator<Item = (JobId, &Entry)> {
        self.in_flight
            .keys()
            .filter_map(|id| Some((*id, self.jobs.get(id)?)))
    }

    /// Workers holding a lease or an offer (to watch for Down).
    pub fn workers(&self) -> BTreeSet<String> {
        self.holders().map(str::to_owned).collect()
    }

    /// Counts and the oldest wait (O(in flight)).
    pub fn stats(&self, now_ms: u64) -> BookStats {
        let running = self
            .in_flight_entries()
            .filter(|(_, e)| e.lease.is_some())
            .count();
        let offered = self.in_flight.len() - running;
        BookStats {
            queued: self.ready.len(),
            offered,
            running,
            finishing: self.jobs.len() - self.ready.len() - self.in_flight.len(),
            oldest_queued_ms: self
                .waiting
                .first()
                .map_or(0, |(since, _)| now_ms.saturating_sub(*since)),
        }
    }
}

#[cfg(test)]
mod tests;
