//! Work-queue benchmark (not a timed test) on a 3-node loopback cluster of
//! real release processes: no-op (`echo`) jobs per second end to end
//! (submit → offered → run → result durable), submit latency, and the
//! placement overhead — read from the nodes' `hypha_jobs_placement_seconds`
//! histograms, and timed in-process for the pure policies over 3 and 100
//! candidates. The baseline, measured in the same run on the same cluster,
//! is the rate of small DHT file PUTs at the same concurrency: a job makes
//! two such writes (its record, queued at submit and done at the end), so
//! the job rate is quoted against half the PUT rate. It can exceed it:
//! the owners' completion writes overlap the submits, so more writes are
//! in flight than the baseline's.
//!
//! ```text
//! cargo bench --bench jobs
//! HYPHA_BENCH_JOBS=4000 HYPHA_BENCH_QUEUES=6 HYPHA_BENCH_CONCURRENCY=32 HYPHA_BENCH_SLOTS=16
//! ```
//! Figures are recorded in docs/benchmarks.md and docs/jobs.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hypha_testkit::cluster::Cluster;
use hypha_testkit::http::metrics_text;
use hypha_work::job::{Constraints, JobSpec, Payload};
use hypha_work::placement::{Candidate, LeastLoaded, Locality, PlacementPolicy};
use serde_json::json;
use support::{
    client, counter, env_usize, nodes_cpu_s, percentile, put, sized, small_ops, submit_job,
    wait_completed,
};

fn config(slots: usize) -> String {
    format!("[work]\nslots = {slots}\n\n[storage]\nmin_free_bytes = 0\n")
}

fn spec() -> JobSpec {
    JobSpec {
        queue: "bench".into(),
        kind: "echo".into(),
        payload: Payload::Bytes(Vec::new()),
        args: BTreeMap::new(),
        idempotency_key: None,
        priority: 0,
        max_attempts: 3,
        timeout_ms: 60_000,
        constraints: Constraints {
            min_cores: 1,
            ..Constraints::default()
        },
        then: Vec::new(),
    }
}

fn candidates(n: usize) -> Vec<Candidate> {
    (0..n)
        .map(|i| Candidate {
            worker: format!("node-{i:04}.1"),
            cores: 2 + (i % 7) as u32,
            memory_bytes: 8 << 30,
            free_disk_bytes: 100 << 30,
            labels: BTreeMap::from([("zone".into(), format!("z{}", i % 3))]),
            slots: 16,
            busy: (i * 7 % 16) as u32,
            load_avg_1m: (i % 5) as f64 * 0.3,
            holds_input: i % 11 == 0,
            warm: false,
        })
        .collect()
}

/// One `choose` call timed at a time: (p50, p99) in µs over `calls`.
fn time_policy(policy: &dyn PlacementPolicy, n: usize, calls: usize) -> (f64, f64) {
    let (job, cands) = (spec(), candidates(n));
    let mut us: Vec<f64> = (0..calls)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(policy.choose(std::hint::black_box(&job), &cands));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(|a, b| a.total_cmp(b));
    (percentile(&us, 50.0), percentile(&us, 99.0))
}

/// A histogram's cumulative buckets summed over the nodes: (le, count)
/// ascending, `+Inf` last.
async fn histogram(http: &reqwest::Client, urls: &[String], name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for url in urls {
        for line in metrics_text(http, url).await.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let (le, count) = rest.split_once("\"} ").unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            let entry = buckets.entry(le.to_bits()).or_insert((le, 0.0));
            entry.1 += count.parse::<f64>().unwrap();
        }
    }
    let mut out: Vec<(f64, f64)> = buckets.into_values().collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Prometheus' `histogram_quantile`: linear within the bucket that holds
/// the rank. Also the bucket's upper bound, which the value cannot exceed.
fn quantile(buckets: &[(f64, f64)], q: f64) -> (f64, f64) {
    let total = buckets.last().map_or(0.0, |b| b.1);
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return (lower.0, le);
            }
            let within = (rank - lower.1) / (count - lower.1).max(1.0);
            return (lower.0 + (le - lower.0) * within, le);
        }
        lower = (le, count);
    }
    (f64::NAN, f64::NAN)
}

/// Submit one no-op job; panics unless a node acknowledges it.
async fn submit(http: &reqwest::Client, url: &str, queue: &str) {
    submit_job(
        http,
        url,
        &json!({ "queue": queue, "kind": "echo", "payload": "" }),
    )
    .await;
}

fn placement_in_process() {
    for (name, policy) in [
        ("least_loaded", &LeastLoaded as &dyn PlacementPolicy),
        ("locality", &Locality),
    ] {
        for n in [3, 100] {
            let (p50, p99) = time_policy(policy, n, 200_000);
            println!(
                "placement {name}.choose over {n} candidates: p50 {p50:.2} µs, p99 {p99:.2} µs"
            );
        }
    }
}

fn main() {
    placement_in_process();
    let jobs = sized("HYPHA_BENCH_JOBS", 4_000, 40);
    let queues = sized("HYPHA_BENCH_QUEUES", 6, 2);
    let concurrency = sized("HYPHA_BENCH_CONCURRENCY", 32, 4);
    let slots = env_usize("HYPHA_BENCH_SLOTS", 16);
    let cluster = Cluster::start(3, &config(slots));
    cluster.wait_all_up(3, Duration::from_secs(60));
    // Measured once settled: the start-up anti-entropy round is over
    // (every node replicates every partition here).
    let partitions = 1 << hypha_dht::settings::DhtSettings::default().partition_bits;
    let waited = cluster.wait_caught_up(partitions, Duration::from_secs(60));
    println!(
        "cluster settled {:.1} s after all were Up",
        waited.as_secs_f64()
    );
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = client();
        // Baseline: small durable file writes through the same nodes.
        let (put_rate, put_lat) = small_ops(jobs, concurrency, |i| {
            let (http, url) = (&http, &urls[i % urls.len()]);
            async move { put(http, url, &format!("base/{i}"), vec![7u8; 64]).await }
        })
        .await;
        println!(
            "baseline 64 B file PUT: {put_rate:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms \
             ({jobs} ops, {concurrency} in flight); ÷ 2 (a job's two writes): {:.0}/s",
            percentile(&put_lat, 50.0),
            percentile(&put_lat, 99.0),
            put_rate / 2.0
        );
        // Warm-up: every queue gets its owner loaded and links open.
        let queue_names: Vec<String> = (0..queues).map(|q| format!("bench-{q}")).collect();
        for (i, q) in queue_names.iter().enumerate() {
            submit(&http, &urls[i % urls.len()], q).await;
        }
        wait_completed(&http, &urls, queues as f64, Duration::from_secs(60)).await;
        let done_before = counter(&http, &urls, "hypha_jobs_completed_total").await;
        let cpu_before = nodes_cpu_s(&cluster);
        let started = Instant::now();
        let (submit_rate, submit_lat) = small_ops(jobs, concurrency, |i| {
            let (http, url, queue) = (&http, &urls[i % urls.len()], &queue_names[i % queues]);
            async move { submit(http, url, queue).await }
        })
        .await;
        wait_completed(
            &http,
            &urls,
            done_before + jobs as f64,
            Duration::from_secs(600),
        )
        .await;
        let elapsed_s = started.elapsed().as_secs_f64();
        let job_rate = jobs as f64 / elapsed_s;
        let cpu_us = 1e6 * (nodes_cpu_s(&cluster) - cpu_before) / jobs as f64;
        println!(
            "no-op jobs: {job_rate:.0} jobs/s end to end ({jobs} jobs over {queues} queues, \
             {concurrency} submits in flight, {slots} slots/node, {elapsed_s:.1} s) \
             = {:.0}% of PUT rate ÷ 2; node CPU {cpu_us:.0} µs/job",
            100.0 * job_rate / (put_rate / 2.0)
        );
        println!(
            "submit (acknowledged durable): {submit_rate:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
            percentile(&submit_lat, 50.0),
            percentile(&submit_lat, 99.0)
        );
        let lat = histogram(&http, &urls, "hypha_jobs_latency_seconds").await;
        let (p50, _) = quantile(&lat, 0.5);
        let (p99, p99_le) = quantile(&lat, 0.99);
        println!(
            "submitted → done: p50 {:.1} ms, p99 {:.1} ms (bucket ≤ {:.0} ms)",
            p50 * 1e3,
            p99 * 1e3,
            p99_le * 1e3
        );
        let placement = histogram(&http, &urls, "hypha_jobs_placement_seconds").await;
        let offers = placement.last().map_or(0.0, |b| b.1);
        let (p50, _) = quantile(&placement, 0.5);
        let (p99, p99_le) = quantile(&placement, 0.99);
        println!(
            "placement per offered job, in the owners: p50 {:.1} µs, p99 {:.1} µs \
             (bucket ≤ {:.1} µs; {offers:.0} dispatches)",
            p50 * 1e6,
            p99 * 1e6,
            p99_le * 1e6
        );
        let dead = counter(&http, &urls, "hypha_jobs_dead_lettered_total").await;
        assert_eq!(dead, 0.0, "no job may be dead-lettered");
    });
}
