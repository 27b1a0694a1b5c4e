//! The coordinator's rules (docs/dht.md, "Files"), one test each, on the
//! pure core: no network, no runtime, no sleep. Time is an `Instant`
//! passed in, moved by hand.

use std::collections::BTreeSet;
use std::time::Duration;

use hypha_cluster::membership::MemberKey;
use hypha_core::clock::{ManualClock, SharedClock};
use proptest::prelude::*;
use tokio::time::Instant;

use super::call::{Answer, Effect, Pace, QuorumCall};
use super::verdict::*;
use crate::files::error::FilesError;
use crate::files::quorum::Gathered;
use crate::hlc::{Hlc, Timestamp};
use crate::manifest::{ChunkRef, FileState, Manifest, MANIFEST_FORMAT};
use crate::transport::RpcError;
use crate::wire::{ErrorCode, PutOutcome, Response, Standing, WireError};

/// An instant to start from, on a clock that moves only by hand.
fn t0() -> Instant {
    SharedClock::new(ManualClock::new(0)).now()
}

fn member(i: usize) -> MemberKey {
    MemberKey::new(format!("m{i}"), 1)
}

fn members(n: usize) -> Vec<MemberKey> {
    (0..n).map(member).collect()
}

fn calls(effects: &[Effect]) -> Vec<MemberKey> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Call(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

const WRITE: Pace = Pace::AllAtOnce {
    straggler: Duration::ZERO,
};
const HEDGE: Duration = Duration::from_millis(20);
const READ: Pace = Pace::Hedged { hedge: HEDGE };

fn gathered(ok: Vec<(usize, Response)>, failed: Vec<(usize, RpcError)>) -> Gathered {
    Gathered {
        ok: ok.into_iter().map(|(i, r)| (member(i), r)).collect(),
        failed: failed.into_iter().map(|(i, e)| (member(i), e)).collect(),
        ..Gathered::default()
    }
}

fn refused(code: ErrorCode) -> RpcError {
    RpcError::Remote(WireError::new(code, "refused"))
}

fn manifest(modified_ms: u64, writer: u8, state: FileState) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        name: "f".into(),
        size: 0,
        chunks: Vec::new(),
        root: [0; 32],
        created: Timestamp::from_unix_ms(1),
        modified: Timestamp::from_unix_ms(modified_ms),
        writer: [writer; 32],
        content_type: String::new(),
        labels: Default::default(),
        state,
        inline: Vec::new(),
    }
}

fn live(modified_ms: u64) -> Manifest {
    manifest(modified_ms, 1, FileState::Live)
}

fn holds(m: Option<Manifest>, standing: Standing) -> Response {
    Response::ReplicaManifest {
        manifest: m,
        standing,
    }
}

fn found(verdict: ReadVerdict) -> ReadFound {
    match verdict.outcome {
        Ok(found) => found,
        Err(e) => panic!("the read must succeed: {e}"),
    }
}

fn is_quorum_error(result: &Result<ReadFound, FilesError>) -> bool {
    matches!(result, Err(FilesError::Quorum { .. }))
}

// ---- pacing: whom a quorum call asks, and when it is over ----

#[test]
fn a_write_asks_every_replica_at_once() {
    let (call, effects) = QuorumCall::start(members(3), 2, WRITE, t0());
    assert_eq!(calls(&effects), members(3));
    assert!(!call.is_finished());
}

#[test]
fn a_write_is_over_at_w_once_the_straggler_grace_ends() {
    let t0 = t0();
    let straggler = Duration::from_millis(50);
    let pace = Pace::AllAtOnce { straggler };
    let (mut call, _) = QuorumCall::start(members(3), 2, pace, t0);
    assert!(call.on_answer(&member(0), Answer::Counts, t0).is_empty());
    let at_w = call.on_answer(&member(1), Answer::Counts, t0 + HEDGE);
    assert_eq!(at_w, vec![Effect::WakeAt(t0 + HEDGE + straggler)]);
    assert_eq!(call.on_wake(), vec![Effect::Finish], "the third is a tail");
    assert_eq!(call.outstanding(), 1);
}

#[test]
fn a_write_that_cannot_reach_w_waits_for_every_answer() {
    let t0 = t0();
    let (mut call, _) = QuorumCall::start(members(3), 3, WRITE, t0);
    call.on_answer(&member(0), Answer::Counts, t0);
    call.on_answer(&member(1), Answer::Failed, t0);
    assert_eq!(call.wake_at(), None, "no grace below the quorum");
    assert!(!call.is_finished());
    let last = call.on_answer(&member(2), Answer::Counts, t0);
    assert_eq!(last, vec![Effect::Finish]);
}

#[test]
fn a_read_asks_only_its_quorum_in_order_of_preference() {
    let t0 = t0();
    let (call, effects) = QuorumCall::start(members(3), 2, READ, t0);
    assert_eq!(
        effects,
        vec![
            Effect::Call(member(0)),
            Effect::Call(member(1)),
            Effect::WakeAt(t0 + HEDGE)
        ]
    );
    assert_eq!(call.asked(), 2);
}

#[test]
fn a_failed_read_answer_brings_in_the_next_replica_at_once() {
    let t0 = t0();
    let (mut call, _) = QuorumCall::start(members(3), 2, READ, t0);
    let next = call.on_answer(&member(0), Answer::Failed, t0);
    assert_eq!(next, vec![Effect::Call(member(2))], "no hedge wait");
}

#[test]
fn a_catching_up_answer_is_data_not_quorum_and_brings_in_the_next() {
    let t0 = t0();
    let (mut call, _) = QuorumCall::start(members(3), 2, READ, t0);
    let next = call.on_answer(&member(0), Answer::Uncounted, t0);
    assert_eq!(next, vec![Effect::Call(member(2))]);
    call.on_answer(&member(1), Answer::Counts, t0);
    assert_eq!(call.counted(), 1, "the catching-up answer did not count");
    assert!(!call.is_finished());
    assert_eq!(
        call.on_answer(&member(2), Answer::Counts, t0),
        vec![Effect::Finish]
    );
}

#[test]
fn a_late_read_quorum_hedges_to_every_other_replica() {
    let t0 = t0();
    let (mut call, _) = QuorumCall::start(members(4), 2, READ, t0);
    call.on_answer(&member(0), Answer::Counts, t0);
    assert_eq!(call.wake_at(), Some(t0 + HEDGE));
    let hedged = call.on_wake();
    assert_eq!(calls(&hedged), vec![member(2), member(3)]);
    assert!(call.hedged() && call.wake_at().is_none());
    let done = call.on_answer(&member(3), Answer::Counts, t0 + HEDGE);
    assert_eq!(
        done,
        vec![Effect::Finish],
        "a frozen replica costs the hedge"
    );
}

#[test]
fn a_read_is_over_at_its_quorum_and_drops_the_rest() {
    let t0 = t0();
    let (mut call, _) = QuorumCall::start(members(3), 2, READ, t0);
    call.on_wake();
    call.on_answer(&member(2), Answer::Counts, t0);
    let done = call.on_answer(&member(0), Answer::Counts, t0);
    assert_eq!(done, vec![Effect::Finish]);
    assert_eq!(call.outstanding(), 1, "left running, for the shell to drop");
    assert!(call.on_answer(&member(1), Answer::Counts, t0).is_empty());
}

#[test]
fn a_read_with_too_few_replicas_ends_when_all_answered() {
    let t0 = t0();
    let (mut call, _) = QuorumCall::start(members(2), 2, READ, t0);
    call.on_answer(&member(0), Answer::Counts, t0);
    let done = call.on_answer(&member(1), Answer::Failed, t0);
    assert_eq!(done, vec![Effect::Finish]);
    assert_eq!(call.counted(), 1);
}

#[test]
fn an_answer_is_never_counted_twice() {
    let t0 = t0();
    let (mut call, _) = QuorumCall::start(members(3), 3, WRITE, t0);
    call.on_answer(&member(0), Answer::Counts, t0);
    assert!(call.on_answer(&member(0), Answer::Counts, t0).is_empty());
    assert!(call.on_answer(&member(9), Answer::Counts, t0).is_empty());
    assert_eq!(call.counted(), 1);
}

// ---- write acknowledgement ----

#[test]
fn a_write_is_acknowledged_at_w() {
    let g = gathered(
        vec![(0, Response::ChunkStored), (1, Response::ChunkStored)],
        vec![],
    );
    let ack = write_verdict(2, &g).map_err(|e| e.to_string());
    assert_eq!(
        ack,
        Ok(WriteAck {
            acks: 2,
            superseded: false
        })
    );
}

#[test]
fn a_not_replica_refusal_is_not_an_acknowledgement() {
    let refusal: Result<Response, RpcError> = Err(refused(ErrorCode::NotReplica));
    assert_eq!(write_answer(&refusal), Answer::Failed);
    let g = gathered(
        vec![(0, Response::ChunkStored)],
        vec![(1, refused(ErrorCode::NotReplica))],
    );
    match write_verdict(2, &g) {
        Err(FilesError::Quorum {
            needed: 2, got: 1, ..
        }) => {}
        other => panic!("one ack and one refusal is no W of 2: {other:?}"),
    }
}

#[test]
fn a_write_below_w_is_a_503() {
    let g = gathered(vec![], vec![(0, RpcError::Timeout(5_000))]);
    assert!(matches!(
        write_verdict(1, &g),
        Err(FilesError::Quorum { .. })
    ));
}

#[test]
fn a_write_every_replica_refused_for_a_full_disk_is_disk_full() {
    let g = gathered(
        vec![(0, Response::ChunkStored)],
        vec![(1, refused(ErrorCode::DiskFull))],
    );
    assert!(matches!(write_verdict(2, &g), Err(FilesError::DiskFull(_))));
}

#[test]
fn a_write_that_lost_last_writer_wins_somewhere_says_superseded() {
    let g = gathered(
        vec![
            (0, Response::ManifestPut(PutOutcome::Stored)),
            (1, Response::ManifestPut(PutOutcome::Superseded)),
        ],
        vec![],
    );
    assert!(write_verdict(2, &g).is_ok_and(|ack| ack.superseded));
}

#[test]
fn a_write_fails_at_once_when_fewer_than_w_replicas_are_up() {
    assert!(enough_live(2, 3, 2).is_ok());
    match enough_live(2, 3, 1) {
        Err(FilesError::Quorum {
            needed: 2, got: 1, ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_read_before_a_write_refuses_a_sub_quorum_answer() {
    // The partition-test case: two replicas timed out, the third said
    // "absent". A DELETE must not answer 404 from that, nor a PUT stamp
    // its version from it.
    let g = gathered(
        vec![(0, holds(None, Standing::Serving))],
        vec![(1, RpcError::Timeout(3_000)), (2, RpcError::Timeout(3_000))],
    );
    let read = read_verdict(2, READ_BEFORE_WRITE, &g).outcome;
    assert!(is_quorum_error(&read), "{read:?}");
    // Nor does an answer from a node that is no replica in its own view.
    let g = gathered(
        vec![
            (0, holds(None, Standing::Serving)),
            (3, holds(None, Standing::NotReplica)),
        ],
        vec![(1, RpcError::Timeout(3_000))],
    );
    let read = read_verdict(2, READ_BEFORE_WRITE, &g).outcome;
    assert!(is_quorum_error(&read), "{read:?}");
}

#[test]
fn a_read_before_a_write_counts_replicas_still_catching_up() {
    // A cluster just started: its replicas have not finished their first
    // round of exchanges. A write still reads a quorum of them (and the
    // newest version among them); a quorum read would be refused.
    let g = gathered(
        vec![
            (0, holds(Some(live(5)), Standing::CatchingUp)),
            (1, holds(None, Standing::CatchingUp)),
        ],
        vec![],
    );
    let read = found(read_verdict(2, READ_BEFORE_WRITE, &g));
    assert_eq!(read.newest, Some(live(5)));
    assert!(read.degraded);
    assert!(is_quorum_error(
        &read_verdict(2, ReadConsistency::Quorum, &g).outcome
    ));
}

#[test]
fn only_serving_answers_count_toward_the_read_quorum() {
    let counts = |standing| counts_toward_quorum(&holds(None, standing));
    assert!(counts(Standing::Serving));
    assert!(!counts(Standing::CatchingUp));
    assert!(!counts(Standing::NotReplica));
    let chunk_answer = Response::Chunk(None);
    assert!(
        !counts_toward_quorum(&chunk_answer),
        "not a manifest answer"
    );
}

#[test]
fn a_quorum_read_whose_answers_are_catching_up_is_a_503_saying_so() {
    let g = gathered(
        vec![
            (0, holds(Some(live(5)), Standing::Serving)),
            (1, holds(Some(live(5)), Standing::CatchingUp)),
        ],
        vec![],
    );
    match read_verdict(2, ReadConsistency::Quorum, &g).outcome {
        Err(FilesError::Quorum {
            needed: 2,
            got: 1,
            detail,
        }) => assert!(detail.contains("do not yet hold"), "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_available_read_below_its_quorum_is_served_degraded() {
    let g = gathered(vec![(0, holds(Some(live(5)), Standing::Serving))], vec![]);
    let read = found(read_verdict(2, ReadConsistency::Available, &g));
    assert!(read.degraded);
    assert_eq!(read.newest, Some(live(5)));
}

#[test]
fn a_read_at_its_quorum_is_not_degraded() {
    let g = gathered(
        vec![
            (0, holds(Some(live(5)), Standing::Serving)),
            (1, holds(None, Standing::Serving)),
        ],
        vec![],
    );
    let read = found(read_verdict(2, ReadConsistency::Quorum, &g));
    assert!(!read.degraded);
    assert_eq!(read.answered, 2);
}

#[test]
fn a_read_with_no_answers_is_a_503_never_a_404() {
    let g = gathered(vec![], vec![(0, RpcError::Unreachable("down".into()))]);
    for consistency in [ReadConsistency::Quorum, ReadConsistency::Available] {
        assert!(is_quorum_error(&read_verdict(2, consistency, &g).outcome));
    }
}

#[test]
fn a_delete_whose_read_heard_no_replica_is_a_503_never_a_404() {
    let g = gathered(vec![], vec![(0, RpcError::Timeout(5_000))]);
    let read = read_verdict(2, READ_BEFORE_WRITE, &g).outcome;
    assert!(is_quorum_error(&read), "{read:?}");
}

#[test]
fn a_file_no_answering_replica_holds_is_a_404() {
    let g = gathered(
        vec![
            (0, holds(None, Standing::Serving)),
            (1, holds(None, Standing::Serving)),
        ],
        vec![],
    );
    let read = found(read_verdict(2, ReadConsistency::Quorum, &g));
    assert!(matches!(
        live_or_not_found("f", read.newest),
        Err(FilesError::NotFound(_))
    ));
}

#[test]
fn a_deleted_file_reads_as_a_404() {
    let dead = manifest(9, 1, FileState::Tombstone);
    assert!(matches!(
        live_or_not_found("f", Some(dead)),
        Err(FilesError::NotFound(_))
    ));
    assert_eq!(live_or_not_found("f", Some(live(9))).ok(), Some(live(9)));
}

// ---- versions: newest wins, HLC order ----

#[test]
fn the_newest_version_wins_by_hlc_then_writer() {
    let older = manifest(5, 9, FileState::Live);
    let same_time_lower_writer = manifest(7, 1, FileState::Live);
    let winner = manifest(7, 2, FileState::Live);
    let g = gathered(
        vec![
            (0, holds(Some(older), Standing::Serving)),
            (1, holds(Some(winner.clone()), Standing::Serving)),
            (2, holds(Some(same_time_lower_writer), Standing::CatchingUp)),
        ],
        vec![],
    );
    let read = found(read_verdict(2, ReadConsistency::Quorum, &g));
    assert_eq!(read.newest, Some(winner));
}

#[test]
fn a_not_replica_answer_is_data_for_the_newest_version() {
    let g = gathered(
        vec![
            (0, holds(Some(live(5)), Standing::Serving)),
            (1, holds(Some(live(8)), Standing::NotReplica)),
        ],
        vec![],
    );
    let read = found(read_verdict(1, ReadConsistency::Quorum, &g));
    assert_eq!(read.newest, Some(live(8)));
}

#[test]
fn a_new_version_orders_after_the_one_it_read_even_with_a_clock_behind() {
    let manual = ManualClock::new(1_000);
    let hlc = Hlc::new(SharedClock::new(manual.clone()));
    let read = live(50_000);
    hlc.observe(read.modified);
    let stamp = Stamp {
        modified: hlc.now(),
        writer: [0; 32],
    };
    let stored = Stored {
        chunks: Vec::new(),
        inline: Vec::new(),
        size: 0,
        root: [0; 32],
    };
    let next = live_manifest(
        "f",
        String::new(),
        Default::default(),
        stored,
        Some(&read),
        stamp,
    );
    assert!(next.version() > read.version());
    assert_eq!(next.created, read.created, "an overwrite keeps created");
}

#[test]
fn a_write_after_a_delete_starts_a_new_created() {
    let dead = manifest(9, 1, FileState::Tombstone);
    let now = Timestamp::from_unix_ms(10);
    assert_eq!(created_of(Some(&dead), now), now);
    assert_eq!(created_of(None, now), now);
    assert_eq!(created_of(Some(&live(9)), now), live(9).created);
}

#[test]
fn a_tombstone_orders_after_what_it_deletes_and_keeps_created() {
    let hlc = Hlc::new(SharedClock::new(ManualClock::new(100)));
    let old = live(9_000);
    hlc.observe(old.modified);
    let stamp = Stamp {
        modified: hlc.now(),
        writer: [3; 32],
    };
    let dead = tombstone(&old, stamp);
    assert!(!dead.is_live());
    assert!(dead.version() > old.version());
    assert_eq!((dead.created, dead.name.as_str()), (old.created, "f"));
    assert!(dead.chunks.is_empty() && dead.inline.is_empty());
}

// ---- read repair ----

#[test]
fn read_repair_gives_the_newest_to_replicas_with_an_older_version_or_none() {
    let g = gathered(
        vec![
            (0, holds(Some(live(9)), Standing::Serving)),
            (1, holds(Some(live(3)), Standing::Serving)),
            (2, holds(None, Standing::CatchingUp)),
        ],
        vec![],
    );
    let read = found(read_verdict(2, ReadConsistency::Quorum, &g));
    assert_eq!(read.repair, vec![member(1), member(2)]);
}

#[test]
fn read_repair_skips_nodes_that_are_not_replicas() {
    let g = gathered(
        vec![
            (0, holds(Some(live(9)), Standing::Serving)),
            (1, holds(None, Standing::NotReplica)),
        ],
        vec![],
    );
    let read = found(read_verdict(1, ReadConsistency::Quorum, &g));
    assert!(read.repair.is_empty());
}

#[test]
fn nothing_is_repaired_when_no_replica_holds_the_file() {
    let g = gathered(vec![(0, holds(None, Standing::Serving))], vec![]);
    assert!(found(read_verdict(1, ReadConsistency::Quorum, &g))
        .repair
        .is_empty());
}

#[test]
fn a_manifest_failing_verification_counts_as_absent_and_is_repaired() {
    let mut bad = live(20);
    bad.inline = b"not what the root says".to_vec();
    let g = gathered(
        vec![
            (0, holds(Some(bad), Standing::Serving)),
            (1, holds(Some(live(9)), Standing::Serving)),
        ],
        vec![],
    );
    let verdict = read_verdict(2, ReadConsistency::Quorum, &g);
    assert_eq!(verdict.unverified, 1);
    let read = found(verdict);
    assert_eq!(read.newest, Some(live(9)), "the bad copy never wins");
    assert_eq!(read.repair, vec![member(0)]);
}

// ---- chunk reads: verified, skipped, repaired ----

const CHUNK: ChunkRef = ChunkRef {
    hash: [7; 32],
    len: 10,
};

#[test]
fn a_chunk_is_served_only_when_it_verifies() {
    let good = ChunkCopy::Bytes {
        hash: [7; 32],
        len: 10,
    };
    assert_eq!(judge_chunk(good, CHUNK, Source::Replica), ChunkStep::Serve);
    let wrong_hash = ChunkCopy::Bytes {
        hash: [8; 32],
        len: 10,
    };
    let short = ChunkCopy::Bytes {
        hash: [7; 32],
        len: 9,
    };
    for bad in [wrong_hash, short] {
        assert_eq!(
            judge_chunk(bad, CHUNK, Source::Replica),
            ChunkStep::Corrupt {
                repair: Repair::Yes
            },
            "corrupt bytes are never returned"
        );
    }
}

#[test]
fn a_replica_with_a_missing_chunk_is_skipped_and_repaired() {
    assert_eq!(
        judge_chunk(ChunkCopy::Missing, CHUNK, Source::Replica),
        ChunkStep::Next {
            repair: Repair::Yes
        }
    );
}

#[test]
fn a_fallback_member_is_tried_but_never_repaired() {
    let bad = ChunkCopy::Bytes {
        hash: [0; 32],
        len: 10,
    };
    assert_eq!(
        judge_chunk(bad, CHUNK, Source::Fallback),
        ChunkStep::Corrupt { repair: Repair::No }
    );
    assert_eq!(
        judge_chunk(ChunkCopy::Missing, CHUNK, Source::Fallback),
        ChunkStep::Next { repair: Repair::No }
    );
}

#[test]
fn a_source_that_did_not_answer_is_skipped_not_repaired() {
    assert_eq!(
        judge_chunk(ChunkCopy::NoAnswer, CHUNK, Source::Replica),
        ChunkStep::Next { repair: Repair::No }
    );
}

// ---- uploads ----

#[test]
fn an_upload_must_finish_within_half_the_chunk_grace() {
    assert!(upload_in_time(500, 1_000).is_ok());
    assert_eq!(upload_in_time(501, 1_000), Err(FilesError::TooSlow(500)));
}

#[test]
fn a_troubled_replica_gets_no_chunks_while_w_remain() {
    let targets = members(3);
    let troubled = |m: &MemberKey| *m == member(2);
    assert_eq!(healthy_targets(&targets, troubled, 2), members(2));
    assert_eq!(healthy_targets(&targets, troubled, 3), targets, "W first");
}

#[test]
fn a_replica_that_failed_a_chunk_is_dropped_while_w_remain() {
    let mut targets = members(3);
    drop_failed(&mut targets, &[member(1)], 2);
    assert_eq!(targets, vec![member(0), member(2)]);
    drop_failed(&mut targets, &[member(0)], 2);
    assert_eq!(targets, vec![member(0), member(2)], "W first");
}

// ---- properties, checked after every step ----

#[derive(Debug, Clone)]
enum Step {
    Answer(usize, Answer),
    Wake,
    Later(u64),
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        Just(Answer::Counts),
        Just(Answer::Uncounted),
        Just(Answer::Failed)
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..7, answer()).prop_map(|(i, a)| Step::Answer(i, a)),
        1 => Just(Step::Wake),
        1 => (1u64..50).prop_map(Step::Later),
    ]
}

fn pace() -> impl Strategy<Value = Pace> {
    prop_oneof![
        (0u64..30).prop_map(|ms| Pace::AllAtOnce {
            straggler: Duration::from_millis(ms)
        }),
        (0u64..30).prop_map(|ms| Pace::Hedged {
            hedge: Duration::from_millis(ms)
        }),
    ]
}

/// What a run saw, to check across steps.
#[derive(Default)]
struct Seen {
    called: BTreeSet<MemberKey>,
    finishes: usize,
    ok: Vec<MemberKey>,
}

impl Seen {
    fn take(&mut self, effects: &[Effect], was_finished: bool) -> Result<(), TestCaseError> {
        prop_assert!(!was_finished || effects.is_empty(), "effects after Finish");
        for effect in effects {
            match effect {
                Effect::Call(m) => prop_assert!(self.called.insert(m.clone()), "{m:?} twice"),
                Effect::Finish => self.finishes += 1,
                Effect::WakeAt(_) => {}
            }
        }
        prop_assert!(self.finishes <= 1, "finished twice");
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_quorum_call_step_keeps_the_invariants(
        n in 0usize..6,
        need in 0usize..5,
        pace in pace(),
        steps in proptest::collection::vec(step(), 0..40),
    ) {
        let mut now = t0();
        let (mut call, effects) = QuorumCall::start(members(n), need, pace, now);
        let mut seen = Seen::default();
        seen.take(&effects, false)?;
        prop_assert_eq!(call.check(), Ok(()));
        for step in steps {
            let was_finished = call.is_finished();
            let counted = call.counted();
            let effects = match step {
                Step::Answer(i, answer) => {
                    let m = member(i);
                    let fresh = seen.called.contains(&m) && !seen.ok.contains(&m)
                        && !was_finished;
                    let effects = call.on_answer(&m, answer, now);
                    if fresh {
                        seen.ok.push(m);
                    } else {
                        prop_assert_eq!(call.counted(), counted, "an ignored answer counted");
                    }
                    effects
                }
                Step::Wake => call.on_wake(),
                Step::Later(ms) => {
                    now += Duration::from_millis(ms);
                    Vec::new()
                }
            };
            seen.take(&effects, was_finished)?;
            prop_assert_eq!(call.check(), Ok(()));
            prop_assert!(call.counted() <= call.asked());
            prop_assert!(call.counted() >= counted, "a count went back");
            prop_assert_eq!(call.is_finished(), seen.finishes == 1);
        }
    }

    #[test]
    fn a_write_is_never_acknowledged_below_w(
        w in 1usize..5,
        oks in 0usize..5,
        fails in 0usize..5,
        refusal in prop_oneof![
            Just(ErrorCode::NotReplica),
            Just(ErrorCode::DiskFull),
        ],
    ) {
        let ok = (0..oks).map(|i| (i, Response::ChunkStored)).collect();
        let failed = (oks..oks + fails).map(|i| (i, refused(refusal))).collect();
        let g = gathered(ok, failed);
        match write_verdict(w, &g) {
            Ok(ack) => {
                prop_assert!(ack.acks >= w);
                prop_assert_eq!(ack.acks, oks, "acks are the successes, each once");
            }
            Err(_) => prop_assert!(oks < w),
        }
    }
}
