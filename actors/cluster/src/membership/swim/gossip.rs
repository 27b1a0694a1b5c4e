//! Folding one tick of gossip into the verdict layer's member table: what
//! gossip says about a member ([`GossipNode`], [`Verdict`]), which of
//! several states claiming one member to follow, how many members to
//! track, and which verdicts to take (only plausible incarnations, only
//! from trusted members). The state it updates is defined in [`super`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use tokio::time::Instant;

use super::super::info::{NodeInfo, NodeLoad};
use super::super::view::{MemberEvent, MemberEventKind, MemberKey, MemberState};
use super::{Action, AdmissionPolicy, Liveness, Member, Swim};

/// How far above the incarnation a member last published a verdict (or
/// the member's own update) may be and still count. Incarnations rise by
/// one per refutation, and a verdict is about an incarnation its target
/// published, so an honest one is never far ahead; after this node's
/// membership actor restarts (its count starts again at 0) verdicts about
/// its earlier incarnations may still be in gossip, a few ahead. A forged
/// `u64::MAX` is ignored instead of saturating the count, which made the
/// refutation repeat every tick for ever.
pub const MAX_INCARNATION_AHEAD: u64 = 64;

/// Whether `incarnation` is a plausible successor of `known` (equal or
/// at most [`MAX_INCARNATION_AHEAD`] above).
fn plausible(incarnation: u64, known: u64) -> bool {
    incarnation >= known && incarnation - known <= MAX_INCARNATION_AHEAD
}

/// A Down verdict as published in gossip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Who was declared Down.
    pub target: MemberKey,
    /// At which of its incarnations.
    pub incarnation: u64,
}

/// What gossip says about one member this tick.
#[derive(Debug, Clone)]
pub struct GossipNode {
    /// Which process.
    pub key: MemberKey,
    /// The gossip address its state is published from (chitchat tells
    /// two states of one key apart by it).
    pub gossip_addr: SocketAddr,
    /// Its heartbeat counter.
    pub heartbeat: u64,
    /// chitchat's accrual detector considers it alive.
    pub live: bool,
    /// Its published incarnation.
    pub incarnation: u64,
    /// It published the leaving flag.
    pub leaving: bool,
    /// Its published facts, if valid.
    pub info: Option<NodeInfo>,
    /// Its published load, if valid.
    pub load: Option<NodeLoad>,
    /// Down verdicts it published.
    pub verdicts: Vec<Verdict>,
}

/// Fold the gossip states that claim the same member (node id and
/// generation) into one that says nothing but whether the member is heard.
///
/// chitchat tells states apart by their gossip address too, so a holder
/// of the gossip key can publish a second state under a member's id and
/// generation. Which one is the member's own cannot be proven from gossip,
/// so while a member is contested none of their facts is taken: no leaving
/// flag, no verdicts, no new incarnation, info or load (those already
/// known are kept). Heartbeat and liveness come from the state followed
/// before the contest (`incumbent`), if it is among them, so a forged
/// state neither makes a live member look silent nor a dead one heard; a
/// member first seen contested is heard only while every claim is. It
/// stays routable through its link. Returns the folded list and how many
/// members were contested.
pub(super) fn merge_contested(
    nodes: Vec<GossipNode>,
    incumbent: impl Fn(&MemberKey) -> Option<SocketAddr>,
) -> (Vec<GossipNode>, usize) {
    let mut by_key: BTreeMap<MemberKey, Vec<GossipNode>> = BTreeMap::new();
    for node in nodes {
        by_key.entry(node.key.clone()).or_default().push(node);
    }
    let mut contested = 0;
    let merged = by_key
        .into_iter()
        .filter_map(|(key, mut claims)| {
            if claims.len() == 1 {
                return claims.pop();
            }
            contested += 1;
            let own =
                incumbent(&key).and_then(|addr| claims.iter().find(|c| c.gossip_addr == addr));
            let (gossip_addr, heartbeat, live) = match own {
                Some(c) => (c.gossip_addr, c.heartbeat, c.live),
                None => (
                    claims[0].gossip_addr,
                    claims.iter().map(|n| n.heartbeat).max().unwrap_or(0),
                    claims.iter().all(|n| n.live),
                ),
            };
            Some(GossipNode {
                key,
                gossip_addr,
                heartbeat,
                live,
                incarnation: 0,
                leaving: false,
                info: None,
                load: None,
                verdicts: Vec::new(),
            })
        })
        .collect();
    (merged, contested)
}

impl Swim {
    pub(super) fn refute_verdicts_about_me(
        &mut self,
        nodes: &[GossipNode],
        actions: &mut Vec<Action>,
    ) {
        // Refuting is harmless, so verdicts from anyone count here (a
        // verdict spreads past the member that made it), but only at an
        // incarnation this node could have published.
        let highest = nodes
            .iter()
            .flat_map(|n| n.verdicts.iter())
            .filter(|v| v.target == self.me && plausible(v.incarnation, self.incarnation))
            .map(|v| v.incarnation)
            .max();
        if let Some(incarnation) = highest {
            self.incarnation = incarnation.saturating_add(1);
            actions.push(Action::Refute(self.incarnation));
        }
    }

    /// The generation of each node id to follow: the newest, except that
    /// with link admission a generation with an authenticated link wins
    /// over any that gossip alone tells of. Anyone holding the gossip key
    /// can publish a state under another member's id with a higher
    /// generation; while the real process is linked, that state is not
    /// acted on. A real restart closes the old link (in milliseconds for
    /// a crash, at the ping timeout for a hung peer), and the new
    /// generation is followed from then on.
    pub(super) fn newest_generations(
        &self,
        nodes: Vec<GossipNode>,
        linked: &BTreeSet<MemberKey>,
    ) -> BTreeMap<String, GossipNode> {
        let by_link = self.config.admission == AdmissionPolicy::AuthenticatedLink;
        let rank = |key: &MemberKey| (by_link && linked.contains(key), key.generation);
        let mut newest: BTreeMap<String, GossipNode> = BTreeMap::new();
        for node in nodes {
            if node.key.node_id == self.me.node_id {
                continue;
            }
            match newest.get(&node.key.node_id) {
                Some(seen) if rank(&seen.key) >= rank(&node.key) => {}
                _ => {
                    newest.insert(node.key.node_id.clone(), node);
                }
            }
        }
        newest
    }

    /// Keep the view within `max_members`: members already tracked stay,
    /// new ones are taken in key order while there is room. Returns how
    /// many were left out.
    pub(super) fn over_capacity(&self, newest: &mut BTreeMap<String, GossipNode>) -> usize {
        let mut room = self.config.max_members.saturating_sub(self.members.len());
        let mut ignored = 0;
        newest.retain(|_, node| {
            if self.members.contains_key(&node.key) {
                return true;
            }
            if room > 0 {
                room -= 1;
                return true;
            }
            ignored += 1;
            false
        });
        ignored
    }

    /// A member replaced by a newer generation is gone for good (reported
    /// Down if nobody said so yet); one that gossip forgot is dropped.
    pub(super) fn drop_superseded_and_vanished(
        &mut self,
        newest: &BTreeMap<String, GossipNode>,
        actions: &mut Vec<Action>,
    ) {
        let stale: Vec<MemberKey> = self
            .members
            .keys()
            .filter(|k| {
                newest
                    .get(&k.node_id)
                    .is_none_or(|n| n.key.generation != k.generation)
            })
            .cloned()
            .collect();
        for key in stale {
            let Some(member) = self.members.remove(&key) else {
                continue;
            };
            let superseded = newest.contains_key(&key.node_id);
            if superseded && !matches!(member.public, MemberState::Down | MemberState::Left) {
                actions.push(Action::Transition(MemberState::Down));
                actions.push(Action::Event(MemberEvent {
                    kind: MemberEventKind::NodeDown,
                    key: key.clone(),
                    incarnation: member.incarnation,
                }));
            }
            if member.our_verdict {
                actions.push(Action::RetractVerdict(key));
            }
        }
    }

    /// Update one member from gossip; keep its verdicts if it is trusted
    /// (admitted and alive).
    pub(super) fn upsert(
        &mut self,
        now: Instant,
        node: GossipNode,
        linked: &BTreeSet<MemberKey>,
        verdicts: &mut Vec<(MemberKey, Verdict)>,
    ) {
        let is_linked = linked.contains(&node.key);
        let member = self.members.entry(node.key.clone()).or_insert(Member {
            gossip_addr: node.gossip_addr,
            incarnation: node.incarnation,
            liveness: Liveness::Pending,
            gossip_live: node.live,
            linked: false,
            ever_linked: false,
            heartbeat: node.heartbeat,
            last_heard: now,
            info: None,
            load: None,
            public: MemberState::Joining,
            our_verdict: false,
        });
        if node.heartbeat != member.heartbeat {
            member.heartbeat = node.heartbeat;
            member.last_heard = now;
        }
        if plausible(node.incarnation, member.incarnation) {
            member.incarnation = node.incarnation;
        }
        member.gossip_live =
            node.live || now.saturating_duration_since(member.last_heard) < self.config.min_silence;
        member.linked = is_linked;
        member.ever_linked |= is_linked;
        if node.info.is_some() {
            member.info = node.info;
        }
        if node.load.is_some() {
            member.load = node.load;
        }
        if node.leaving {
            member.liveness = Liveness::Left;
        }
        let trusted = match self.config.admission {
            AdmissionPolicy::Gossip => true,
            AdmissionPolicy::AuthenticatedLink => is_linked,
        } && matches!(member.liveness, Liveness::Alive { .. });
        if trusted {
            for verdict in node.verdicts {
                verdicts.push((node.key.clone(), verdict));
            }
        }
    }

    pub(super) fn adopt_verdicts(
        &mut self,
        now: Instant,
        verdicts: &[(MemberKey, Verdict)],
        actions: &mut Vec<Action>,
    ) {
        for (_, verdict) in verdicts {
            let Some(member) = self.members.get_mut(&verdict.target) else {
                continue;
            };
            let applies = plausible(verdict.incarnation, member.incarnation)
                && !matches!(member.liveness, Liveness::Down { .. } | Liveness::Left);
            if applies {
                member.liveness = Liveness::Down {
                    incarnation: verdict.incarnation,
                };
                actions.push(Action::Detected(now.duration_since(member.last_heard)));
            }
        }
    }
}
