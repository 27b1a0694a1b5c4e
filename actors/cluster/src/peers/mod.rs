//! Node links: ractor_cluster sessions between admitted members.
//!
//! Gossip proposes, the handshake confirms: the peers actor dials members
//! that gossip reports, and only a session that passed the cookie handshake
//! (the cookie is bound to the cluster id) makes a member routable. It
//! re-dials with backoff, and closes sessions of members that are Down,
//! superseded by a new generation, or hung (missed pings) — none of which
//! ractor_cluster does itself. A Left member's links stay until its process
//! closes them: it hands its data off over them while it leaves. [`link`] is the one remotable actor.
//! The link port is accepted here, not by ractor_cluster (`inbound`):
//! handshakes run under a deadline and per-source and global caps
//! (docs/security.md, "No pre-auth stalls").

mod actor;
pub mod claim;
pub mod dial;
pub mod inbound;
pub mod link;
mod messages;
pub mod tls;

pub use actor::{Peers, PeersArgs, PeersConfig};
pub use link::{LinkArgs, LinkMessage, LinkProbe, LinkService};
pub use messages::{PeersMessage, SessionEventKind};

/// The peers actor's role in actor names.
pub const ROLE: &str = "peers";
/// The link service's role in actor names.
pub const LINK_ROLE: &str = "link";

/// The handshake cookie for a cluster: a key derived from the operator's
/// cookie and the cluster id, so that two clusters sharing a cookie still
/// refuse each other's links.
pub fn link_cookie(cluster_id: &str, cookie: &str) -> String {
    let mut material = Vec::with_capacity(cluster_id.len() + cookie.len() + 1);
    material.extend_from_slice(cluster_id.as_bytes());
    material.push(0);
    material.extend_from_slice(cookie.as_bytes());
    blake3::derive_key("hypha 2026 node-link cookie v1", &material)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cookies_differ_by_cluster_and_secret() {
        let a = super::link_cookie("c1", "secret-secret-secret");
        assert_eq!(a.len(), 64);
        assert_ne!(a, super::link_cookie("c2", "secret-secret-secret"));
        assert_ne!(a, super::link_cookie("c1", "secret-secret-secreT"));
        assert_eq!(a, super::link_cookie("c1", "secret-secret-secret"));
    }
}
