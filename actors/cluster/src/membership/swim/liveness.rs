//! The liveness state machine of the verdict layer: Pending → Alive →
//! Suspect (probe) → Down or back to Alive, refutation by a newer
//! incarnation, the quorum rule that keeps a cut-off node from declaring
//! anyone Down, and the public state and events each member's liveness
//! maps to. The state it advances is defined in [`super`].

use tokio::time::Instant;

use super::super::view::{MemberEvent, MemberEventKind, MemberKey, MemberState};
use super::{Action, AdmissionPolicy, Liveness, Member, Swim};

impl Swim {
    pub(super) fn advance(&mut self, now: Instant, key: &MemberKey, actions: &mut Vec<Action>) {
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
    pub(super) fn has_quorum(&self) -> bool {
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

    pub(super) fn publish_changes(&mut self, actions: &mut Vec<Action>) {
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
}
