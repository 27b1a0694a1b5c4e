//! The owner's durable writes: submits (idempotency, the queue cap),
//! finish reports, cancels, lease expiry and Down workers' jobs at each
//! tick; one write in flight per job with the newest record next, failed
//! writes retried at the next tick, and answers held until the job's
//! terminal record is durable.

use super::{abort_on, book_error, refuse, reply, Effect, Effects, OwnerCore};
use crate::book::Finish;
use crate::chain;
use crate::job::{AttemptEnd, JobId, JobRecord, JobSpec, JobState};
use crate::wire::{ErrorCode, WorkRequest, WorkResponse};
use hypha_cluster::membership::{ClusterView, MemberKey, MemberState};

impl<R> OwnerCore<R> {
    pub(super) fn submit(
        &mut self,
        now_ms: u64,
        id: JobId,
        spec: JobSpec,
        to: R,
        fx: &mut Effects<R>,
    ) {
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
    pub(super) fn finished(
        &mut self,
        now_ms: u64,
        report: WorkRequest,
        to: R,
        fx: &mut Effects<R>,
    ) {
        let WorkRequest::Finished {
            worker,
            id,
            spec,
            attempt,
            end,
            result,
            log,
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
            Finish::Changed(mut record) => {
                count_transition(&record, !succeeded);
                record.log = log;
                self.persist(*record, Some((to, WorkResponse::Ok)), fx);
            }
            Finish::Unknown if succeeded => {
                // Not in the book (this owner is new and has not loaded it,
                // or it finished here already and was forgotten): record
                // the result; last writer wins over an older queued record.
                let mut record = done_elsewhere(id, spec, &worker, attempt, result, now_ms);
                record.log = log;
                count_transition(&record, false);
                self.persist(record, Some((to, WorkResponse::Ok)), fx);
            }
            Finish::Ignored | Finish::Unknown => reply(fx, to, WorkResponse::Ok),
        }
    }

    pub(super) fn cancel(
        &mut self,
        now_ms: u64,
        queue: &str,
        id: JobId,
        to: R,
        fx: &mut Effects<R>,
    ) {
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
        let next = chain::next_record(&record).map(Box::new);
        fx.push(Effect::Write { record, next });
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

    /// The next step of a chain is in the log (written now, or found
    /// there): it joins the book unless it has finished or is there.
    pub fn chained(&mut self, now_ms: u64, next: JobRecord) -> Effects<R> {
        if next.state.is_terminal() {
            return Vec::new();
        }
        let Some(o) = self.owned.get_mut(&next.spec.queue) else {
            return Vec::new();
        };
        if o.book.get(&next.id).is_none() && o.book.insert(next, now_ms).is_ok() {
            metrics::counter!("hypha_jobs_submitted_total").increment(1);
            metrics::counter!("hypha_jobs_chained_total").increment(1);
        }
        Vec::new()
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
