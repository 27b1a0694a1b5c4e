//! The DHT's settings, as the `[dht]` and `[anti_entropy]` sections of
//! the node's config file spell them: one definition per knob, with its
//! default and its rules. The node config composes these sections; the
//! file coordinator and the collector read [`DhtSettings`] as it is, and
//! the exchange's settings are derived here, beside their knobs.

use serde::Deserialize;

use crate::anti_entropy::run::RunSettings;
use crate::anti_entropy::schedule::ScheduleSettings;
use crate::anti_entropy::AeSettings;
use std::sync::Arc;

use crate::files::cache::CachePolicy;
use crate::keyspace::{Partitioning, MAX_PINS, MAX_PIN_PREFIX_BYTES};
use crate::placement::{PlacementRules, ZoneSet};
use hypha_core::settings::{check, SettingsError};

/// Largest file a node accepts at most (the manifest format's bound).
pub const MAX_FILE_BYTES_LIMIT: u64 = 4 << 30;

/// DHT and file storage settings (`[dht]`, docs/dht.md).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DhtSettings {
    /// Partitions are the top `partition_bits` of a key (2^bits of them).
    /// Every node of a cluster must use the same value.
    pub partition_bits: u8,
    /// Replicas per partition (R).
    pub replicas: usize,
    /// Replicas that must make a write durable before it is acknowledged (W).
    pub write_quorum: usize,
    /// Replicas whose manifests a read compares.
    pub read_quorum: usize,
    /// How long a Down member keeps its partitions before they move.
    pub down_grace_ms: u64,
    /// Timeout of one replica RPC.
    pub rpc_timeout_ms: u64,
    /// How long a quorum call waits for slower replicas once it has W
    /// (writes still reach them afterwards, in the background).
    pub straggler_ms: u64,
    /// A read asks only a read quorum of replicas, and the others when
    /// one fails or this long passed without the quorum.
    pub read_hedge_ms: u64,
    /// Largest file accepted.
    pub max_file_bytes: u64,
    /// Chunks an upload keeps in flight.
    pub upload_pipeline: usize,
    /// Chunks a download fetches ahead.
    pub read_ahead: usize,
    /// Garbage collection sweeps one partition per tick.
    pub gc_tick_ms: u64,
    /// Unreferenced chunks are kept this long (uploads must finish in half).
    pub chunk_grace_ms: u64,
    /// Tombstones are kept this long.
    pub tombstone_grace_ms: u64,
    /// Bytes of chunks a node keeps from reads of files it does not
    /// replicate (the edge cache; 0 = off).
    pub cache_max_bytes: u64,
    /// Which cached chunk goes when the cache is full.
    pub cache_policy: CachePolicy,
}

impl Default for DhtSettings {
    fn default() -> Self {
        Self {
            partition_bits: 10,
            replicas: 3,
            write_quorum: 2,
            read_quorum: 2,
            down_grace_ms: 30_000,
            rpc_timeout_ms: 5_000,
            straggler_ms: 0,
            read_hedge_ms: 20,
            max_file_bytes: MAX_FILE_BYTES_LIMIT,
            upload_pipeline: 4,
            read_ahead: 4,
            gc_tick_ms: 1_000,
            chunk_grace_ms: 3_600_000,
            tombstone_grace_ms: 7 * 24 * 3_600_000,
            cache_max_bytes: 256 << 20,
            cache_policy: CachePolicy::Lfu,
        }
    }
}

impl DhtSettings {
    /// The first rule the settings break, if any.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.partitioning()?;
        check(
            (1..=16).contains(&self.replicas),
            "dht.replicas",
            "must be 1-16",
        )?;
        let quorum = 1..=self.replicas;
        check(
            quorum.contains(&self.write_quorum),
            "dht.write_quorum",
            "must be 1..=replicas",
        )?;
        check(
            quorum.contains(&self.read_quorum),
            "dht.read_quorum",
            "must be 1..=replicas",
        )?;
        check(
            self.rpc_timeout_ms > 0 && self.gc_tick_ms > 0,
            "dht.*_ms",
            "timeouts and ticks must be at least 1 ms",
        )?;
        check(
            self.upload_pipeline > 0 && self.read_ahead > 0,
            "dht.upload_pipeline/read_ahead",
            "must be at least 1",
        )?;
        check(
            self.chunk_grace_ms >= 2_000,
            "dht.chunk_grace_ms",
            "must be at least 2000",
        )?;
        check(
            (1..=MAX_FILE_BYTES_LIMIT).contains(&self.max_file_bytes),
            "dht.max_file_bytes",
            "must be 1 byte to 4 GiB",
        )
    }

    /// The keyspace's partitioning.
    pub fn partitioning(&self) -> Result<Partitioning, SettingsError> {
        Partitioning::new(self.partition_bits)
            .ok_or_else(|| SettingsError::new("dht.partition_bits", "must be 1-16"))
    }

    /// What the router places partitions by, with `placement`'s pins.
    pub fn placement_rules(
        &self,
        placement: &PlacementSettings,
    ) -> Result<PlacementRules, SettingsError> {
        let (partitioning, pins) = placement.pins(self.partitioning()?)?;
        Ok(PlacementRules {
            partitioning,
            replicas: self.replicas,
            down_grace_ms: self.down_grace_ms,
            write_quorum: self.write_quorum,
            pins: Arc::new(pins),
        })
    }
}

/// Zone rules of placement (`[placement]`, docs/dht.md "Zones"). Every
/// node of a cluster must use the same pins: they decide which partition
/// a name lives in.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PlacementSettings {
    /// Name prefixes pinned to zones (data residency).
    pub pin: Vec<PinSetting>,
}

/// One pinned prefix: `[[placement.pin]] prefix = "eu/"`, `zones = ["eu-*"]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PinSetting {
    /// Files whose names start with this (longest match wins).
    pub prefix: String,
    /// Zone names or `prefix*` patterns the files may live in.
    pub zones: Vec<String>,
}

impl PlacementSettings {
    /// The first rule the settings break, if any.
    pub fn validate(&self, dht: &DhtSettings) -> Result<(), SettingsError> {
        self.pins(dht.partitioning()?).map(|_| ())
    }

    /// `base` with the pinned prefixes, and each pin's zones.
    fn pins(&self, base: Partitioning) -> Result<(Partitioning, Vec<ZoneSet>), SettingsError> {
        let prefixes: Vec<&str> = self.pin.iter().map(|p| p.prefix.as_str()).collect();
        let partitioning = base.with_pins(&prefixes).ok_or_else(|| {
            SettingsError::new(
                "placement.pin",
                format!(
                    "at most {MAX_PINS} distinct, non-empty prefixes of at most \
                     {MAX_PIN_PREFIX_BYTES} bytes, and 2^partition_bits × (pins + 1) ≤ 65536"
                ),
            )
        })?;
        let zones = self
            .pin
            .iter()
            .map(|p| ZoneSet::new(&p.zones))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| SettingsError::new("placement.pin.zones", why))?;
        Ok((partitioning, zones))
    }
}

/// Anti-entropy settings (`[anti_entropy]`, docs/anti-entropy.md).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AntiEntropySettings {
    /// Mean time between two exchanges of a partition with one replica
    /// (jittered ±50%).
    pub period_ms: u64,
    /// After a repair, the confirming exchange comes this soon.
    pub recheck_ms: u64,
    /// After a failed exchange, retry this late.
    pub retry_ms: u64,
    /// How often the exchange actor looks at its work (a changed replica
    /// set is exchanged within one tick).
    pub tick_ms: u64,
    /// Exchanges and hand-offs running at once.
    pub concurrency: usize,
    /// Bytes/s that repairs may move (chunks and manifests); 0: no limit.
    pub bytes_per_sec: u64,
    /// Entries one exchange repairs at most (the rest: next exchange).
    pub max_entries: usize,
    /// Tree levels per descent round trip (1-8).
    pub step: u8,
    /// Partitions checked per tick for data held here that moved away.
    pub held_checks_per_tick: u32,
    /// One partition's digests are checked against its manifests (and
    /// fixed where they drifted) this often; 0: never.
    pub rebuild_every_ms: u64,
}

impl Default for AntiEntropySettings {
    fn default() -> Self {
        Self {
            period_ms: 60_000,
            recheck_ms: 1_000,
            retry_ms: 5_000,
            tick_ms: 250,
            concurrency: 4,
            bytes_per_sec: 64 << 20,
            max_entries: 8_192,
            step: 2,
            held_checks_per_tick: 16,
            rebuild_every_ms: 30_000,
        }
    }
}

impl AntiEntropySettings {
    /// The first rule the settings break, if any.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let periods = [self.period_ms, self.recheck_ms, self.retry_ms, self.tick_ms];
        check(
            periods.iter().all(|&ms| ms > 0),
            "anti_entropy.*_ms",
            "periods and ticks must be at least 1 ms",
        )?;
        check(
            self.concurrency > 0 && self.max_entries > 0 && (1..=8).contains(&self.step),
            "anti_entropy",
            "concurrency and max_entries must be at least 1, step 1-8",
        )
    }

    /// How one exchange runs; the RPC timeout and tombstone grace are the
    /// DHT's.
    pub fn run(&self, dht: &DhtSettings) -> RunSettings {
        RunSettings {
            step: self.step,
            max_entries: self.max_entries,
            rpc_timeout_ms: dht.rpc_timeout_ms,
            tombstone_grace_ms: dht.tombstone_grace_ms,
        }
    }

    /// What the exchange actor reads; R is the DHT's.
    pub fn exchange(&self, dht: &DhtSettings) -> AeSettings {
        AeSettings {
            schedule: ScheduleSettings {
                period_ms: self.period_ms,
                recheck_ms: self.recheck_ms,
                retry_ms: self.retry_ms,
            },
            tick_ms: self.tick_ms,
            concurrency: self.concurrency,
            replicas: dht.replicas,
            held_checks_per_tick: self.held_checks_per_tick,
            rebuild_every_ms: self.rebuild_every_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(DhtSettings::default().validate(), Ok(()));
        assert_eq!(AntiEntropySettings::default().validate(), Ok(()));
    }

    #[test]
    fn each_broken_rule_names_its_key() {
        let dht = |change: fn(&mut DhtSettings)| {
            let mut s = DhtSettings::default();
            change(&mut s);
            s.validate().map_err(|e| e.key)
        };
        assert_eq!(dht(|s| s.partition_bits = 17), Err("dht.partition_bits"));
        assert_eq!(dht(|s| s.replicas = 0), Err("dht.replicas"));
        assert_eq!(dht(|s| s.write_quorum = 4), Err("dht.write_quorum"));
        assert_eq!(dht(|s| s.read_quorum = 0), Err("dht.read_quorum"));
        assert_eq!(dht(|s| s.gc_tick_ms = 0), Err("dht.*_ms"));
        assert_eq!(
            dht(|s| s.read_ahead = 0),
            Err("dht.upload_pipeline/read_ahead")
        );
        assert_eq!(dht(|s| s.chunk_grace_ms = 1_999), Err("dht.chunk_grace_ms"));
        assert_eq!(
            dht(|s| s.max_file_bytes = (4 << 30) + 1),
            Err("dht.max_file_bytes")
        );
        let ae = |change: fn(&mut AntiEntropySettings)| {
            let mut s = AntiEntropySettings::default();
            change(&mut s);
            s.validate().map_err(|e| e.key)
        };
        assert_eq!(ae(|s| s.retry_ms = 0), Err("anti_entropy.*_ms"));
        assert_eq!(ae(|s| s.step = 9), Err("anti_entropy"));
    }

    #[test]
    fn the_actors_get_the_knobs_they_read() {
        let dht = DhtSettings::default();
        let ae = AntiEntropySettings {
            retry_ms: 11,
            ..AntiEntropySettings::default()
        };
        assert_eq!(ae.exchange(&dht).schedule.retry_ms, 11);
        assert_eq!(ae.exchange(&dht).replicas, dht.replicas);
        assert_eq!(ae.run(&dht).rpc_timeout_ms, dht.rpc_timeout_ms);
    }
}
