//! Scheduled backups against real `hypha` processes (docs/backup.md,
//! "Scheduled backups"): a 3-node cluster where only node 2 has
//! `[backup] dir` (interval 1.5 s, keep 2). Once its status shows
//! keep + 1 successful runs after the files were written, the directory,
//! copied while no run is in progress, holds exactly `keep` snapshots and
//! only the chunks they reference; `hypha backup verify` passes on it; the
//! other nodes run no schedule; and after deleting files from the cluster,
//! a restore of the newest snapshot brings them back byte-identical.
//! Waits poll with deadlines.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{Api, ADMIN_TOKEN};
use serde_json::Value;

const CONFIG: &str = "[dht]\nrpc_timeout_ms = 5000\n[storage]\nmin_free_bytes = 0\n";
const KEEP: u64 = 2;
const FILES: usize = 30;
const DELETED: [usize; 5] = [0, 4, 9, 13, 21];

fn name(i: usize) -> String {
    format!("sched/{i:02}.bin")
}

/// Two thirds small (inline in their manifests), a third chunked.
fn content(i: usize) -> Vec<u8> {
    let len = if i % 3 == 0 {
        40_000 + i * 1_000
    } else {
        500 + i * 50
    };
    common::pseudo_random(len, (i as u64 + 7) * 0x9E37_79B9)
}

fn status(url: &str) -> Value {
    common::get_json(url, "/v1/backup/status").unwrap_or_default()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Snapshot ids in a backup directory, oldest first.
fn snapshot_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    ids.sort();
    ids
}

/// Every chunk file of a backup directory.
fn chunk_files(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for sub in std::fs::read_dir(dir.join("chunks")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            out.insert(f.unwrap().file_name().into_string().unwrap());
        }
    }
    out
}

/// Every chunk the snapshot references.
fn referenced(dir: &Path, id: &str) -> BTreeSet<String> {
    let snap: Value = serde_json::from_slice(
        &std::fs::read(dir.join("snapshots").join(format!("{id}.json"))).unwrap(),
    )
    .unwrap();
    snap["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["chunks"].as_array().unwrap().iter())
        .map(|c| c["hash"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_scheduled_backup_runs_prunes_and_restores() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backup");
    let copy = work.path().join("copy");

    // Nodes 0 and 1 without a schedule; node 2 started with one.
    let mut cluster = Cluster::start(2, CONFIG);
    std::fs::write(
        cluster.config.as_ref().unwrap(),
        format!(
            "{CONFIG}[backup]\ndir = \"{}\"\ninterval_ms = 1500\nkeep = {KEEP}\n",
            dir.display()
        ),
    )
    .unwrap();
    cluster.add();
    cluster.wait_all_up(3, Duration::from_secs(60));
    let (url0, url2) = (cluster.url(0), cluster.url(2));
    assert_eq!(status(&url0)["scheduled"], false, "{}", status(&url0));
    assert_eq!(status(&url2)["scheduled"], true);
    assert_eq!(status(&url2)["schedule"]["keep"], KEEP);

    let mut expected: BTreeMap<usize, Vec<u8>> = (0..FILES).map(|i| (i, content(i))).collect();
    let put_all = |files: &BTreeMap<usize, Vec<u8>>| {
        let api = Api::for_files(url0.clone());
        common::block_on(async {
            for (i, body) in files {
                let res = api
                    .put(&format!("/v1/files/{}", name(*i)), Some(ADMIN_TOKEN), body)
                    .await;
                assert_eq!(res.status(), 201, "{}", name(*i));
            }
        });
    };
    put_all(&expected);
    eprintln!(
        "cluster up and {FILES} files written in {:?}",
        started.elapsed()
    );
    // keep + 1 runs after a write: the newest ones saw it.
    let runs_after_now = |what: &str| {
        let base = status(&url2)["runs_ok"].as_u64().unwrap_or(0);
        common::wait_until(what, Duration::from_secs(60), || {
            status(&url2)["runs_ok"].as_u64().unwrap_or(0) > base + KEEP
        });
    };
    runs_after_now("keep + 1 scheduled backups after the writes");

    // File 3 (one chunk: its hash is the file's root) rewritten: once
    // keep + 1 more snapshots were taken, no kept one references its old
    // chunk, and retention removed it.
    let old_root = common::get_json(&url0, &format!("/v1/stat/{}", name(3))).unwrap()["root"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        chunk_files(&dir).contains(&old_root),
        "one chunk, backed up"
    );
    let rewritten = common::pseudo_random(content(3).len(), 99);
    expected.insert(3, rewritten.clone());
    put_all(&BTreeMap::from([(3, rewritten)]));
    runs_after_now("keep + 1 scheduled backups after the rewrite");

    // A copy taken while no run was in progress (the same last run before
    // and after the copy): what the directory holds between runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let last_run = loop {
        assert!(Instant::now() < deadline, "no quiet moment to copy");
        let before = status(&url2);
        if before["running"] == true {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let _ = std::fs::remove_dir_all(&copy);
        copy_dir(&dir, &copy);
        let after = status(&url2);
        if after["running"] == false && after["last_run"] == before["last_run"] {
            break after["last_run"].clone();
        }
    };
    eprintln!("last run: {last_run}");
    assert_eq!(last_run["result"], "ok");
    assert_eq!(last_run["files"], FILES);
    let ids = snapshot_ids(&copy);
    assert_eq!(ids.len() as u64, KEEP, "retention keeps {KEEP}: {ids:?}");
    assert_eq!(
        Some(ids.last().unwrap().as_str()),
        last_run["snapshot"].as_str()
    );
    let kept: BTreeSet<String> = ids.iter().flat_map(|id| referenced(&copy, id)).collect();
    assert_eq!(
        chunk_files(&copy),
        kept,
        "exactly the chunks the kept snapshots reference"
    );
    assert!(!kept.contains(&old_root), "the replaced chunk was pruned");
    let ok_runs = common::metric(&url2, "hypha_backup_runs_total{result=\"ok\"}");
    assert!(ok_runs >= (KEEP + 1) as f64, "{ok_runs}");
    assert!(common::metric(&url2, "hypha_backup_written_bytes_total") > 0.0);
    assert!(common::metric(&url2, "hypha_backup_last_success_unix_ms") > 0.0);

    let copy_s = copy.to_str().unwrap();
    let verified = common::hypha_cli("", None, &["backup", "verify", copy_s]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );

    // Files deleted from the cluster come back from the newest snapshot.
    common::block_on(async {
        let api = Api::new(url0.clone());
        for i in DELETED {
            let res = api
                .delete(&format!("/v1/files/{}", name(i)), Some(ADMIN_TOKEN))
                .await;
            assert_eq!(res.status(), 204);
        }
    });
    let out = common::hypha_cli(
        &cluster.url(1),
        Some(ADMIN_TOKEN),
        &["backup", "restore", "--from", copy_s, "--json"],
    );
    let restored: Value = serde_json::from_str(&common::cli_stdout(&out)).unwrap();
    eprintln!("restore: {restored}");
    assert_eq!(restored["uploaded"], DELETED.len());
    assert_eq!(restored["skipped"], FILES - DELETED.len());
    common::block_on(async {
        let api = Api::for_files(url0.clone());
        for (i, want) in &expected {
            let res = api
                .get(&format!("/v1/files/{}", name(*i)), Some(ADMIN_TOKEN))
                .await;
            assert_eq!(res.status(), 200, "{}", name(*i));
            assert_eq!(res.bytes().await.unwrap().as_ref(), want.as_slice());
        }
    });
    eprintln!("backup_schedule done in {:?}", started.elapsed());
}
