//! The scenario × seed matrix: which runs `hypha-chaos matrix` makes,
//! and the markdown table of their results that goes in docs/chaos.md
//! (issue 25: the "before" and "after" of a change, run for run). Pure:
//! the runs themselves are [`crate::run`]'s.

use std::fmt::Write;

use crate::report::Report;

/// Seeds from `7`, `1-5` or `1,3,8-9`.
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>, String> {
    let mut seeds = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("{s:?} in {spec:?} is not a seed"))
        };
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (number(first)?, number(last)?);
                if last < first || last - first >= 10_000 {
                    return Err(format!("{part:?} is not a range of seeds"));
                }
                seeds.extend(first..=last);
            }
            None => seeds.push(number(part)?),
        }
    }
    if seeds.is_empty() {
        return Err(format!("no seed in {spec:?}"));
    }
    Ok(seeds)
}

/// One cell of the matrix: a report, or why the run could not report.
pub enum Cell {
    /// It ran.
    Ran(Box<Report>),
    /// The machine cannot inject its faults.
    Skipped(String),
    /// Setup failed (no cluster formed, a node would not start…).
    Error(String),
}

/// The table header.
const HEADER: &str = "| scenario | seed | result | acked ops | writes acked in window / under faults | write p50/p99 under faults | write p50/p99 overall | 503s (writes / all) | lost | stale reads |\n|---|---|---|---|---|---|---|---|---|---|\n";

/// The markdown table of `runs` (scenario, seed, outcome), in order.
pub fn table(runs: &[(String, u64, Cell)]) -> String {
    let mut out = HEADER.to_owned();
    for (scenario, seed, cell) in runs {
        let _ = writeln!(out, "{}", row(scenario, *seed, cell));
    }
    out
}

/// Columns of the table.
const COLUMNS: usize = 10;

fn row(scenario: &str, seed: u64, cell: &Cell) -> String {
    let mut cells = vec![scenario.to_owned(), seed.to_string()];
    match cell {
        Cell::Ran(r) => cells.extend(figures(r)),
        Cell::Skipped(why) => cells.push(format!("SKIP: {why}")),
        Cell::Error(why) => cells.push(format!("ERROR: {why}")),
    }
    cells.resize(COLUMNS, String::new());
    let cells: Vec<String> = cells
        .iter()
        .map(|c| c.replace('|', "/").replace('\n', " "))
        .collect();
    format!("| {} |", cells.join(" | "))
}

/// The columns after scenario and seed.
fn figures(r: &Report) -> Vec<String> {
    // A run that broke no rule but proves nothing (say, a warm-up too
    // slow on a loaded machine) is not a failure of the build.
    let result = match (r.passed, r.violations.is_empty()) {
        (true, _) => "PASS",
        (false, false) => "FAIL",
        (false, true) => "INVALID",
    };
    let acked: usize = r.kinds.values().map(|k| k.ok).sum();
    let stale = r
        .violations
        .iter()
        .filter(|v| v.rule == "stale_read")
        .count();
    let w = &r.writes;
    vec![
        result.to_owned(),
        acked.to_string(),
        format!("{} / {}", w.acked_in_window, w.acked_under_fault),
        format!(
            "{:.0} / {:.0} ms",
            w.under_fault.p50_ms, w.under_fault.p99_ms
        ),
        format!("{:.0} / {:.0} ms", w.overall.p50_ms, w.overall.p99_ms),
        format!("{} / {}", w.writes_503, w.all_503),
        r.acknowledged_lost.to_string(),
        stale.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::violation;
    use crate::report::{KindFigures, Latency, WriteCost};

    #[test]
    fn seeds_are_numbers_ranges_and_lists() {
        assert_eq!(parse_seeds("7"), Ok(vec![7]));
        assert_eq!(parse_seeds("1-5"), Ok(vec![1, 2, 3, 4, 5]));
        assert_eq!(parse_seeds("1,3, 8-9"), Ok(vec![1, 3, 8, 9]));
        for bad in ["", "x", "5-1", "1-", "0-99999"] {
            assert!(parse_seeds(bad).is_err(), "{bad:?}");
        }
    }

    fn report(passed: bool) -> Report {
        let kind = |ok| KindFigures {
            ok,
            ..KindFigures::default()
        };
        Report {
            scenario: "partition-ring".into(),
            seed: 3,
            nodes: 5,
            duration_s: 60,
            kinds: [("read".to_owned(), kind(10)), ("write".to_owned(), kind(7))].into(),
            warmup_ok_per_s: 50.0,
            writes: WriteCost {
                acked_in_window: 6,
                acked_under_fault: 4,
                under_fault_ms: 30_000,
                in_window: Latency::default(),
                under_fault: Latency {
                    p50_ms: 31.4,
                    p99_ms: 2_950.0,
                },
                overall: Latency {
                    p50_ms: 20.0,
                    p99_ms: 400.0,
                },
                writes_503: 12,
                all_503: 30,
            },
            faults: Vec::new(),
            acknowledged_lost: 1,
            membership_converged_s: None,
            replicas_converged_s: None,
            jobs_done_s: None,
            disk_full_refusals: None,
            violations: vec![
                violation("stale_read", "k", "op 1"),
                violation("stale_read", "k", "op 2"),
                violation("acknowledged_write_lost", "k", "x"),
            ],
            invalid: Vec::new(),
            passed,
            replay: String::new(),
        }
    }

    #[test]
    fn a_run_without_violations_that_did_not_pass_is_invalid_not_failed() {
        let mut r = report(false);
        r.violations.clear();
        r.invalid = vec!["the warm-up reached 4.2 ok ops/s, below 10".into()];
        assert_eq!(figures(&r)[0], "INVALID");
        assert_eq!(figures(&report(true))[0], "PASS");
    }

    #[test]
    fn a_row_carries_the_figures_of_its_report() {
        let runs = [
            (
                "partition-ring".to_owned(),
                3,
                Cell::Ran(Box::new(report(false))),
            ),
            (
                "partition-ring".to_owned(),
                4,
                Cell::Error("no | cluster".into()),
            ),
        ];
        let t = table(&runs);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            "| partition-ring | 3 | FAIL | 17 | 6 / 4 | 31 / 2950 ms | 20 / 400 ms | 12 / 30 | 1 | 2 |"
        );
        assert_eq!(
            lines[3],
            "| partition-ring | 4 | ERROR: no / cluster |  |  |  |  |  |  |  |"
        );
        let columns = |l: &str| l.matches('|').count();
        assert!(lines.iter().all(|l| columns(l) == columns(lines[0])));
    }
}
