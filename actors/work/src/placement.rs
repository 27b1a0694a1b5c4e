//! Where a job runs: the [`PlacementPolicy`] trait over the candidates an
//! owner sees (advertised capacity, labels, free worker slots, load), the
//! constraint filter every policy shares, and the two policies the node
//! ships — least-loaded (default) and locality (prefer a node that holds
//! the job's input file). Pure.

use std::collections::BTreeMap;

use super::job::JobSpec;

/// A worker an owner could offer a job to.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Worker member (`<node id>.<generation>`).
    pub worker: String,
    /// Logical CPUs.
    pub cores: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Free disk in bytes.
    pub free_disk_bytes: u64,
    /// Node labels (`zone` among them).
    pub labels: BTreeMap<String, String>,
    /// Worker slots.
    pub slots: u32,
    /// Slots in use, as far as this owner knows (advertised running jobs,
    /// or this owner's own offers and leases when those are more).
    pub busy: u32,
    /// One-minute load average.
    pub load_avg_1m: f64,
    /// Holds a replica of the job's input file.
    pub holds_input: bool,
}

impl Candidate {
    /// Free slots.
    pub fn free(&self) -> u32 {
        self.slots.saturating_sub(self.busy)
    }

    fn utilisation(&self) -> f64 {
        f64::from(self.busy) / f64::from(self.slots.max(1))
    }
}

/// Whether `c` satisfies the job's constraints and has a free slot.
pub fn eligible(job: &JobSpec, c: &Candidate) -> bool {
    let k = &job.constraints;
    c.free() > 0
        && c.cores >= k.min_cores
        && c.memory_bytes >= k.min_memory_bytes
        && c.free_disk_bytes >= k.min_disk_bytes
        && k.zone
            .as_ref()
            .is_none_or(|z| c.labels.get("zone") == Some(z))
        && k.labels.iter().all(|(key, v)| c.labels.get(key) == Some(v))
}

/// Chooses a worker for a job.
pub trait PlacementPolicy: Send + Sync + 'static {
    /// Name shown in the API and logs.
    fn name(&self) -> &'static str;
    /// Index of the chosen candidate, or `None` when none fits now.
    fn choose(&self, job: &JobSpec, candidates: &[Candidate]) -> Option<usize>;
}

/// The eligible candidate with the lowest utilisation, then the lowest
/// load average, then the smallest name (deterministic).
fn least_loaded(
    job: &JobSpec,
    candidates: &[Candidate],
    only: impl Fn(&Candidate) -> bool,
) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| eligible(job, c) && only(c))
        .min_by(|(_, a), (_, b)| {
            a.utilisation()
                .total_cmp(&b.utilisation())
                .then(a.load_avg_1m.total_cmp(&b.load_avg_1m))
                .then(a.worker.cmp(&b.worker))
        })
        .map(|(i, _)| i)
}

/// Default: spread by free capacity.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastLoaded;

impl PlacementPolicy for LeastLoaded {
    fn name(&self) -> &'static str {
        "least_loaded"
    }

    fn choose(&self, job: &JobSpec, candidates: &[Candidate]) -> Option<usize> {
        least_loaded(job, candidates, |_| true)
    }
}

/// Prefer a node holding a replica of the input file (no transfer), the
/// least loaded among them; else least-loaded anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Locality;

impl PlacementPolicy for Locality {
    fn name(&self) -> &'static str {
        "locality"
    }

    fn choose(&self, job: &JobSpec, candidates: &[Candidate]) -> Option<usize> {
        least_loaded(job, candidates, |c| c.holds_input)
            .or_else(|| least_loaded(job, candidates, |_| true))
    }
}

/// A policy by its configured name.
pub fn by_name(name: &str) -> Option<Box<dyn PlacementPolicy>> {
    match name {
        "least_loaded" => Some(Box::new(LeastLoaded)),
        "locality" => Some(Box::new(Locality)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Constraints, Payload};

    fn job(constraints: Constraints) -> JobSpec {
        JobSpec {
            queue: "q".into(),
            kind: "checksum".into(),
            payload: Payload::File("f".into()),
            args: BTreeMap::new(),
            idempotency_key: None,
            priority: 0,
            max_attempts: 1,
            timeout_ms: 1,
            constraints,
        }
    }

    fn node(name: &str, busy: u32, zone: &str, holds: bool) -> Candidate {
        Candidate {
            worker: name.into(),
            cores: 4,
            memory_bytes: 8 << 30,
            free_disk_bytes: 100 << 30,
            labels: [("zone".to_string(), zone.to_string())].into(),
            slots: 4,
            busy,
            load_avg_1m: 0.5,
            holds_input: holds,
        }
    }

    #[test]
    fn least_loaded_honours_constraints_and_free_slots() {
        let nodes = vec![
            node("a", 3, "x", false),
            node("b", 1, "y", false),
            node("c", 4, "x", true),
        ];
        assert_eq!(
            LeastLoaded.choose(&job(Constraints::default()), &nodes),
            Some(1)
        );
        let in_x = Constraints {
            zone: Some("x".into()),
            ..Constraints::default()
        };
        // c is in zone x but full.
        assert_eq!(LeastLoaded.choose(&job(in_x), &nodes), Some(0));
        let big = Constraints {
            min_cores: 8,
            ..Constraints::default()
        };
        assert_eq!(LeastLoaded.choose(&job(big), &nodes), None);
    }

    #[test]
    fn locality_prefers_a_holder_with_room() {
        let nodes = vec![
            node("a", 0, "x", false),
            node("b", 2, "x", true),
            node("c", 4, "x", true),
        ];
        assert_eq!(
            Locality.choose(&job(Constraints::default()), &nodes),
            Some(1)
        );
        let nodes = vec![node("a", 0, "x", false), node("c", 4, "x", true)];
        assert_eq!(
            Locality.choose(&job(Constraints::default()), &nodes),
            Some(0)
        );
    }
}
