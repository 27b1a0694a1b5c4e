//! A node whose data directory is on a small tmpfs that fills up: uploads
//! are refused with 507 `disk_full` (the free-space reserve trips before
//! sled meets ENOSPC), files stored before stay readable byte for byte,
//! deletes still pass, and the node stays up. Needs root to mount the
//! tmpfs; elsewhere the test says so and passes without running.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{node_command, spawn_command, Api, ADMIN_TOKEN};
use serde_json::Value;

const TMPFS_BYTES: u64 = 96 << 20;
const RESERVE_BYTES: u64 = 24 << 20;
const FILE_BYTES: usize = 4 << 20;

/// A mounted tmpfs, unmounted on drop (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Option<Self> {
        std::fs::create_dir_all(at).ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_BYTES}")])
            .arg("tmpfs")
            .arg(at)
            .output()
            .ok()?;
        out.status.success().then(|| Self(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_writes_and_keeps_serving_reads() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("data")) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root and mount(8))");
        return;
    };
    let config = dir.path().join("hypha.toml");
    std::fs::write(
        &config,
        format!(
            "[dht]\nreplicas = 1\nwrite_quorum = 1\nread_quorum = 1\n\
             [storage]\nmin_free_bytes = {RESERVE_BYTES}\n"
        ),
    )
    .unwrap();
    let mut node = spawn_command(node_command(
        &tmpfs.0.join("n0"),
        &["--config", config.to_str().unwrap()],
    ));
    common::wait_for_owners(&node.url, 1);
    let api = Api::new(node.url.clone());
    common::block_on(async {
        let small = b"stored before the disk filled".to_vec();
        let res = api.put("/v1/files/keep", Some(ADMIN_TOKEN), &small).await;
        assert_eq!(res.status().as_u16(), 201);

        // Fill: 4 MiB files until the node refuses (the tmpfs holds at
        // most 24 of them, so this ends).
        let mut stored = Vec::new();
        let refusal = loop {
            let i = stored.len();
            assert!(i < 40, "no refusal after {i} files");
            let body = common::pseudo_random(FILE_BYTES, i as u64 + 1);
            let res = api
                .put(&format!("/v1/files/fill/{i}"), Some(ADMIN_TOKEN), &body)
                .await;
            match res.status().as_u16() {
                201 => stored.push(body),
                _ => break res,
            }
        };
        assert_eq!(refusal.status().as_u16(), 507);
        let doc: Value = refusal.json().await.unwrap();
        assert_eq!(doc["error"]["code"], "disk_full", "{doc}");
        assert!(!stored.is_empty(), "the disk was full from the start");

        // Reads keep working, byte for byte.
        let res = api.get("/v1/files/keep", Some(ADMIN_TOKEN)).await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.bytes().await.unwrap().as_ref(), small.as_slice());
        for (i, body) in stored.iter().enumerate() {
            let res = api
                .get(&format!("/v1/files/fill/{i}"), Some(ADMIN_TOKEN))
                .await;
            assert_eq!(res.status().as_u16(), 200, "fill/{i}");
            let got = res.bytes().await;
            if got.is_err() {
                panic!(
                    "fill/{i} of {}: {got:?}\n{}",
                    stored.len(),
                    node.stderr_text()
                );
            }
            assert!(got.unwrap().as_ref() == body.as_slice());
        }
        let listed = api.get("/v1/files?prefix=fill/", Some(ADMIN_TOKEN)).await;
        let doc: Value = listed.json().await.unwrap();
        assert_eq!(doc["files"].as_array().unwrap().len(), stored.len());

        // A delete is not refused: it is how an operator frees space.
        let res = api.delete("/v1/files/fill/0", Some(ADMIN_TOKEN)).await;
        assert_eq!(res.status().as_u16(), 204);
        let res = api.get("/health", None).await;
        assert_eq!(res.status().as_u16(), 200);
    });
    assert!(node.child.try_wait().unwrap().is_none(), "the node died");
    node.signal("TERM");
    node.wait_exit(Duration::from_secs(30));
}
