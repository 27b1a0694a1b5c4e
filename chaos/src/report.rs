//! The run's report: operation counts and latencies per kind, faults
//! applied, convergence times, violations and the verdict — as JSON
//! (`report.json`) and as a human summary.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::check::Violation;
use crate::history::{FaultEvent, Op, Outcome};

/// Figures of one operation kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindFigures {
    /// Operations invoked.
    pub ops: usize,
    /// Acknowledged.
    pub ok: usize,
    /// Refused before any effect.
    pub fail: usize,
    /// Outcome unknown.
    pub unknown: usize,
    /// Latency of acknowledged operations, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Fault window, s.
    pub duration_s: u64,
    /// Per operation kind.
    pub kinds: BTreeMap<String, KindFigures>,
    /// Acknowledged operations per second before the first fault.
    pub warmup_ok_per_s: f64,
    /// Faults scheduled and how each went.
    pub faults: Vec<FaultEvent>,
    /// Acknowledged writes, deletes and jobs whose effect was lost.
    pub acknowledged_lost: usize,
    /// Heal → every node sees every member up, s.
    pub membership_converged_s: Option<f64>,
    /// Heal → every partition's replicas hold equal roots, s.
    pub replicas_converged_s: Option<f64>,
    /// Heal → every acknowledged job done, s.
    pub jobs_done_s: Option<f64>,
    /// Writes the full disk's node refused (disk-full only): the proof
    /// the fault bit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_full_refusals: Option<u64>,
    /// Every broken invariant or validity rule.
    pub violations: Vec<Violation>,
    /// Why the run was not meaningful, if it was not.
    pub invalid: Vec<String>,
    /// Passed: valid, and no violation.
    pub passed: bool,
    /// The command that replays this run.
    pub replay: String,
}

/// Figures per kind from the history.
pub fn kinds(ops: &[Op]) -> BTreeMap<String, KindFigures> {
    let mut out: BTreeMap<String, (KindFigures, Vec<f64>)> = BTreeMap::new();
    for op in ops {
        let (f, lat) = out.entry(op.kind.as_str().to_owned()).or_default();
        f.ops += 1;
        match op.outcome {
            Outcome::Ok => {
                f.ok += 1;
                lat.push(op.complete_ms.saturating_sub(op.invoke_ms) as f64);
            }
            Outcome::Fail => f.fail += 1,
            Outcome::Unknown => f.unknown += 1,
        }
    }
    out.into_iter()
        .map(|(k, (mut f, mut lat))| {
            lat.sort_by(|a, b| a.total_cmp(b));
            f.p50_ms = percentile(&lat, 0.5);
            f.p99_ms = percentile(&lat, 0.99);
            (k, f)
        })
        .collect()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "never".to_owned(), |s| format!("{s:.1} s"))
}

impl Report {
    /// The human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(
            s,
            "{verdict} {} seed {} ({} nodes, {} s of faults)",
            self.scenario, self.seed, self.nodes, self.duration_s
        );
        for (kind, f) in &self.kinds {
            let _ = writeln!(
                s,
                "  {kind:<7} {:>6} ops: {} ok, {} fail, {} unknown; ok p50 {:.0} ms, p99 {:.0} ms",
                f.ops, f.ok, f.fail, f.unknown, f.p50_ms, f.p99_ms
            );
        }
        let applied = self.faults.iter().filter(|f| f.result == "ok").count();
        let _ = writeln!(
            s,
            "  faults: {applied} of {} applied; warm-up {:.0} ok ops/s; acknowledged lost: {}",
            self.faults.len(),
            self.warmup_ok_per_s,
            self.acknowledged_lost
        );
        let _ = writeln!(
            s,
            "  after heal: membership {}, replicas {}, jobs {}",
            secs(self.membership_converged_s),
            secs(self.replicas_converged_s),
            secs(self.jobs_done_s)
        );
        if let Some(n) = self.disk_full_refusals {
            let _ = writeln!(s, "  writes the full disk refused: {n}");
        }
        for v in self.violations.iter().take(20) {
            let _ = writeln!(s, "  VIOLATION {} {}: {}", v.rule, v.subject, v.detail);
        }
        if self.violations.len() > 20 {
            let _ = writeln!(s, "  … {} violations in all", self.violations.len());
        }
        for why in &self.invalid {
            let _ = writeln!(s, "  INVALID {why}");
        }
        if !self.passed {
            let _ = writeln!(s, "  replay: {}", self.replay);
        }
        s
    }
}
