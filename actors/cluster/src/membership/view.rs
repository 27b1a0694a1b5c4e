//! The membership view other subsystems read: member snapshots, their
//! states, and the events published when a state changes. Published through
//! a `watch` (the latest view) and a bounded `broadcast` (events); both are
//! created once per node so that they outlive membership restarts.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::info::{NodeInfo, NodeLoad};

/// Events kept for a slow subscriber before it starts losing them (it then
/// sees `RecvError::Lagged` and should re-read the view).
pub const EVENT_BUFFER: usize = 1024;

/// One incarnation of a node's process: the node id and its generation
/// (boot counter). A restarted node is a new member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MemberKey {
    /// Node id (hex).
    pub node_id: String,
    /// Generation: increases on every start of the node.
    pub generation: u64,
}

impl MemberKey {
    /// A key.
    pub fn new(node_id: impl Into<String>, generation: u64) -> Self {
        Self {
            node_id: node_id.into(),
            generation,
        }
    }

    /// The name this member uses on node links: `<node id>.<generation>`.
    pub fn link_name(&self) -> String {
        format!("{}.{}", self.node_id, self.generation)
    }

    /// Parse a link name back into a key.
    pub fn from_link_name(name: &str) -> Option<Self> {
        let (node, generation) = name.rsplit_once('.')?;
        if node.is_empty() {
            return None;
        }
        Some(Self::new(node, generation.parse().ok()?))
    }
}

/// A member's state as the rest of the node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Heard through gossip, no authenticated node link yet: not routable.
    Joining,
    /// Alive and linked: routable for data and jobs.
    Up,
    /// Gossip went silent (or the link was lost); being probed.
    Suspect,
    /// Every probe failed: declared dead for this incarnation.
    Down,
    /// Left gracefully.
    Left,
}

impl MemberState {
    /// All states, for gauges.
    pub const ALL: [MemberState; 5] = [
        MemberState::Joining,
        MemberState::Up,
        MemberState::Suspect,
        MemberState::Down,
        MemberState::Left,
    ];

    /// Lower-case name, as in metrics labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Joining => "joining",
            MemberState::Up => "up",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
        }
    }
}

/// One member as seen from this node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberSnapshot {
    /// Which process.
    pub key: MemberKey,
    /// Whether this entry is the local node.
    pub is_self: bool,
    /// State.
    pub state: MemberState,
    /// SWIM incarnation (bumped by the node to refute a suspicion).
    pub incarnation: u64,
    /// Whether an authenticated node link to it is open.
    pub linked: bool,
    /// Milliseconds since its heartbeat last advanced (0 for self).
    pub last_heard_ms: u64,
    /// Published facts, once received and valid.
    pub info: Option<NodeInfo>,
    /// Published load, once received and valid.
    pub load: Option<NodeLoad>,
}

/// The whole view.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterView {
    /// Members ordered by key; the local node is among them.
    pub members: Vec<MemberSnapshot>,
    /// True when this node cannot hear a majority of the members it knows:
    /// it then suspects itself and issues no Down verdicts.
    pub isolated: bool,
}

impl ClusterView {
    /// Members in `state`.
    pub fn in_state(&self, state: MemberState) -> impl Iterator<Item = &MemberSnapshot> {
        self.members.iter().filter(move |m| m.state == state)
    }

    /// The member with this node id (the newest generation).
    pub fn member(&self, node_id: &str) -> Option<&MemberSnapshot> {
        self.members
            .iter()
            .filter(|m| m.key.node_id == node_id)
            .max_by_key(|m| m.key.generation)
    }
}

/// What happened to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberEventKind {
    /// Became routable (also after a refuted suspicion).
    NodeUp,
    /// Suspected: not heard, or link lost; being probed.
    NodeSuspect,
    /// Declared dead.
    NodeDown,
    /// Left gracefully.
    NodeLeft,
}

/// A membership event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberEvent {
    /// What happened.
    pub kind: MemberEventKind,
    /// To which process.
    pub key: MemberKey,
    /// Its incarnation when it happened.
    pub incarnation: u64,
}

/// The channels through which membership publishes; create once per node.
#[derive(Clone)]
pub struct MembershipChannels {
    view: Arc<watch::Sender<Arc<ClusterView>>>,
    events: broadcast::Sender<MemberEvent>,
}

impl Default for MembershipChannels {
    fn default() -> Self {
        Self::new()
    }
}

impl MembershipChannels {
    /// Fresh channels with an empty view.
    pub fn new() -> Self {
        let (view, _) = watch::channel(Arc::new(ClusterView::default()));
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self {
            view: Arc::new(view),
            events,
        }
    }

    /// Follow the view.
    pub fn watch(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.subscribe()
    }

    /// The latest view.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    /// Receive events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<MemberEvent> {
        self.events.subscribe()
    }

    pub(crate) fn publish_view(&self, view: ClusterView) {
        self.view.send_replace(Arc::new(view));
    }

    pub(crate) fn publish_event(&self, event: MemberEvent) {
        // No subscriber is fine: the view still carries the state.
        let _ = self.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_round_trip() {
        let key = MemberKey::new("abc", 4);
        assert_eq!(key.link_name(), "abc.4");
        assert_eq!(MemberKey::from_link_name("abc.4"), Some(key));
        assert_eq!(MemberKey::from_link_name(".4"), None);
        assert_eq!(MemberKey::from_link_name("abc"), None);
    }
}
