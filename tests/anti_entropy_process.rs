//! Anti-entropy on a cluster of real `hypha` processes (issue 5's
//! acceptance): 5 nodes and 500 files; one node killed for good → every
//! partition back to R live replicas with equal roots within 60 s and all
//! files readable; a node that missed writes and deletes restarts →
//! converges and no deleted file comes back; a 6th node joins → it gets
//! its partitions, the former replicas hand off and drop theirs, nothing
//! is lost; a node leaves gracefully → it hands off first. Convergence is read from `GET /v1/dht/partitions` on every
//! node; every wait polls with a deadline.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{get_json, metric, Api, ADMIN_TOKEN};
use futures::StreamExt;

const R: usize = 3;
const PARTITIONS: usize = 1024;
const FILES: usize = 500;

const CONFIG: &str = "\
[cluster]
handoff_timeout_ms = 60000

[dht]
down_grace_ms = 5000
rpc_timeout_ms = 3000
chunk_grace_ms = 2000
gc_tick_ms = 50

[anti_entropy]
period_ms = 60000
recheck_ms = 300
retry_ms = 1000
tick_ms = 100
held_checks_per_tick = 64
rebuild_every_ms = 50

[storage]
min_free_bytes = 0
";

fn name(i: usize) -> String {
    format!("ae/{i:03}.bin")
}

/// Mostly small files (many inline), ten of about 1.5 MiB (several chunks).
fn content(i: usize, version: u64) -> Vec<u8> {
    let len = if i >= FILES - 10 {
        (3 << 19) + i * 1_000
    } else {
        i * 211
    };
    common::pseudo_random(len, (i as u64 + 1) * 0x9E37_79B9 + version)
}

/// Expected state of every name: its content, or deleted.
type Expected = BTreeMap<String, Option<Vec<u8>>>;

fn write(cluster: &Cluster, writes: Vec<(String, Option<Vec<u8>>)>, expected: &mut Expected) {
    let alive = cluster.alive();
    let results: Vec<(String, u16)> = common::block_on(async {
        futures::stream::iter(writes.iter().cloned().enumerate())
            .map(|(k, (name, body))| {
                let api = Api::for_files(cluster.url(alive[k % alive.len()]));
                async move {
                    let path = format!("/v1/files/{name}");
                    let res = match body {
                        Some(body) => {
                            api.send(reqwest::Method::PUT, &path, Some(ADMIN_TOKEN), body)
                                .await
                        }
                        None => api.delete(&path, Some(ADMIN_TOKEN)).await,
                    };
                    let status = res.status().as_u16();
                    if !(200..300).contains(&status) {
                        eprintln!("{name}: {status} {}", res.text().await.unwrap_or_default());
                    }
                    (name, status)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await
    });
    for (name, status) in results {
        assert!(status == 201 || status == 204, "{name}: {status}");
    }
    expected.extend(writes);
}

/// Every name reads back as expected through every live node: the bytes,
/// or 404 for a deleted file.
fn read_back(cluster: &Cluster, expected: &Expected) {
    let alive = cluster.alive();
    let failures: Vec<String> = common::block_on(async {
        futures::stream::iter(expected.iter().enumerate())
            .map(|(k, (name, want))| {
                let api = Api::for_files(cluster.url(alive[k % alive.len()]));
                async move {
                    let res = api
                        .get(&format!("/v1/files/{name}"), Some(ADMIN_TOKEN))
                        .await;
                    let status = res.status().as_u16();
                    let body = res.bytes().await.unwrap_or_default();
                    match want {
                        Some(bytes) if status == 200 && body == bytes.as_slice() => None,
                        None if status == 404 => None,
                        _ => Some(format!("{name}: {status}, {} bytes", body.len())),
                    }
                }
            })
            .buffer_unordered(8)
            .filter_map(|f| async move { f })
            .collect()
            .await
    });
    assert!(
        failures.is_empty(),
        "{} wrong: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    // And no deleted name is listed anywhere.
    let listed = get_json(&cluster.url(alive[0]), "/v1/files?prefix=ae/&limit=1000").unwrap();
    let listed: BTreeSet<String> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    let live: BTreeSet<String> = expected
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(listed, live);
}

/// Whether every partition has min(R, live nodes) replicas, all live, each
/// listing it with the same root, and no node still hands anything off.
fn converged(cluster: &Cluster) -> Result<(), String> {
    let alive = cluster.alive();
    let alive_ids: BTreeSet<&str> = alive.iter().map(|i| cluster.ids[*i].as_str()).collect();
    let mut by_partition: BTreeMap<u64, Vec<(usize, String, Vec<String>)>> = BTreeMap::new();
    for &i in &alive {
        let doc = get_json(&cluster.url(i), "/v1/dht/partitions")
            .ok_or_else(|| format!("n{i}: no partitions answer"))?;
        for v in doc["partitions"].as_array().unwrap() {
            let p = v["partition"].as_u64().unwrap();
            if v["role"] != "replica" {
                return Err(format!("n{i} still hands off partition {p}: {v}"));
            }
            let replicas = v["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["node_id"].as_str().unwrap().to_owned())
                .collect();
            let root = v["root"].as_str().unwrap().to_owned();
            by_partition.entry(p).or_default().push((i, root, replicas));
        }
    }
    let want = R.min(alive.len());
    if by_partition.len() != PARTITIONS {
        return Err(format!("{} partitions have a replica", by_partition.len()));
    }
    for (p, views) in &by_partition {
        let (_, root, replicas) = &views[0];
        if replicas.len() != want || !replicas.iter().all(|r| alive_ids.contains(r.as_str())) {
            return Err(format!("partition {p}: replicas {replicas:?}"));
        }
        if views.len() != want {
            return Err(format!("partition {p}: {} nodes replicate it", views.len()));
        }
        if views.iter().any(|(_, r, set)| r != root || set != replicas) {
            return Err(format!("partition {p}: roots or sets differ"));
        }
    }
    Ok(())
}

fn wait_converged(cluster: &Cluster, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match converged(cluster) {
            Ok(()) => return started.elapsed(),
            Err(why) if started.elapsed() > limit => {
                dump(cluster, &why);
                panic!("not converged within {limit:?}: {why}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// What every live node says of the partition named in `why`, and its
/// anti-entropy counters, so a failure can be diagnosed from the log.
fn dump(cluster: &Cluster, why: &str) {
    let partition = why
        .strip_prefix("partition ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|p| p.parse::<u64>().ok());
    for i in cluster.alive() {
        let url = cluster.url(i);
        if let Some(p) = partition {
            let view = get_json(&url, &format!("/v1/dht/partitions?partition={p}"));
            eprintln!("n{i} ({}): {view:?}", cluster.ids[i]);
        }
        for name in [
            "hypha_ae_entries_skipped_total",
            "hypha_ae_entries_repaired_total",
            "hypha_ae_exchanges_total",
        ] {
            eprintln!("n{i} {name} = {}", metric(&url, name));
        }
        if let Some(node) = &cluster.nodes[i] {
            let log = node.stderr_text();
            let warnings: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            for line in &warnings[warnings.len().saturating_sub(15)..] {
                eprintln!("n{i}: {line}");
            }
        }
    }
}

fn total(cluster: &Cluster, name: &str) -> f64 {
    cluster
        .alive()
        .iter()
        .map(|i| metric(&cluster.url(*i), name))
        .sum()
}

#[test]
fn replicas_repair_rereplicate_and_hand_off() {
    let mut cluster = Cluster::start(5, CONFIG);
    cluster.wait_all_up(5, Duration::from_secs(30));
    let mut expected = Expected::new();
    let files = (0..FILES).map(|i| (name(i), Some(content(i, 0)))).collect();
    write(&cluster, files, &mut expected);
    let took = wait_converged(&cluster, Duration::from_secs(60));
    eprintln!("5 nodes, {FILES} files: converged {took:?} after the writes");

    // One node killed for good: its partitions move after the Down grace
    // and are filled from the surviving replicas.
    let killed_at = Instant::now();
    cluster.kill(3);
    let took = wait_converged(&cluster, Duration::from_secs(60));
    eprintln!("kill -9 n3: R live replicas with equal roots {took:?} after the kill");
    assert!(killed_at.elapsed() <= Duration::from_secs(60));
    read_back(&cluster, &expected);
    assert_eq!(total(&cluster, "hypha_ae_under_replicated_partitions"), 0.0);
    let pushed = total(&cluster, "hypha_ae_entries_repaired_total");
    assert!(pushed > 0.0, "re-replication repaired nothing");

    // A node misses writes, overwrites and deletes, then comes back.
    cluster.kill(1);
    let mut changes = Vec::new();
    changes.extend((FILES..FILES + 30).map(|i| (name(i), Some(content(i, 0)))));
    changes.extend((0..20).map(|i| (name(i * 7 + 1), Some(content(i * 7 + 1, 1)))));
    changes.extend((0..40).map(|i| (name(i * 11 + 3), None)));
    write(&cluster, changes, &mut expected);
    cluster.nodes[1] = Some(cluster.spawn(1));
    cluster.wait_all_up(4, Duration::from_secs(30));
    let took = wait_converged(&cluster, Duration::from_secs(60));
    eprintln!("n1 restarted after missing 90 changes: converged in {took:?}");
    read_back(&cluster, &expected);

    // A sixth node: it becomes a replica of its partitions, filled by
    // exchange; the former replicas drop theirs once it confirms.
    let dropped_before = total(&cluster, "hypha_ae_handoff_dropped_total");
    let six = cluster.add();
    cluster.wait_all_up(5, Duration::from_secs(30));
    let took = wait_converged(&cluster, Duration::from_secs(60));
    eprintln!("n{six} joined: converged, hand-offs done in {took:?}");
    let dropped = total(&cluster, "hypha_ae_handoff_dropped_total") - dropped_before;
    assert!(dropped > 0.0, "no former replica dropped anything");
    let held = get_json(&cluster.url(six), "/v1/dht/partitions").unwrap();
    let entries: u64 = held["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["entries"].as_u64().unwrap())
        .sum();
    assert!(entries > 0, "the new node holds nothing");
    read_back(&cluster, &expected);
    assert!(total(&cluster, "hypha_ae_rebuilds_total") > 0.0);

    // Graceful leave: n0 hands its partitions off before it goes.
    let mut n0 = cluster.nodes[0].take().unwrap();
    n0.signal("TERM");
    n0.wait_exit(Duration::from_secs(60));
    let log = n0.stderr_text();
    assert!(
        log.contains("partition handed off"),
        "n0 handed nothing off"
    );
    assert!(
        !log.contains("hand-off did not finish"),
        "n0 left before its hand-off finished"
    );
    let took = wait_converged(&cluster, Duration::from_secs(60));
    eprintln!("n0 left gracefully: converged {took:?} after it exited");
    read_back(&cluster, &expected);
    eprintln!(
        "exchanges {}, round trips {}, bytes {}, convergences {}, dropped {dropped}, new node entries {entries}, \
         writes refused as not-replica {} (docs/dht.md, \"Who may write where\")",
        total(&cluster, "hypha_ae_exchanges_total"),
        total(&cluster, "hypha_ae_round_trips_total"),
        total(&cluster, "hypha_ae_bytes_total"),
        total(&cluster, "hypha_ae_convergence_seconds_count"),
        total(&cluster, "hypha_dht_writes_refused_total"),
    );
}
