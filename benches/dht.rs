//! DHT file benchmark (not a timed test) on a 3-node loopback cluster of
//! real release processes, R = 3, W = 2: PUT and GET MB/s for 64 MiB
//! files, ops/s and p50/p99 for 4 KiB files, control-path latency (a
//! manifest quorum read through a non-replica) idle and while 64 MiB files
//! stream, and in the same run the raw limits — sled 1 MiB writes with a
//! flush after each, and one loopback TCP stream — printed as ratios.
//!
//! ```text
//! cargo bench --bench dht
//! HYPHA_BENCH_BIG_FILES=4 HYPHA_BENCH_SMALL_OPS=4000 HYPHA_BENCH_CONCURRENCY=32
//! ```
//! Each cluster is measured once it has settled: every node caught up on
//! every partition, its start-up anti-entropy round over. That round costs
//! ~2 s of CPU on 3 nodes; measured while it runs, it doubled the CPU per
//! 4 KiB GET (docs/benchmarks.md).
//!
//! Figures are recorded in docs/benchmarks.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hypha_store::settings::Durability;
use hypha_store::{KvEngine, SledEngine, Tree, WriteBatch};
use hypha_testkit::cluster::Cluster;
use hypha_testkit::http::metrics_text;
use hypha_testkit::ADMIN_TOKEN;
use support::{client, cpu_s, median, nodes_cpu_s, percentile, put, sized, small_ops};

/// Partitions of the default keyspace: every node replicates all of them here.
fn partitions() -> usize {
    1 << hypha_dht::settings::DhtSettings::default().partition_bits
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    hypha_testkit::pseudo_random(len, seed)
}

/// sled: `n` values of `len` bytes, one writer, a flush after each (what
/// a durable write costs when nothing shares its flush): writes per
/// second, and CPU µs per write (this process, sled's threads included;
/// opening the database is not counted).
fn raw_sled_puts(
    dir: &Path,
    durability: Durability,
    tree: Tree,
    len: usize,
    n: usize,
) -> (f64, f64) {
    let engine = SledEngine::open_with(dir, durability).unwrap();
    engine.check_format().unwrap();
    let value = bytes(len, len as u64);
    let cpu_before = cpu_s("self");
    let started = Instant::now();
    for i in 0..n {
        let b = WriteBatch::new().put(tree, format!("k{i}"), value.clone());
        engine.apply(&b).unwrap();
        engine.flush().unwrap();
    }
    let per_s = n as f64 / started.elapsed().as_secs_f64();
    (per_s, 1e6 * (cpu_s("self") - cpu_before) / n as f64)
}

/// One loopback TCP stream, 1 MiB writes.
fn raw_loopback_mb_s() -> f64 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let total: usize = 2 << 30;
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0;
        while got < total {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
    });
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let buf = bytes(1 << 20, 3);
    let started = Instant::now();
    for _ in 0..(total >> 20) {
        s.write_all(&buf).unwrap();
    }
    reader.join().unwrap();
    (total >> 20) as f64 / started.elapsed().as_secs_f64()
}

/// CPU seconds used so far by every node process and by this client.
fn cluster_cpu_s(c: &Cluster) -> (f64, f64) {
    (nodes_cpu_s(c), cpu_s("self"))
}

/// What `ops` operations cost in CPU, and the rate this machine's cores
/// could sustain at that cost: the ceiling any target here must fit under.
fn cpu_line(c: &Cluster, before: (f64, f64), ops: usize) -> String {
    let after = cluster_cpu_s(c);
    let nodes_us = 1e6 * (after.0 - before.0) / ops as f64;
    let client_us = 1e6 * (after.1 - before.1) / ops as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    format!(
        "CPU per op: nodes {nodes_us:.0} µs + client {client_us:.0} µs; \
         {cores:.0} cores sustain at most {:.0} ops/s at that cost",
        cores * 1e6 / (nodes_us + client_us)
    )
}

/// `n` nodes, each seeded by the first, Up and placing files on all,
/// acknowledging writes as `durability` says.
fn start_cluster(n: usize, durability: &str) -> Cluster {
    let config = format!("[storage]\nmin_free_bytes = 0\ndurability = \"{durability}\"\n");
    let c = Cluster::start(n, &config);
    c.wait_all_up(n, Duration::from_secs(30));
    let waited = c.wait_caught_up(partitions(), Duration::from_secs(60));
    println!(
        "cluster ({durability}) settled: every node caught up on every partition {:.1} s after all were Up",
        waited.as_secs_f64()
    );
    c
}

async fn stat_ms(http: &reqwest::Client, url: &str, name: &str) -> f64 {
    let started = Instant::now();
    let res = http
        .get(format!("{url}/v1/stat/{name}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let _ = res.bytes().await.unwrap();
    started.elapsed().as_secs_f64() * 1e3
}

/// The large files' size: 64 MiB (4 MiB in quick mode).
fn big_bytes() -> usize {
    sized("HYPHA_BENCH_BIG_BYTES", 64 << 20, 4 << 20)
}

async fn big_files(c: &Cluster, http: &reqwest::Client, files: usize) -> (f64, f64) {
    let size = big_bytes();
    let mb = size as f64 / (1 << 20) as f64;
    let (mut put_mb_s, mut get_mb_s) = (Vec::new(), Vec::new());
    for i in 0..files {
        let body = bytes(size, i as u64 + 11);
        let url = &c.url(i % c.nodes.len());
        let started = Instant::now();
        put(http, url, &format!("big/{i}"), body).await;
        put_mb_s.push(mb / started.elapsed().as_secs_f64());
        let url = &c.url((i + 1) % c.nodes.len());
        let started = Instant::now();
        assert_eq!(support::get(http, url, &format!("big/{i}")).await, size);
        get_mb_s.push(mb / started.elapsed().as_secs_f64());
    }
    (median(put_mb_s), median(get_mb_s))
}

/// A name none of whose replicas is node 0... with R = 3 of 3 nodes every
/// node is a replica, so the control probe is a quorum read through node 0.
async fn control_latency(c: &Cluster, http: &reqwest::Client, streaming: bool) -> (f64, f64) {
    let url = c.url(0);
    put(http, &url, "probe", b"p".to_vec()).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = if streaming {
        let http = http.clone();
        let urls: Vec<String> = c.alive().into_iter().map(|i| c.url(i)).collect();
        let stop = stop.clone();
        Some(tokio::spawn(async move {
            let body = bytes(big_bytes(), 99);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                put(&http, &urls[1 + i % 2], "stream", body.clone()).await;
                let _ = support::get(&http, &urls[2 - i % 2], "stream").await;
                i += 1;
            }
        }))
    } else {
        None
    };
    if streaming {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut ms = Vec::new();
    for _ in 0..sized("HYPHA_BENCH_PROBES", 300, 20) {
        ms.push(stat_ms(http, &url, "probe").await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(load) = load {
        load.await.unwrap();
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    (percentile(&ms, 50.0), percentile(&ms, 99.0))
}

/// Latency quantiles and store figures of one node, to see where a
/// phase's time went (`HYPHA_BENCH_DUMP_METRICS=1`).
async fn dump_metrics(http: &reqwest::Client, url: &str) {
    let text = metrics_text(http, url).await;
    for line in text.lines().filter(|l| {
        (l.starts_with("hypha_dht_rpc_duration_seconds{")
            || l.starts_with("hypha_store_")
            || l.starts_with("hypha_ae_exchanges_total")
            || l.starts_with("hypha_http_request_duration_seconds{"))
            && !l.contains("quantile=\"0\"")
    }) {
        println!("  {line}");
    }
}

fn main() {
    let raw = |durability, tree, len, n| {
        let dir = tempfile::tempdir().unwrap();
        raw_sled_puts(dir.path(), durability, tree, len, n)
    };
    // 1 MiB values: what a chunk write costs (MB/s = writes/s).
    let chunks = sized("HYPHA_BENCH_RAW_CHUNKS", 128, 8);
    let smalls = sized("HYPHA_BENCH_RAW_SMALL", 500, 20);
    let (sled_mb_s, _) = raw(Durability::PowerLoss, Tree::DhtChunks, 1 << 20, chunks);
    let (loose_mb_s, _) = raw(Durability::ProcessCrash, Tree::DhtChunks, 1 << 20, chunks);
    let (flushes_s, flush_cpu_us) = raw(Durability::PowerLoss, Tree::DhtManifests, 4096, smalls);
    let (loose_s, loose_cpu_us) = raw(Durability::ProcessCrash, Tree::DhtManifests, 4096, smalls);
    let tcp_mb_s = raw_loopback_mb_s();
    println!(
        "raw, one writer, a flush per write: sled 1 MiB {sled_mb_s:.0} MB/s power-safe, \
         {loose_mb_s:.0} MB/s flush only; sled 4 KiB {flushes_s:.0}/s power-safe \
         ({:.2} ms, {flush_cpu_us:.0} µs CPU each), {loose_s:.0}/s flush only \
         ({:.2} ms, {loose_cpu_us:.0} µs CPU each); loopback TCP {tcp_mb_s:.0} MB/s",
        1e3 / flushes_s,
        1e3 / loose_s
    );

    // HYPHA_BENCH_DURABILITY=process_crash runs every phase on a cluster
    // that acknowledges after sled's flush alone.
    let durability =
        std::env::var("HYPHA_BENCH_DURABILITY").unwrap_or_else(|_| "power_loss".into());
    let c = start_cluster(3, &durability);
    let big = sized("HYPHA_BENCH_BIG_FILES", 4, 1);
    let ops = sized("HYPHA_BENCH_SMALL_OPS", 4_000, 40);
    let concurrency = sized("HYPHA_BENCH_CONCURRENCY", 32, 4);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = client();
        let (put_mb_s, get_mb_s) = big_files(&c, &http, big).await;
        println!(
            "64 MiB files (median of {big}): PUT {put_mb_s:.0} MB/s = {:.0}% of disk/R ({:.0} MB/s); \
             GET {get_mb_s:.0} MB/s = {:.1}% of loopback",
            100.0 * put_mb_s / (sled_mb_s / 3.0),
            sled_mb_s / 3.0,
            100.0 * get_mb_s / tcp_mb_s
        );
        let urls: Vec<String> = c.alive().into_iter().map(|i| c.url(i)).collect();
        small_puts(&c, &http, ops, concurrency, &durability).await;
        if std::env::var_os("HYPHA_BENCH_DUMP_METRICS").is_some() {
            dump_metrics(&http, &urls[0]).await;
        }
        let cpu = cluster_cpu_s(&c);
        let (rate, lat) = small_ops(ops, concurrency, |i| {
            let (http, url) = (&http, &urls[(i + 1) % urls.len()]);
            async move {
                assert_eq!(support::get(http, url, &format!("small/{i}")).await, 4096);
            }
        })
        .await;
        println!(
            "4 KiB GET: {rate:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
            percentile(&lat, 50.0),
            percentile(&lat, 99.0)
        );
        println!("  {}", cpu_line(&c, cpu, ops));
        let (idle50, idle99) = control_latency(&c, &http, false).await;
        let (busy50, busy99) = control_latency(&c, &http, true).await;
        println!(
            "control path (stat = HTTP + manifest quorum read): idle p50 {idle50:.2} ms p99 {idle99:.2} ms; \
             while 64 MiB files stream p50 {busy50:.2} ms p99 {busy99:.2} ms (x{:.1})",
            busy99 / idle99
        );
    });
    drop(c);
    // The cost of power-safe acknowledgements: the same small PUTs on a
    // cluster that acknowledges after sled's flush alone, in this run.
    let c = start_cluster(3, "process_crash");
    rt.block_on(small_puts(
        &c,
        &client(),
        ops,
        concurrency,
        "flush only, storage.durability = process_crash",
    ));
}

/// `ops` 4 KiB PUTs of new names, `concurrency` in flight, spread over
/// the nodes: rate, latency and CPU per op, printed under `label`.
async fn small_puts(
    c: &Cluster,
    http: &reqwest::Client,
    ops: usize,
    concurrency: usize,
    label: &str,
) {
    let urls: Vec<String> = c.alive().into_iter().map(|i| c.url(i)).collect();
    let small = bytes(4096, 5);
    let cpu = cluster_cpu_s(c);
    let (rate, lat) = small_ops(ops, concurrency, |i| {
        let (url, body) = (&urls[i % urls.len()], small.clone());
        async move { put(http, url, &format!("small/{i}"), body).await }
    })
    .await;
    println!(
        "4 KiB PUT ({label}): {rate:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms ({ops} ops, {concurrency} in flight)",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0)
    );
    println!("  {}", cpu_line(c, cpu, ops));
}
