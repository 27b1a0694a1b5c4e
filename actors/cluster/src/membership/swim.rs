//! The SWIM-style verdict layer, pure and clock-driven (no I/O): chitchat's
//! accrual detector only *suggests* that a member is dead; this core turns
//! that into Suspect, asks for direct and indirect probes, and declares
//! Down only when every probe failed and this node still hears a majority.
//! Verdicts spread as gossip keys; a live member that sees a verdict about
//! itself refutes it by bumping its incarnation.
//!
//! The actor feeds it one [`GossipNode`] per member each tick and the set
//! of members with an authenticated link, and carries out the [`Action`]s
//! it returns. This module holds the state and the entry points; folding
//! gossip into the member table is in `gossip`, the liveness state
//! machine and the quorum rule in `liveness`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::info::{NodeInfo, NodeLoad};
use super::view::{ClusterView, MemberEvent, MemberKey, MemberSnapshot, MemberState};

mod gossip;
mod liveness;

use gossip::merge_contested;
pub use gossip::{GossipNode, Verdict, MAX_INCARNATION_AHEAD};

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
