//! One history sample from two readings of the node's metrics: counter
//! deltas become per-second rates or per-interval counts, histogram
//! bucket deltas become p50/p99 of the interval, gauges are read as they
//! are. Pure: readings and times in, a [`Sample`] out.

use serde::Serialize;

use super::exposition::Totals;

/// What the node did during one interval (ending at `t_unix_ms`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Position in the node's history: consecutive, from 0 at the start.
    pub seq: u64,
    /// End of the interval, node wall clock (Unix ms).
    pub t_unix_ms: u64,
    /// Length of the interval (ms), as measured on the monotonic clock.
    pub interval_ms: u64,
    /// Admin/data API requests answered per second.
    pub http_requests_per_s: f64,
    /// Median request time of the interval (ms); null without requests.
    pub http_p50_ms: Option<f64>,
    /// 99th-percentile request time of the interval (ms); null without
    /// requests.
    pub http_p99_ms: Option<f64>,
    /// File bytes written by PUTs this node coordinated, per second.
    pub files_written_bytes_per_s: f64,
    /// File bytes served to GETs, per second.
    pub files_read_bytes_per_s: f64,
    /// Actors restarted by their supervisors during the interval.
    pub restarts: u64,
    /// Public state changes of other members seen during the interval.
    pub membership_changes: u64,
    /// Entries anti-entropy copied to or from this node during the interval.
    pub ae_entries_repaired: u64,
    /// Share of the interval's edge-cache lookups that hit (percent);
    /// null without lookups (docs/dht.md, "Edge cache").
    pub cache_hit_pct: Option<f32>,
    /// Jobs waiting in the queues this node owns, at the end.
    pub jobs_queued: u64,
    /// Jobs offered or running in the queues this node owns, at the end.
    pub jobs_in_flight: u64,
}

/// The sample of the interval from `prev` to `cur`, `elapsed_ms` long;
/// `None` for an empty interval (no time passed: no rate).
pub fn between(
    prev: &Totals,
    cur: &Totals,
    elapsed_ms: u64,
    t_unix_ms: u64,
    seq: u64,
) -> Option<Sample> {
    if elapsed_ms == 0 {
        return None;
    }
    let secs = elapsed_ms as f64 / 1_000.0;
    let per_s = |p: f64, c: f64| increase(p, c) / secs;
    let buckets = bucket_increase(&prev.http_latency_buckets, &cur.http_latency_buckets);
    let ms = |q| quantile(q, &buckets).map(|s| s * 1_000.0);
    Some(Sample {
        seq,
        t_unix_ms,
        interval_ms: elapsed_ms,
        http_requests_per_s: per_s(prev.http_requests, cur.http_requests),
        http_p50_ms: ms(0.5),
        http_p99_ms: ms(0.99),
        files_written_bytes_per_s: per_s(prev.files_written_bytes, cur.files_written_bytes),
        files_read_bytes_per_s: per_s(prev.files_read_bytes, cur.files_read_bytes),
        restarts: count(increase(prev.restarts, cur.restarts)),
        membership_changes: count(increase(
            prev.membership_transitions,
            cur.membership_transitions,
        )),
        ae_entries_repaired: count(increase(prev.ae_entries_repaired, cur.ae_entries_repaired)),
        cache_hit_pct: hit_pct(
            increase(prev.cache_hits, cur.cache_hits),
            increase(prev.cache_misses, cur.cache_misses),
        ),
        jobs_queued: count(cur.jobs_queued),
        jobs_in_flight: count(cur.jobs_in_flight),
    })
}

/// How much a counter grew. A counter that went down was reset (its
/// series recreated): as Prometheus does, its whole new value is the
/// increase.
pub fn increase(prev: f64, cur: f64) -> f64 {
    if cur >= prev {
        cur - prev
    } else {
        cur.max(0.0)
    }
}

/// Hits as a percentage of lookups; `None` without lookups.
fn hit_pct(hits: f64, misses: f64) -> Option<f32> {
    let lookups = hits + misses;
    (lookups > 0.0).then(|| (100.0 * hits / lookups) as f32)
}

/// A non-negative count as an integer (rounded; saturating).
fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        // `as` saturates at u64::MAX, which is the intent.
        v.round() as u64
    } else {
        0
    }
}

/// Per-bucket increase of two cumulative histograms (bounds missing on
/// one side count as 0 there).
pub fn bucket_increase(prev: &[(f64, f64)], cur: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let reset = cur.iter().any(|&(le, c)| c < lookup(prev, le));
    cur.iter()
        .map(|&(le, c)| (le, if reset { c } else { c - lookup(prev, le) }))
        .collect()
}

fn lookup(buckets: &[(f64, f64)], le: f64) -> f64 {
    buckets
        .iter()
        .find(|(b, _)| *b == le)
        .map_or(0.0, |&(_, c)| c)
}

/// The `q` quantile (0..=1) of cumulative buckets `(le, count)` sorted by
/// bound, the way Prometheus' `histogram_quantile` estimates it: linear
/// within the bucket the rank falls in, the first bucket starting at 0,
/// and a rank in the `+Inf` bucket answered with the highest finite
/// bound. `None` without observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total.is_nan() || total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, c) in buckets {
        if c >= rank && c > lower.1 {
            if le.is_infinite() {
                return Some(lower.0);
            }
            return Some(lower.0 + (le - lower.0) * (rank - lower.1) / (c - lower.1));
        }
        lower = (le, c);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn totals(requests: f64, buckets: &[(f64, f64)]) -> Totals {
        Totals {
            http_requests: requests,
            http_latency_buckets: buckets.to_vec(),
            ..Totals::default()
        }
    }

    #[test]
    fn rates_are_per_second_and_counts_per_interval() {
        let prev = Totals {
            http_requests: 100.0,
            files_written_bytes: 1_000.0,
            restarts: 2.0,
            membership_transitions: 1.0,
            ae_entries_repaired: 10.0,
            jobs_queued: 4.0,
            ..Totals::default()
        };
        let cur = Totals {
            http_requests: 150.0,
            files_written_bytes: 11_000.0,
            files_read_bytes: 500.0,
            restarts: 3.0,
            membership_transitions: 3.0,
            ae_entries_repaired: 15.0,
            jobs_queued: 7.0,
            jobs_in_flight: 2.0,
            ..Totals::default()
        };
        let s = between(&prev, &cur, 5_000, 42, 7).unwrap();
        assert_eq!(s.seq, 7);
        assert_eq!(s.t_unix_ms, 42);
        assert_eq!(s.http_requests_per_s, 10.0);
        assert_eq!(s.files_written_bytes_per_s, 2_000.0);
        assert_eq!(s.files_read_bytes_per_s, 100.0);
        assert_eq!(
            (s.restarts, s.membership_changes, s.ae_entries_repaired),
            (1, 2, 5)
        );
        assert_eq!((s.jobs_queued, s.jobs_in_flight), (7, 2));
        assert_eq!((s.http_p50_ms, s.http_p99_ms), (None, None));
        assert_eq!(s.cache_hit_pct, None, "no lookups, no rate");
        let hot = Totals {
            cache_hits: 30.0,
            cache_misses: 10.0,
            ..cur.clone()
        };
        assert_eq!(
            between(&cur, &hot, 5_000, 43, 8).unwrap().cache_hit_pct,
            Some(75.0)
        );
    }

    #[test]
    fn no_time_no_sample() {
        assert!(between(&Totals::default(), &Totals::default(), 0, 1, 0).is_none());
    }

    #[test]
    fn a_reset_counter_counts_its_new_value() {
        assert_eq!(increase(10.0, 15.0), 5.0);
        assert_eq!(increase(10.0, 3.0), 3.0);
        assert_eq!(
            bucket_increase(
                &[(1.0, 5.0), (f64::INFINITY, 9.0)],
                &[(1.0, 1.0), (f64::INFINITY, 2.0)]
            ),
            vec![(1.0, 1.0), (f64::INFINITY, 2.0)]
        );
    }

    #[test]
    fn latency_quantiles_come_from_the_interval_only() {
        // Before: 100 fast requests. During: 10 more at 1-2 ms (cumulative
        // 0.001 → 100, 0.002 → 110).
        let prev = totals(
            100.0,
            &[(0.001, 100.0), (0.002, 100.0), (f64::INFINITY, 100.0)],
        );
        let cur = totals(
            110.0,
            &[(0.001, 100.0), (0.002, 110.0), (f64::INFINITY, 110.0)],
        );
        let s = between(&prev, &cur, 1_000, 0, 0).unwrap();
        let p50 = s.http_p50_ms.unwrap();
        let p99 = s.http_p99_ms.unwrap();
        assert!((p50 - 1.5).abs() < 1e-9, "{p50}");
        assert!((p99 - 1.99).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn quantile_follows_histogram_quantile() {
        let b = [
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile(0.5, &b), Some(0.1));
        assert!((quantile(0.7, &b).unwrap() - 0.3).abs() < 1e-9);
        assert_eq!(quantile(1.0, &b), Some(1.0));
        // Ranks in +Inf: the highest finite bound.
        let b = [(0.1, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(0.99, &b), Some(0.1));
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(quantile(0.5, &[]), None);
    }

    /// Cumulative buckets: sorted bounds ending in +Inf, counts not
    /// decreasing.
    fn histogram() -> impl Strategy<Value = Vec<(f64, f64)>> {
        proptest::collection::vec((1u32..10_000, 0u32..1_000), 1..20).prop_map(|raw| {
            let mut bounds: Vec<u32> = raw.iter().map(|r| r.0).collect();
            bounds.sort_unstable();
            bounds.dedup();
            let mut total = 0.0;
            let mut out: Vec<(f64, f64)> = bounds
                .iter()
                .zip(raw.iter().map(|r| r.1))
                .map(|(&b, n)| {
                    total += f64::from(n);
                    (f64::from(b) / 1_000.0, total)
                })
                .collect();
            out.push((f64::INFINITY, total));
            out
        })
    }

    proptest! {
        /// A quantile lies within the finite bounds and does not decrease
        /// with q.
        #[test]
        fn quantiles_are_bounded_and_monotonic(b in histogram(), q1 in 0.0f64..=1.0, q2 in 0.0f64..=1.0) {
            let (lo, hi) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
            let max = b.iter().rev().find(|x| x.0.is_finite()).map_or(0.0, |x| x.0);
            match (quantile(lo, &b), quantile(hi, &b)) {
                (Some(a), Some(z)) => {
                    prop_assert!(a <= z + 1e-12, "q{lo}={a} > q{hi}={z}");
                    prop_assert!((0.0..=max).contains(&a) && (0.0..=max).contains(&z));
                }
                (None, None) => prop_assert_eq!(b.last().map(|x| x.1), Some(0.0)),
                other => prop_assert!(false, "{other:?}"),
            }
        }

        /// Rates and counts are never negative nor infinite, whatever two
        /// readings come in (resets included).
        #[test]
        fn samples_are_finite_and_non_negative(
            a in 0.0f64..1e12, b in 0.0f64..1e12, g in 0.0f64..1e6, elapsed_ms in 1u64..3_600_000,
        ) {
            let prev = Totals { http_requests: a, files_read_bytes: b, restarts: a, ..Totals::default() };
            let cur = Totals { http_requests: b, files_read_bytes: a, restarts: b, jobs_queued: g, ..Totals::default() };
            let s = between(&prev, &cur, elapsed_ms, 0, 0).unwrap();
            for rate in [s.http_requests_per_s, s.files_read_bytes_per_s, s.files_written_bytes_per_s] {
                prop_assert!(rate.is_finite() && rate >= 0.0);
            }
            prop_assert!(s.restarts as f64 <= a.max(b) + 1.0);
        }
    }
}
