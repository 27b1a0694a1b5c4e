//! The work queues' settings, as the `[work]` section of the node's
//! config file spells them: one definition per knob, with its default and
//! its rules. The node config composes the section; the queue owner reads
//! it as it is, and the workers' settings and the `exec` allow-list are
//! derived here, beside the knobs they come from.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::handler::{ArgvPolicy, ExecCommand, ExecSettings};
use crate::placement::{self as policy, PlacementPolicy};
use crate::workers::WorkerSettings;
use hypha_core::settings::{check, SettingsError};
use hypha_wasm::Ceilings;

/// Largest stdout ceiling: a module's stdout is held in memory until it is
/// stored, so this bounds a worker's memory per slot.
pub const MAX_WASM_OUTPUT_BYTES: usize = 1 << 30;

/// Work-queue settings (`[work]`, docs/jobs.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkSettings {
    /// Job attempts this node runs at once; 0: one per logical CPU.
    pub slots: u32,
    /// A lease lasts this long past the worker's last heartbeat.
    pub lease_ms: u64,
    /// Workers heartbeat this often (at most a third of the lease).
    pub heartbeat_ms: u64,
    /// Owners expire leases and place jobs this often.
    pub tick_ms: u64,
    /// Owners read the queue registry this often (takeover, hand-back).
    pub scan_ms: u64,
    /// Unfinished jobs one queue may hold; submits beyond get 503.
    pub max_queue_jobs: usize,
    /// Offers an owner has outstanding at once.
    pub max_offers_in_flight: usize,
    /// Placement policy: `least_loaded` or `locality`.
    pub placement: String,
    /// Defaults for submits that leave them out.
    pub default_max_attempts: u32,
    /// See `default_max_attempts`.
    pub default_timeout_ms: u64,
    /// The `exec` kind: allow-listed commands, name → absolute path (no
    /// job arguments) or a table with the argument policy. Empty (the
    /// default): the kind does not exist on this node.
    pub exec_allow: BTreeMap<String, ExecEntry>,
    /// Output beyond this fails an `exec` attempt.
    pub exec_max_output_bytes: usize,
    /// The `wasm` kind (sandboxed WebAssembly): on unless false.
    pub wasm: bool,
    /// Ceilings of one `wasm` attempt; a job may ask for less, never more:
    /// fuel (about one per WebAssembly instruction), …
    pub wasm_max_fuel: u64,
    /// … wall time, …
    pub wasm_max_wall_ms: u64,
    /// … linear memory, …
    pub wasm_max_memory_bytes: u64,
    /// … and stdout: a result stored as a file (`out`) may be this large;
    /// one kept in the job's record is at most 256 KiB whatever this is.
    pub wasm_max_output_bytes: usize,
    /// Compiled modules each node keeps (LRU, by content hash).
    pub wasm_cache_modules: usize,
}

impl Default for WorkSettings {
    fn default() -> Self {
        Self {
            slots: 0,
            lease_ms: 10_000,
            heartbeat_ms: 2_000,
            tick_ms: 50,
            scan_ms: 2_000,
            max_queue_jobs: 100_000,
            max_offers_in_flight: 256,
            placement: "least_loaded".into(),
            default_max_attempts: 3,
            default_timeout_ms: 60_000,
            exec_allow: BTreeMap::new(),
            exec_max_output_bytes: 1 << 20,
            wasm: true,
            wasm_max_fuel: Ceilings::default().fuel,
            wasm_max_wall_ms: Ceilings::default().wall_ms,
            wasm_max_memory_bytes: Ceilings::default().memory_bytes,
            wasm_max_output_bytes: Ceilings::default().output_bytes,
            wasm_cache_modules: 64,
        }
    }
}

/// One `[work.exec_allow]` entry: `name = "/abs/path"` (no job
/// arguments), or `[work.exec_allow.name]` with `program`, `args` (fixed,
/// passed first) and `argv` (`none`, `operands` or `free`: what a job may
/// add; docs/jobs.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ExecEntry {
    /// A program that takes no job arguments.
    Path(String),
    /// A program with fixed arguments and an argument policy.
    Command(ExecTable),
}

/// The table form of an [`ExecEntry`].
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExecTable {
    /// Absolute program path.
    pub program: String,
    /// Arguments always passed first.
    #[serde(default)]
    pub args: Vec<String>,
    /// What a job may add: `none` (default), `operands` or `free`.
    #[serde(default = "default_argv_policy")]
    pub argv: String,
}

fn default_argv_policy() -> String {
    ArgvPolicy::None.as_str().to_owned()
}

impl ExecEntry {
    fn program(&self) -> &str {
        match self {
            ExecEntry::Path(p) => p,
            ExecEntry::Command(t) => &t.program,
        }
    }

    /// The command the `exec` kind runs; `None` if the argv policy is not
    /// a known name (validation refuses such a configuration).
    pub fn command(&self) -> Option<ExecCommand> {
        Some(match self {
            ExecEntry::Path(p) => ExecCommand::program(p.clone()),
            ExecEntry::Command(t) => ExecCommand {
                program: t.program.clone(),
                fixed_args: t.args.clone(),
                argv: ArgvPolicy::by_name(&t.argv)?,
            },
        })
    }
}

impl WorkSettings {
    /// The first rule the settings break, if any.
    pub fn validate(&self) -> Result<(), SettingsError> {
        check(
            self.tick_ms > 0 && self.scan_ms > 0 && self.lease_ms >= 100,
            "work.*_ms",
            "ticks must be at least 1 ms, the lease at least 100 ms",
        )?;
        check(
            self.heartbeat_ms > 0 && self.heartbeat_ms.saturating_mul(3) <= self.lease_ms,
            "work.heartbeat_ms",
            "must be 1 ms to a third of lease_ms",
        )?;
        check(
            policy::by_name(&self.placement).is_some(),
            "work.placement",
            "must be least_loaded or locality",
        )?;
        check(
            self.max_queue_jobs > 0 && self.max_offers_in_flight > 0,
            "work",
            "queue and offer limits must be at least 1",
        )?;
        let entries = || self.exec_allow.values();
        check(
            entries().all(|e| e.program().starts_with('/')),
            "work.exec_allow",
            "program paths must be absolute",
        )?;
        check(
            entries().all(|e| e.command().is_some()),
            "work.exec_allow",
            "argv must be none, operands or free",
        )?;
        self.validate_wasm()
    }

    fn validate_wasm(&self) -> Result<(), SettingsError> {
        check(
            self.wasm_max_fuel > 0 && self.wasm_max_wall_ms > 0,
            "work.wasm_max_*",
            "fuel and wall time must be at least 1",
        )?;
        check(
            self.wasm_max_memory_bytes >= 64 << 10,
            "work.wasm_max_memory_bytes",
            "must be at least one 64 KiB page",
        )?;
        check(
            (1..=MAX_WASM_OUTPUT_BYTES).contains(&self.wasm_max_output_bytes),
            "work.wasm_max_output_bytes",
            "must be 1 to 1073741824 (stdout is held in memory until stored)",
        )?;
        check(
            self.wasm_cache_modules > 0,
            "work.wasm_cache_modules",
            "must be at least 1",
        )
    }

    /// The `wasm` kind's ceilings, or `None` when the kind is off.
    pub fn wasm_ceilings(&self) -> Option<Ceilings> {
        self.wasm.then(|| Ceilings {
            fuel: self.wasm_max_fuel,
            wall_ms: self.wasm_max_wall_ms,
            memory_bytes: self.wasm_max_memory_bytes,
            output_bytes: self.wasm_max_output_bytes,
            stderr_bytes: Ceilings::default().stderr_bytes,
        })
    }

    /// The placement policy named by `placement` (least-loaded if the
    /// name is unknown, which validation refuses).
    pub fn policy(&self) -> Arc<dyn PlacementPolicy> {
        Arc::from(policy::by_name(&self.placement).unwrap_or(Box::new(policy::LeastLoaded)))
    }

    /// The `exec` kind's allow-list and limit.
    pub fn exec(&self) -> ExecSettings {
        ExecSettings {
            allow: self
                .exec_allow
                .iter()
                .filter_map(|(name, entry)| Some((name.clone(), entry.command()?)))
                .collect(),
            max_output_bytes: self.exec_max_output_bytes,
        }
    }

    /// Attempts run at once: `slots`, or one per core (`cores`) when 0.
    pub fn slots_for(&self, cores: u32) -> u32 {
        match self.slots {
            0 => cores.max(1),
            n => n,
        }
    }

    /// What the worker pool reads, on a node with `cores` logical CPUs;
    /// calls to owners time out after `rpc_timeout_ms`.
    pub fn workers(&self, cores: u32, rpc_timeout_ms: u64) -> WorkerSettings {
        let slots = self.slots_for(cores);
        WorkerSettings {
            slots,
            heartbeat_ms: self.heartbeat_ms,
            rpc_timeout_ms,
            max_unreported: 4 * slots as usize + 64,
            report_give_up_ms: 10 * self.lease_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken(change: fn(&mut WorkSettings)) -> Result<(), &'static str> {
        let mut s = WorkSettings::default();
        change(&mut s);
        s.validate().map_err(|e| e.key)
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(WorkSettings::default().validate(), Ok(()));
    }

    #[test]
    fn each_broken_rule_names_its_key() {
        assert_eq!(broken(|s| s.lease_ms = 99), Err("work.*_ms"));
        assert_eq!(broken(|s| s.heartbeat_ms = 3_334), Err("work.heartbeat_ms"));
        assert_eq!(
            broken(|s| s.placement = "random".into()),
            Err("work.placement")
        );
        assert_eq!(broken(|s| s.max_offers_in_flight = 0), Err("work"));
        let relative = |s: &mut WorkSettings| {
            let entry = ExecEntry::Path("bin/wc".into());
            s.exec_allow.insert("wc".into(), entry);
        };
        assert_eq!(broken(relative), Err("work.exec_allow"));
        assert_eq!(broken(|s| s.wasm_max_fuel = 0), Err("work.wasm_max_*"));
        assert_eq!(
            broken(|s| s.wasm_max_memory_bytes = 1024),
            Err("work.wasm_max_memory_bytes")
        );
        assert_eq!(
            broken(|s| s.wasm_max_output_bytes = MAX_WASM_OUTPUT_BYTES + 1),
            Err("work.wasm_max_output_bytes")
        );
        assert_eq!(
            broken(|s| s.wasm_cache_modules = 0),
            Err("work.wasm_cache_modules")
        );
    }

    #[test]
    fn the_wasm_kind_is_on_by_default_and_off_when_asked() {
        let on = WorkSettings::default().wasm_ceilings();
        assert_eq!(on, Some(Ceilings::default()));
        let off = WorkSettings {
            wasm: false,
            ..WorkSettings::default()
        };
        assert_eq!(off.wasm_ceilings(), None);
    }

    #[test]
    fn zero_slots_means_one_per_core() {
        let s = WorkSettings::default();
        assert_eq!(s.workers(6, 5_000).slots, 6);
        assert_eq!(s.workers(0, 5_000).slots, 1);
        let fixed = WorkSettings {
            slots: 2,
            ..WorkSettings::default()
        };
        assert_eq!(fixed.workers(6, 5_000).slots, 2);
        assert_eq!(fixed.workers(6, 5_000).max_unreported, 72);
    }
}
