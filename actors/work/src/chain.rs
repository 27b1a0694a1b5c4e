//! Chains: a job that names follow-up steps ([`Step`]) hands its result
//! to the next step, which runs as a job of its own in the same queue, so
//! a pipeline's data goes from worker to owner to the next worker without
//! returning to the client. Pure: which job follows a finished one (its id
//! is derived from the parent's, so creating it twice is one job), and
//! what a chain's status is from the records of its steps.
//!
//! The owner writes the next step's record before the finished job's
//! terminal record (`queues::owner`), so a chain whose step is done in the
//! log always has its next step in the log too; a crash between the two
//! writes reruns the step (at-least-once) and finds its follow-up there.

use serde::Serialize;

use crate::job::{AttemptEnd, JobId, JobRecord, JobSpec, JobState, Payload};

/// The argument a kind stores its result under as a file (the `wasm`
/// kind's `out`): the next step reads that file instead of the record.
pub const OUT_ARG: &str = "out";

/// The id of the step after `parent`, whether or not it exists yet.
pub fn next_id(parent: &JobRecord) -> Option<JobId> {
    (!parent.spec.then.is_empty()).then(|| JobId::for_key(&parent.spec.queue, &link_key(parent.id)))
}

fn link_key(parent: JobId) -> String {
    format!("chain:{parent}")
}

/// The record of the step that follows `parent`, once `parent` is done:
/// the first of its steps, on its result (or on the file it stored the
/// result as), carrying the remaining steps and the parent's queue,
/// priority, attempts, timeout and constraints. Submitted when the parent
/// finished, so the record is the same whoever builds it.
pub fn next_record(parent: &JobRecord) -> Option<JobRecord> {
    if parent.state != JobState::Done {
        return None;
    }
    let (step, rest) = parent.spec.then.split_first()?;
    let id = next_id(parent)?;
    let payload = match parent.spec.args.get(OUT_ARG) {
        Some(file) => Payload::File(file.clone()),
        None => Payload::Bytes(parent.result.clone()),
    };
    let spec = JobSpec {
        queue: parent.spec.queue.clone(),
        kind: step.kind.clone(),
        payload,
        args: step.args.clone(),
        idempotency_key: Some(link_key(parent.id)),
        priority: parent.spec.priority,
        max_attempts: parent.spec.max_attempts,
        timeout_ms: parent.spec.timeout_ms,
        constraints: parent.spec.constraints.clone(),
        then: rest.to_vec(),
    };
    let submitted_ms = parent.finished_ms.unwrap_or(parent.submitted_ms);
    Some(JobRecord::new(id, spec, submitted_ms))
}

/// Where a chain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainState {
    /// A step is queued or running, or the next one is being created.
    Running,
    /// Every step is done; the last one's result is the chain's.
    Done,
    /// A step was dead-lettered: the chain stopped there.
    Failed,
    /// A step was cancelled: the chain stopped there.
    Cancelled,
}

/// One step as the chain's status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepStatus {
    /// Position, from 0 (the submitted job).
    pub index: usize,
    /// The step's job id (known before the job exists).
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its state; `None` while it does not exist yet (an earlier step
    /// has not finished) or never will (the chain stopped before it).
    pub state: Option<JobState>,
    /// The worker of its latest attempt (`<node id>.<generation>`).
    pub worker: Option<String>,
    /// Attempts started.
    pub attempts: u32,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// A chain's status: its state and every step, run or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainStatus {
    /// Overall.
    pub state: ChainState,
    /// The step the chain stopped at, when it failed or was cancelled.
    pub stopped_at: Option<usize>,
    /// Every step, from the submitted job on.
    pub steps: Vec<StepStatus>,
}

/// The status of the chain that starts with `records[0]`, from the
/// records of its steps as far as they exist (`records[i]` is step i;
/// the walk stops at the first step not found). Steps named but not
/// reached are listed with no state.
pub fn status(records: &[JobRecord]) -> Option<ChainStatus> {
    let mut steps: Vec<StepStatus> = records
        .iter()
        .enumerate()
        .map(|(i, r)| seen(i, r))
        .collect();
    let last = records.last()?;
    let mut next = next_id(last);
    let named = last.spec.then.iter();
    for step in named {
        steps.push(StepStatus {
            index: steps.len(),
            id: next.map(|id| id.to_string()).unwrap_or_default(),
            kind: step.kind.clone(),
            state: None,
            worker: None,
            attempts: 0,
            error: None,
        });
        // Later ids depend on jobs that do not exist yet.
        next = None;
    }
    let (state, stopped_at) = match last.state {
        JobState::DeadLetter => (ChainState::Failed, Some(records.len() - 1)),
        JobState::Cancelled => (ChainState::Cancelled, Some(records.len() - 1)),
        JobState::Done if last.spec.then.is_empty() => (ChainState::Done, None),
        _ => (ChainState::Running, None),
    };
    Some(ChainStatus {
        state,
        stopped_at,
        steps,
    })
}

fn seen(index: usize, r: &JobRecord) -> StepStatus {
    let latest = r.history.last();
    StepStatus {
        index,
        id: r.id.to_string(),
        kind: r.spec.kind.clone(),
        state: Some(r.state),
        worker: latest.map(|a| a.worker.clone()),
        attempts: r.attempts,
        error: r.error.clone().or_else(|| match latest.map(|a| &a.end) {
            Some(AttemptEnd::Failed(why)) => Some(why.clone()),
            _ => None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{echo_spec, Step};
    use std::collections::BTreeMap;

    fn step(kind: &str) -> Step {
        Step {
            kind: kind.into(),
            args: BTreeMap::from([("k".to_string(), kind.to_string())]),
        }
    }

    fn chain_of(n: usize) -> JobRecord {
        let mut spec = echo_spec("q", 3);
        spec.then = (0..n).map(|i| step(&format!("s{i}"))).collect();
        JobRecord::new(JobId([1; 16]), spec, 10)
    }

    fn finish(mut r: JobRecord, result: &[u8], at_ms: u64) -> JobRecord {
        r.start_attempt("w.1", at_ms - 1);
        r.end_attempt(r.attempts, AttemptEnd::Succeeded, at_ms);
        r.state = JobState::Done;
        r.finished_ms = Some(at_ms);
        r.result = result.to_vec();
        r
    }

    #[test]
    fn the_next_step_takes_the_result_and_carries_the_rest() {
        let parent = finish(chain_of(2), b"out-1", 50);
        let next = next_record(&parent).expect("a follow-up");
        assert_eq!(Some(next.id), next_id(&parent));
        assert_eq!(next.spec.kind, "s0");
        assert_eq!(next.spec.payload, Payload::Bytes(b"out-1".to_vec()));
        assert_eq!(next.spec.then, vec![step("s1")]);
        assert_eq!(next.spec.queue, "q");
        assert_eq!(next.submitted_ms, 50);
        assert!(next.spec.validate().is_ok());
        // Built twice (a rerun, a new owner): the same job.
        assert_eq!(next_record(&parent), Some(next.clone()));
        let last = finish(next, b"out-2", 60);
        let final_step = next_record(&last).expect("the last step");
        assert!(final_step.spec.then.is_empty());
        assert_eq!(next_record(&finish(final_step, b"x", 70)), None);
    }

    #[test]
    fn a_stored_result_is_handed_on_as_its_file() {
        let mut r = chain_of(1);
        r.spec.args.insert(OUT_ARG.into(), "thumbs/a".into());
        let next = next_record(&finish(r, b"{\"stored\":\"thumbs/a\"}", 5));
        assert_eq!(
            next.map(|n| n.spec.payload),
            Some(Payload::File("thumbs/a".into()))
        );
    }

    #[test]
    fn only_a_done_job_has_a_follow_up() {
        let mut r = chain_of(1);
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::DeadLetter,
            JobState::Cancelled,
        ] {
            r.state = state;
            assert_eq!(next_record(&r), None, "{state:?}");
        }
        assert_eq!(next_id(&finish(chain_of(0), b"", 3)), None);
    }

    #[test]
    fn status_lists_every_step_and_where_it_stopped() {
        let first = finish(chain_of(2), b"a", 20);
        let second = next_record(&first).expect("second");
        let s = status(&[first.clone(), second.clone()]).expect("status");
        assert_eq!(s.state, ChainState::Running);
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.steps[1].state, Some(JobState::Queued));
        assert_eq!(s.steps[2].state, None);
        assert_eq!(s.steps[2].kind, "s1");

        let mut failed = second.clone();
        failed.state = JobState::DeadLetter;
        failed.error = Some("cpu_limit".into());
        let s = status(&[first.clone(), failed]).expect("status");
        assert_eq!(s.state, ChainState::Failed);
        assert_eq!(s.stopped_at, Some(1));
        assert_eq!(s.steps[1].error.as_deref(), Some("cpu_limit"));
        assert_eq!(s.steps[2].state, None);

        let done2 = finish(second, b"b", 30);
        let third = finish(next_record(&done2).expect("third"), b"c", 40);
        let s = status(&[first, done2, third]).expect("status");
        assert_eq!(s.state, ChainState::Done);
        assert_eq!(s.steps.len(), 3);
        assert!(s.steps.iter().all(|st| st.worker.as_deref() == Some("w.1")));
    }
}
