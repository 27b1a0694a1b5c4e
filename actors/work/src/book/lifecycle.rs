//! The transitions of a job in the book that the owner and its workers
//! drive: insert (submit or load), offer, accept, decline, heartbeat
//! (extend or adopt a lease), finish (done, retry or dead letter),
//! cancel, and forgetting a terminal job once its record is durable.

use super::{Book, BookError, Entry, Finish, Lease, Verdict};
use crate::job::{AttemptEnd, JobId, JobRecord, JobState};

impl Book {
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
    /// did it); a failure only from the current lease holder, or from the
    /// worker the job is offered to, for the attempt the offer starts.
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
        // The worker the job is offered to took it, and the attempt ended
        // (a module that traps at once) before its answer to the offer
        // reached this owner: the report travels on its own call and can
        // overtake it. Ignored, the job would wait out a lease it has no
        // holder for, and fail as `leaseexpired` instead of its reason
        // (`tests/wasm_cluster.rs` saw a chain step dead-lettered so).
        let offered_this = e.record.state == JobState::Offered
            && e.offered_to.as_deref() == Some(worker)
            && attempt == e.record.attempts + 1;
        if !holder && !offered_this {
            return Finish::Ignored;
        }
        if offered_this {
            if let Some(e) = self.jobs.get_mut(id) {
                e.record.note_attempt(worker, attempt, now_ms);
            }
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
    pub(super) fn retry_or_dead(
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
}
