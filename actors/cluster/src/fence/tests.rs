//! The lease rule at its edges: the boundary instant, answers that come
//! late, a cluster that grows, shrinks or forgets, and the partition
//! shapes of docs/dht.md (a minority, a bridge node, a ring).

use super::*;

const LEASE: Duration = Duration::from_millis(3_000);
/// The Down grace: a break of at most 2 s (grace − lease) is harmless.
const GRACE: Duration = Duration::from_millis(5_000);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A lease at `t0` in a cluster of this node and `others`.
fn cluster(others: &[&str], t0: Instant) -> Lease {
    let mut lease = Lease::new(LEASE, GRACE, t0);
    lease.observe(others.iter().map(|id| (*id, Presence::Member)), t0);
    lease
}

#[test]
fn a_node_alone_holds_its_lease() {
    let t0 = Instant::now();
    let mut lease = Lease::new(LEASE, GRACE, t0);
    assert!(lease.standing(t0).held());
    assert!(lease.standing(t0 + ms(3_600_000)).held());
}

#[test]
fn five_nodes_need_two_other_answers() {
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c", "d", "e"], t0);
    assert_eq!(
        lease.standing(t0),
        Standing::Lost {
            need: 2,
            have: 0,
            cluster: 5
        }
    );
    lease.answered("b", t0, t0 + ms(1));
    assert!(!lease.standing(t0 + ms(1)).held(), "2 of 5 is no majority");
    lease.answered("c", t0 + ms(10), t0 + ms(11));
    assert!(lease.standing(t0 + ms(11)).held(), "3 of 5 is");
}

#[test]
fn the_lease_ends_at_the_second_latest_send_time_plus_the_lease() {
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c", "d", "e"], t0);
    lease.answered("b", t0 + ms(500), t0 + ms(600));
    lease.answered("c", t0, t0 + ms(600));
    let end = t0 + LEASE;
    assert_eq!(
        lease.standing(end - ms(1)),
        Standing::Held {
            until: end,
            since: t0 + ms(600)
        }
    );
    assert!(
        !lease.standing(end).held(),
        "at the boundary instant the lease is over"
    );
}

#[test]
fn a_late_answer_counts_from_when_its_ping_was_sent() {
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c"], t0);
    // Sent at t0, answered 2.9 s later: it proves b was reachable after
    // t0, not after t0 + 2.9 s.
    lease.answered("b", t0, t0 + ms(2_900));
    assert!(lease.standing(t0 + ms(2_999)).held());
    assert!(!lease.standing(t0 + ms(3_000)).held());
}

#[test]
fn an_older_answer_never_moves_the_lease_back() {
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c"], t0);
    lease.answered("b", t0 + ms(1_000), t0 + ms(1_001));
    lease.answered("b", t0, t0 + ms(1_002));
    assert!(lease.standing(t0 + ms(3_500)).held());
}

#[test]
fn a_break_starts_the_hold_again() {
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c"], t0);
    lease.answered("b", t0, t0);
    assert_eq!(lease.held_since(), Some(t0));
    // Renewed in time: the hold is unbroken.
    lease.answered("b", t0 + ms(2_000), t0 + ms(2_500));
    assert_eq!(lease.held_since(), Some(t0));
    // Renewed only 3.2 s after it ran out at 5 s (nobody asked in
    // between): a break longer than grace − lease, so a new hold.
    lease.answered("b", t0 + ms(8_100), t0 + ms(8_200));
    assert_eq!(lease.held_since(), Some(t0 + ms(8_200)));
}

#[test]
fn after_a_break_the_lease_acknowledges_only_after_a_probation() {
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c"], t0);
    lease.answered("b", t0, t0);
    assert!(lease.standing(t0).held(), "the first hold has no probation");
    // Cut off: the lease runs out at 3 s; b answers again at 10 s.
    assert!(!lease.standing(t0 + ms(3_000)).held());
    let back = t0 + ms(10_000);
    lease.answered("b", back, back);
    assert_eq!(
        lease.standing(back),
        Standing::Probation {
            until: back + LEASE
        }
    );
    assert!(!lease.standing(back + LEASE - ms(1)).held());
    lease.answered("b", back + ms(2_000), back + ms(2_000));
    assert_eq!(
        lease.standing(back + LEASE),
        Standing::Held {
            until: back + ms(2_000) + LEASE,
            since: back
        }
    );
}

#[test]
fn a_break_too_short_for_any_move_resumes_the_hold() {
    // A ping round lost to load: the lease ran out at 3 s and is back at
    // 4.5 s. No partition can have moved away from this node (a move
    // needs it lease-less for the grace), so the hold goes on: no
    // probation, and the same start (the exchange actor does not start
    // every catch-up over).
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c"], t0);
    lease.answered("b", t0, t0);
    assert!(!lease.standing(t0 + ms(3_000)).held(), "refused meanwhile");
    let back = t0 + ms(4_500);
    lease.answered("b", back, back);
    assert_eq!(
        lease.standing(back),
        Standing::Held {
            until: back + LEASE,
            since: t0
        }
    );
    // The boundary: back exactly grace − lease after it ran out.
    assert!(!lease.standing(back + ms(3_000)).held());
    let edge = back + ms(3_000) + (GRACE - LEASE);
    lease.answered("c", edge, edge);
    assert_eq!(lease.held_since(), Some(t0), "still harmless at the edge");
    assert!(!lease.standing(edge + LEASE).held());
    let late = edge + LEASE + (GRACE - LEASE) + ms(1);
    lease.answered("c", late, late);
    assert_eq!(
        lease.standing(late),
        Standing::Probation {
            until: late + LEASE
        }
    );
}

#[test]
fn joining_a_cluster_after_starting_alone_is_no_break() {
    // A node starts alone (a lease of one), then learns its peers: the
    // lease is lost until they answer, but it had never been held with
    // anyone, so there was nothing to be cut off from.
    let t0 = Instant::now();
    let mut lease = Lease::new(LEASE, GRACE, t0);
    assert!(lease.standing(t0).held());
    lease.observe(
        [("b", Presence::Member), ("c", Presence::Member)],
        t0 + ms(100),
    );
    assert!(!lease.standing(t0 + ms(100)).held());
    lease.answered("b", t0 + ms(200), t0 + ms(300));
    assert!(matches!(
        lease.standing(t0 + ms(300)),
        Standing::Held { .. }
    ));
}

#[test]
fn a_minority_side_never_holds_the_lease() {
    // {a, b} | {c, d, e}: a hears only b, however often.
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c", "d", "e"], t0);
    for i in 0..20 {
        let t = t0 + ms(i * 500);
        lease.answered("b", t, t + ms(5));
        assert!(!lease.standing(t + ms(5)).held());
    }
}

#[test]
fn down_members_still_count_in_the_cluster() {
    // Down is a state in the view, not an absence: the minority's view
    // keeps the majority's nodes (Down or Suspect), so they stay in the
    // denominator.
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c", "d", "e"], t0);
    lease.answered("b", t0, t0);
    lease.observe(
        ["b", "c", "d", "e"].map(|id| (id, Presence::Member)),
        t0 + ms(10),
    );
    assert!(!lease.standing(t0 + ms(10)).held());
}

#[test]
fn nodes_gossip_forgot_are_forgotten_only_while_the_lease_is_held() {
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c", "d", "e"], t0);
    lease.answered("b", t0, t0);
    // Cut off with b for an hour: chitchat forgets c, d and e. Without
    // the lease they stay counted, so {a, b} is still no majority.
    let later = t0 + ms(3_600_000);
    lease.answered("b", later, later);
    lease.observe([("b", Presence::Member)], later);
    assert!(!lease.standing(later).held());

    // The majority side forgets a dead node while holding the lease: a
    // cluster that lost a node for good does not stay one short.
    let mut majority = cluster(&["b", "c", "d", "e"], t0);
    majority.answered("b", t0, t0);
    majority.answered("c", t0, t0);
    majority.observe(["b", "c", "d"].map(|id| (id, Presence::Member)), t0 + ms(1));
    // Now 4 nodes: a strict majority is 3, so still 2 answers.
    assert_eq!(majority.need(), 2);
    assert!(majority.standing(t0 + ms(1)).held());
}

#[test]
fn a_node_that_left_stops_counting() {
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c"], t0);
    assert!(!lease.standing(t0).held());
    lease.observe([("b", Presence::Member), ("c", Presence::Left)], t0);
    // {a, b}: a strict majority of two is both.
    lease.answered("b", t0, t0);
    assert!(lease.standing(t0).held());
}

#[test]
fn a_new_node_raises_the_bar_at_once() {
    let t0 = Instant::now();
    let mut lease = cluster(&["b", "c"], t0);
    lease.answered("b", t0, t0);
    assert!(lease.standing(t0).held());
    lease.observe(
        ["b", "c", "d", "e"].map(|id| (id, Presence::Member)),
        t0 + ms(1),
    );
    assert!(!lease.standing(t0 + ms(1)).held());
}

#[test]
fn a_bridge_node_and_both_sides_hold_their_leases() {
    // {a1, a2} - m - {c1, c2}: m reaches everyone, each side reaches m.
    // Every node hears a majority (3 of 5), so all hold the lease; the
    // fence then rests on placement, which moves nothing while m relays
    // gossip and probes between the sides (docs/dht.md, "The fence").
    let t0 = Instant::now();
    let mut a1 = cluster(&["a2", "m", "c1", "c2"], t0);
    a1.answered("a2", t0, t0);
    a1.answered("m", t0, t0);
    let mut m = cluster(&["a1", "a2", "c1", "c2"], t0);
    for id in ["a1", "a2", "c1", "c2"] {
        m.answered(id, t0, t0);
    }
    assert!(a1.standing(t0 + ms(1)).held());
    assert!(m.standing(t0 + ms(1)).held());
}

#[test]
fn in_a_ring_of_five_every_node_holds_with_its_two_neighbours() {
    let t0 = Instant::now();
    let ids = ["n0", "n1", "n2", "n3", "n4"];
    for i in 0..5 {
        let others: Vec<&str> = (0..5).filter(|j| *j != i).map(|j| ids[j]).collect();
        let mut lease = cluster(&others, t0);
        lease.answered(ids[(i + 1) % 5], t0, t0);
        lease.answered(ids[(i + 4) % 5], t0, t0);
        assert!(lease.standing(t0 + ms(1)).held(), "{}", ids[i]);
    }
}

#[test]
fn the_shared_fence_reads_the_same_rule() {
    let t0 = Instant::now();
    let fence = Fence::new(LEASE, GRACE, t0);
    fence.observe([("b", Presence::Member), ("c", Presence::Member)], t0);
    assert!(!fence.held(t0));
    fence.answered("c", t0, t0);
    assert!(fence.held(t0 + ms(2_999)));
    assert!(!fence.held(t0 + ms(3_000)));
    assert_eq!(fence.length(), LEASE);
}
