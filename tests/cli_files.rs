//! The file commands (`hypha put/get/ls/stat/rm`) against a real node
//! process: a round trip through the CLI is byte-identical, `--json`
//! prints the API's documents, and failures exit non-zero with the node's
//! error on stderr.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;

use common::{node_command, spawn_command, ADMIN_TOKEN, READ_TOKEN};
use serde_json::Value;

use common::hypha_cli as hypha;

fn ok_json(out: &Output) -> Value {
    serde_json::from_str(&common::cli_stdout(out)).unwrap()
}

#[test]
fn file_commands_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hypha.toml");
    std::fs::write(
        &config,
        "[dht]\nreplicas = 1\nwrite_quorum = 1\nread_quorum = 1\nmax_file_bytes = 4194304\n[storage]\nmin_free_bytes = 0\n",
    )
    .unwrap();
    let node = spawn_command(node_command(
        &dir.path().join("n0"),
        &["--config", config.to_str().unwrap()],
    ));
    let url = node.url.as_str();
    common::wait_for_owners(url, 1);

    // 3 MiB + 1: several chunks and a ragged end.
    let content = common::pseudo_random((3 << 20) + 1, 42);
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &content).unwrap();
    let src = src.to_str().unwrap();
    let put = ok_json(&hypha(
        url,
        Some(ADMIN_TOKEN),
        &["put", src, "dir/a b.bin", "-l", "kind=test", "--json"],
    ));
    assert_eq!(put["name"], "dir/a b.bin");
    assert_eq!(put["size"], content.len() as u64);
    assert!(put["chunks"].as_u64().unwrap() >= 3, "{put}");

    // Default name, a read token, and listing by prefix and label.
    ok_json(&hypha(url, Some(ADMIN_TOKEN), &["put", src, "--json"]));
    let ls = ok_json(&hypha(url, Some(READ_TOKEN), &["ls", "dir/", "--json"]));
    let names: Vec<&str> = ls["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dir/a b.bin"]);
    let all = ok_json(&hypha(
        url,
        Some(READ_TOKEN),
        &["ls", "-l", "kind=test", "--json"],
    ));
    assert_eq!(all["files"].as_array().unwrap().len(), 1);
    let text = hypha(url, Some(READ_TOKEN), &["ls"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("src.bin") && text.contains("dir/a b.bin"),
        "{text}"
    );

    let stat = ok_json(&hypha(
        url,
        Some(READ_TOKEN),
        &["stat", "dir/a b.bin", "--json"],
    ));
    assert_eq!(stat["root"], put["root"]);
    assert_eq!(stat["labels"]["kind"], "test");

    let out = dir.path().join("out.bin");
    let got = ok_json(&hypha(
        url,
        Some(READ_TOKEN),
        &["get", "dir/a b.bin", "-o", out.to_str().unwrap(), "--json"],
    ));
    assert_eq!(got["bytes"], content.len() as u64);
    assert!(std::fs::read(&out).unwrap() == content, "content differs");
    let stdout = hypha(url, Some(READ_TOKEN), &["get", "dir/a b.bin"]);
    assert!(stdout.status.success() && stdout.stdout == content);

    // Failures: no token, read token writing, a missing file, and a
    // failed get leaves no partial output behind.
    let refused = hypha(url, None, &["put", src, "x"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("401"), "{said}");
    let refused = hypha(url, Some(READ_TOKEN), &["rm", "dir/a b.bin"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("403"));
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![0u8; 5 << 20]).unwrap();
    let refused = hypha(url, Some(ADMIN_TOKEN), &["put", big.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("413"), "{said}");
    let missing = dir.path().join("missing.bin");
    let absent = hypha(
        url,
        Some(READ_TOKEN),
        &["get", "nope", "-o", missing.to_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&absent.stderr).contains("404"));
    assert!(!missing.exists() && !dir.path().join("missing.bin.part").exists());

    ok_json(&hypha(
        url,
        Some(ADMIN_TOKEN),
        &["rm", "dir/a b.bin", "--json"],
    ));
    let gone = hypha(url, Some(READ_TOKEN), &["stat", "dir/a b.bin"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("404"));
}
