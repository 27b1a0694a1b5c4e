//! The cluster's settings, as the `[cluster]` section of the node's
//! config file spells them: cluster id, gossip and probe timing (defined
//! by membership, which reads them as they are), node-link liveness,
//! graceful leave, link security, sealed gossip and pre-auth limits. One
//! definition per knob, with its default and its rules.

use std::path::PathBuf;

use serde::Deserialize;

use crate::membership::seal::SealSettings;
use crate::membership::{GossipTiming, ProbeTiming};
use crate::preauth::PreAuthLimits;
use hypha_core::settings::{check, SettingsError};

/// Cluster settings (`[cluster]`, docs/membership.md, docs/security.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Nodes only gossip and link with nodes of the same cluster id.
    pub id: String,
    /// Gossip and failure-detector timing.
    pub gossip: GossipTiming,
    /// SWIM probe timing.
    pub probes: ProbeTiming,
    /// Application ping period on each node link.
    pub ping_interval_ms: u64,
    /// Application ping timeout.
    pub ping_timeout_ms: u64,
    /// Missed pings in a row after which a link is closed as hung.
    pub hung_after_misses: u32,
    /// The majority lease: a node acknowledges writes and counts in
    /// quorum reads only while a majority of the cluster answered one of
    /// its pings sent within this long (docs/dht.md, "The fence"). Must
    /// exceed `ping_interval_ms + ping_timeout_ms`, and the DHT's
    /// `down_grace_ms` must exceed it by the detection bound.
    pub lease_ms: u64,
    /// On SIGTERM: how long the leaving flag is gossiped before stopping.
    pub leave_grace_ms: u64,
    /// On SIGTERM: bound on the subsystems' hand-off hooks.
    pub handoff_timeout_ms: u64,
    /// Mutual TLS on node links: a directory with `ca.pem`, `node.pem` and
    /// `node.key` (made by `hypha cert`). Unset: `DATA_DIR/tls`.
    pub tls_dir: Option<PathBuf>,
    /// Whether node links may run without TLS (see [`LinkSecurity`]).
    pub links: LinkSecurity,
    /// Gossip secrets, one a line, the first sealing (rotation, see
    /// docs/security.md). Unset: gossip is sealed with the cookie alone.
    /// Re-read on SIGHUP.
    pub gossip_keys_file: Option<PathBuf>,
    /// Limits of sealed gossip.
    pub gossip_seal: SealSettings,
    /// Connections that have not authenticated yet, on the node-link port
    /// and on the bulk port (each port counts its own).
    pub preauth: PreAuthLimits,
}

/// How node links (and bulk links) are protected.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LinkSecurity {
    /// Mutual TLS with the cluster CA; a node without certificates does
    /// not start (outside `--dev`).
    #[default]
    MutualTls,
    /// The operator opted out (`--plaintext-links`): links are plaintext
    /// after the cookie handshake unless certificates are given anyway.
    Plaintext,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            id: "hypha".into(),
            gossip: GossipTiming::default(),
            probes: ProbeTiming::default(),
            ping_interval_ms: 1_000,
            ping_timeout_ms: 1_000,
            hung_after_misses: 3,
            lease_ms: 3_000,
            leave_grace_ms: 1_000,
            handoff_timeout_ms: 10_000,
            tls_dir: None,
            links: LinkSecurity::default(),
            gossip_keys_file: None,
            gossip_seal: SealSettings::default(),
            preauth: PreAuthLimits::default(),
        }
    }
}

/// Cluster ids and node names appear in gossip, actor names and
/// certificates: 1-64 characters of `[A-Za-z0-9._-]`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl ClusterSettings {
    /// The first rule the settings break, if any.
    pub fn validate(&self) -> Result<(), SettingsError> {
        check(
            is_plain_name(&self.id),
            "cluster.id",
            "must be 1-64 characters of [A-Za-z0-9._-]",
        )?;
        let g = &self.gossip;
        check(
            g.gossip_interval_ms > 0 && g.tick_ms > 0,
            "cluster.gossip",
            "intervals must be at least 1 ms",
        )?;
        check(
            g.phi_threshold.is_finite() && g.phi_threshold > 0.0,
            "cluster.gossip.phi_threshold",
            "must be a positive number",
        )?;
        let p = &self.probes;
        check(
            p.suspicion_timeout_ms >= p.direct_timeout_ms.saturating_add(p.indirect_timeout_ms),
            "cluster.probes.suspicion_timeout_ms",
            "must cover direct_timeout_ms + indirect_timeout_ms",
        )?;
        check(
            self.ping_interval_ms > 0 && self.ping_timeout_ms > 0 && self.hung_after_misses > 0,
            "cluster.ping_*",
            "must be at least 1",
        )?;
        check(
            self.lease_ms > self.ping_interval_ms.saturating_add(self.ping_timeout_ms),
            "cluster.lease_ms",
            "must exceed ping_interval_ms + ping_timeout_ms (a lease shorter than a ping round runs out between answers)",
        )?;
        check(
            self.preauth.is_usable(),
            "cluster.preauth.*",
            "must be at least 1",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken(change: fn(&mut ClusterSettings)) -> Result<(), &'static str> {
        let mut s = ClusterSettings::default();
        change(&mut s);
        s.validate().map_err(|e| e.key)
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(ClusterSettings::default().validate(), Ok(()));
    }

    #[test]
    fn each_broken_rule_names_its_key() {
        assert_eq!(broken(|s| s.id = "a b".into()), Err("cluster.id"));
        assert_eq!(broken(|s| s.id = "x".repeat(65)), Err("cluster.id"));
        assert_eq!(broken(|s| s.gossip.tick_ms = 0), Err("cluster.gossip"));
        assert_eq!(
            broken(|s| s.gossip.phi_threshold = f64::NAN),
            Err("cluster.gossip.phi_threshold")
        );
        assert_eq!(
            broken(|s| s.probes.suspicion_timeout_ms = 899),
            Err("cluster.probes.suspicion_timeout_ms")
        );
        assert_eq!(broken(|s| s.hung_after_misses = 0), Err("cluster.ping_*"));
        assert_eq!(
            broken(|s| s.preauth.max_total = 0),
            Err("cluster.preauth.*")
        );
    }
}
