//! Backup and restore against real `hypha` processes (docs/backup.md):
//! 500 files on a 3-node cluster backed up; 50 changed and 5 deleted, a
//! second backup into the same directory writes only the new chunks
//! (figures printed); `backup verify` passes, then names a corrupted
//! chunk; the newest snapshot restored into a fresh 3-node cluster is
//! byte-identical; a restore SIGKILLed halfway into another fresh cluster
//! and rerun completes, skipping what was already there. Waits poll with
//! deadlines.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{Api, ADMIN_TOKEN};
use futures::StreamExt;
use serde_json::Value;

const FILES: usize = 500;
const CONFIG: &str =
    "[dht]\nmax_file_bytes = 4194304\nrpc_timeout_ms = 5000\n[storage]\nmin_free_bytes = 0\n";

fn name(i: usize) -> String {
    format!("data/{i:03}.bin")
}

/// Mostly a few KiB (stored inline), a third 20-80 KiB (one chunk), every
/// 50th 1.5 MiB (several chunks).
fn size(i: usize) -> usize {
    if i % 50 == 0 {
        1_500_000 + i * 10
    } else if i % 3 == 0 {
        20_000 + (i * 131) % 60_000
    } else {
        1_000 + (i * 37) % 7_000
    }
}

fn content(i: usize, generation: u64) -> Vec<u8> {
    common::pseudo_random(size(i), ((i as u64 + 1) * 0x9E37_79B9) ^ (generation << 40))
}

/// The 50 files changed between the backups: 49 rewritten, and file 0
/// (1.5 MiB) with 100 bytes changed in its middle.
fn changed() -> Vec<usize> {
    (0..49).map(|k| 10 * k + 3).chain([0]).collect()
}

fn deleted() -> Vec<usize> {
    (0..5).map(|k| 10 * k + 7).collect()
}

fn edited_big(original: &[u8]) -> Vec<u8> {
    let mut out = original.to_vec();
    let mid = out.len() / 2;
    for b in &mut out[mid..mid + 100] {
        *b ^= 0x5a;
    }
    out
}

fn hypha(url: &str, args: &[&str]) -> Output {
    common::hypha_cli(url, Some(ADMIN_TOKEN), args)
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&common::cli_stdout(out)).unwrap()
}

async fn put(api: &Api, name: &str, body: Vec<u8>, i: usize) {
    let label = if i % 2 == 0 { "?label=parity=even" } else { "" };
    let res = api
        .http
        .put(format!("{}/v1/files/{name}{label}", api.base))
        .bearer_auth(ADMIN_TOKEN)
        .header(
            "content-type",
            if i % 5 == 0 {
                "text/plain"
            } else {
                "application/octet-stream"
            },
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{name}: {}", res.text().await.unwrap());
}

fn put_all(url: &str, files: Vec<(usize, Vec<u8>)>) {
    let api = Api::for_files(url);
    common::block_on(async {
        futures::stream::iter(files)
            .for_each_concurrent(8, |(i, body)| {
                let api = &api;
                async move { put(api, &name(i), body, i).await }
            })
            .await;
    });
}

/// Every file the cluster at `url` lists.
fn listed(url: &str) -> BTreeSet<String> {
    let doc = common::get_json(url, "/v1/files?prefix=data/&limit=1000").unwrap_or_default();
    doc["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every expected file reads back byte-identical (with its labels and
/// type) and nothing else is listed.
fn assert_identical(url: &str, expected: &BTreeMap<usize, Vec<u8>>) {
    let api = Api::for_files(url);
    let mismatched: Vec<String> = common::block_on(async {
        futures::stream::iter(expected.iter())
            .map(|(i, want)| {
                let api = &api;
                async move {
                    let res = api
                        .get(&format!("/v1/files/{}", name(*i)), Some(ADMIN_TOKEN))
                        .await;
                    let status = res.status().as_u16();
                    let ct = res
                        .headers()
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_owned());
                    let body = res.bytes().await.unwrap();
                    let want_ct = if i % 5 == 0 {
                        "text/plain"
                    } else {
                        "application/octet-stream"
                    };
                    let ok = status == 200
                        && body.as_ref() == want.as_slice()
                        && ct.as_deref() == Some(want_ct);
                    (!ok).then(|| {
                        format!(
                            "{}: status {status}, {} bytes, type {ct:?}",
                            name(*i),
                            body.len()
                        )
                    })
                }
            })
            .buffer_unordered(8)
            .filter_map(|x| async move { x })
            .collect()
            .await
    });
    assert!(
        mismatched.is_empty(),
        "{} differ: {:?}",
        mismatched.len(),
        &mismatched[..mismatched.len().min(5)]
    );
    let names: BTreeSet<String> = expected.keys().map(|i| name(*i)).collect();
    assert_eq!(
        listed(url),
        names,
        "the restored cluster lists exactly the snapshot's files"
    );
    let stat = common::get_json(url, &format!("/v1/stat/{}", name(2))).unwrap();
    assert_eq!(stat["labels"]["parity"], "even", "labels restored: {stat}");
}

fn snapshot(dir: &Path, id: &str) -> Value {
    serde_json::from_slice(
        &std::fs::read(dir.join("snapshots").join(format!("{id}.json"))).unwrap(),
    )
    .unwrap()
}

/// (hash, len) of every distinct chunk a snapshot references.
fn chunk_set(snap: &Value) -> BTreeMap<String, u64> {
    snap["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["chunks"].as_array().unwrap().iter())
        .map(|c| {
            (
                c["hash"].as_str().unwrap().to_owned(),
                c["len"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn backup_is_incremental_verifiable_and_restores_byte_identical() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backup");
    let dir_s = dir.to_str().unwrap().to_owned();

    // The source cluster and its 500 files.
    let source = Cluster::start(3, CONFIG);
    source.wait_all_up(3, Duration::from_secs(60));
    let url = source.url(0);
    let mut expected: BTreeMap<usize, Vec<u8>> = (0..FILES).map(|i| (i, content(i, 0))).collect();
    put_all(
        &url,
        expected.iter().map(|(i, c)| (*i, c.clone())).collect(),
    );
    let total: usize = expected.values().map(Vec::len).sum();
    eprintln!(
        "wrote {FILES} files, {total} bytes in {:?}",
        started.elapsed()
    );

    // First backup.
    let first = json_of(&hypha(
        &url,
        &["backup", "create", "--to", &dir_s, "--json"],
    ));
    eprintln!("first backup: {first}");
    assert_eq!(first["files"], FILES);
    assert_eq!(first["bytes"], total as u64);
    let written_first = first["bytes_written"].as_u64().unwrap();

    // Change 50 files, delete 5; back up again into the same directory.
    let mut changes = Vec::new();
    for i in changed() {
        let new = if i == 0 {
            edited_big(&expected[&0])
        } else {
            content(i, 1)
        };
        expected.insert(i, new.clone());
        changes.push((i, new));
    }
    let changed_bytes: usize = changes.iter().map(|(_, c)| c.len()).sum();
    put_all(&url, changes);
    let api = Api::new(url.clone());
    common::block_on(async {
        for i in deleted() {
            let res = api
                .delete(&format!("/v1/files/{}", name(i)), Some(ADMIN_TOKEN))
                .await;
            assert_eq!(res.status(), 204);
            expected.remove(&i);
        }
    });
    let second = json_of(&hypha(
        &url,
        &["backup", "create", "--to", &dir_s, "--json"],
    ));
    eprintln!("second backup: {second}");
    assert_eq!(second["files"], FILES - deleted().len());
    let written_second = second["bytes_written"].as_u64().unwrap();
    let index_second = second["index_bytes"].as_u64().unwrap();
    let (s1, s2) = (
        snapshot(&dir, first["snapshot"].as_str().unwrap()),
        snapshot(&dir, second["snapshot"].as_str().unwrap()),
    );
    let old = chunk_set(&s1);
    let new_chunk_bytes: u64 = chunk_set(&s2)
        .iter()
        .filter(|(h, _)| !old.contains_key(*h))
        .map(|(_, l)| l)
        .sum();
    eprintln!(
        "FIGURES: first backup wrote {written_first} bytes; 50 files changed ({changed_bytes} bytes of new file content), \
         their new chunks {new_chunk_bytes} bytes; second backup wrote {written_second} bytes \
         ({} chunk bytes + {index_second} index bytes, {} chunks written, {} skipped)",
        second["chunk_bytes_written"], second["chunks_written"], second["chunks_skipped"]
    );
    assert_eq!(
        second["chunk_bytes_written"].as_u64().unwrap(),
        new_chunk_bytes,
        "exactly the new chunks"
    );
    assert!(written_second as f64 <= 1.2 * new_chunk_bytes as f64 + index_second as f64);
    assert!(
        written_second * 4 < written_first,
        "{written_second} vs {written_first}"
    );
    // Hostile input: 400 with the JSON error shape; a read token is refused.
    common::block_on(async {
        for path in [
            "/v1/backup/partitions/99999",
            "/v1/backup/partitions/x",
            "/v1/backup/partitions/1?after=zz",
            "/v1/backup/partitions/1?limit=0",
            "/v1/backup/chunks/abc?partition=1&len=1",
            "/v1/backup/chunks/00000000000000000000000000000000000000000000000000000000000000ff?len=1",
            "/v1/backup/chunks/00000000000000000000000000000000000000000000000000000000000000ff?partition=1&len=0",
        ] {
            let res = api.get(path, Some(ADMIN_TOKEN)).await;
            assert_eq!(res.status(), 400, "{path}");
            let doc: Value = res.json().await.unwrap();
            assert_eq!(doc["error"]["code"], "bad_request", "{path}: {doc}");
        }
        let res = api
            .get("/v1/backup/partitions", Some(common::READ_TOKEN))
            .await;
        assert_eq!(res.status(), 403);
    });
    drop(source);

    // Verify: clean, then one corrupted chunk is named.
    let verified = hypha("", &["backup", "verify", &dir_s, "--json"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let listing = json_of(&hypha("", &["backup", "ls", &dir_s, "--json"]));
    assert_eq!(listing["snapshots"].as_array().unwrap().len(), 2);
    let victim = s2["files"][0]["chunks"][0]["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let victim_path = dir.join("chunks").join(&victim[..2]).join(&victim);
    let good = std::fs::read(&victim_path).unwrap();
    let mut bad = good.clone();
    bad[0] ^= 1;
    std::fs::write(&victim_path, &bad).unwrap();
    let refused = hypha("", &["backup", "verify", &dir_s]);
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(
        !refused.status.success() && said.contains(&victim),
        "{said}"
    );
    std::fs::write(&victim_path, &good).unwrap();

    // Restore the newest snapshot into a fresh cluster.
    let fresh = Cluster::start(3, CONFIG);
    fresh.wait_all_up(3, Duration::from_secs(60));
    let restored = json_of(&hypha(
        &fresh.url(1),
        &["backup", "restore", "--from", &dir_s, "--json"],
    ));
    eprintln!("restore: {restored}");
    assert_eq!(restored["uploaded"], expected.len());
    assert_eq!(restored["skipped"], 0);
    assert_identical(&fresh.url(2), &expected);
    drop(fresh);

    // A restore killed halfway, then rerun.
    let other = Cluster::start(3, CONFIG);
    other.wait_all_up(3, Duration::from_secs(60));
    let target = other.url(0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args([
            "backup",
            "restore",
            "--from",
            &dir_s,
            "--concurrency",
            "1",
            "--json",
        ])
        .env("HYPHA_URL", &target)
        .env("HYPHA_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_until("some files restored", Duration::from_secs(60), || {
        listed(&target).len() >= 40
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "the restore finished before it could be killed"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = listed(&target).len();
    eprintln!(
        "restore killed with {before} of {} files there",
        expected.len()
    );
    assert!(before < expected.len());
    let rerun = json_of(&hypha(
        &target,
        &["backup", "restore", "--from", &dir_s, "--json"],
    ));
    eprintln!("rerun: {rerun}");
    assert!(
        rerun["skipped"].as_u64().unwrap() >= before as u64,
        "{rerun}"
    );
    assert_eq!(
        rerun["skipped"].as_u64().unwrap() + rerun["uploaded"].as_u64().unwrap(),
        expected.len() as u64
    );
    assert_identical(&other.url(1), &expected);
    eprintln!("backup_process done in {:?}", started.elapsed());
}
