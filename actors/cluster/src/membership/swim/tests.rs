//! Rules of the verdict layer, driven tick by tick.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::super::view::MemberEventKind;
use super::*;

const SUSPICION: Duration = Duration::from_millis(1_000);

fn me() -> MemberKey {
    MemberKey::new("me", 1)
}

fn key(name: &str) -> MemberKey {
    MemberKey::new(name, 1)
}

fn swim(admission: AdmissionPolicy) -> Swim {
    Swim::new(
        me(),
        SwimConfig {
            suspicion_timeout: SUSPICION,
            admission,
            max_members: 8,
            min_silence: Duration::ZERO,
        },
    )
}

fn node(k: &MemberKey, heartbeat: u64, live: bool) -> GossipNode {
    GossipNode {
        key: k.clone(),
        gossip_addr: ([127, 0, 0, 1], 7072).into(),
        heartbeat,
        live,
        incarnation: 0,
        leaving: false,
        info: None,
        load: None,
        verdicts: Vec::new(),
    }
}

fn events(actions: &[Action]) -> Vec<(MemberEventKind, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some((e.kind, e.key.node_id.clone())),
            _ => None,
        })
        .collect()
}

/// Events with the generation of the member they are about.
fn generation_events(actions: &[Action]) -> Vec<(MemberEventKind, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some((e.kind, e.key.generation)),
            _ => None,
        })
        .collect()
}

fn probes(actions: &[Action]) -> Vec<(String, usize)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Probe { target, helpers } => Some((target.node_id.clone(), helpers.len())),
            _ => None,
        })
        .collect()
}

fn none() -> BTreeSet<MemberKey> {
    BTreeSet::new()
}

fn state_of(s: &Swim, now: Instant, name: &str) -> MemberState {
    s.view(now, None, None).member(name).unwrap().state
}

/// Three live peers b, c, d.
fn three_up(s: &mut Swim, now: Instant) {
    let actions = s.observe(
        now,
        vec![
            node(&key("b"), 1, true),
            node(&key("c"), 1, true),
            node(&key("d"), 1, true),
        ],
        &none(),
    );
    assert_eq!(events(&actions).len(), 3);
}

#[test]
fn gossip_admission_brings_members_up() {
    let mut s = swim(AdmissionPolicy::Gossip);
    let now = Instant::now();
    let actions = s.observe(now, vec![node(&key("b"), 1, true)], &none());
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeUp, "b".into())]
    );
    assert_eq!(state_of(&s, now, "b"), MemberState::Up);
    assert_eq!(state_of(&s, now, "me"), MemberState::Up);
}

#[test]
fn only_an_authenticated_link_admits() {
    let mut s = swim(AdmissionPolicy::AuthenticatedLink);
    let now = Instant::now();
    let actions = s.observe(now, vec![node(&key("b"), 1, true)], &none());
    assert!(events(&actions).is_empty());
    assert_eq!(state_of(&s, now, "b"), MemberState::Joining);
    let linked = BTreeSet::from([key("b")]);
    let actions = s.observe(now, vec![node(&key("b"), 2, true)], &linked);
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeUp, "b".into())]
    );
    // Losing the link makes it suspect, not down.
    let actions = s.observe(now, vec![node(&key("b"), 3, true)], &none());
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeSuspect, "b".into())]
    );
}

#[test]
fn silent_member_is_probed_then_declared_down() {
    let mut s = swim(AdmissionPolicy::Gossip);
    let t0 = Instant::now();
    three_up(&mut s, t0);
    let t1 = t0 + Duration::from_millis(1_500);
    let actions = s.observe(
        t1,
        vec![
            node(&key("b"), 1, false),
            node(&key("c"), 9, true),
            node(&key("d"), 9, true),
        ],
        &none(),
    );
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeSuspect, "b".into())]
    );
    assert_eq!(probes(&actions), vec![("b".into(), 2)]);
    let t2 = t1 + Duration::from_millis(300);
    let actions = s.probe_done(t2, &key("b"), ProbeOutcome::Failed);
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeDown, "b".into())]
    );
    assert!(actions.contains(&Action::PublishVerdict(Verdict {
        target: key("b"),
        incarnation: 0
    })));
    assert!(actions.contains(&Action::Detected(Duration::from_millis(1_800))));
    // Still silent: no further probes or events.
    let actions = s.observe(
        t2,
        vec![
            node(&key("b"), 1, false),
            node(&key("c"), 9, true),
            node(&key("d"), 9, true),
        ],
        &none(),
    );
    assert!(events(&actions).is_empty() && probes(&actions).is_empty());
}

#[test]
fn an_answered_probe_keeps_the_member_and_limits_reprobing() {
    let mut s = swim(AdmissionPolicy::Gossip);
    let t0 = Instant::now();
    three_up(&mut s, t0);
    let silent_b = || {
        vec![
            node(&key("b"), 1, false),
            node(&key("c"), 1, true),
            node(&key("d"), 1, true),
        ]
    };
    let actions = s.observe(t0, silent_b(), &none());
    assert_eq!(probes(&actions).len(), 1);
    let actions = s.probe_done(t0, &key("b"), ProbeOutcome::Acked);
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeUp, "b".into())]
    );
    // Within the suspicion timeout gossip's doubt is not acted on again.
    let actions = s.observe(t0 + SUSPICION / 2, silent_b(), &none());
    assert!(probes(&actions).is_empty() && events(&actions).is_empty());
    let actions = s.observe(t0 + SUSPICION, silent_b(), &none());
    assert_eq!(probes(&actions).len(), 1);
}

#[test]
fn a_node_that_hears_no_majority_declares_nobody_down() {
    let mut s = swim(AdmissionPolicy::Gossip);
    let t0 = Instant::now();
    three_up(&mut s, t0);
    let all_silent = vec![
        node(&key("b"), 1, false),
        node(&key("c"), 1, false),
        node(&key("d"), 1, false),
    ];
    let actions = s.observe(t0, all_silent.clone(), &none());
    assert_eq!(probes(&actions).len(), 3);
    for k in ["b", "c", "d"] {
        let actions = s.probe_done(t0, &key(k), ProbeOutcome::Failed);
        assert!(!actions
            .iter()
            .any(|a| matches!(a, Action::PublishVerdict(_))));
    }
    assert!(s.view(t0, None, None).isolated);
    assert_eq!(state_of(&s, t0, "b"), MemberState::Suspect);
    // Probes are retried after the suspicion timeout, not every tick.
    assert!(probes(&s.observe(t0, all_silent.clone(), &none())).is_empty());
    assert_eq!(
        probes(&s.observe(t0 + SUSPICION, all_silent, &none())).len(),
        3
    );
}

#[test]
fn a_verdict_about_me_is_refuted() {
    let mut s = swim(AdmissionPolicy::Gossip);
    let now = Instant::now();
    let mut b = node(&key("b"), 1, true);
    b.verdicts.push(Verdict {
        target: me(),
        incarnation: 0,
    });
    let actions = s.observe(now, vec![b.clone()], &none());
    assert!(actions.contains(&Action::Refute(1)));
    assert_eq!(s.incarnation(), 1);
    // The same stale verdict is not refuted twice.
    assert!(!s
        .observe(now, vec![b], &none())
        .iter()
        .any(|a| matches!(a, Action::Refute(_))));
}

#[test]
fn a_refuted_down_member_comes_back_up() {
    let mut s = swim(AdmissionPolicy::Gossip);
    let t0 = Instant::now();
    three_up(&mut s, t0);
    s.observe(
        t0,
        vec![
            node(&key("b"), 1, false),
            node(&key("c"), 1, true),
            node(&key("d"), 1, true),
        ],
        &none(),
    );
    s.probe_done(t0, &key("b"), ProbeOutcome::Failed);
    assert_eq!(state_of(&s, t0, "b"), MemberState::Down);
    // b resumes at the same incarnation: still Down.
    let actions = s.observe(
        t0,
        vec![
            node(&key("b"), 2, true),
            node(&key("c"), 1, true),
            node(&key("d"), 1, true),
        ],
        &none(),
    );
    assert!(events(&actions).is_empty());
    let mut refuted = node(&key("b"), 3, true);
    refuted.incarnation = 1;
    let actions = s.observe(
        t0,
        vec![refuted, node(&key("c"), 1, true), node(&key("d"), 1, true)],
        &none(),
    );
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeUp, "b".into())]
    );
    assert!(actions.contains(&Action::RetractVerdict(key("b"))));
}

#[test]
fn verdicts_count_only_from_admitted_members() {
    let mut s = swim(AdmissionPolicy::AuthenticatedLink);
    let now = Instant::now();
    let linked = BTreeSet::from([key("b"), key("c")]);
    let verdict_about_c = Verdict {
        target: key("c"),
        incarnation: 0,
    };
    let mut rogue = node(&key("x"), 1, true);
    rogue.verdicts.push(verdict_about_c.clone());
    s.observe(
        now,
        vec![node(&key("b"), 1, true), node(&key("c"), 1, true), rogue],
        &linked,
    );
    assert_eq!(state_of(&s, now, "c"), MemberState::Up);
    let mut b = node(&key("b"), 2, true);
    b.verdicts.push(verdict_about_c);
    let actions = s.observe(now, vec![b, node(&key("c"), 2, true)], &linked);
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeDown, "c".into())]
    );
}

#[test]
fn leaving_is_left_not_down() {
    let mut s = swim(AdmissionPolicy::Gossip);
    let now = Instant::now();
    three_up(&mut s, now);
    let mut b = node(&key("b"), 2, true);
    b.leaving = true;
    let actions = s.observe(
        now,
        vec![
            b.clone(),
            node(&key("c"), 1, true),
            node(&key("d"), 1, true),
        ],
        &none(),
    );
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeLeft, "b".into())]
    );
    b.live = false;
    let actions = s.observe(now + SUSPICION * 3, vec![b], &none());
    assert!(probes(&actions).iter().all(|(t, _)| t != "b"));
    assert_eq!(state_of(&s, now, "b"), MemberState::Left);
}

#[test]
fn a_member_not_yet_seen_alive_is_not_suspected() {
    let mut s = swim(AdmissionPolicy::Gossip);
    let now = Instant::now();
    // chitchat needs two heartbeats before it calls a new node live.
    let actions = s.observe(now, vec![node(&key("b"), 1, false)], &none());
    assert!(probes(&actions).is_empty() && events(&actions).is_empty());
    assert_eq!(state_of(&s, now, "b"), MemberState::Joining);
    let actions = s.observe(now + SUSPICION * 2, vec![node(&key("b"), 2, true)], &none());
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeUp, "b".into())]
    );
}

#[test]
fn a_new_generation_replaces_the_old() {
    let mut s = swim(AdmissionPolicy::Gossip);
    let now = Instant::now();
    s.observe(now, vec![node(&key("b"), 5, true)], &none());
    let b2 = MemberKey::new("b", 2);
    let actions = s.observe(
        now,
        vec![node(&key("b"), 5, false), node(&b2, 1, true)],
        &none(),
    );
    assert_eq!(
        generation_events(&actions),
        vec![(MemberEventKind::NodeDown, 1), (MemberEventKind::NodeUp, 2)]
    );
    let view = s.view(now, None, None);
    assert_eq!(
        view.members.iter().filter(|m| m.key.node_id == "b").count(),
        1
    );
    assert_eq!(view.member("b").unwrap().key.generation, 2);
}

#[test]
fn a_linked_generation_wins_over_a_forged_newer_one() {
    let mut s = swim(AdmissionPolicy::AuthenticatedLink);
    let now = Instant::now();
    let linked = BTreeSet::from([key("b")]);
    s.observe(now, vec![node(&key("b"), 1, true)], &linked);
    assert_eq!(state_of(&s, now, "b"), MemberState::Up);
    // A key holder publishes b at generation 99, leaving.
    let mut forged = node(&MemberKey::new("b", 99), 1, true);
    forged.leaving = true;
    let actions = s.observe(now, vec![node(&key("b"), 2, true), forged.clone()], &linked);
    assert!(events(&actions).is_empty(), "{actions:?}");
    assert_eq!(
        s.view(now, None, None).member("b").unwrap().key.generation,
        1
    );
    // b really restarts: its old link closes, the new generation links.
    let b2 = MemberKey::new("b", 2);
    let actions = s.observe(
        now,
        vec![node(&key("b"), 3, false), node(&b2, 1, true), forged],
        &BTreeSet::from([b2.clone()]),
    );
    assert_eq!(
        generation_events(&actions),
        vec![(MemberEventKind::NodeDown, 1), (MemberEventKind::NodeUp, 2)]
    );
}

#[test]
fn verdicts_far_above_the_known_incarnation_are_ignored() {
    let mut s = swim(AdmissionPolicy::AuthenticatedLink);
    let now = Instant::now();
    let linked = BTreeSet::from([key("b"), key("c")]);
    let mut b = node(&key("b"), 1, true);
    b.verdicts = vec![
        Verdict {
            target: key("c"),
            incarnation: u64::MAX,
        },
        Verdict {
            target: me(),
            incarnation: u64::MAX,
        },
    ];
    s.observe(
        now,
        vec![node(&key("b"), 0, true), node(&key("c"), 0, true)],
        &linked,
    );
    let actions = s.observe(now, vec![b.clone(), node(&key("c"), 1, true)], &linked);
    assert!(events(&actions).is_empty(), "{actions:?}");
    assert!(!actions.iter().any(|a| matches!(a, Action::Refute(_))));
    assert_eq!(s.incarnation(), 0);
    // Within reach: refuted once, and adopted.
    b.heartbeat = 2;
    b.verdicts = vec![
        Verdict {
            target: key("c"),
            incarnation: MAX_INCARNATION_AHEAD,
        },
        Verdict {
            target: me(),
            incarnation: MAX_INCARNATION_AHEAD,
        },
    ];
    let actions = s.observe(now, vec![b.clone(), node(&key("c"), 2, true)], &linked);
    assert!(actions.contains(&Action::Refute(MAX_INCARNATION_AHEAD + 1)));
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeDown, "c".into())]
    );
    let again = s.observe(now, vec![b, node(&key("c"), 3, true)], &linked);
    assert!(!again.iter().any(|a| matches!(a, Action::Refute(_))));
}

#[test]
fn a_member_incarnation_only_rises_in_plausible_steps() {
    let mut s = swim(AdmissionPolicy::Gossip);
    let now = Instant::now();
    let mut b = node(&key("b"), 1, true);
    s.observe(now, vec![b.clone()], &none());
    b.incarnation = u64::MAX;
    s.observe(now, vec![b.clone()], &none());
    assert_eq!(s.view(now, None, None).member("b").unwrap().incarnation, 0);
    b.incarnation = 3;
    s.observe(now, vec![b], &none());
    assert_eq!(s.view(now, None, None).member("b").unwrap().incarnation, 3);
}

#[test]
fn the_view_holds_at_most_max_members() {
    let mut s = swim(AdmissionPolicy::Gossip);
    let now = Instant::now();
    let first: Vec<GossipNode> = (0..6)
        .map(|i| node(&key(&format!("a{i}")), 1, true))
        .collect();
    s.observe(now, first.clone(), &none());
    let mut flood = first;
    flood.extend((0..20).map(|i| node(&key(&format!("x{i:02}")), 1, true)));
    s.observe(now, flood, &none());
    let view = s.view(now, None, None);
    assert_eq!(view.members.len(), 1 + 8, "me and max_members others");
    assert_eq!(s.ignored(), 18);
    for i in 0..6 {
        assert!(view.member(&format!("a{i}")).is_some(), "a{i} kept");
    }
}

#[test]
fn members_never_linked_do_not_count_toward_quorum() {
    let mut s = swim(AdmissionPolicy::AuthenticatedLink);
    let t0 = Instant::now();
    let linked = BTreeSet::from([key("b"), key("c")]);
    let mut nodes = vec![node(&key("b"), 1, true), node(&key("c"), 1, true)];
    // Five states nobody can link to, alive for now.
    nodes.extend((0..5).map(|i| node(&key(&format!("f{i}")), 1, true)));
    s.observe(t0, nodes, &linked);
    // They fall silent together with b: c and this node are still a
    // majority of the members that ever linked, so b is declared Down.
    let mut silent: Vec<GossipNode> = vec![node(&key("b"), 1, false), node(&key("c"), 2, true)];
    silent.extend((0..5).map(|i| node(&key(&format!("f{i}")), 1, false)));
    s.observe(t0, silent, &linked);
    let actions = s.probe_done(t0, &key("b"), ProbeOutcome::Failed);
    assert_eq!(
        events(&actions),
        vec![(MemberEventKind::NodeDown, "b".into())]
    );
}

#[test]
fn a_second_state_under_a_members_own_generation_changes_nothing() {
    let mut s = swim(AdmissionPolicy::AuthenticatedLink);
    let now = Instant::now();
    let linked = BTreeSet::from([key("b"), key("c")]);
    s.observe(
        now,
        vec![node(&key("b"), 1, true), node(&key("c"), 1, true)],
        &linked,
    );
    // A forged state of b at b's own generation (another gossip address
    // in chitchat): leaving, and a plausible verdict about c.
    let mut forged = node(&key("b"), 7, false);
    forged.gossip_addr = ([10, 9, 9, 9], 7072).into();
    forged.leaving = true;
    forged.incarnation = 3;
    forged.verdicts.push(Verdict {
        target: key("c"),
        incarnation: 0,
    });
    let actions = s.observe(
        now,
        vec![node(&key("b"), 2, true), forged, node(&key("c"), 2, true)],
        &linked,
    );
    assert!(events(&actions).is_empty(), "{actions:?}");
    assert_eq!(s.contested(), 1);
    assert_eq!(state_of(&s, now, "b"), MemberState::Up);
    assert_eq!(state_of(&s, now, "c"), MemberState::Up);
    assert_eq!(s.view(now, None, None).member("b").unwrap().incarnation, 0);
}

#[test]
fn a_heartbeat_heard_recently_outweighs_the_detector() {
    let mut s = Swim::new(
        me(),
        SwimConfig {
            suspicion_timeout: SUSPICION,
            admission: AdmissionPolicy::Gossip,
            max_members: 8,
            min_silence: Duration::from_millis(600),
        },
    );
    let t0 = Instant::now();
    three_up(&mut s, t0);
    // The detector, trained by a fast relay, calls b dead 100 ms after its
    // last heartbeat: not yet a suspect.
    let quiet = |hb| {
        vec![
            node(&key("b"), hb, false),
            node(&key("c"), hb, true),
            node(&key("d"), hb, true),
        ]
    };
    let t1 = t0 + Duration::from_millis(100);
    let actions = s.observe(t1, quiet(2), &none());
    assert!(
        events(&actions).is_empty() && probes(&actions).is_empty(),
        "{actions:?}"
    );
    // Silent past the floor: probed as before.
    let t2 = t1 + Duration::from_millis(700);
    let mut late = quiet(3);
    late[0].heartbeat = 2;
    let actions = s.observe(t2, late, &none());
    assert_eq!(probes(&actions).len(), 1);
}
