//! The book's rules, one test each, and a property test that checks its
//! invariants after every step against a model.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;
use crate::job::{AttemptEnd, Constraints, JobSpec, Payload};

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
        then: Vec::new(),
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
fn a_failure_heard_of_before_the_offer_answer_counts() {
    let mut b = Book::new(LEASE_MS);
    b.insert(record(1, 2, 0), 0).unwrap();
    b.offer(&id(1), "a.1", 0).unwrap();
    // Another worker, or an attempt the offer does not start: ignored.
    let other = AttemptEnd::Failed("trap".into());
    assert_eq!(
        b.finished("b.1", &id(1), 1, other.clone(), vec![], 5),
        Finish::Ignored
    );
    assert_eq!(
        b.finished("a.1", &id(1), 2, other.clone(), vec![], 5),
        Finish::Ignored
    );
    let failed = b.finished("a.1", &id(1), 1, other.clone(), vec![], 10);
    let Finish::Changed(r) = failed else {
        panic!("{failed:?}")
    };
    assert_eq!((r.state, r.attempts), (JobState::Queued, 1));
    assert_eq!(r.error.as_deref(), Some("trap"));
    assert_eq!(r.history[0].end, other);
    // The answer that comes after finds the job no longer offered.
    assert!(b.accepted(&id(1), "a.1", 20).is_err());
    b.check().unwrap();
    // The last attempt dead-letters it with its reason, not a lease's.
    b.offer(&id(1), "a.1", 30).unwrap();
    let Finish::Changed(r) = b.finished("a.1", &id(1), 2, other, vec![], 40) else {
        panic!("the second attempt's failure counts");
    };
    assert_eq!(
        (r.state, r.error.as_deref()),
        (JobState::DeadLetter, Some("trap"))
    );
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
