//! Edge cache benchmark (not a timed test) on 5 loopback release
//! processes, R = 3: a read-heavy workload of a hot set of files (pinned
//! to the three core nodes' zones), read through the two edge nodes that
//! replicate none of them — node 3 with the edge cache (64 MiB, LFU),
//! node 4 without (`cache_max_bytes = 0`) — in
//! alternating rounds of the same requests, so both are measured in the
//! same run on the same cluster. Prints the cache's hit rate over the
//! whole workload (first reads included) and the GET latency (p50, p99)
//! of each node, with their ratio.
//!
//! ```text
//! cargo bench --bench cache
//! HYPHA_BENCH_HOT_FILES=32 HYPHA_BENCH_CACHE_OPS=1000 HYPHA_BENCH_FILE_KIB=256
//! ```
//! Figures are recorded in docs/benchmarks.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use hypha_testkit::cluster::Cluster;
use hypha_testkit::{get_json, metric, ADMIN_TOKEN};
use support::{client, percentile, put, sized, small_ops};

/// `hot/` is pinned to the `core-*` zones (nodes 0–2), so the two edge
/// nodes (3 and 4, zone `edge`) never replicate a hot file: every read
/// through them is an edge read — the deployment the cache is for.
const BASE: &str =
    "[storage]\nmin_free_bytes = 0\n\n[[placement.pin]]\nprefix = \"hot/\"\nzones = [\"core-*\"]\n";

fn config(cache_bytes: u64) -> String {
    format!("[dht]\ncache_max_bytes = {cache_bytes}\ncache_policy = \"lfu\"\n{BASE}")
}

/// Five nodes: three core ones, edge node 3 with a cache, edge node 4
/// without (`cache_max_bytes = 0`).
fn start() -> Cluster {
    let mut c = Cluster::start_with_args(0, &config(64 << 20), &[]);
    for zone in ["core-a", "core-b", "core-c", "edge"] {
        c.extra_args = vec!["--label".into(), format!("zone={zone}")];
        c.add();
    }
    let plain = c.root.join("no-cache.toml");
    std::fs::write(&plain, config(0)).unwrap();
    c.config = Some(plain);
    c.add();
    c.wait_all_up(5, Duration::from_secs(60));
    // Settled: every node caught up on every partition it replicates (its
    // start-up anti-entropy round over), as the dht bench waits.
    for i in c.alive() {
        let url = c.url(i);
        hypha_testkit::wait_until("caught up", Duration::from_secs(120), || {
            let replicated = get_json(&url, "/v1/dht/partitions").map_or(usize::MAX, |d| {
                let all = d["partitions"].as_array().cloned().unwrap_or_default();
                all.iter().filter(|p| p["role"] == "replica").count()
            });
            metric(&url, "hypha_ae_partitions_caught_up") >= replicated as f64
        });
    }
    c
}

async fn json(http: &reqwest::Client, url: &str, path: &str) -> serde_json::Value {
    let res = http
        .get(format!("{url}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    res.json().await.unwrap()
}

/// Write the hot set; check that no edge node replicates any of it.
async fn hot_set(
    url: &str,
    edges: &[String],
    http: &reqwest::Client,
    want: usize,
    len: usize,
) -> Vec<String> {
    let mut hot = Vec::new();
    for i in 0..want {
        let name = format!("hot/{i}");
        // Odd seeds: `pseudo_random` sets the low bit, so 2k and 2k + 1 agree.
        let body = hypha_testkit::pseudo_random(len, 2 * i as u64 + 1);
        put(http, url, &name, body).await;
        let stat = json(http, url, &format!("/v1/stat/{name}")).await;
        let replicas = stat["replicas"].as_array().unwrap();
        let on_edge = replicas
            .iter()
            .any(|r| edges.iter().any(|e| r == e.as_str()));
        assert!(!on_edge, "{name} placed on an edge node: {stat}");
        hot.push(name);
    }
    hot
}

fn main() {
    let files = sized("HYPHA_BENCH_HOT_FILES", 32, 4);
    let ops = sized("HYPHA_BENCH_CACHE_OPS", 1_000, 40);
    let len = sized("HYPHA_BENCH_FILE_KIB", 256, 64) << 10;
    let rounds = 5;
    let concurrency = 8;
    let c = start();
    let edges = [c.id_of(3), c.id_of(4)];
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = client();
        let hot = hot_set(&c.url(0), &edges, &http, files, len).await;
        let (cached, plain) = (c.url(3), c.url(4));
        let before = json(&http, &cached, "/v1/dht/cache").await;
        let mut lat_cached = Vec::new();
        let mut lat_plain = Vec::new();
        // Alternate the two nodes round by round, the same requests in
        // each (request i reads hot file i mod n), so drift in the
        // machine's load falls on both alike.
        for _ in 0..rounds {
            for (url, lat) in [(&cached, &mut lat_cached), (&plain, &mut lat_plain)] {
                let (_, mut l) = small_ops(ops / rounds, concurrency, |i| {
                    let (http, name) = (&http, &hot[i % hot.len()]);
                    async move {
                        assert_eq!(support::get(http, url, name).await, len);
                    }
                })
                .await;
                lat.append(&mut l);
            }
        }
        lat_cached.sort_by(|a, b| a.total_cmp(b));
        lat_plain.sort_by(|a, b| a.total_cmp(b));
        let after = json(&http, &cached, "/v1/dht/cache").await;
        let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
        let (hits, misses) = (delta("hits"), delta("misses"));
        let rate = hits as f64 / (hits + misses).max(1) as f64;
        let (c50, c99) = (percentile(&lat_cached, 50.0), percentile(&lat_cached, 99.0));
        let (p50, p99) = (percentile(&lat_plain, 50.0), percentile(&lat_plain, 99.0));
        println!(
            "edge cache: {files} hot files of {} KiB, {ops} GETs per node ({concurrency} in flight), \
             through two non-replica nodes in alternating rounds",
            len >> 10
        );
        println!(
            "  hit rate {:.1}% ({hits} hits, {misses} misses, first reads included); cache holds {} KiB",
            100.0 * rate,
            after["bytes"].as_u64().unwrap() >> 10
        );
        println!(
            "  GET with cache p50 {c50:.2} ms, p99 {c99:.2} ms; without p50 {p50:.2} ms, p99 {p99:.2} ms; \
             p50 ratio {:.2}× faster",
            p50 / c50
        );
        assert!(hits > 0, "the hot set was never served from the cache");
        assert_eq!(
            json(&http, &plain, "/v1/dht/cache").await["hits"],
            0,
            "node 4 has no cache"
        );
    });
}
