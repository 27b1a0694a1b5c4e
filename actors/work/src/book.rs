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

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use thiserror::Error;

use super::job::{AttemptEnd, JobId, JobRecord, JobState, MAX_HISTORY};

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

    /// Add a durable job (submitted, or loaded by a new owner). A record
    /// stored as running is queued again: its lease died with the old owner.
    pub fn insert(&mut self, mut record: JobRecord, now_ms: u64) -> Result<(), BookError> {
        if self.jobs.contains_key(&record.id) {
            return Err(BookError::Exists(record.id));
        }
        if record.state.is_terminal() {
            return Err(BookError::State {
                id: record.id,
                state: record.state,
            });
        }
        record.state = JobState::Queued;
        let id = record.id;
        self.jobs.insert(
            id,
            Entry {
                record,
                ready: None,
                offered_to: None,
                offered_ms: 0,
                lease: None,
                queued_since_ms: now_ms,
            },
        );
        self.enqueue(id, now_ms, now_ms);
        Ok(())
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

    /// Offer a queued job to `worker` (it stays out of the ready set
    /// until accepted or declined; an offer unanswered for a lease period
    /// counts as declined).
    pub fn offer(&mut self, id: &JobId, worker: &str, now_ms: u64) -> Result<(), BookError> {
        self.entry(id, JobState::Queued)?;
        self.unready(id);
        let e = self.entry(id, JobState::Queued)?;
        e.record.state = JobState::Offered;
        e.offered_to = Some(worker.to_owned());
        e.offered_ms = now_ms;
        self.track(id);
        Ok(())
    }

    /// `worker` took the job: its lease starts. Returns the attempt number.
    /// The answer can come after the worker's first heartbeat, which
    /// already made it the lease holder: that is not an error.
    pub fn accepted(&mut self, id: &JobId, worker: &str, now_ms: u64) -> Result<u32, BookError> {
        let lease_ms = self.lease_ms;
        if let Some(Entry {
            lease: Some(l),
            record,
            ..
        }) = self.jobs.get(id)
        {
            if record.state == JobState::Running && l.worker == worker {
                return Ok(l.attempt);
            }
        }
        let e = self.entry(id, JobState::Offered)?;
        if e.offered_to.as_deref() != Some(worker) {
            return Err(BookError::State {
                id: *id,
                state: JobState::Offered,
            });
        }
        e.record.start_attempt(worker, now_ms);
        e.record.state = JobState::Running;
        e.offered_to = None;
        e.lease = Some(Lease {
            worker: worker.to_owned(),
            attempt: e.record.attempts,
            expires_ms: now_ms + lease_ms,
        });
        let attempts = e.record.attempts;
        self.track(id);
        Ok(attempts)
    }

    /// `worker` did not take the job (busy, unreachable): queued again.
    pub fn declined(&mut self, id: &JobId, worker: &str, now_ms: u64) -> Result<(), BookError> {
        let e = self.entry(id, JobState::Offered)?;
        if e.offered_to.as_deref() != Some(worker) {
            return Ok(());
        }
        let since = e.queued_since_ms;
        self.enqueue(*id, now_ms, since);
        Ok(())
    }

    /// `worker` still runs these (job, attempt) pairs. A job it runs that
    /// this book has queued or offered (a new owner that loaded it, or a
    /// lease that expired while the worker was slow) is adopted instead of
    /// run a second time.
    pub fn heartbeat(
        &mut self,
        worker: &str,
        running: &[(JobId, u32)],
        now_ms: u64,
    ) -> Vec<(JobId, Verdict)> {
        running
            .iter()
            .map(|(id, attempt)| (*id, self.beat(worker, *id, *attempt, now_ms)))
            .collect()
    }

    fn beat(&mut self, worker: &str, id: JobId, attempt: u32, now_ms: u64) -> Verdict {
        let lease_ms = self.lease_ms;
        let Some(state) = self.jobs.get(&id).map(|e| e.record.state) else {
            return Verdict::Keep;
        };
        match state {
            JobState::Running => {
                let Some(e) = self.jobs.get_mut(&id) else {
                    return Verdict::Abort;
                };
                match &mut e.lease {
                    Some(l) if l.worker == worker && l.attempt == attempt => {
                        l.expires_ms = now_ms + lease_ms;
                        Verdict::Keep
                    }
                    _ => Verdict::Abort,
                }
            }
            JobState::Queued | JobState::Offered => {
                self.unready(&id);
                let Some(e) = self.jobs.get_mut(&id) else {
                    return Verdict::Abort;
                };
                e.record.note_attempt(worker, attempt, now_ms);
                e.record.state = JobState::Running;
                e.offered_to = None;
                e.lease = Some(Lease {
                    worker: worker.to_owned(),
                    attempt,
                    expires_ms: now_ms + lease_ms,
                });
                self.track(&id);
                Verdict::Keep
            }
            _ => Verdict::Abort,
        }
    }

    /// `worker` reports attempt `attempt` ended. A success is taken from
    /// any attempt of a job not yet terminal (the work is done, whoever
    /// did it); a failure only from the current lease holder.
    pub fn finished(
        &mut self,
        worker: &str,
        id: &JobId,
        attempt: u32,
        end: AttemptEnd,
        result: Vec<u8>,
        now_ms: u64,
    ) -> Finish {
        let Some(e) = self.jobs.get(id) else {
            return Finish::Unknown;
        };
        if e.record.state.is_terminal() {
            return Finish::Ignored;
        }
        let holder = matches!(&e.lease, Some(l) if l.worker == worker && l.attempt == attempt);
        if end == AttemptEnd::Succeeded {
            self.unready(id);
            let Some(e) = self.jobs.get_mut(id) else {
                return Finish::Unknown;
            };
            e.record.note_attempt(worker, attempt, now_ms);
            e.record.end_attempt(attempt, AttemptEnd::Succeeded, now_ms);
            e.record.result = result;
            e.record.error = None;
            return self
                .terminate(id, JobState::Done, now_ms)
                .map_or(Finish::Unknown, |r| Finish::Changed(Box::new(r)));
        }
        if !holder {
            return Finish::Ignored;
        }
        self.retry_or_dead(id, attempt, end, now_ms)
            .map_or(Finish::Unknown, |r| Finish::Changed(Box::new(r)))
    }

    fn terminate(&mut self, id: &JobId, state: JobState, now_ms: u64) -> Option<JobRecord> {
        self.unready(id);
        let e = self.jobs.get_mut(id)?;
        e.record.state = state;
        e.record.finished_ms = Some(now_ms);
        e.offered_to = None;
        e.lease = None;
        let record = e.record.clone();
        self.track(id);
        Some(record)
    }

    /// Close `attempt` with `end`; queue the job again, or dead-letter it
    /// when it has used all its attempts.
    fn retry_or_dead(
        &mut self,
        id: &JobId,
        attempt: u32,
        end: AttemptEnd,
        now_ms: u64,
    ) -> Option<JobRecord> {
        let e = self.jobs.get_mut(id)?;
        let reason = match &end {
            AttemptEnd::Failed(why) => why.clone(),
            other => format!("{other:?}").to_lowercase(),
        };
        e.record.end_attempt(attempt, end, now_ms);
        e.record.error = Some(reason);
        e.lease = None;
        if e.record.attempts >= e.record.spec.max_attempts {
            return self.terminate(id, JobState::DeadLetter, now_ms);
        }
        self.enqueue(*id, now_ms, now_ms);
        self.jobs.get(id).map(|e| e.record.clone())
    }

    /// Leases past their expiry: each job is queued again or
    /// dead-lettered. Offers unanswered for a lease period are withdrawn.
    pub fn expire(&mut self, now_ms: u64) -> Vec<JobRecord> {
        let stale: Vec<(JobId, String)> = self
            .in_flight_entries()
            .filter(|(_, e)| e.offered_ms + self.lease_ms <= now_ms)
            .filter_map(|(id, e)| Some((id, e.offered_to.clone()?)))
            .collect();
        for (id, worker) in stale {
            let _ = self.declined(&id, &worker, now_ms);
        }
        let expired: Vec<(JobId, u32)> = self
            .in_flight_entries()
            .filter_map(|(id, e)| match &e.lease {
                Some(l) if l.expires_ms <= now_ms => Some((id, l.attempt)),
                _ => None,
            })
            .collect();
        expired
            .into_iter()
            .filter_map(|(id, attempt)| {
                self.retry_or_dead(&id, attempt, AttemptEnd::LeaseExpired, now_ms)
            })
            .collect()
    }

    /// `worker`'s node is Down: its leases end now (queued again or
    /// dead-lettered) and its pending offers go back to the queue.
    pub fn worker_down(&mut self, worker: &str, now_ms: u64) -> Vec<JobRecord> {
        let offered: Vec<JobId> = self
            .in_flight_entries()
            .filter(|(_, e)| e.offered_to.as_deref() == Some(worker))
            .map(|(id, _)| id)
            .collect();
        for id in offered {
            let _ = self.declined(&id, worker, now_ms);
        }
        let leased: Vec<(JobId, u32)> = self
            .in_flight_entries()
            .filter_map(|(id, e)| match &e.lease {
                Some(l) if l.worker == worker => Some((id, l.attempt)),
                _ => None,
            })
            .collect();
        leased
            .into_iter()
            .filter_map(|(id, attempt)| {
                self.retry_or_dead(&id, attempt, AttemptEnd::NodeDown, now_ms)
            })
            .collect()
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

    /// Cancel a job that has not finished. Returns its record and the
    /// worker that was running it (to be told to stop).
    pub fn cancel(
        &mut self,
        id: &JobId,
        now_ms: u64,
    ) -> Result<(JobRecord, Option<String>), BookError> {
        let e = self.jobs.get(id).ok_or(BookError::Unknown(*id))?;
        if e.record.state.is_terminal() {
            return Err(BookError::State {
                id: *id,
                state: e.record.state,
            });
        }
        let running = e.lease.as_ref().map(|l| (l.worker.clone(), l.attempt));
        if let Some((_, attempt)) = &running {
            if let Some(e) = self.jobs.get_mut(id) {
                e.record
                    .end_attempt(*attempt, AttemptEnd::Cancelled, now_ms);
            }
        }
        let record = self
            .terminate(id, JobState::Cancelled, now_ms)
            .ok_or(BookError::Unknown(*id))?;
        Ok((record, running.map(|(w, _)| w)))
    }

    /// Drop a terminal job whose record is durable.
    pub fn forget(&mut self, id: &JobId) {
        if self
            .jobs
            .get(id)
            .is_some_and(|e| e.record.state.is_terminal())
        {
            self.jobs.remove(id);
        }
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

    /// Check the book's invariants; `Err` names the first one broken.
    pub fn check(&self) -> Result<(), String> {
        let queued: BTreeSet<JobId> = self
            .jobs
            .iter()
            .filter(|(_, e)| e.record.state == JobState::Queued)
            .map(|(id, _)| *id)
            .collect();
        let ready: BTreeSet<JobId> = self.ready.iter().map(|(_, _, id)| *id).collect();
        if ready.len() != self.ready.len() {
            return Err("a job is in the ready set twice".into());
        }
        if queued != ready {
            return Err(format!("queued {queued:?} but ready {ready:?}"));
        }
        let waiting: BTreeSet<(u64, JobId)> = queued
            .iter()
            .filter_map(|id| Some((self.jobs.get(id)?.queued_since_ms, *id)))
            .collect();
        if waiting != self.waiting {
            return Err(format!("waiting index {:?} ≠ {waiting:?}", self.waiting));
        }
        let holders: HashMap<JobId, String> = self
            .jobs
            .iter()
            .filter_map(|(id, e)| Some((*id, Self::holder_of(e)?.to_owned())))
            .collect();
        if holders != self.in_flight {
            return Err(format!(
                "in-flight index {:?} ≠ {holders:?}",
                self.in_flight
            ));
        }
        for (id, e) in &self.jobs {
            let state = e.record.state;
            if (state == JobState::Running) != e.lease.is_some() {
                return Err(format!("{id}: {state:?} with lease {:?}", e.lease));
            }
            if (state == JobState::Offered) != e.offered_to.is_some() {
                return Err(format!("{id}: {state:?} offered to {:?}", e.offered_to));
            }
            if (state == JobState::Queued) != e.ready.is_some() {
                return Err(format!("{id}: {state:?} with ready key {:?}", e.ready));
            }
            if let Some(l) = &e.lease {
                let open = e.record.history.iter().any(|a| {
                    a.number == l.attempt && a.worker == l.worker && a.end == AttemptEnd::Running
                });
                if !open && e.record.history.len() < MAX_HISTORY {
                    return Err(format!("{id}: lease {l:?} not in history"));
                }
            }
            if state == JobState::Done
                && !e
                    .record
                    .history
                    .iter()
                    .any(|a| a.end == AttemptEnd::Succeeded)
            {
                return Err(format!(
                    "{id}: done without a successful attempt in history"
                ));
            }
            if state == JobState::DeadLetter && e.record.attempts < e.record.spec.max_attempts {
                return Err(format!(
                    "{id}: dead-lettered after {} attempts",
                    e.record.attempts
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;

    use super::*;
    use crate::job::{Constraints, JobSpec, Payload};

    const LEASE_MS: u64 = 1_000;
    const WORKERS: [&str; 3] = ["a.1", "b.1", "c.1"];

    fn record(n: u8, max_attempts: u32, priority: i32) -> JobRecord {
        let spec = JobSpec {
            queue: "q".into(),
            kind: "echo".into(),
            payload: Payload::Bytes(vec![n]),
            args: BTreeMap::new(),
            idempotency_key: None,
            priority,
            max_attempts,
            timeout_ms: 1_000,
            constraints: Constraints::default(),
        };
        JobRecord::new(JobId([n; 16]), spec, 0)
    }

    fn id(n: u8) -> JobId {
        JobId([n; 16])
    }

    #[test]
    fn priority_then_age_orders_the_ready_set() {
        let mut b = Book::new(LEASE_MS);
        b.insert(record(1, 3, 0), 0).unwrap();
        b.insert(record(2, 3, 5), 0).unwrap();
        b.insert(record(3, 3, 0), 0).unwrap();
        let order: Vec<JobId> = b.ready().map(|r| r.id).collect();
        assert_eq!(order, vec![id(2), id(1), id(3)]);
        assert_eq!(b.insert(record(1, 3, 0), 0), Err(BookError::Exists(id(1))));
    }

    #[test]
    fn a_lease_expires_into_a_retry_then_a_dead_letter() {
        let mut b = Book::new(LEASE_MS);
        b.insert(record(1, 2, 0), 0).unwrap();
        for (round, now) in [(1u32, 0u64), (2, 5_000)] {
            b.offer(&id(1), "a.1", now).unwrap();
            assert_eq!(b.accepted(&id(1), "a.1", now).unwrap(), round);
            // A heartbeat before expiry extends the lease.
            let verdicts = b.heartbeat("a.1", &[(id(1), round)], now + 900);
            assert_eq!(verdicts, vec![(id(1), Verdict::Keep)]);
            assert!(b.expire(now + 1_500).is_empty());
            let changed = b.expire(now + 1_900);
            assert_eq!(changed.len(), 1);
        }
        let r = b.get(&id(1)).unwrap();
        assert_eq!(r.state, JobState::DeadLetter);
        assert_eq!(r.history.len(), 2);
        assert!(r.history.iter().all(|a| a.end == AttemptEnd::LeaseExpired));
        b.check().unwrap();
    }

    #[test]
    fn an_attempt_heard_of_before_the_offer_answer_is_in_the_history() {
        let mut b = Book::new(LEASE_MS);
        b.insert(record(1, 3, 0), 0).unwrap();
        b.insert(record(2, 3, 0), 0).unwrap();
        // Job 1: the worker's first heartbeat comes before its answer.
        b.offer(&id(1), "a.1", 0).unwrap();
        let verdicts = b.heartbeat("a.1", &[(id(1), 1)], 10);
        assert_eq!(verdicts, vec![(id(1), Verdict::Keep)]);
        assert_eq!(b.accepted(&id(1), "a.1", 20), Ok(1));
        // Job 2: the result comes before the answer.
        b.offer(&id(2), "b.1", 0).unwrap();
        let done = b.finished("b.1", &id(2), 1, AttemptEnd::Succeeded, vec![], 30);
        assert!(matches!(done, Finish::Changed(_)), "{done:?}");
        for (n, end) in [(1, AttemptEnd::Running), (2, AttemptEnd::Succeeded)] {
            let r = b.get(&id(n)).unwrap();
            assert_eq!(r.attempts, 1);
            assert_eq!(r.history.len(), 1, "{r:?}");
            assert_eq!((r.history[0].number, &r.history[0].end), (1, &end));
        }
        b.check().unwrap();
    }

    #[test]
    fn a_late_success_completes_and_a_stale_failure_is_ignored() {
        let mut b = Book::new(LEASE_MS);
        b.insert(record(1, 5, 0), 0).unwrap();
        b.offer(&id(1), "a.1", 0).unwrap();
        b.accepted(&id(1), "a.1", 0).unwrap();
        b.expire(2_000);
        b.offer(&id(1), "b.1", 2_000).unwrap();
        b.accepted(&id(1), "b.1", 2_000).unwrap();
        // The first worker's failure comes late: not the lease holder.
        let stale = b.finished("a.1", &id(1), 1, AttemptEnd::TimedOut, vec![], 2_100);
        assert_eq!(stale, Finish::Ignored);
        // Its old heartbeat is told to stop.
        assert_eq!(
            b.heartbeat("a.1", &[(id(1), 1)], 2_100),
            vec![(id(1), Verdict::Abort)]
        );
        // A success from either attempt finishes the job.
        let done = b.finished(
            "a.1",
            &id(1),
            1,
            AttemptEnd::Succeeded,
            b"ok".to_vec(),
            2_200,
        );
        let Finish::Changed(r) = done else {
            panic!("{done:?}")
        };
        assert_eq!((r.state, r.result.as_slice()), (JobState::Done, &b"ok"[..]));
        assert_eq!(
            b.heartbeat("b.1", &[(id(1), 2)], 2_300),
            vec![(id(1), Verdict::Abort)]
        );
        b.check().unwrap();
    }

    #[test]
    fn a_new_owner_adopts_a_running_job_from_its_heartbeat() {
        let mut b = Book::new(LEASE_MS);
        b.insert(record(1, 3, 0), 0).unwrap();
        let v = b.heartbeat("c.1", &[(id(1), 2), (id(9), 1)], 10);
        assert_eq!(v, vec![(id(1), Verdict::Keep), (id(9), Verdict::Keep)]);
        assert_eq!(b.get(&id(1)).unwrap().state, JobState::Running);
        assert_eq!(b.lease(&id(1)).unwrap().attempt, 2);
        assert_eq!(b.worker_down("c.1", 20).len(), 1);
        assert_eq!(b.get(&id(1)).unwrap().state, JobState::Queued);
        b.check().unwrap();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Submit(u8, u32),
        Offer(u8, usize),
        Accept(u8, usize),
        Decline(u8, usize),
        Beat(usize, u8, u32),
        Finish(usize, u8, u32, bool),
        Advance(u64),
        Down(usize),
        Cancel(u8),
        Persist(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let j = 0u8..12;
        let w = 0usize..WORKERS.len();
        prop_oneof![
            (j.clone(), 1u32..4).prop_map(|(j, m)| Op::Submit(j, m)),
            (j.clone(), w.clone()).prop_map(|(j, w)| Op::Offer(j, w)),
            (j.clone(), w.clone()).prop_map(|(j, w)| Op::Accept(j, w)),
            (j.clone(), w.clone()).prop_map(|(j, w)| Op::Decline(j, w)),
            (w.clone(), j.clone(), 1u32..4).prop_map(|(w, j, a)| Op::Beat(w, j, a)),
            (w.clone(), j.clone(), 1u32..4, any::<bool>())
                .prop_map(|(w, j, a, ok)| Op::Finish(w, j, a, ok)),
            (0u64..1_500).prop_map(Op::Advance),
            w.prop_map(Op::Down),
            j.clone().prop_map(Op::Cancel),
            j.prop_map(Op::Persist),
        ]
    }

    /// What the test knows of each submitted job from outside the book.
    #[derive(Default)]
    struct Model {
        submitted: HashMap<JobId, u32>,
        /// Terminal states of jobs persisted and forgotten.
        settled: HashMap<JobId, JobState>,
        successes: HashMap<JobId, usize>,
    }

    fn apply(b: &mut Book, m: &mut Model, now: &mut u64, op: Op) {
        match op {
            Op::Submit(j, max) => {
                if !m.submitted.contains_key(&id(j))
                    && b.insert(record(j, max, i32::from(j % 3)), *now).is_ok()
                {
                    m.submitted.insert(id(j), max);
                }
            }
            Op::Offer(j, w) => drop(b.offer(&id(j), WORKERS[w], *now)),
            Op::Accept(j, w) => drop(b.accepted(&id(j), WORKERS[w], *now)),
            Op::Decline(j, w) => drop(b.declined(&id(j), WORKERS[w], *now)),
            Op::Beat(w, j, a) => drop(b.heartbeat(WORKERS[w], &[(id(j), a)], *now)),
            Op::Finish(w, j, a, ok) => {
                let end = if ok {
                    AttemptEnd::Succeeded
                } else {
                    AttemptEnd::Failed("x".into())
                };
                let was_live = b.get(&id(j)).is_some_and(|r| !r.state.is_terminal());
                if let Finish::Changed(r) = b.finished(WORKERS[w], &id(j), a, end, vec![], *now) {
                    if ok && was_live {
                        assert_eq!(r.state, JobState::Done);
                        *m.successes.entry(id(j)).or_default() += 1;
                    }
                }
            }
            Op::Advance(ms) => {
                *now += ms;
                b.expire(*now);
            }
            Op::Down(w) => drop(b.worker_down(WORKERS[w], *now)),
            Op::Cancel(j) => drop(b.cancel(&id(j), *now)),
            Op::Persist(j) => {
                if let Some(state) = b.get(&id(j)).map(|r| r.state).filter(|s| s.is_terminal()) {
                    b.forget(&id(j));
                    m.settled.insert(id(j), state);
                }
            }
        }
    }

    /// After the faults: a healthy worker takes every queued job and
    /// succeeds; expired leases come back first.
    fn drain(b: &mut Book, m: &mut Model, now: &mut u64) {
        for _ in 0..200 {
            *now += 2 * LEASE_MS;
            b.expire(*now);
            let ready: Vec<JobId> = b.ready().map(|r| r.id).collect();
            for j in ready {
                b.offer(&j, "z.1", *now).unwrap();
                let attempt = b.accepted(&j, "z.1", *now).unwrap();
                let done = b.finished("z.1", &j, attempt, AttemptEnd::Succeeded, vec![], *now);
                assert!(matches!(done, Finish::Changed(_)));
                *m.successes.entry(j).or_default() += 1;
            }
            let terminal: Vec<(JobId, JobState)> = b
                .records()
                .filter(|r| r.state.is_terminal())
                .map(|r| (r.id, r.state))
                .collect();
            for (j, state) in terminal {
                b.forget(&j);
                m.settled.insert(j, state);
            }
            if b.is_empty() {
                return;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// One state per job at every step; once the faults stop every
        /// submitted job settles; a done job succeeded at least once; a
        /// dead letter used all its attempts.
        #[test]
        fn every_job_settles_once_in_one_state(ops in proptest::collection::vec(op(), 1..120)) {
            let mut b = Book::new(LEASE_MS);
            let mut m = Model::default();
            let mut now = 0u64;
            for op in ops {
                apply(&mut b, &mut m, &mut now, op);
                prop_assert_eq!(b.check(), Ok(()));
                for j in m.submitted.keys() {
                    prop_assert!(b.get(j).is_some() || m.settled.contains_key(j), "job {} lost", j);
                }
            }
            drain(&mut b, &mut m, &mut now);
            prop_assert!(b.is_empty());
            for (j, max) in &m.submitted {
                let state = m.settled.get(j).copied();
                prop_assert!(state.is_some_and(JobState::is_terminal), "{} never settled", j);
                if state == Some(JobState::Done) {
                    prop_assert!(m.successes.get(j).copied().unwrap_or(0) >= 1);
                }
                let _ = max;
            }
        }
    }
}
