//! The run's report: operation counts and latencies per kind, faults
//! applied, convergence times, violations and the verdict — as JSON
//! (`report.json`) and as a human summary.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::check::Violation;
use crate::history::{FaultEvent, Op, OpKind, Outcome};

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

/// Latency percentiles of acknowledged operations, ms (0 when there were
/// none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// What the run's writes got: the figures a fence's cost is judged by
/// (issue 25: availability and latency during faults, before and after).
/// "Under fault" is while at least one fault was in force
/// ([`crate::history::fault_spans`]: a partition until its heal, a node
/// down until started); "in window" is the `--duration` window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WriteCost {
    /// Writes acknowledged (completed with a 2xx) inside the window.
    pub acked_in_window: usize,
    /// Writes acknowledged while a fault was in force.
    pub acked_under_fault: usize,
    /// How long faults were in force, ms.
    pub under_fault_ms: u64,
    /// Acknowledged writes completed inside the window.
    pub in_window: Latency,
    /// Acknowledged writes completed while a fault was in force.
    pub under_fault: Latency,
    /// Every acknowledged write of the run.
    pub overall: Latency,
    /// Writes answered 503.
    pub writes_503: usize,
    /// Operations of every kind answered 503.
    pub all_503: usize,
}

/// The write figures of `ops`, given the window (ms since the run
/// started, end exclusive) and the spans faults were in force.
pub fn write_cost(ops: &[Op], window_ms: (u64, u64), under_fault: &[(u64, u64)]) -> WriteCost {
    let inside = |spans: &[(u64, u64)], op: &Op| {
        spans
            .iter()
            .any(|(start, end)| (*start..*end).contains(&op.complete_ms))
    };
    let acked: Vec<&Op> = ops
        .iter()
        .filter(|o| o.kind == OpKind::Write && o.outcome == Outcome::Ok)
        .collect();
    let in_window: Vec<&Op> = acked
        .iter()
        .copied()
        .filter(|o| inside(&[window_ms], o))
        .collect();
    let faulted: Vec<&Op> = acked
        .iter()
        .copied()
        .filter(|o| inside(under_fault, o))
        .collect();
    let is_503 = |o: &&Op| o.status() == Some(503);
    WriteCost {
        acked_in_window: in_window.len(),
        acked_under_fault: faulted.len(),
        under_fault_ms: under_fault.iter().map(|(s, e)| e.saturating_sub(*s)).sum(),
        in_window: latency(&in_window),
        under_fault: latency(&faulted),
        overall: latency(&acked),
        writes_503: ops
            .iter()
            .filter(|o| o.kind == OpKind::Write)
            .filter(is_503)
            .count(),
        all_503: ops.iter().filter(is_503).count(),
    }
}

/// Percentiles of the operations' invoke-to-complete times.
fn latency(ops: &[&Op]) -> Latency {
    let mut ms: Vec<f64> = ops
        .iter()
        .map(|o| o.complete_ms.saturating_sub(o.invoke_ms) as f64)
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    Latency {
        p50_ms: percentile(&ms, 0.5),
        p99_ms: percentile(&ms, 0.99),
    }
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
    /// Writes acknowledged in the window and under faults, their latency,
    /// and the 503s.
    pub writes: WriteCost,
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
    let mut out: BTreeMap<String, (KindFigures, Vec<&Op>)> = BTreeMap::new();
    for op in ops {
        let (f, acked) = out.entry(op.kind.as_str().to_owned()).or_default();
        f.ops += 1;
        match op.outcome {
            Outcome::Ok => {
                f.ok += 1;
                acked.push(op);
            }
            Outcome::Fail => f.fail += 1,
            Outcome::Unknown => f.unknown += 1,
        }
    }
    out.into_iter()
        .map(|(k, (mut f, acked))| {
            let l = latency(&acked);
            (f.p50_ms, f.p99_ms) = (l.p50_ms, l.p99_ms);
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
        let w = &self.writes;
        let _ = writeln!(
            s,
            "  writes acked: {} in the window, {} under faults ({:.1} s); p50/p99 {:.0}/{:.0} ms \
             in the window, {:.0}/{:.0} ms under faults, {:.0}/{:.0} ms overall; 503s: {} writes, {} all",
            w.acked_in_window,
            w.acked_under_fault,
            w.under_fault_ms as f64 / 1000.0,
            w.in_window.p50_ms,
            w.in_window.p99_ms,
            w.under_fault.p50_ms,
            w.under_fault.p99_ms,
            w.overall.p50_ms,
            w.overall.p99_ms,
            w.writes_503,
            w.all_503
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(id: u64, invoke_ms: u64, complete_ms: u64, outcome: Outcome, detail: &str) -> Op {
        Op {
            id,
            client: 0,
            kind: OpKind::Write,
            key: "k".into(),
            value: Some("v".into()),
            node: 0,
            invoke_ms,
            complete_ms,
            outcome,
            detail: detail.into(),
        }
    }

    #[test]
    fn write_cost_counts_acknowledgements_where_they_complete() {
        let mut read = write(9, 1_500, 1_600, Outcome::Unknown, "503 Service Unavailable");
        read.kind = OpKind::Read;
        let ops = [
            write(1, 100, 110, Outcome::Ok, "200 OK"),     // warm-up
            write(2, 1_000, 1_020, Outcome::Ok, "200 OK"), // window, no fault
            write(3, 1_990, 2_040, Outcome::Ok, "200 OK"), // completes under the fault
            write(4, 2_100, 2_400, Outcome::Ok, "200 OK"),
            write(5, 2_500, 2_600, Outcome::Unknown, "503 Service Unavailable"),
            write(6, 2_700, 12_700, Outcome::Unknown, "operation timed out"),
            write(7, 3_900, 4_100, Outcome::Ok, "200 OK"), // after the heal, past the window
            read,
        ];
        let cost = write_cost(&ops, (1_000, 4_000), &[(2_000, 3_000)]);
        assert_eq!(cost.acked_in_window, 3);
        assert_eq!(cost.acked_under_fault, 2);
        assert_eq!(cost.under_fault_ms, 1_000);
        assert_eq!((cost.writes_503, cost.all_503), (1, 2));
        assert_eq!(
            cost.under_fault,
            Latency {
                p50_ms: 300.0,
                p99_ms: 300.0
            }
        );
        assert_eq!(cost.in_window.p50_ms, 50.0);
        assert_eq!(cost.overall.p50_ms, 50.0);
        assert_eq!(cost.overall.p99_ms, 300.0);
    }

    #[test]
    fn no_acknowledged_write_gives_zero_latency_not_a_panic() {
        let ops = [write(1, 0, 10, Outcome::Fail, "400 Bad Request")];
        let cost = write_cost(&ops, (0, 100), &[]);
        assert_eq!(cost, WriteCost::default());
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let ms: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&ms, 0.5), 51.0);
        assert_eq!(percentile(&ms, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
