//! A damaged store, end to end (issue 25): a stopped node's store files get
//! seeded bit flips until sled cannot recover them; the node exits with
//! its own status and one line naming the store and the command to run;
//! that command moves the store aside (never deletes it); the node starts
//! again as itself with a newer generation, catches up from its replicas,
//! and every file reads back through it. Every wait polls with a deadline.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cluster::Cluster;
use common::{get_json, paths::hypha_bin, wait_until, Api, Spawned, ADMIN_TOKEN};
use hypha::node::EXIT_DAMAGED_STORE;

const CONFIG: &str = "\
[dht]
down_grace_ms = 5000
rpc_timeout_ms = 3000

[anti_entropy]
period_ms = 60000
recheck_ms = 300
retry_ms = 1000
tick_ms = 100

[storage]
min_free_bytes = 0
";

const FILES: usize = 40;
/// Bits flipped in the first round, four times more in each next one:
/// whether sled's recovery survives a few flips depends on where they land
/// (it silently drops a log tail that fails its checksum), so the test
/// rots on until it does not — a store this small took 32 to 8,192.
const FIRST_FLIPS: u32 = 32;
const ROUNDS: u32 = 6;

fn name(i: usize) -> String {
    format!("rot/{i:02}.bin")
}

fn content(i: usize) -> Vec<u8> {
    common::pseudo_random(100 + i * 997, i as u64 + 1)
}

fn put_all(url: &str) {
    let api = Api::for_files(url);
    common::block_on(async {
        for i in 0..FILES {
            let path = format!("/v1/files/{}", name(i));
            let res = api
                .send(reqwest::Method::PUT, &path, Some(ADMIN_TOKEN), content(i))
                .await;
            assert_eq!(res.status().as_u16(), 201, "{}", name(i));
        }
    });
}

/// Every file, read with a quorum through `url`.
fn read_all(url: &str) {
    let api = Api::for_files(url);
    common::block_on(async {
        for i in 0..FILES {
            let path = format!("/v1/files/{}?consistency=quorum", name(i));
            let res = api.get(&path, Some(ADMIN_TOKEN)).await;
            assert_eq!(res.status().as_u16(), 200, "{}", name(i));
            assert_eq!(
                res.bytes().await.unwrap().as_ref(),
                content(i),
                "{}",
                name(i)
            );
        }
    });
}

/// GET `path` as JSON; None on any error (a node busy catching up may
/// answer slowly).
fn try_json(url: &str, path: &str) -> Option<serde_json::Value> {
    common::block_on(async {
        let res = common::client()
            .get(format!("{url}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?;
        res.json().await.ok()
    })
}

/// The partitions the files live in.
fn partitions_of_files(url: &str) -> BTreeSet<u64> {
    (0..FILES)
        .map(|i| {
            get_json(url, &format!("/v1/stat/{}", name(i))).unwrap()["partition"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// Entries node `url` holds in `partitions`, once it has caught up on
/// every one of them.
fn caught_up_entries(url: &str, partitions: &BTreeSet<u64>) -> Option<u64> {
    let mut entries = 0;
    for p in partitions {
        let doc = try_json(url, &format!("/v1/dht/partitions?partition={p}"))?;
        let view = doc["partitions"].as_array()?.first()?.clone();
        if view["caught_up"] != true {
            return None;
        }
        entries += view["entries"].as_u64()?;
    }
    Some(entries)
}

/// Flip bits in node 2's stopped store and start it, round after round,
/// until it refuses to start; its exit status and stderr.
fn rot_until_refused(cluster: &Cluster, data_dir: &Path) -> (std::process::ExitStatus, String) {
    for round in 0..ROUNDS {
        let flips = FIRST_FLIPS << (2 * round);
        let seed = u64::from(round) + 1;
        hypha_testkit::bitrot::flip_bits(&data_dir.join("db"), flips, seed).unwrap();
        match common::spawn_or_exit(cluster.command(2, &[])) {
            // sled recovered (perhaps dropping the tail of its log): rot on.
            Spawned::Serving(mut node) => {
                eprintln!("round {round}: started after {flips} more flipped bits");
                node.kill();
            }
            Spawned::Exited { status, stderr } => {
                eprintln!("round {round}: refused after {flips} more flipped bits");
                return (status, stderr);
            }
        }
    }
    panic!("the store survived {ROUNDS} rounds of flipped bits");
}

#[test]
fn a_damaged_store_is_named_then_quarantined_and_refilled() {
    let mut cluster = Cluster::start(3, CONFIG);
    cluster.wait_all_up(3, Duration::from_secs(60));
    put_all(&cluster.url(0));
    let partitions = partitions_of_files(&cluster.url(0));
    let id = cluster.ids[2].clone();
    let generation = |url: &str| get_json(url, "/v1/node").unwrap()["generation"].as_u64();
    let before = generation(&cluster.url(2)).unwrap();
    cluster.kill(2);
    let data_dir = cluster.root.join("n2");

    let (status, stderr) = rot_until_refused(&cluster, &data_dir);
    assert_eq!(
        status.code(),
        Some(i32::from(EXIT_DAMAGED_STORE)),
        "{stderr}"
    );
    let damaged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("is damaged"))
        .collect();
    assert_eq!(damaged.len(), 1, "one line: {stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(damaged[0]),
        "and it is the last"
    );
    let store = data_dir.join("db").canonicalize().unwrap();
    let command = format!(
        "hypha store quarantine --data-dir {}",
        data_dir.canonicalize().unwrap().display()
    );
    assert!(
        damaged[0].starts_with("hypha: the store at ") && damaged[0].contains(&command),
        "names the store and the command: {}",
        damaged[0]
    );
    assert!(
        damaged[0].contains(&store.display().to_string())
            || damaged[0].contains(&data_dir.join("db").display().to_string()),
        "{}",
        damaged[0]
    );
    assert!(
        stderr
            .lines()
            .filter(|l| l.contains("panic"))
            .all(|l| l == damaged[0]),
        "no panic report besides the line: {stderr}"
    );

    let out = Command::new(hypha_bin())
        .args(["store", "quarantine", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moved: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("db.damaged-"))
        .collect();
    assert_eq!(moved.len(), 1, "moved aside, not deleted");
    assert!(!data_dir.join("db").exists());

    cluster.nodes[2] = Some(cluster.spawn(2));
    let url = cluster.url(2);
    let node = get_json(&url, "/v1/node").unwrap();
    assert_eq!(node["id"].as_str(), Some(id.as_str()), "same node id");
    assert!(
        generation(&url).unwrap() > before,
        "the generation moved on although the store is new"
    );
    // Refilled by anti-entropy: with 3 nodes and R = 3 it holds every file.
    wait_until(
        "n2 caught up and refilled",
        Duration::from_secs(120),
        || caught_up_entries(&url, &partitions) == Some(FILES as u64),
    );
    read_all(&url);
}
