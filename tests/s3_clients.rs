//! Real S3 clients against the S3 endpoints of three `hypha` processes
//! (issue 28's acceptance; docs/s3.md): boto3 through every supported
//! operation (`tests/s3/boto3_check.py`), and the AWS CLI (`awscli` from
//! PyPI, run as `python3 -m awscli`): `mb`, a `sync` of a 300-file tree
//! and a second `sync` that transfers nothing, a 100 MiB multipart `cp`
//! both ways, `ls`, `rm`, `rb`; rclone (`copy`, `check`) and s3cmd (`ls`,
//! `put`, `get`) from Debian; then a `sync` during which a node is killed
//! with SIGKILL, retried until it completes, checked by `rclone check`
//! (0 differences: it compares MD5s with the ETags) and file by file.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::tools::{ensure, python_with};
use common::{block_on, Api, ADMIN_TOKEN};
use serde_json::Value;

const CONFIG: &str = "\
[dht]
down_grace_ms = 5000
rpc_timeout_ms = 3000

[storage]
min_free_bytes = 0
";

struct Key {
    access: String,
    secret: String,
}

fn make_key(url: &str, role: &str) -> Key {
    let out = Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args(["s3", "key", "create", "--role", role, "--json"])
        .env("HYPHA_URL", url)
        .env("HYPHA_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    Key {
        access: doc["access_key"].as_str().unwrap().to_owned(),
        secret: doc["secret_key"].as_str().unwrap().to_owned(),
    }
}

fn s3_endpoint(url: &str) -> String {
    let node = block_on(Api::new(url).json("/v1/node", Some(ADMIN_TOKEN)));
    format!(
        "http://{}",
        node["s3"].as_str().expect("the node serves S3")
    )
}

/// The AWS CLI against `endpoint` with `key`.
fn aws(python: &Path, endpoint: &str, key: &Key, args: &[&str]) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "awscli", "--endpoint-url", endpoint])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &key.access)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    cmd
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tree of `n` files of 10 B to 20 KiB, in two levels.
fn tree(dir: &Path, n: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in 0..n {
        let sub = dir.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&sub).unwrap();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = 10 + (state % 20_000) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|j| (state >> (j % 56)) as u8 ^ j as u8)
            .collect();
        std::fs::write(sub.join(format!("f{i:03}.bin")), bytes).unwrap();
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn same_trees(a: &Path, b: &Path) {
    let left = files_under(a);
    let right = files_under(b);
    assert_eq!(left.len(), right.len(), "file counts differ");
    for (l, r) in left.iter().zip(&right) {
        assert_eq!(l.strip_prefix(a).unwrap(), r.strip_prefix(b).unwrap());
        assert!(
            std::fs::read(l).unwrap() == std::fs::read(r).unwrap(),
            "{} differs",
            l.display()
        );
    }
}

#[test]
fn s3_clients_work_against_three_nodes() {
    let Some(python) = python_with(&["boto3", "awscli"], &["boto3", "awscli"]) else {
        return;
    };
    let (Some(rclone), Some(s3cmd)) = (ensure("rclone", &["rclone"]), ensure("s3cmd", &["s3cmd"]))
    else {
        return;
    };
    let mut cluster = Cluster::start(3, CONFIG);
    cluster.wait_all_up(3, Duration::from_secs(60));
    let url = cluster.url(0);
    let endpoint = s3_endpoint(&url);
    let writer = make_key(&url, "write");
    let reader = make_key(&url, "read");

    let started = Instant::now();
    let out = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/s3/boto3_check.py"
        ))
        .env("S3_ENDPOINT", &endpoint)
        .env("S3_ACCESS_KEY", &writer.access)
        .env("S3_SECRET_KEY", &writer.secret)
        .env("S3_READ_ACCESS_KEY", &reader.access)
        .env("S3_READ_SECRET_KEY", &reader.secret)
        .output()
        .unwrap();
    let said = ok(out, "boto3");
    eprintln!(
        "boto3: {} checks in {:?}",
        said.lines().count(),
        started.elapsed()
    );

    let dir = tempfile::tempdir().unwrap();
    aws_cli_round_trip(&python, &endpoint, &writer, dir.path());
    let tools = Tools {
        python,
        rclone,
        s3cmd,
    };
    rclone_and_s3cmd(&tools, &endpoint, &writer, dir.path());
    sync_through_a_killed_node(&tools, &mut cluster, &writer, dir.path());
}

struct Tools {
    python: PathBuf,
    rclone: PathBuf,
    s3cmd: PathBuf,
}

/// rclone with a remote `hy:` on `endpoint`, configured in its environment.
fn rclone(tools: &Tools, endpoint: &str, key: &Key, args: &[&str]) -> Output {
    Command::new(&tools.rclone)
        .args(args)
        .env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_HY_TYPE", "s3")
        .env("RCLONE_CONFIG_HY_PROVIDER", "Other")
        .env("RCLONE_CONFIG_HY_ENDPOINT", endpoint)
        .env("RCLONE_CONFIG_HY_REGION", "us-east-1")
        .env("RCLONE_CONFIG_HY_ACCESS_KEY_ID", &key.access)
        .env("RCLONE_CONFIG_HY_SECRET_ACCESS_KEY", &key.secret)
        // A CA bundle in the environment makes rclone refuse its transport.
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap()
}

fn s3cmd(tools: &Tools, endpoint: &str, key: &Key, args: &[&str]) -> Output {
    let host = endpoint.trim_start_matches("http://");
    Command::new(&tools.s3cmd)
        .args(["--no-ssl", "--config", "/dev/null", "--region", "us-east-1"])
        .arg(format!("--host={host}"))
        .arg(format!("--host-bucket={host}"))
        .arg(format!("--access_key={}", key.access))
        .arg(format!("--secret_key={}", key.secret))
        .args(args)
        .output()
        .unwrap()
}

/// `rclone copy` then `rclone check` of a tree; s3cmd lists, puts, gets.
fn rclone_and_s3cmd(tools: &Tools, endpoint: &str, key: &Key, dir: &Path) {
    let local = dir.join("rclone-tree");
    tree(&local, 120, 3);
    let src = local.to_str().unwrap();
    ok(
        rclone(tools, endpoint, key, &["mkdir", "hy:rclone"]),
        "rclone mkdir",
    );
    ok(
        rclone(tools, endpoint, key, &["copy", src, "hy:rclone/tree"]),
        "rclone copy",
    );
    let check = rclone(tools, endpoint, key, &["check", src, "hy:rclone/tree"]);
    let said = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(
        check.status.success() && said.contains("0 differences found"),
        "{said}"
    );
    let listed = ok(
        s3cmd(
            tools,
            endpoint,
            key,
            &["ls", "--recursive", "s3://rclone/tree/"],
        ),
        "s3cmd ls",
    );
    assert_eq!(listed.lines().count(), 120, "{listed}");
    let one = local.join("d0/f000.bin");
    ok(
        s3cmd(
            tools,
            endpoint,
            key,
            &["put", one.to_str().unwrap(), "s3://rclone/s3cmd/f000.bin"],
        ),
        "s3cmd put",
    );
    let back = dir.join("s3cmd.back");
    ok(
        s3cmd(
            tools,
            endpoint,
            key,
            &[
                "get",
                "--force",
                "s3://rclone/s3cmd/f000.bin",
                back.to_str().unwrap(),
            ],
        ),
        "s3cmd get",
    );
    assert!(std::fs::read(&one).unwrap() == std::fs::read(&back).unwrap());
    // A changed file is found by rclone (the ETag is the MD5).
    std::fs::write(local.join("d1/f001.bin"), b"changed").unwrap();
    let check = rclone(tools, endpoint, key, &["check", src, "hy:rclone/tree"]);
    assert!(
        !check.status.success(),
        "rclone check missed a changed file"
    );
}

fn aws_cli_round_trip(python: &Path, endpoint: &str, key: &Key, dir: &Path) {
    let aws = |args: &[&str]| aws(python, endpoint, key, args).output().unwrap();
    ok(aws(&["s3", "mb", "s3://cli"]), "mb");
    let local = dir.join("tree");
    tree(&local, 300, 1);
    let started = Instant::now();
    let first = ok(
        aws(&[
            "s3",
            "sync",
            "--no-progress",
            local.to_str().unwrap(),
            "s3://cli/tree",
        ]),
        "sync",
    );
    let uploads = first.lines().filter(|l| l.starts_with("upload:")).count();
    assert_eq!(uploads, 300, "{first}");
    eprintln!("aws s3 sync: 300 files in {:?}", started.elapsed());
    let again = ok(
        aws(&[
            "s3",
            "sync",
            "--no-progress",
            local.to_str().unwrap(),
            "s3://cli/tree",
        ]),
        "sync again",
    );
    assert_eq!(
        again.trim(),
        "",
        "a second sync transferred something: {again}"
    );
    let listed = ok(aws(&["s3", "ls", "--recursive", "s3://cli/tree/"]), "ls");
    assert_eq!(listed.lines().count(), 300);

    let big = dir.join("big.bin");
    let mut state = 7u64;
    let bytes: Vec<u8> = (0..100 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&big, &bytes).unwrap();
    let started = Instant::now();
    ok(
        aws(&[
            "s3",
            "cp",
            "--no-progress",
            big.to_str().unwrap(),
            "s3://cli/big.bin",
        ]),
        "cp up",
    );
    let up = started.elapsed();
    let back = dir.join("big.back");
    let started = Instant::now();
    ok(
        aws(&[
            "s3",
            "cp",
            "--no-progress",
            "s3://cli/big.bin",
            back.to_str().unwrap(),
        ]),
        "cp down",
    );
    eprintln!(
        "aws s3 cp 100 MiB: up {up:?} (multipart), down {:?}",
        started.elapsed()
    );
    assert!(
        std::fs::read(&back).unwrap() == bytes,
        "100 MiB came back different"
    );
    let head = ok(
        aws(&[
            "s3api",
            "head-object",
            "--bucket",
            "cli",
            "--key",
            "big.bin",
        ]),
        "head-object",
    );
    let head: Value = serde_json::from_str(&head).unwrap();
    assert!(
        head["ETag"].as_str().unwrap().contains('-'),
        "a multipart ETag: {head}"
    );
    assert_eq!(head["ContentLength"], 100 << 20);

    ok(
        aws(&["s3", "rm", "--recursive", "--only-show-errors", "s3://cli"]),
        "rm",
    );
    ok(aws(&["s3", "rb", "s3://cli"]), "rb");
}

/// A sync while node 2 is killed: retried until it succeeds, then every
/// file reads back the same and a further sync has nothing to do.
fn sync_through_a_killed_node(tools: &Tools, cluster: &mut Cluster, key: &Key, dir: &Path) {
    let url = cluster.url(0);
    let endpoint = s3_endpoint(&url);
    let aws_cmd = |args: &[&str]| aws(&tools.python, &endpoint, key, args);
    ok(aws_cmd(&["s3", "mb", "s3://chaos"]).output().unwrap(), "mb");
    let local = dir.join("chaos");
    tree(&local, 300, 2);
    let target = "s3://chaos/tree";
    let sync = [
        "s3",
        "sync",
        "--no-progress",
        "--only-show-errors",
        local.to_str().unwrap(),
        target,
    ];
    let child = aws_cmd(&sync)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let api = Api::new(url.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let listed =
            block_on(api.json("/v1/files?prefix=chaos/tree/&limit=1000", Some(ADMIN_TOKEN)));
        let n = listed["files"].as_array().map_or(0, Vec::len);
        if n >= 60 {
            eprintln!("killing node 2 with {n} of 300 files synced");
            break;
        }
        assert!(Instant::now() < deadline, "the sync never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.kill(2);
    let first = child.wait_with_output().unwrap();
    eprintln!(
        "sync during the kill: exit {:?}, {} error lines",
        first.status.code(),
        String::from_utf8_lossy(&first.stderr).lines().count()
    );
    let mut tries = 1;
    while !aws_cmd(&sync).output().unwrap().status.success() {
        tries += 1;
        assert!(
            Instant::now() < deadline,
            "the sync never completed after the kill"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("the sync completed after {tries} runs");
    let dry = ok(
        aws_cmd(&["s3", "sync", "--dryrun", local.to_str().unwrap(), target])
            .output()
            .unwrap(),
        "dry run",
    );
    assert_eq!(dry.trim(), "", "files still differ: {dry}");
    let check = rclone(
        tools,
        &endpoint,
        key,
        &["check", local.to_str().unwrap(), "hy:chaos/tree"],
    );
    let said = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(
        check.status.success() && said.contains("0 differences found"),
        "{said}"
    );
    eprintln!("rclone check after the kill: 0 differences, 300 files");
    let down = dir.join("chaos.back");
    ok(
        aws_cmd(&[
            "s3",
            "sync",
            "--no-progress",
            "--only-show-errors",
            target,
            down.to_str().unwrap(),
        ])
        .output()
        .unwrap(),
        "download",
    );
    same_trees(&local, &down);
}
