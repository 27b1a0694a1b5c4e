//! Helpers the cluster benchmarks share: settings from the environment,
//! percentiles, an HTTP client, a file PUT, and a driver that runs many
//! requests with a fixed number in flight.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;

use hypha_testkit::ADMIN_TOKEN;

/// CPU seconds (user + system) a process has used, from /proc.
pub fn cpu_s(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields of the whole line, in clock ticks (100/s).
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Under `cargo test` (no `--bench` argument) a bench runs in quick mode:
/// every part once, at sizes that only show it still runs (CI runs them
/// so). Figures come from `cargo bench`.
pub fn quick() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// `name` from the environment, else `full` (`quick_size` in quick mode).
pub fn sized(name: &str, full: usize, quick_size: usize) -> usize {
    env_usize(name, if quick() { quick_size } else { full })
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Nearest-rank percentile of an ascending slice.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(&v, 50.0)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// Store a file through a node; panics unless it answers 201.
pub async fn put(http: &reqwest::Client, url: &str, name: &str, body: Vec<u8>) {
    let res = http
        .put(format!("{url}/v1/files/{name}"))
        .bearer_auth(ADMIN_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201, "{}", res.text().await.unwrap());
}

/// The bytes of a 200 answer, counted and dropped as they arrive (as a
/// raw loopback reader would: gathering 64 MiB into one buffer would
/// measure the client's copies).
pub async fn drain(res: reqwest::Response) -> usize {
    assert_eq!(res.status().as_u16(), 200);
    let mut body = res.bytes_stream();
    let mut len = 0;
    while let Some(piece) = body.next().await {
        len += piece.unwrap().len();
    }
    len
}

/// Read a file through a node: its size, the bytes dropped as they come.
pub async fn get(http: &reqwest::Client, url: &str, name: &str) -> usize {
    let res = http
        .get(format!("{url}/v1/files/{name}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    drain(res).await
}

/// Run `ops` requests with `concurrency` in flight; ops/s and latencies
/// (ms, ascending).
pub async fn small_ops<F, Fut>(ops: usize, concurrency: usize, op: F) -> (f64, Vec<f64>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let op = &op;
    let started = Instant::now();
    let mut lat: Vec<f64> = futures::stream::iter(0..ops)
        .map(|i| async move {
            let t = Instant::now();
            op(i).await;
            t.elapsed().as_secs_f64() * 1e3
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let rate = ops as f64 / started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    (rate, lat)
}

/// Submit one job (`body` as `POST /v1/jobs` takes it); panics unless a
/// node acknowledges it.
pub async fn submit_job(http: &reqwest::Client, url: &str, body: &serde_json::Value) {
    let res = http
        .post(format!("{url}/v1/jobs"))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201, "{}", res.text().await.unwrap());
}

/// Sum over the nodes of every sample of `name` (no labels).
pub async fn counter(http: &reqwest::Client, urls: &[String], name: &str) -> f64 {
    let mut sum = 0.0;
    for url in urls {
        sum += hypha_testkit::http::metrics_text(http, url)
            .await
            .lines()
            .filter(|l| l.split(' ').next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    sum
}

/// Poll (≤ `limit`) until the nodes have completed `target` jobs in all.
pub async fn wait_completed(http: &reqwest::Client, urls: &[String], target: f64, limit: Duration) {
    let done = move || async move {
        (counter(http, urls, "hypha_jobs_completed_total").await >= target).then_some(())
    };
    if hypha_testkit::poll::poll(limit, Duration::from_millis(20), done)
        .await
        .is_err()
    {
        panic!("jobs did not complete in {limit:?}");
    }
}

/// CPU seconds used so far by every node process of `cluster`.
pub fn nodes_cpu_s(cluster: &hypha_testkit::cluster::Cluster) -> f64 {
    cluster
        .pids()
        .iter()
        .map(|pid| cpu_s(&pid.to_string()))
        .sum()
}
