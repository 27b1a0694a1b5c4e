//! Membership: who is in the cluster and whether they are alive.
//!
//! chitchat (Scuttlebutt gossip with an accrual failure detector) spreads
//! each node's published facts and suggests who is dead; a SWIM-style
//! verdict layer ([`swim`]) probes suspects directly and through k helpers
//! before declaring them Down, refutes verdicts about this node by bumping
//! its incarnation, and refuses to declare anyone Down while this node
//! cannot hear a majority. A member is routable (Up) only once an
//! authenticated node link to it is open (the peers actor reports those).
//! The protocol and its measured tuning are in docs/membership.md.

mod actor;
mod config;
pub mod info;
mod messages;
pub mod probe;
pub mod seal;
pub mod swim;
mod sysinfo;
mod transport;
pub mod view;
mod watermark;

pub use actor::{Membership, MembershipArgs};
pub use chitchat::transport::{ChannelTransport, UdpTransport};
pub use config::{GossipTiming, MembershipConfig, ProbeTiming};
pub use messages::MembershipMessage;
pub use swim::AdmissionPolicy;
pub use sysinfo::capacity;
pub use transport::CountingTransport;
pub use view::{
    ClusterView, MemberEvent, MemberEventKind, MemberKey, MemberSnapshot, MemberState,
    MembershipChannels,
};
pub use watermark::GossipWatermark;

/// The membership actor's role in actor names.
pub const ROLE: &str = "membership";
