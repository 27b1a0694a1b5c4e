//! Zone-aware placement on six real `hypha` processes in three zones
//! (`eu-1`, `eu-2`, `us-1`, two nodes each), R = 3, with `eu/` pinned to
//! `eu-*` and `ap/` pinned to `ap-*` (a zone no node is in):
//!
//! - every base partition's replicas sit in three distinct zones, and
//!   every `eu/` partition's replicas in `eu-*` only, on every node's
//!   answer of `/v1/dht/partitions`;
//! - a write under `ap/` answers 503 `zone_pin_unmet` with the reason;
//! - kill -9 of both `us-1` nodes: every file is still readable and
//!   writable, and once the Down grace has passed every partition is back
//!   at three replicas, spread over the two zones left;
//! - the pinned prefix never leaves its zones: no `us-1` node ever holds
//!   an entry of an `eu/` partition.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::cluster::Cluster;
use common::poll::poll_blocking;
use common::{get_json, Api, ADMIN_TOKEN};
use serde_json::Value;

const ZONES: [&str; 3] = ["eu-1", "eu-2", "us-1"];
/// 2^6 base partitions; with two pins, 192 in all.
const BASE: u64 = 64;
const CONFIG: &str = "\
[dht]
partition_bits = 6
down_grace_ms = 6000
rpc_timeout_ms = 3000

[[placement.pin]]
prefix = \"eu/\"
zones = [\"eu-*\"]

[[placement.pin]]
prefix = \"ap/\"
zones = [\"ap-*\"]

[storage]
min_free_bytes = 0
";

fn body(name: &str, round: u8) -> Vec<u8> {
    let seed = name
        .bytes()
        .fold(u64::from(round), |h, b| h * 31 + u64::from(b));
    common::pseudo_random(1_000 + (seed % 50_000) as usize, seed)
}

fn start() -> Cluster {
    let mut cluster = Cluster::start_with_args(0, CONFIG, &[]);
    for i in 0..6 {
        cluster.extra_args = vec!["--label".into(), format!("zone={}", ZONES[i % 3])];
        cluster.add();
    }
    cluster.wait_all_up(6, Duration::from_secs(90));
    cluster
}

/// Every partition any live node reports, with the replica zones and
/// spread flag of each report, and who holds entries of it.
struct Seen {
    zones: BTreeMap<u64, Vec<(Vec<String>, bool)>>,
    holders: BTreeMap<u64, BTreeSet<usize>>,
}

fn partitions(cluster: &Cluster) -> Seen {
    let mut seen = Seen {
        zones: BTreeMap::new(),
        holders: BTreeMap::new(),
    };
    for i in cluster.alive() {
        let doc = get_json(&cluster.url(i), "/v1/dht/partitions").unwrap();
        for p in doc["partitions"].as_array().unwrap() {
            let id = p["partition"].as_u64().unwrap();
            let zones = p["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["zone"].as_str().unwrap_or("").to_owned())
                .collect();
            let spread = p["spread"].as_bool().unwrap();
            seen.zones.entry(id).or_default().push((zones, spread));
            if p["entries"].as_u64().unwrap() > 0 {
                seen.holders.entry(id).or_default().insert(i);
            }
        }
    }
    seen
}

/// Whether every partition is reported with `want` distinct replica zones
/// (three replicas) and spread, pinned ones in `eu-*` only.
fn placed(seen: &Seen, want: usize) -> Result<(), String> {
    for class in 0..2 {
        for base in 0..BASE {
            let id = base + class * BASE;
            let reports = seen.zones.get(&id).ok_or(format!("{id} unreported"))?;
            for (zones, spread) in reports {
                let distinct: BTreeSet<&String> = zones.iter().collect();
                let ok = zones.len() == 3
                    && *spread
                    && match class {
                        0 => distinct.len() == want,
                        _ => zones.iter().all(|z| z.starts_with("eu-")) && distinct.len() == 2,
                    };
                if !ok {
                    return Err(format!("partition {id}: {zones:?} spread {spread}"));
                }
            }
        }
    }
    Ok(())
}

/// Wait until [`placed`] holds with `want` zones; panic with the last
/// mismatch if it does not within `limit`.
fn wait_placed(cluster: &Cluster, want: usize, limit: Duration) {
    let mut last = String::new();
    let result = poll_blocking(limit, Duration::from_millis(500), || {
        placed(&partitions(cluster), want)
            .map_err(|e| last = e)
            .ok()
    });
    assert!(result.is_ok(), "not placed in {want} zones: {last}");
}

/// Which pinned partitions `outside` nodes hold entries of (and how many
/// pinned partitions hold anything at all).
fn pinned_outside(seen: &Seen, outside: &[usize]) -> (Vec<(u64, usize)>, usize) {
    let mut wrong = Vec::new();
    let mut pinned = 0;
    for (id, holders) in seen.holders.range(BASE..) {
        wrong.extend(
            holders
                .iter()
                .filter(|i| outside.contains(i))
                .map(|i| (*id, *i)),
        );
        pinned += 1;
    }
    (wrong, pinned)
}

/// No node of `outside` holds an entry of a pinned partition (and some
/// other node does: the pinned files are there to be checked).
fn pin_kept(seen: &Seen, outside: &[usize]) {
    let (wrong, pinned) = pinned_outside(seen, outside);
    assert!(
        wrong.is_empty(),
        "pinned partitions held outside eu-*: {wrong:?}"
    );
    assert!(pinned > 0, "no pinned partition holds anything");
    eprintln!("pinned partitions holding files: {pinned}, none on {outside:?}");
}

async fn put(api: &Api, name: &str, round: u8) -> u16 {
    let path = format!("/v1/files/{name}");
    let res = api
        .send(
            reqwest::Method::PUT,
            &path,
            Some(ADMIN_TOKEN),
            body(name, round),
        )
        .await;
    res.status().as_u16()
}

/// Write every name (retrying 503 until `limit`), then read every name
/// back from every live node, byte for byte.
fn write_and_read(cluster: &Cluster, names: &[String], round: u8, limit: Duration) {
    let urls: Vec<String> = cluster.alive().iter().map(|i| cluster.url(*i)).collect();
    common::block_on(async {
        for (k, name) in names.iter().enumerate() {
            let api = Api::new(urls[k % urls.len()].clone());
            let deadline = std::time::Instant::now() + limit;
            loop {
                match put(&api, name, round).await {
                    200 | 201 => break,
                    503 if std::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                    other => panic!("PUT {name}: {other}"),
                }
            }
        }
        for url in &urls {
            let api = Api::new(url.clone());
            for name in names {
                let res = api
                    .get(&format!("/v1/files/{name}"), Some(ADMIN_TOKEN))
                    .await;
                assert_eq!(res.status().as_u16(), 200, "GET {name} from {url}");
                let got = res.bytes().await.unwrap();
                assert!(got[..] == body(name, round)[..], "{name} differs on {url}");
            }
        }
    });
}

#[test]
fn replicas_spread_over_zones_pins_hold_and_a_zone_can_die() {
    let mut cluster = start();
    wait_placed(&cluster, 3, Duration::from_secs(60));
    let names: Vec<String> = (0..40)
        .map(|i| format!("f/{i}"))
        .chain((0..20).map(|i| format!("eu/{i}")))
        .collect();
    write_and_read(&cluster, &names, 1, Duration::from_secs(30));
    pin_kept(&partitions(&cluster), &[2, 5]);

    // A pin no live node can meet: 503 with the reason, nothing stored.
    let refused: Value = common::block_on(async {
        let api = Api::new(cluster.url(0));
        let res = api
            .send(
                reqwest::Method::PUT,
                "/v1/files/ap/x",
                Some(ADMIN_TOKEN),
                b"x".to_vec(),
            )
            .await;
        assert_eq!(res.status().as_u16(), 503);
        res.json().await.unwrap()
    });
    assert_eq!(refused["error"]["code"], "zone_pin_unmet", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("ap-*") && message.contains("\"ap/\""),
        "{message}"
    );

    // Kill the us-1 zone (nodes 2 and 5) with SIGKILL.
    cluster.kill(2);
    cluster.kill(5);
    let killed = std::time::Instant::now();
    let more: Vec<String> = (40..60)
        .map(|i| format!("f/{i}"))
        .chain((20..30).map(|i| format!("eu/{i}")))
        .collect();
    let all: Vec<String> = names.iter().chain(&more).cloned().collect();
    // Overwrites and new files while the zone is down, all read back.
    write_and_read(&cluster, &all, 2, Duration::from_secs(30));
    wait_placed(&cluster, 2, Duration::from_secs(90));
    eprintln!(
        "re-spread over two zones {:?} after the kill",
        killed.elapsed()
    );
    write_and_read(&cluster, &all, 3, Duration::from_secs(30));
    pin_kept(&partitions(&cluster), &[2, 5]);

    // Node 0 moves from eu-1 to a new zone us-2 at run time: three zones
    // again, and its pinned data is handed off to the eu-* nodes left.
    let relabel = common::block_on(async {
        let api = Api::new(cluster.url(0));
        let res = api
            .send(
                reqwest::Method::PUT,
                "/v1/node/labels/zone",
                Some(ADMIN_TOKEN),
                b"us-2".to_vec(),
            )
            .await;
        res.status().as_u16()
    });
    assert_eq!(relabel, 200);
    let moved = std::time::Instant::now();
    wait_placed(&cluster, 3, Duration::from_secs(60));
    let handed_off = poll_blocking(Duration::from_secs(90), Duration::from_millis(500), || {
        let (wrong, _) = pinned_outside(&partitions(&cluster), &[0]);
        wrong.is_empty().then_some(())
    });
    assert!(
        handed_off.is_ok(),
        "node 0 still holds pinned data after leaving eu-*"
    );
    eprintln!(
        "zone change: three zones again and pinned data off node 0 {:?} after the relabel",
        moved.elapsed()
    );
    write_and_read(&cluster, &all, 4, Duration::from_secs(30));
    pin_kept(&partitions(&cluster), &[0, 2, 5]);
}
