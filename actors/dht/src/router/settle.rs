//! When a (re)started node's membership view has settled enough for its
//! placement to be trusted with file operations. Pure: see the router's
//! shell ([`super::actor`]) for why it matters.

use hypha_cluster::membership::{ClusterView, MemberState};

/// When a node's view counts as settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// At once: the node has no seeds, it starts a cluster of its own.
    Immediately,
    /// When a peer is known and none is Joining, or after `limit_ms`.
    AfterPeers {
        /// Longest wait, from the router's first start.
        limit_ms: u64,
    },
}

impl Settle {
    /// Whether `view`, `waited_ms` after the start, counts as settled.
    pub fn reached(self, view: &ClusterView, waited_ms: u64) -> bool {
        match self {
            Self::Immediately => true,
            Self::AfterPeers { limit_ms } => {
                let peers = view.members.iter().filter(|m| !m.is_self).count();
                let joining = view
                    .members
                    .iter()
                    .any(|m| !m.is_self && m.state == MemberState::Joining);
                (peers > 0 && !joining) || waited_ms >= limit_ms
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypha_cluster::membership::{MemberKey, MemberSnapshot};

    fn member(name: &str, is_self: bool, state: MemberState) -> MemberSnapshot {
        MemberSnapshot {
            key: MemberKey {
                node_id: name.to_owned(),
                generation: 1,
            },
            is_self,
            state,
            incarnation: 0,
            linked: state == MemberState::Up,
            last_heard_ms: 0,
            info: None,
            load: None,
        }
    }

    fn view(members: Vec<MemberSnapshot>) -> ClusterView {
        ClusterView {
            members,
            isolated: false,
        }
    }

    #[test]
    fn a_seeded_node_waits_for_a_peer_and_for_every_link() {
        let settle = Settle::AfterPeers { limit_ms: 10_000 };
        let alone = view(vec![member("a", true, MemberState::Up)]);
        assert!(!settle.reached(&alone, 0));
        let linking = view(vec![
            member("a", true, MemberState::Up),
            member("b", false, MemberState::Up),
            member("c", false, MemberState::Joining),
        ]);
        assert!(!settle.reached(&linking, 9_999));
        assert!(
            settle.reached(&linking, 10_000),
            "the limit bounds the wait"
        );
        let linked = view(vec![
            member("a", true, MemberState::Up),
            member("b", false, MemberState::Up),
            member("c", false, MemberState::Down),
        ]);
        assert!(settle.reached(&linked, 0));
    }

    #[test]
    fn a_node_without_seeds_is_settled_at_once() {
        let alone = view(vec![member("a", true, MemberState::Up)]);
        assert!(Settle::Immediately.reached(&alone, 0));
    }
}
