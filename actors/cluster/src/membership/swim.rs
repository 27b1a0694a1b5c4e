//! The SWIM-style verdict layer, pure and clock-driven (no I/O): chitchat's
//! accrual detector only *suggests* that a member is dead; this core turns
//! that into Suspect, asks for direct and indirect probes, and declares
//! Down only when every probe failed and this node still hears a majority.
//! Verdicts spread as gossip keys; a live member that sees a verdict about
//! itself refutes it by bumping its incarnation.
//!
//! The actor feeds it one [`GossipNode`] per member each tick and the set
//! of members with an authenticated link, and carries out the [`Action`]s
//! it returns.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::info::{NodeInfo, NodeLoad};
use super::view::{
    ClusterView, MemberEvent, MemberEventKind, MemberKey, MemberSnapshot, MemberState,
};

/// When a member counts as routable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionPolicy {
    /// Gossip alone admits (in-process simulations without node links).
    Gossip,
    /// Only an authenticated node link admits (production).
    AuthenticatedLink,
}

/// Settings of the verdict layer.
#[derive(Debug, Clone, Copy)]
pub struct SwimConfig {
    /// After a probe round ends without a verdict (acked, or no quorum), how
    /// long before the member may be probed again.
    pub suspicion_timeout: Duration,
    /// Who is routable.
    pub admission: AdmissionPolicy,
    /// Most members tracked; gossip about more is ignored (each member
    /// costs a dial loop and probes, so forged states must not add them
    /// without bound).
    pub max_members: usize,
    /// A member whose heartbeat advanced this recently is heard, whatever
    /// chitchat's detector says. The detector learns the mean interval
    /// between heartbeat updates from whoever relays them: a key holder
    /// relaying every 10 ms teaches it to expect 10 ms, and when the relay
    /// stops (or is rate-limited) every member looks dead for a moment.
    /// Honest gossip brings a heartbeat at least every round, so a floor of
    /// two rounds costs little detection time (measured in
    /// docs/membership.md).
    pub min_silence: Duration,
}

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

/// Result of probing a suspect directly and through helpers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Some probe was answered.
    Acked,
    /// Every probe failed or timed out.
    Failed,
}

/// What the actor must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Publish to subscribers.
    Event(MemberEvent),
    /// Count a state transition.
    Transition(MemberState),
    /// Probe `target` directly, then through some of `helpers`.
    Probe {
        /// The suspect.
        target: MemberKey,
        /// Members that may relay a probe (ping-req).
        helpers: Vec<MemberKey>,
    },
    /// Publish a Down verdict in our gossip state.
    PublishVerdict(Verdict),
    /// Remove our verdict about this member (it refuted or went away).
    RetractVerdict(MemberKey),
    /// Publish our bumped incarnation: someone declared us Down.
    Refute(u64),
    /// A Down verdict was reached this long after the member was last heard.
    Detected(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Liveness {
    /// Heard of, but the detector has not yet seen it alive (it needs two
    /// heartbeats): nothing to suspect yet.
    Pending,
    Alive {
        acked_at: Option<Instant>,
    },
    Suspect {
        probing: bool,
        next_probe_at: Instant,
    },
    Down {
        incarnation: u64,
    },
    Left,
}

#[derive(Debug, Clone)]
struct Member {
    /// Where the state this member was first seen in is published from.
    gossip_addr: SocketAddr,
    incarnation: u64,
    liveness: Liveness,
    gossip_live: bool,
    linked: bool,
    ever_linked: bool,
    heartbeat: u64,
    last_heard: Instant,
    info: Option<NodeInfo>,
    load: Option<NodeLoad>,
    public: MemberState,
    our_verdict: bool,
}

/// The verdict layer's state.
#[derive(Debug)]
pub struct Swim {
    me: MemberKey,
    config: SwimConfig,
    incarnation: u64,
    leaving: bool,
    members: BTreeMap<MemberKey, Member>,
    ignored: usize,
    contested: usize,
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
fn merge_contested(
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
    /// A fresh view holding only this node.
    pub fn new(me: MemberKey, config: SwimConfig) -> Self {
        Self {
            me,
            config,
            incarnation: 0,
            leaving: false,
            members: BTreeMap::new(),
            ignored: 0,
            contested: 0,
        }
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Gossip nodes ignored in the last tick because the view was full.
    pub fn ignored(&self) -> usize {
        self.ignored
    }

    /// Members two or more gossip states claimed in the last tick.
    pub fn contested(&self) -> usize {
        self.contested
    }

    /// Mark this node as leaving (shown in the view).
    pub fn leave(&mut self) {
        self.leaving = true;
    }

    /// Fold one tick of gossip into the view.
    pub fn observe(
        &mut self,
        now: Instant,
        nodes: Vec<GossipNode>,
        linked: &BTreeSet<MemberKey>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        self.refute_verdicts_about_me(&nodes, &mut actions);
        let (nodes, contested) =
            merge_contested(nodes, |key| self.members.get(key).map(|m| m.gossip_addr));
        self.contested = contested;
        let mut newest = self.newest_generations(nodes, linked);
        self.drop_superseded_and_vanished(&newest, &mut actions);
        self.ignored = self.over_capacity(&mut newest);
        let mut verdicts = Vec::new();
        for node in newest.into_values() {
            self.upsert(now, node, linked, &mut verdicts);
        }
        self.adopt_verdicts(now, &verdicts, &mut actions);
        let keys: Vec<MemberKey> = self.members.keys().cloned().collect();
        for key in keys {
            self.advance(now, &key, &mut actions);
        }
        self.publish_changes(&mut actions);
        actions
    }

    /// Fold the outcome of a probe round into the view.
    pub fn probe_done(
        &mut self,
        now: Instant,
        target: &MemberKey,
        outcome: ProbeOutcome,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let quorum = self.has_quorum();
        let suspicion = self.config.suspicion_timeout;
        let Some(member) = self.members.get_mut(target) else {
            return actions;
        };
        if !matches!(member.liveness, Liveness::Suspect { probing: true, .. }) {
            return actions;
        }
        member.liveness = match (outcome, quorum) {
            (ProbeOutcome::Acked, _) => Liveness::Alive {
                acked_at: Some(now),
            },
            (ProbeOutcome::Failed, true) => {
                member.our_verdict = true;
                actions.push(Action::PublishVerdict(Verdict {
                    target: target.clone(),
                    incarnation: member.incarnation,
                }));
                actions.push(Action::Detected(now.duration_since(member.last_heard)));
                Liveness::Down {
                    incarnation: member.incarnation,
                }
            }
            (ProbeOutcome::Failed, false) => Liveness::Suspect {
                probing: false,
                next_probe_at: now + suspicion,
            },
        };
        self.publish_changes(&mut actions);
        actions
    }

    fn refute_verdicts_about_me(&mut self, nodes: &[GossipNode], actions: &mut Vec<Action>) {
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
    fn newest_generations(
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
    fn over_capacity(&self, newest: &mut BTreeMap<String, GossipNode>) -> usize {
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
    fn drop_superseded_and_vanished(
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
    fn upsert(
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

    fn adopt_verdicts(
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

    fn advance(&mut self, now: Instant, key: &MemberKey, actions: &mut Vec<Action>) {
        let suspicion = self.config.suspicion_timeout;
        let Some(member) = self.members.get_mut(key) else {
            return;
        };
        let mut wants_probe = false;
        member.liveness = match member.liveness {
            Liveness::Left => Liveness::Left,
            Liveness::Pending if member.gossip_live => Liveness::Alive { acked_at: None },
            Liveness::Pending => Liveness::Pending,
            Liveness::Down { incarnation } if member.incarnation > incarnation => {
                if member.our_verdict {
                    member.our_verdict = false;
                    actions.push(Action::RetractVerdict(key.clone()));
                }
                Liveness::Alive { acked_at: None }
            }
            down @ Liveness::Down { .. } => down,
            Liveness::Alive { acked_at } if !member.gossip_live => {
                let recently_acked = acked_at.is_some_and(|at| now < at + suspicion);
                if recently_acked {
                    Liveness::Alive { acked_at }
                } else {
                    wants_probe = true;
                    Liveness::Suspect {
                        probing: true,
                        next_probe_at: now + suspicion,
                    }
                }
            }
            alive @ Liveness::Alive { .. } => alive,
            Liveness::Suspect { .. } if member.gossip_live => Liveness::Alive { acked_at: None },
            Liveness::Suspect {
                probing: false,
                next_probe_at,
            } if now >= next_probe_at => {
                wants_probe = true;
                Liveness::Suspect {
                    probing: true,
                    next_probe_at: now + suspicion,
                }
            }
            suspect @ Liveness::Suspect { .. } => suspect,
        };
        if wants_probe {
            let helpers = self.helpers_for(key);
            actions.push(Action::Probe {
                target: key.clone(),
                helpers,
            });
        }
    }

    fn helpers_for(&self, target: &MemberKey) -> Vec<MemberKey> {
        self.members
            .iter()
            .filter(|(k, m)| {
                *k != target
                    && matches!(m.liveness, Liveness::Alive { .. })
                    && m.gossip_live
                    && self.admitted(m)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn admitted(&self, member: &Member) -> bool {
        match self.config.admission {
            AdmissionPolicy::Gossip => true,
            AdmissionPolicy::AuthenticatedLink => member.linked,
        }
    }

    /// This node hears at least half of the members that are not known to
    /// be gone (itself included). Without that it is more likely the one
    /// cut off, so it declares nobody Down.
    /// With link admission only members that were ever linked count:
    /// states gossip alone tells of (forged ones among them) must neither
    /// make up a majority nor, by falling silent, take one away.
    fn has_quorum(&self) -> bool {
        let mut counted = 1usize;
        let mut alive = 1usize;
        let by_link = self.config.admission == AdmissionPolicy::AuthenticatedLink;
        for member in self.members.values().filter(|m| !by_link || m.ever_linked) {
            match member.liveness {
                Liveness::Pending | Liveness::Down { .. } | Liveness::Left => {}
                Liveness::Alive { .. } => {
                    counted += 1;
                    alive += 1;
                }
                Liveness::Suspect { .. } => counted += 1,
            }
        }
        alive * 2 >= counted
    }

    fn public_state(&self, member: &Member) -> MemberState {
        match member.liveness {
            Liveness::Left => MemberState::Left,
            Liveness::Down { .. } => MemberState::Down,
            Liveness::Suspect { .. } => MemberState::Suspect,
            Liveness::Pending => MemberState::Joining,
            Liveness::Alive { .. } if self.admitted(member) => MemberState::Up,
            Liveness::Alive { .. } if member.ever_linked => MemberState::Suspect,
            Liveness::Alive { .. } => MemberState::Joining,
        }
    }

    fn publish_changes(&mut self, actions: &mut Vec<Action>) {
        let changes: Vec<(MemberKey, MemberState)> = self
            .members
            .iter()
            .filter_map(|(k, m)| {
                let state = self.public_state(m);
                (state != m.public).then(|| (k.clone(), state))
            })
            .collect();
        for (key, state) in changes {
            let Some(member) = self.members.get_mut(&key) else {
                continue;
            };
            member.public = state;
            actions.push(Action::Transition(state));
            let kind = match state {
                MemberState::Joining => continue,
                MemberState::Up => MemberEventKind::NodeUp,
                MemberState::Suspect => MemberEventKind::NodeSuspect,
                MemberState::Down => MemberEventKind::NodeDown,
                MemberState::Left => MemberEventKind::NodeLeft,
            };
            actions.push(Action::Event(MemberEvent {
                kind,
                key,
                incarnation: member.incarnation,
            }));
        }
    }

    /// The view for readers; `me_info`/`me_load` describe this node.
    pub fn view(
        &self,
        now: Instant,
        me_info: Option<NodeInfo>,
        me_load: Option<NodeLoad>,
    ) -> ClusterView {
        let me = MemberSnapshot {
            key: self.me.clone(),
            is_self: true,
            state: if self.leaving {
                MemberState::Left
            } else {
                MemberState::Up
            },
            incarnation: self.incarnation,
            linked: true,
            last_heard_ms: 0,
            info: me_info,
            load: me_load,
        };
        let others = self.members.iter().map(|(key, m)| MemberSnapshot {
            key: key.clone(),
            is_self: false,
            state: m.public,
            incarnation: m.incarnation,
            linked: m.linked,
            last_heard_ms: u64::try_from(now.duration_since(m.last_heard).as_millis())
                .unwrap_or(u64::MAX),
            info: m.info.clone(),
            load: m.load,
        });
        let mut members: Vec<MemberSnapshot> = std::iter::once(me).chain(others).collect();
        members.sort_by(|a, b| a.key.cmp(&b.key));
        ClusterView {
            members,
            isolated: !self.has_quorum(),
        }
    }
}

#[cfg(test)]
mod tests;
