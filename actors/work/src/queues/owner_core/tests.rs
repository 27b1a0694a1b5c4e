//! The owner rules of docs/jobs.md, each on the pure core: no network, no
//! runtime, no sleep — time is a number the test moves. Replies are plain
//! numbers standing for the callers.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;
use crate::job::{echo_spec as spec, AttemptEnd};
use crate::placement::LeastLoaded;
use crate::settings::WorkSettings;
use crate::wire::OfferAnswer;
use hypha_cluster::membership::info::{Capacity, NodeInfo, INFO_VERSION};
use hypha_cluster::membership::{MemberSnapshot, MemberState};
use hypha_dht::keyspace::Partitioning;
use hypha_dht::placement::PlacementRules;

const LEASE_MS: u64 = 1_000;
const TICK_MS: u64 = 100;
const SCAN_MS: u64 = 500;
/// Node 0 is this owner; 1 and 2 are workers (each with one slot).
const WORKERS: [u8; 2] = [1, 2];

fn settings() -> WorkSettings {
    WorkSettings {
        lease_ms: LEASE_MS,
        tick_ms: TICK_MS,
        scan_ms: SCAN_MS,
        max_queue_jobs: 8,
        max_offers_in_flight: 8,
        ..WorkSettings::default()
    }
}

fn key(n: u8) -> MemberKey {
    MemberKey::new(hex::encode([n; 32]), 1)
}

fn name(n: u8) -> String {
    key(n).link_name()
}

fn info() -> NodeInfo {
    NodeInfo {
        version: INFO_VERSION,
        name: "w".into(),
        cluster_addr: ([127, 0, 0, 1], 1).into(),
        http_addr: ([127, 0, 0, 1], 2).into(),
        bulk_addr: None,
        capacity: Capacity {
            cores: 1,
            memory_bytes: 1 << 30,
            free_disk_bytes: 1 << 30,
        },
        labels: BTreeMap::new(),
    }
}

fn id(n: u8) -> JobId {
    JobId([n; 16])
}

/// An owner (node 0) among two workers, with its time and the members'
/// states in hand.
struct Fix {
    core: OwnerCore<u32>,
    now_ms: u64,
    states: BTreeMap<u8, MemberState>,
    next_reply: u32,
}

impl Fix {
    fn new() -> Self {
        Self::with(settings())
    }

    fn with(settings: WorkSettings) -> Self {
        let view = Arc::new(ClusterView::default());
        let placement = Arc::new(Placement::build(
            key(0),
            &view,
            rules(),
            &BTreeMap::new(),
            0,
        ));
        let policy: Arc<dyn PlacementPolicy> = Arc::new(LeastLoaded);
        let core = OwnerCore::new(key(0), settings, policy, placement, view);
        let mut fix = Self {
            core,
            now_ms: 1_000_000,
            states: BTreeMap::from([
                (0, MemberState::Up),
                (1, MemberState::Up),
                (2, MemberState::Up),
            ]),
            next_reply: 0,
        };
        fix.observe();
        fix
    }

    /// Rebuild the view and placement from the members' states.
    fn observe(&mut self) {
        let members = self
            .states
            .iter()
            .map(|(n, state)| MemberSnapshot {
                key: key(*n),
                is_self: *n == 0,
                state: *state,
                incarnation: 0,
                linked: true,
                last_heard_ms: 0,
                // The owner itself runs no jobs here: only the workers
                // publish capacity.
                info: (*n != 0).then(info),
                load: None,
            })
            .collect();
        let view = ClusterView {
            members,
            isolated: false,
        };
        let placement = Placement::build(key(0), &view, rules(), &BTreeMap::new(), self.now_ms);
        self.core.observe(Arc::new(placement), Arc::new(view));
    }

    fn set(&mut self, node: u8, state: MemberState) {
        self.states.insert(node, state);
        self.observe();
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    fn reply_id(&mut self) -> u32 {
        self.next_reply += 1;
        self.next_reply
    }

    fn ask(&mut self, request: WorkRequest) -> (u32, Effects<u32>) {
        let to = self.reply_id();
        let fx = self.core.request(self.now_ms, request, to);
        (to, fx)
    }

    /// The first registry scan (nothing registered).
    fn boot(&mut self) {
        assert!(matches!(self.core.scan()[..], [Effect::ReadRegistry]));
        let fx = self.core.scanned(self.now_ms, Some(Vec::new()));
        assert!(fx.is_empty());
    }

    /// Submit a job and make it durable; the queue's (empty) log loads.
    fn submitted(&mut self, queue: &str, n: u8, max_attempts: u32) -> JobRecord {
        self.submitted_spec(n, spec(queue, max_attempts))
    }

    /// Submit `spec` as job `n` and make it durable.
    fn submitted_spec(&mut self, n: u8, spec: crate::job::JobSpec) -> JobRecord {
        let (to, fx) = self.ask(WorkRequest::Submit { id: id(n), spec });
        for e in &fx {
            if let Effect::Load { queue } = e {
                self.core.loaded(self.now_ms, queue, Vec::new(), 0, true);
            }
        }
        let record = fx
            .into_iter()
            .find_map(|e| match e {
                Effect::Submit { record, .. } => Some(record),
                _ => None,
            })
            .expect("a submit to write");
        let fx = self
            .core
            .submitted(self.now_ms, record.clone(), false, Ok(()), to);
        assert!(matches!(
            &fx[..],
            [Effect::Reply { to: t, answer: WorkResponse::Submitted { existing: false, .. } }] if *t == to
        ));
        record
    }

    /// Tick, place and publish, as the actor does.
    fn tick(&mut self) -> Effects<u32> {
        let mut fx = self.core.tick(self.now_ms);
        fx.extend(self.core.dispatch(self.now_ms, &|_| HashSet::new()));
        fx.push(self.core.gauges(self.now_ms));
        self.core.check().expect("invariants");
        fx
    }

    fn answer(
        &mut self,
        queue: &str,
        n: u8,
        worker: u8,
        answer: Result<OfferAnswer, String>,
    ) -> Effects<u32> {
        self.core
            .offer_answered(self.now_ms, queue, id(n), &name(worker), answer)
    }

    /// Offer the job and have `worker` accept it; returns the worker.
    fn leased(&mut self, queue: &str, n: u8) -> u8 {
        let (_, worker) = offers(&self.tick())
            .into_iter()
            .find(|(j, _)| *j == id(n))
            .expect("an offer");
        let w = worker_number(&worker);
        assert!(self
            .answer(queue, n, w, Ok(OfferAnswer::Accepted))
            .is_empty());
        w
    }

    fn status(&mut self, queue: &str, n: u8) -> Option<JobRecord> {
        let (_, fx) = self.ask(WorkRequest::Status {
            queue: queue.into(),
            id: id(n),
        });
        match answers(fx).pop() {
            Some((_, WorkResponse::Record(r))) => r,
            other => panic!("status answered {other:?}"),
        }
    }

    fn finish(
        &mut self,
        queue: &str,
        n: u8,
        worker: u8,
        attempt: u32,
        end: AttemptEnd,
    ) -> (u32, Effects<u32>) {
        self.ask(WorkRequest::Finished {
            worker: name(worker),
            id: id(n),
            spec: spec(queue, 3),
            attempt,
            end,
            result: b"ok".to_vec(),
            log: Vec::new(),
        })
    }
}

/// An owner after its first scan, and a queue it owns.
fn started() -> (Fix, String) {
    let mut f = Fix::new();
    f.boot();
    (f, queue_of(0))
}

/// Job 1 (three attempts) submitted and leased; the worker holding it.
fn running() -> (Fix, String, u8) {
    let (mut f, q) = started();
    f.submitted(&q, 1, 3);
    let w = f.leased(&q, 1);
    (f, q, w)
}

fn rules() -> PlacementRules {
    PlacementRules {
        partitioning: Partitioning::new(4).expect("4 bits"),
        replicas: 3,
        down_grace_ms: 1_000,
        write_quorum: 2,
        pins: Default::default(),
    }
}

/// A queue name the member `n` owns while every node is Up.
fn queue_of(n: u8) -> String {
    let view = ClusterView {
        members: [0u8, 1, 2]
            .iter()
            .map(|i| MemberSnapshot {
                key: key(*i),
                is_self: *i == 0,
                state: MemberState::Up,
                incarnation: 0,
                linked: true,
                last_heard_ms: 0,
                info: None,
                load: None,
            })
            .collect(),
        isolated: false,
    };
    let placement = Placement::build(key(0), &view, rules(), &BTreeMap::new(), 0);
    (0..)
        .map(|i| format!("q{i}"))
        .find(|q| owner_of(&placement, q) == Some(key(n)))
        .expect("some name")
}

fn worker_number(link_name: &str) -> u8 {
    WORKERS
        .into_iter()
        .find(|w| name(*w) == link_name)
        .expect("a known worker")
}

fn answers(fx: Effects<u32>) -> Vec<(u32, WorkResponse)> {
    fx.into_iter()
        .filter_map(|e| match e {
            Effect::Reply { to, answer } => Some((to, answer)),
            _ => None,
        })
        .collect()
}

fn writes(fx: &Effects<u32>) -> Vec<JobRecord> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Write { record, .. } => Some(record.clone()),
            _ => None,
        })
        .collect()
}

fn offers(fx: &Effects<u32>) -> Vec<(JobId, String)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Offer { id, worker, .. } => Some((*id, worker.clone())),
            _ => None,
        })
        .collect()
}

fn loads(fx: &Effects<u32>) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Load { queue } => Some(queue.clone()),
            _ => None,
        })
        .collect()
}

fn code(answer: &WorkResponse) -> Option<ErrorCode> {
    match answer {
        WorkResponse::Error(e) => Some(e.code),
        _ => None,
    }
}

// --- submit and idempotency -------------------------------------------

#[test]
fn a_submit_is_answered_only_once_its_record_is_durable() {
    let (mut f, q) = started();
    let (to, fx) = f.ask(WorkRequest::Submit {
        id: id(1),
        spec: spec(&q, 3),
    });
    assert_eq!(loads(&fx), vec![q.clone()], "a new queue's log is read");
    let (record, register) = fx
        .into_iter()
        .find_map(|e| match e {
            Effect::Submit {
                record, register, ..
            } => Some((record, register)),
            Effect::Reply { .. } => panic!("answered before durable"),
            _ => None,
        })
        .expect("a write");
    assert!(register, "a queue not seen in the registry is registered");
    assert_eq!(
        (record.state, record.submitted_ms),
        (JobState::Queued, f.now_ms)
    );
    let fx = f.core.submitted(f.now_ms, record, false, Ok(()), to);
    assert!(matches!(
        &answers(fx)[..],
        [(t, WorkResponse::Submitted { existing: false, .. })] if *t == to
    ));
    assert_eq!(f.status(&q, 1).map(|r| r.state), Some(JobState::Queued));
}

#[test]
fn a_submit_to_a_queue_owned_elsewhere_is_not_owner() {
    let mut f = Fix::new();
    let (_, fx) = f.ask(WorkRequest::Submit {
        id: id(1),
        spec: spec(&queue_of(1), 3),
    });
    let replies = answers(fx);
    assert_eq!(replies.len(), 1);
    assert_eq!(code(&replies[0].1), Some(ErrorCode::NotOwner));
}

#[test]
fn a_repeated_submit_is_answered_with_the_job_already_held() {
    let (mut f, q) = started();
    let first = f.submitted(&q, 1, 3);
    let (_, fx) = f.ask(WorkRequest::Submit {
        id: id(1),
        spec: spec(&q, 3),
    });
    assert!(matches!(
        &answers(fx)[..],
        [(_, WorkResponse::Submitted { record, existing: true })] if *record == first
    ));
}

#[test]
fn an_idempotency_key_found_in_the_log_is_answered_as_existing() {
    let (mut f, q) = started();
    let (to, _) = f.ask(WorkRequest::Submit {
        id: id(1),
        spec: spec(&q, 3),
    });
    // The shell found the id in the log: that record is the answer.
    let mut logged = JobRecord::new(id(1), spec(&q, 3), f.now_ms - 50);
    logged.attempts = 1;
    let fx = f.core.submitted(f.now_ms, logged.clone(), true, Ok(()), to);
    assert!(matches!(
        &answers(fx)[..],
        [(_, WorkResponse::Submitted { record, existing: true })] if *record == logged
    ));
    assert_eq!(f.status(&q, 1).map(|r| r.attempts), Some(1));
}

#[test]
fn a_submit_while_the_same_job_is_being_written_is_a_conflict() {
    let (mut f, q) = started();
    let _ = f.ask(WorkRequest::Submit {
        id: id(1),
        spec: spec(&q, 3),
    });
    let (_, fx) = f.ask(WorkRequest::Submit {
        id: id(1),
        spec: spec(&q, 3),
    });
    let replies = answers(fx);
    assert_eq!(code(&replies[0].1), Some(ErrorCode::Conflict));
}

#[test]
fn a_submit_that_is_not_durable_is_unavailable_and_not_held() {
    let (mut f, q) = started();
    let (to, fx) = f.ask(WorkRequest::Submit {
        id: id(1),
        spec: spec(&q, 3),
    });
    let record = fx
        .into_iter()
        .find_map(|e| match e {
            Effect::Submit { record, .. } => Some(record),
            _ => None,
        })
        .expect("a write");
    let fx = f
        .core
        .submitted(f.now_ms, record, false, Err("no quorum".into()), to);
    assert_eq!(code(&answers(fx)[0].1), Some(ErrorCode::Unavailable));
    assert_eq!(f.status(&q, 1), None);
}

#[test]
fn a_full_queue_refuses_submits_with_unavailable() {
    let mut f = Fix::with(WorkSettings {
        max_queue_jobs: 2,
        ..settings()
    });
    f.boot();
    let q = queue_of(0);
    f.submitted(&q, 1, 3);
    f.submitted(&q, 2, 3);
    let (_, fx) = f.ask(WorkRequest::Submit {
        id: id(3),
        spec: spec(&q, 3),
    });
    assert_eq!(code(&answers(fx)[0].1), Some(ErrorCode::Unavailable));
}

// --- offers ------------------------------------------------------------

#[test]
fn a_ready_job_is_offered_to_a_live_worker_with_the_lease_period() {
    let (mut f, q) = started();
    f.submitted(&q, 1, 3);
    let fx = f.tick();
    let offer = fx.iter().find_map(|e| match e {
        Effect::Offer {
            worker, request, ..
        } => Some((worker.clone(), request.clone())),
        _ => None,
    });
    let Some((
        worker,
        WorkRequest::Offer {
            owner,
            id: job,
            attempt,
            lease_ms,
            ..
        },
    )) = offer
    else {
        panic!("no offer in {fx:?}");
    };
    assert!(WORKERS.iter().any(|w| name(*w) == worker));
    assert_eq!(
        (owner, job, attempt, lease_ms),
        (name(0), id(1), 1, LEASE_MS)
    );
    assert_eq!(f.status(&q, 1).map(|r| r.state), Some(JobState::Offered));
    assert!(
        offers(&f.tick()).is_empty(),
        "an offered job is not offered twice"
    );
}

#[test]
fn offers_outstanding_are_capped_by_max_offers_in_flight() {
    let mut f = Fix::with(WorkSettings {
        max_offers_in_flight: 1,
        ..settings()
    });
    f.boot();
    let q = queue_of(0);
    f.submitted(&q, 1, 3);
    f.submitted(&q, 2, 3);
    assert_eq!(offers(&f.tick()).len(), 1);
    assert!(offers(&f.tick()).is_empty());
}

#[test]
fn jobs_go_only_to_workers_with_a_free_slot() {
    let (mut f, q) = started();
    for n in 1..=3 {
        f.submitted(&q, n, 3);
    }
    let sent = offers(&f.tick());
    assert_eq!(sent.len(), 2, "two workers of one slot each: {sent:?}");
    assert_ne!(sent[0].1, sent[1].1);
}

#[test]
fn a_declined_offer_requeues_the_job_and_rests_the_worker_for_five_ticks() {
    let mut f = Fix::new();
    f.set(2, MemberState::Down);
    f.boot();
    let q = queue_of(0);
    f.submitted(&q, 1, 3);
    assert_eq!(offers(&f.tick()), vec![(id(1), name(1))]);
    assert!(f.answer(&q, 1, 1, Ok(OfferAnswer::Busy)).is_empty());
    assert_eq!(
        f.status(&q, 1).map(|r| (r.state, r.attempts)),
        Some((JobState::Queued, 0))
    );
    for _ in 0..4 {
        f.advance(TICK_MS);
        assert!(offers(&f.tick()).is_empty(), "the worker rests");
    }
    f.advance(TICK_MS);
    assert_eq!(offers(&f.tick()), vec![(id(1), name(1))]);
}

#[test]
fn an_offer_that_fails_on_the_network_counts_as_declined() {
    let mut f = Fix::new();
    f.set(2, MemberState::Down);
    f.boot();
    let q = queue_of(0);
    f.submitted(&q, 1, 3);
    assert_eq!(offers(&f.tick()).len(), 1);
    f.answer(&q, 1, 1, Err("timeout".into()));
    assert_eq!(f.status(&q, 1).map(|r| r.state), Some(JobState::Queued));
}

#[test]
fn an_offer_unanswered_for_a_lease_period_is_withdrawn_and_offered_again() {
    let (mut f, q) = started();
    f.submitted(&q, 1, 3);
    assert_eq!(offers(&f.tick()).len(), 1);
    f.advance(LEASE_MS);
    let fx = f.tick();
    assert!(writes(&fx).is_empty(), "an offer is not written");
    assert_eq!(offers(&fx).len(), 1, "offered again: {fx:?}");
    assert_eq!(f.status(&q, 1).map(|r| r.attempts), Some(0));
}

// --- leases ------------------------------------------------------------

#[test]
fn an_accepted_offer_leases_the_job_and_heartbeats_extend_the_lease() {
    let (mut f, q, w) = running();
    assert_eq!(
        f.status(&q, 1).map(|r| (r.state, r.attempts)),
        Some((JobState::Running, 1))
    );
    for _ in 0..3 {
        f.advance(LEASE_MS - 1);
        let (_, fx) = f.ask(WorkRequest::Heartbeat {
            worker: name(w),
            queue: q.clone(),
            jobs: vec![(id(1), 1)],
        });
        assert!(matches!(&answers(fx)[..], [(_, WorkResponse::Abort(stop))] if stop.is_empty()));
        assert!(writes(&f.tick()).is_empty(), "the lease holds");
    }
}

#[test]
fn a_lease_not_extended_expires_and_the_job_is_requeued_with_the_next_attempt() {
    let (mut f, _, _) = running();
    f.advance(LEASE_MS);
    let fx = f.tick();
    let written = writes(&fx);
    assert_eq!(written.len(), 1, "a requeue is written");
    assert_eq!(
        (written[0].state, written[0].attempts),
        (JobState::Queued, 1)
    );
    assert_eq!(written[0].history[0].end, AttemptEnd::LeaseExpired);
    let again: Vec<_> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Offer {
                request: WorkRequest::Offer { attempt, .. },
                ..
            } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(again, vec![2], "offered again as attempt 2");
}

#[test]
fn the_last_attempt_dead_letters_the_job_once_durable() {
    let (mut f, q) = started();
    f.submitted(&q, 1, 1);
    f.leased(&q, 1);
    f.advance(LEASE_MS);
    let written = writes(&f.tick());
    assert_eq!(written[0].state, JobState::DeadLetter);
    assert!(f.core.persisted(written[0].clone(), true).is_empty());
    assert_eq!(
        f.status(&q, 1),
        None,
        "a durable terminal job leaves the book"
    );
    let (_, fx) = f.ask(WorkRequest::Queues);
    assert!(
        matches!(&answers(fx)[..], [(_, WorkResponse::Queues(figures))] if figures[0].dead_letters == 1)
    );
}

#[test]
fn a_down_workers_jobs_are_requeued_at_the_next_tick() {
    let (mut f, _, w) = running();
    f.set(w, MemberState::Down);
    let written = writes(&f.tick());
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].state, JobState::Queued);
    assert_eq!(written[0].history[0].end, AttemptEnd::NodeDown);
}

#[test]
fn a_failure_counts_only_from_the_lease_holder() {
    let (mut f, q, w) = running();
    let other = if w == 1 { 2 } else { 1 };
    let (_, fx) = f.finish(&q, 1, other, 1, AttemptEnd::Failed("no".into()));
    assert!(writes(&fx).is_empty());
    assert!(matches!(&answers(fx)[..], [(_, WorkResponse::Ok)]));
    assert_eq!(f.status(&q, 1).map(|r| r.state), Some(JobState::Running));
    let (_, fx) = f.finish(&q, 1, w, 1, AttemptEnd::Failed("no".into()));
    assert_eq!(writes(&fx)[0].state, JobState::Queued, "retried");
}

#[test]
fn a_success_is_answered_once_the_done_record_is_durable() {
    let (mut f, q, w) = running();
    let (to, fx) = f.finish(&q, 1, w, 1, AttemptEnd::Succeeded);
    assert!(answers_of(&fx).is_empty(), "not before durable");
    let written = writes(&fx);
    assert_eq!(
        (written[0].state, written[0].result.as_slice()),
        (JobState::Done, &b"ok"[..])
    );
    let fx = f.core.persisted(written[0].clone(), true);
    assert!(matches!(&answers(fx)[..], [(t, WorkResponse::Ok)] if *t == to));
    assert_eq!(f.status(&q, 1), None);
}

#[test]
fn a_done_step_writes_its_follow_up_first_and_the_follow_up_is_offered() {
    let (mut f, q) = started();
    let mut chained = spec(&q, 3);
    chained.then = vec![crate::job::Step {
        kind: "echo".into(),
        args: BTreeMap::new(),
    }];
    f.submitted_spec(1, chained);
    let w = f.leased(&q, 1);
    let (to, fx) = f.finish(&q, 1, w, 1, AttemptEnd::Succeeded);
    let Some(Effect::Write { record, next }) =
        fx.iter().find(|e| matches!(e, Effect::Write { .. }))
    else {
        panic!("a write");
    };
    let next = *next
        .clone()
        .expect("the follow-up goes with the done record");
    assert_eq!(record.state, JobState::Done);
    assert_eq!(Some(next.id), crate::chain::next_id(record));
    assert_eq!(
        next.spec.payload,
        crate::job::Payload::Bytes(b"ok".to_vec())
    );
    let mut fx = f.core.persisted(record.clone(), true);
    fx.extend(f.core.chained(f.now_ms, next.clone()));
    assert!(matches!(&answers(fx)[..], [(t, WorkResponse::Ok)] if *t == to));
    let (_, fx) = f.ask(WorkRequest::Status {
        queue: q.clone(),
        id: next.id,
    });
    assert!(matches!(
        &answers(fx)[..],
        [(_, WorkResponse::Record(Some(r)))] if r.state == JobState::Queued
    ));
    assert!(offers(&f.tick()).iter().any(|(j, _)| *j == next.id));
    // Found done in the log (a rerun of the step): not queued again.
    let (mut g, q2) = started();
    g.submitted(&q2, 2, 3);
    let mut done = next;
    done.spec.queue = q2;
    done.state = JobState::Done;
    assert!(g.core.chained(g.now_ms, done).is_empty());
    g.core.check().expect("invariants");
}

fn answers_of(fx: &Effects<u32>) -> Vec<u32> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Reply { to, .. } => Some(*to),
            _ => None,
        })
        .collect()
}

// --- cancel --------------------------------------------------------------

#[test]
fn cancel_stops_the_running_attempt_and_answers_once_durable() {
    let (mut f, q, w) = running();
    let (to, fx) = f.ask(WorkRequest::Cancel {
        queue: q.clone(),
        id: id(1),
    });
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Abort { member, id: j } if *member == key(w) && *j == id(1))));
    assert!(answers_of(&fx).is_empty());
    let written = writes(&fx);
    assert_eq!(written[0].state, JobState::Cancelled);
    // Its worker still heartbeats it meanwhile: told to stop.
    let (_, hb) = f.ask(WorkRequest::Heartbeat {
        worker: name(w),
        queue: q.clone(),
        jobs: vec![(id(1), 1)],
    });
    assert!(matches!(&answers(hb)[..], [(_, WorkResponse::Abort(stop))] if *stop == vec![id(1)]));
    let fx = f.core.persisted(written[0].clone(), true);
    assert!(
        matches!(&answers(fx)[..], [(t, WorkResponse::Record(Some(r)))] if *t == to && r.state == JobState::Cancelled)
    );
}

#[test]
fn an_acceptance_of_a_job_cancelled_meanwhile_aborts_it() {
    let (mut f, q) = started();
    f.submitted(&q, 1, 3);
    let (_, worker) = offers(&f.tick()).remove(0);
    let _ = f.ask(WorkRequest::Cancel {
        queue: q.clone(),
        id: id(1),
    });
    let fx = f.answer(&q, 1, worker_number(&worker), Ok(OfferAnswer::Accepted));
    assert!(matches!(&fx[..], [Effect::Abort { id: j, .. }] if *j == id(1)));
}

// --- durable writes -------------------------------------------------------

#[test]
fn one_write_per_job_is_in_flight_and_the_newest_record_goes_next() {
    let (mut f, q, _) = running();
    f.advance(LEASE_MS);
    let first = writes(&f.tick());
    assert_eq!(first[0].state, JobState::Queued);
    let (_, fx) = f.ask(WorkRequest::Cancel {
        queue: q.clone(),
        id: id(1),
    });
    assert!(writes(&fx).is_empty(), "waits for the write in flight");
    let fx = f.core.persisted(first[0].clone(), true);
    let next = writes(&fx);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].state, JobState::Cancelled, "the newest record");
}

#[test]
fn a_failed_write_is_retried_at_the_next_tick() {
    let (mut f, q, w) = running();
    let (to, fx) = f.finish(&q, 1, w, 1, AttemptEnd::Succeeded);
    let done = writes(&fx).remove(0);
    assert!(
        f.core.persisted(done.clone(), false).is_empty(),
        "no answer yet"
    );
    let again = writes(&f.tick());
    assert_eq!(again, vec![done.clone()]);
    let fx = f.core.persisted(done, true);
    assert_eq!(answers_of(&fx), vec![to]);
}

// --- takeover and hand-back -------------------------------------------------

/// A queue node 1 owns, registered, with one job queued in its log; node
/// 1 then goes Down and this owner takes the queue over.
fn taken_over(f: &mut Fix) -> (String, JobRecord) {
    let q = queue_of(1);
    let _ = f.core.scan();
    assert!(
        f.core.scanned(f.now_ms, Some(vec![q.clone()])).is_empty(),
        "not ours yet"
    );
    f.set(1, MemberState::Down);
    let _ = f.core.scan();
    let fx = f.core.scanned(f.now_ms, Some(vec![q.clone()]));
    assert_eq!(loads(&fx), vec![q.clone()], "the new owner reads the log");
    let record = JobRecord::new(id(7), spec(&q, 3), f.now_ms - 10_000);
    (q, record)
}

#[test]
fn takeover_loads_the_queued_jobs_of_the_log_and_offers_them() {
    let mut f = Fix::new();
    let (q, record) = taken_over(&mut f);
    let mut done = JobRecord::new(id(8), spec(&q, 3), 0);
    done.state = JobState::Done;
    f.core.loaded(f.now_ms, &q, vec![record, done], 0, true);
    assert_eq!(f.status(&q, 8), None, "terminal records are not loaded");
    assert_eq!(offers(&f.tick()), vec![(id(7), name(2))]);
}

#[test]
fn a_new_owner_adopts_a_job_its_worker_heartbeats_instead_of_running_it_again() {
    let mut f = Fix::new();
    let (q, record) = taken_over(&mut f);
    f.core.loaded(f.now_ms, &q, vec![record], 0, true);
    let (_, fx) = f.ask(WorkRequest::Heartbeat {
        worker: name(2),
        queue: q.clone(),
        jobs: vec![(id(7), 1)],
    });
    assert!(matches!(&answers(fx)[..], [(_, WorkResponse::Abort(stop))] if stop.is_empty()));
    assert_eq!(f.status(&q, 7).map(|r| r.state), Some(JobState::Running));
    assert!(offers(&f.tick()).is_empty());
}

#[test]
fn a_success_for_a_job_never_loaded_is_recorded_done() {
    let mut f = Fix::new();
    let (q, _) = taken_over(&mut f);
    let (to, fx) = f.finish(&q, 9, 2, 2, AttemptEnd::Succeeded);
    let written = writes(&fx);
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].state, JobState::Done);
    assert_eq!(written[0].history[0].number, 2);
    assert_eq!(
        answers_of(&f.core.persisted(written[0].clone(), true)),
        vec![to]
    );
}

#[test]
fn a_failure_for_a_job_never_loaded_is_acknowledged_and_not_recorded() {
    let mut f = Fix::new();
    let (q, _) = taken_over(&mut f);
    let (_, fx) = f.finish(&q, 9, 2, 1, AttemptEnd::Failed("no".into()));
    assert!(writes(&fx).is_empty());
    assert!(matches!(&answers(fx)[..], [(_, WorkResponse::Ok)]));
}

#[test]
fn a_listing_that_missed_a_member_is_redone_at_the_next_scan() {
    let mut f = Fix::new();
    let (q, record) = taken_over(&mut f);
    f.core.loaded(f.now_ms, &q, vec![record], 0, false);
    let _ = f.core.scan();
    assert_eq!(loads(&f.core.scanned(f.now_ms, None)), vec![q]);
}

#[test]
fn a_loaded_queue_is_read_again_every_five_scans() {
    let mut f = Fix::new();
    let (q, _) = taken_over(&mut f);
    f.core.loaded(f.now_ms, &q, Vec::new(), 0, true);
    f.advance(5 * SCAN_MS - 1);
    let _ = f.core.scan();
    assert!(loads(&f.core.scanned(f.now_ms, None)).is_empty());
    f.advance(1);
    let _ = f.core.scan();
    assert_eq!(loads(&f.core.scanned(f.now_ms, None)), vec![q]);
}

#[test]
fn a_queue_now_owned_elsewhere_is_let_go_without_writing() {
    let mut f = Fix::new();
    let (q, record) = taken_over(&mut f);
    f.core.loaded(f.now_ms, &q, vec![record], 0, true);
    f.set(1, MemberState::Up);
    let _ = f.core.scan();
    assert!(f.core.scanned(f.now_ms, None).is_empty());
    let (_, fx) = f.ask(WorkRequest::Queues);
    assert!(matches!(&answers(fx)[..], [(_, WorkResponse::Queues(figures))] if figures.is_empty()));
    let (_, fx) = f.finish(&q, 7, 2, 1, AttemptEnd::Succeeded);
    assert_eq!(code(&answers(fx)[0].1), Some(ErrorCode::NotOwner));
}

#[test]
fn one_registry_read_at_a_time() {
    let mut f = Fix::new();
    assert_eq!(f.core.scan().len(), 1);
    assert!(f.core.scan().is_empty());
    let _ = f.core.scanned(f.now_ms, None);
    assert_eq!(f.core.scan().len(), 1);
}

// --- listing -------------------------------------------------------------

#[test]
fn listing_an_owned_queue_before_its_log_is_known_asks_the_client_to_retry() {
    let mut f = Fix::new();
    let q = queue_of(0);
    let list = |q: &str| WorkRequest::List {
        queue: q.into(),
        state: None,
        limit: 10,
    };
    let (_, fx) = f.ask(list(&q));
    assert_eq!(
        code(&answers(fx)[0].1),
        Some(ErrorCode::Unavailable),
        "before the first scan"
    );
    f.boot();
    let (_, fx) = f.ask(list(&q));
    assert!(
        matches!(&answers(fx)[..], [(_, WorkResponse::Records(r))] if r.is_empty()),
        "an unregistered queue is empty"
    );
    let (_, fx) = f.ask(list(&queue_of(1)));
    assert_eq!(code(&answers(fx)[0].1), Some(ErrorCode::NotOwner));
}

#[test]
fn a_listing_is_in_submission_order_filtered_and_limited() {
    let (mut f, q) = started();
    for n in [3, 1, 2] {
        f.submitted(&q, n, 3);
        f.advance(1);
    }
    let (_, fx) = f.ask(WorkRequest::List {
        queue: q.clone(),
        state: Some(JobState::Queued),
        limit: 2,
    });
    let Some((_, WorkResponse::Records(records))) = answers(fx).pop() else {
        panic!("no records");
    };
    let ids: Vec<JobId> = records.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![id(3), id(1)]);
}

#[test]
fn requests_meant_for_a_worker_are_bad_requests() {
    let mut f = Fix::new();
    let (_, fx) = f.ask(WorkRequest::Abort { id: id(1) });
    assert_eq!(code(&answers(fx)[0].1), Some(ErrorCode::BadRequest));
}

#[test]
fn gauges_count_queued_in_flight_and_owned_queues() {
    let (mut f, q) = started();
    f.submitted(&q, 1, 3);
    f.submitted(&q, 2, 3);
    f.submitted(&q, 3, 3);
    let fx = f.tick();
    let gauges = fx.iter().find_map(|e| match e {
        Effect::Gauges(g) => Some(*g),
        _ => None,
    });
    assert_eq!(
        gauges,
        Some(Gauges {
            queued: 1,
            in_flight: 2,
            dead_letters: 0,
            owned_queues: 1,
        })
    );
}

// --- property: invariants after every step ------------------------------

#[derive(Debug, Clone)]
enum Op {
    Submit(u8),
    Tick,
    Advance(u64),
    /// Answer the oldest offer: accept, decline or fail.
    AnswerOffer(u8),
    /// Complete the oldest write, ok or not.
    CompleteWrite(bool),
    CompleteSubmit(bool),
    Heartbeat(u8),
    Finish(u8, bool),
    Cancel(u8),
    Down(u8),
    Up(u8),
    Scan,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6).prop_map(Op::Submit),
        Just(Op::Tick),
        (1u64..1_500).prop_map(Op::Advance),
        (0u8..3).prop_map(Op::AnswerOffer),
        any::<bool>().prop_map(Op::CompleteWrite),
        any::<bool>().prop_map(Op::CompleteSubmit),
        (1u8..3).prop_map(Op::Heartbeat),
        ((0u8..6), any::<bool>()).prop_map(|(n, ok)| Op::Finish(n, ok)),
        (0u8..6).prop_map(Op::Cancel),
        (1u8..3).prop_map(Op::Down),
        (1u8..3).prop_map(Op::Up),
        Just(Op::Scan),
    ]
}

/// What the shell would be carrying out, and what every caller heard.
#[derive(Default)]
struct World {
    offers: Vec<(JobId, String, u32)>,
    writes: Vec<JobRecord>,
    submits: Vec<(JobRecord, u32)>,
    reads: u32,
    answered: HashSet<u32>,
    /// Callers, with the job each asked about.
    asked: HashMap<u32, Option<JobId>>,
}

impl World {
    fn take(&mut self, fx: Effects<u32>) -> Result<(), TestCaseError> {
        for e in fx {
            match e {
                Effect::Reply { to, .. } => {
                    prop_assert!(self.asked.contains_key(&to), "reply to an unknown caller");
                    prop_assert!(self.answered.insert(to), "caller {} answered twice", to);
                }
                Effect::Write { record, .. } => {
                    prop_assert!(
                        !self.writes.iter().any(|w| w.id == record.id),
                        "two writes in flight for {}",
                        record.id
                    );
                    self.writes.push(record);
                }
                Effect::Offer {
                    id,
                    worker,
                    request,
                    ..
                } => {
                    let WorkRequest::Offer { attempt, .. } = request else {
                        return Err(TestCaseError::fail("an offer that is not an offer"));
                    };
                    self.offers.push((id, worker, attempt));
                }
                Effect::Submit { record, reply, .. } => self.submits.push((record, reply)),
                Effect::ReadRegistry => self.reads += 1,
                Effect::Load { .. } | Effect::Abort { .. } | Effect::Gauges(_) => {}
            }
        }
        Ok(())
    }
}

fn step(f: &mut Fix, w: &mut World, q: &str, op: Op) -> Result<(), TestCaseError> {
    let fx = match op {
        Op::Submit(n) => {
            let (to, fx) = f.ask(WorkRequest::Submit {
                id: id(n),
                spec: spec(q, 2),
            });
            w.asked.insert(to, Some(id(n)));
            for e in &fx {
                if let Effect::Load { queue } = e {
                    f.core.loaded(f.now_ms, queue, Vec::new(), 0, true);
                }
            }
            fx
        }
        Op::Tick => {
            let mut fx = f.core.tick(f.now_ms);
            fx.extend(f.core.dispatch(f.now_ms, &|_| HashSet::new()));
            fx
        }
        Op::Advance(ms) => {
            f.advance(ms);
            Vec::new()
        }
        Op::AnswerOffer(kind) if !w.offers.is_empty() => {
            let (job, worker, _) = w.offers.remove(0);
            let answer = match kind {
                0 => Ok(OfferAnswer::Accepted),
                1 => Ok(OfferAnswer::Busy),
                _ => Err("timeout".to_owned()),
            };
            f.core.offer_answered(f.now_ms, q, job, &worker, answer)
        }
        Op::CompleteWrite(ok) if !w.writes.is_empty() => {
            let record = w.writes.remove(0);
            f.core.persisted(record, ok)
        }
        Op::CompleteSubmit(ok) if !w.submits.is_empty() => {
            let (record, to) = w.submits.remove(0);
            let result = if ok { Ok(()) } else { Err("no quorum".into()) };
            f.core.submitted(f.now_ms, record, false, result, to)
        }
        Op::Heartbeat(worker) => {
            let jobs = w
                .offers
                .iter()
                .filter(|(_, o, _)| *o == name(worker))
                .map(|(j, _, a)| (*j, *a))
                .collect();
            let (to, fx) = f.ask(WorkRequest::Heartbeat {
                worker: name(worker),
                queue: q.into(),
                jobs,
            });
            w.asked.insert(to, None);
            fx
        }
        Op::Finish(n, ok) => {
            let held = f.status(q, n).and_then(|r| {
                let last = r.history.last()?;
                Some((worker_number(&last.worker), last.number))
            });
            let (worker, attempt) = held.unwrap_or((1, 1));
            let end = if ok {
                AttemptEnd::Succeeded
            } else {
                AttemptEnd::Failed("no".into())
            };
            let (to, fx) = f.finish(q, n, worker, attempt, end);
            w.asked.insert(to, Some(id(n)));
            fx
        }
        Op::Cancel(n) => {
            let (to, fx) = f.ask(WorkRequest::Cancel {
                queue: q.into(),
                id: id(n),
            });
            w.asked.insert(to, Some(id(n)));
            fx
        }
        Op::Down(n) => {
            f.set(n, MemberState::Down);
            Vec::new()
        }
        Op::Up(n) => {
            f.set(n, MemberState::Up);
            Vec::new()
        }
        Op::Scan if w.reads == 0 => f.core.scan(),
        Op::Scan => {
            w.reads -= 1;
            f.core.scanned(f.now_ms, Some(vec![q.to_owned()]))
        }
        _ => Vec::new(),
    };
    w.take(fx)?;
    f.core
        .check()
        .map_err(|e| TestCaseError::fail(format!("after {op:?}: {e}")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// After every step: each book's invariants, waiters only with a write
    /// pending, offers within the budget, at most one write in flight per
    /// job, every caller answered at most once. Then, once the writes and
    /// submits in flight complete, every caller has been answered but
    /// those whose job is still held (and will end).
    #[test]
    fn owner_invariants_hold_after_every_step(ops in proptest::collection::vec(op(), 1..80)) {
        let mut f = Fix::with(WorkSettings { max_offers_in_flight: 3, ..settings() });
        let mut w = World::default();
        let q = queue_of(0);
        for op in ops {
            step(&mut f, &mut w, &q, op)?;
        }
        // Settle: every write and submit completes (failed writes are
        // retried at ticks) until nothing is in flight.
        for _ in 0..64 {
            step(&mut f, &mut w, &q, Op::Tick)?;
            if w.writes.is_empty() && w.submits.is_empty() {
                break;
            }
            step(&mut f, &mut w, &q, Op::CompleteWrite(true))?;
            step(&mut f, &mut w, &q, Op::CompleteSubmit(true))?;
        }
        // A caller still waiting waits for a job the owner still holds
        // (a failure report's answer waits for the job's terminal record).
        let waiting: Vec<(u32, Option<JobId>)> = w
            .asked
            .iter()
            .filter(|(to, _)| !w.answered.contains(to))
            .map(|(to, job)| (*to, *job))
            .collect();
        for (to, job) in waiting {
            let held = job.and_then(|j| f.status(&q, j.0[0]));
            prop_assert!(
                held.is_some_and(|r| !r.state.is_terminal()),
                "caller {} never answered, its job not held", to
            );
        }
    }
}
