//! Where a job runs: the [`PlacementPolicy`] trait over the candidates an
//! owner sees (advertised capacity, labels, free worker slots, load), the
//! constraint filter every policy shares, the two policies the node ships
//! — least-loaded (default) and locality (prefer a node that holds the
//! job's input file) — and [`WarmCode`], the owner's memory of which
//! workers ran which code lately. Both policies prefer a worker that is
//! warm for the job's code (a wasm module it has compiled and cached),
//! when one has a free slot: that attempt skips the module's read and
//! compile. Pure.

use std::collections::{BTreeMap, VecDeque};

use super::job::JobSpec;
use super::wasm::MODULE_HASH_ARG;

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
    /// Ran the job's code lately ([`WarmCode`]): likely to hold it
    /// compiled.
    pub warm: bool,
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
        least_loaded(job, candidates, |c| c.warm)
            .or_else(|| least_loaded(job, candidates, |_| true))
    }
}

/// Prefer a node warm for the job's code and holding a replica of its
/// input file, then one warm for the code, then one holding the input (no
/// transfer), the least loaded among them; else least-loaded anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Locality;

impl PlacementPolicy for Locality {
    fn name(&self) -> &'static str {
        "locality"
    }

    fn choose(&self, job: &JobSpec, candidates: &[Candidate]) -> Option<usize> {
        least_loaded(job, candidates, |c| c.warm && c.holds_input)
            .or_else(|| least_loaded(job, candidates, |c| c.warm))
            .or_else(|| least_loaded(job, candidates, |c| c.holds_input))
            .or_else(|| least_loaded(job, candidates, |_| true))
    }
}

/// The code a job runs, when it names any (a wasm job's pinned module
/// hash): what makes a worker warm for it.
pub fn code_of(job: &JobSpec) -> Option<&str> {
    job.args.get(MODULE_HASH_ARG).map(String::as_str)
}

/// Which workers ran which code lately, as far as this owner placed it: at
/// most `max_codes` codes (least recently used dropped) and the latest
/// `max_workers` workers of each. A hint, not a fact: a worker's compile
/// cache evicts on its own, and a worker that restarted is cold again
/// (it has a new generation, so a new name).
#[derive(Debug, Clone)]
pub struct WarmCode {
    codes: VecDeque<(String, VecDeque<String>)>,
    max_codes: usize,
    max_workers: usize,
}

impl WarmCode {
    /// Empty, with its bounds.
    pub fn new(max_codes: usize, max_workers: usize) -> Self {
        Self {
            codes: VecDeque::new(),
            max_codes: max_codes.max(1),
            max_workers: max_workers.max(1),
        }
    }

    /// `worker` took a job running `code`.
    pub fn ran(&mut self, code: &str, worker: &str) {
        let mut workers = match self.codes.iter().position(|(c, _)| c == code) {
            Some(i) => self.codes.remove(i).map(|(_, w)| w).unwrap_or_default(),
            None => VecDeque::new(),
        };
        workers.retain(|w| w != worker);
        workers.push_front(worker.to_owned());
        workers.truncate(self.max_workers);
        self.codes.push_front((code.to_owned(), workers));
        self.codes.truncate(self.max_codes);
    }

    /// Whether `worker` ran `code` lately.
    pub fn is_warm(&self, code: &str, worker: &str) -> bool {
        self.codes
            .iter()
            .find(|(c, _)| c == code)
            .is_some_and(|(_, w)| w.iter().any(|w| w == worker))
    }

    /// Codes remembered.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
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
            then: Vec::new(),
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
            warm: false,
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
    fn a_warm_worker_with_room_is_preferred_by_both_policies() {
        let mut nodes = vec![
            node("a", 0, "x", true),
            node("b", 3, "x", false),
            node("c", 4, "x", false),
        ];
        nodes[1].warm = true;
        nodes[2].warm = true;
        let j = job(Constraints::default());
        assert_eq!(LeastLoaded.choose(&j, &nodes), Some(1));
        assert_eq!(Locality.choose(&j, &nodes), Some(1));
        // Warm but full (c) is never chosen; none warm with room: as before.
        nodes[1].busy = 4;
        assert_eq!(LeastLoaded.choose(&j, &nodes), Some(0));
        assert_eq!(Locality.choose(&j, &nodes), Some(0));
    }

    #[test]
    fn warm_code_is_bounded_and_most_recent_first() {
        let mut w = WarmCode::new(2, 2);
        w.ran("m1", "a.1");
        w.ran("m1", "b.1");
        w.ran("m1", "c.1");
        assert!(!w.is_warm("m1", "a.1"), "only the latest 2 workers");
        assert!(w.is_warm("m1", "b.1") && w.is_warm("m1", "c.1"));
        w.ran("m2", "a.1");
        w.ran("m1", "a.1");
        w.ran("m3", "a.1");
        assert_eq!(w.len(), 2);
        assert!(!w.is_warm("m2", "a.1"), "least recently used code dropped");
        assert!(w.is_warm("m1", "a.1") && w.is_warm("m3", "a.1"));
        let mut wasm = job(Constraints::default());
        assert_eq!(code_of(&wasm), None);
        wasm.args.insert(MODULE_HASH_ARG.into(), "m1".into());
        assert_eq!(code_of(&wasm), Some("m1"));
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
