//! Membership settings: gossip timing, probe timing, and what the node
//! publishes. The defaults are the measured choice documented in
//! docs/membership.md; change them together with that page.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chitchat::{ChitchatConfig, ChitchatId, FailureDetectorConfig};
use serde::Deserialize;

use super::info::NodeInfo;
use super::swim::{AdmissionPolicy, SwimConfig};
use super::view::MemberKey;

/// Most members a node tracks: ten times the supported cluster size
/// (docs/membership.md), so only forged states are ever left out.
pub const MAX_MEMBERS: usize = 512;

/// Gossip rounds a member's heartbeat must stand still before chitchat's
/// "not live" counts (see `SwimConfig::min_silence`). A member's heartbeat
/// reaches a peer at least once a round (from it or through a relay), so
/// two rounds never hold back an honest verdict by more than a round;
/// kill -9 detection is measured with it in docs/membership.md.
pub const MIN_SILENCE_ROUNDS: u64 = 2;

/// Gossip and failure-detector timing.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GossipTiming {
    /// Interval between gossip rounds.
    pub gossip_interval_ms: u64,
    /// chitchat's ratio detector: silent for `phi × mean interval` → suspect.
    pub phi_threshold: f64,
    /// Prior heartbeat interval of a new peer (≈ half the gossip interval,
    /// or a new peer's first minute doubles detection time).
    pub initial_interval_ms: u64,
    /// How long a dead member stays in gossip before it is forgotten.
    pub dead_node_grace_ms: u64,
    /// How long published verdicts (and other TTL keys) live.
    pub verdict_ttl_ms: u64,
    /// How often the verdict layer looks at gossip.
    pub tick_ms: u64,
    /// How often the published load is refreshed.
    pub load_refresh_ms: u64,
}

impl Default for GossipTiming {
    fn default() -> Self {
        Self {
            gossip_interval_ms: 200,
            phi_threshold: 6.0,
            initial_interval_ms: 100,
            dead_node_grace_ms: 60 * 60 * 1_000,
            verdict_ttl_ms: 10 * 60 * 1_000,
            tick_ms: 50,
            load_refresh_ms: 5_000,
        }
    }
}

/// Probe timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeTiming {
    /// Direct ping timeout.
    pub direct_timeout_ms: u64,
    /// Timeout of each relayed ping (ping-req).
    pub indirect_timeout_ms: u64,
    /// How many members relay a probe (SWIM's k).
    pub indirect_probes: usize,
    /// After an inconclusive round, wait this long before probing again.
    pub suspicion_timeout_ms: u64,
}

impl Default for ProbeTiming {
    fn default() -> Self {
        Self {
            direct_timeout_ms: 300,
            indirect_timeout_ms: 600,
            indirect_probes: 3,
            suspicion_timeout_ms: 2_000,
        }
    }
}

/// Everything the membership actor needs.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// Gossip from other cluster ids is ignored.
    pub cluster_id: String,
    /// This process.
    pub me: MemberKey,
    /// UDP address to bind.
    pub gossip_listen: SocketAddr,
    /// UDP address peers should use (differs from `gossip_listen` behind NAT
    /// or when binding 0.0.0.0).
    pub gossip_advertise: SocketAddr,
    /// Seed `host:port` list.
    pub seeds: Vec<String>,
    /// What this node publishes.
    pub info: NodeInfo,
    /// Data directory, for the free-disk figure.
    pub data_dir: Option<PathBuf>,
    /// Gossip timing.
    pub timing: GossipTiming,
    /// Probe timing.
    pub probes: ProbeTiming,
    /// Who is routable.
    pub admission: AdmissionPolicy,
}

impl MembershipConfig {
    pub(crate) fn chitchat(&self) -> ChitchatConfig {
        let t = &self.timing;
        let interval = Duration::from_millis(t.gossip_interval_ms.max(1));
        ChitchatConfig {
            chitchat_id: ChitchatId::new(
                self.me.node_id.clone(),
                self.me.generation,
                self.gossip_advertise,
            ),
            cluster_id: self.cluster_id.clone(),
            gossip_interval: interval,
            listen_addr: self.gossip_listen,
            seed_nodes: self.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: t.phi_threshold,
                sampling_window_size: 1_000,
                max_interval: Duration::from_secs(10),
                initial_interval: Duration::from_millis(t.initial_interval_ms.max(1)),
                dead_node_grace_period: Duration::from_millis(t.dead_node_grace_ms),
            },
            marked_for_deletion_grace_period: Duration::from_millis(t.verdict_ttl_ms),
            catchup_callback: None,
            extra_liveness_predicate: None,
            // V1 compresses digests (zstd); every Hypha release decodes it,
            // since the first one that gossiped (chitchat 0.13 reads V0 and V1).
            protocol_version: chitchat::ProtocolVersion::V1,
        }
    }

    pub(crate) fn swim(&self) -> SwimConfig {
        SwimConfig {
            suspicion_timeout: Duration::from_millis(self.probes.suspicion_timeout_ms),
            admission: self.admission,
            max_members: MAX_MEMBERS,
            min_silence: Duration::from_millis(
                self.timing
                    .gossip_interval_ms
                    .saturating_mul(MIN_SILENCE_ROUNDS),
            ),
        }
    }

    pub(crate) fn probe_plan(&self) -> super::probe::ProbePlan {
        super::probe::ProbePlan {
            direct_timeout: Duration::from_millis(self.probes.direct_timeout_ms),
            indirect_timeout: Duration::from_millis(self.probes.indirect_timeout_ms),
            indirect_probes: self.probes.indirect_probes,
        }
    }
}
