//! The `wasm` job kind through a real node process and the CLI: a module
//! stored as a file runs over a stored input and its result is right
//! (checked against the same count in Rust); hostile modules fail with
//! their reason while the node's supervision tree sees no restart and a
//! normal job alongside completes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

const WASI: &str = "wasi_snapshot_preview1";

/// One node process at a time in this file. A node given port 0 learns a
/// free port by binding and releasing it, then binds it again for real;
/// two nodes starting at once can be handed the same port in between (a
/// gate saw `Address already in use` on the node-link port).
static ONE_NODE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_node_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_NODE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn cli(url: &str, args: &[&str]) -> String {
    cli_stdout(&hypha_cli(url, Some(ADMIN_TOKEN), args))
}

/// Store `text` as the file `name` through the CLI.
fn put(url: &str, dir: &Path, name: &str, text: &str) {
    let src = dir.join(name.replace('/', "_"));
    std::fs::write(&src, text).unwrap();
    let out = cli(url, &["put", src.to_str().unwrap(), name]);
    assert!(out.contains("acks"), "{out}");
}

/// Submit a `wasm` job and wait for its end; the final record.
fn run_wasm(url: &str, module: &str, input: &[&str], args: &[&str]) -> Value {
    let module_arg = format!("module={module}");
    let mut argv = vec![
        "jobs",
        "submit",
        "-q",
        "wasm",
        "-k",
        "wasm",
        "-a",
        &module_arg,
        "--max-attempts",
        "1",
    ];
    argv.extend_from_slice(input);
    for a in args {
        argv.extend_from_slice(&["-a", a]);
    }
    argv.extend_from_slice(&["--wait", "--json"]);
    let out = cli(url, &argv);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn wasm_jobs_compute_and_hostile_modules_fail_with_their_reason() {
    let _one = one_node_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(dir.path(), &["--dev"]);
    let url = node.url.clone();
    let api = Api::new(&url);

    let wordcount = include_str!("../actors/wasm/examples/wordcount.wat");
    put(&url, dir.path(), "apps/wordcount.wat", wordcount);
    let text = "the quick brown fox\njumps over\tthe lazy dog\n".repeat(500);
    put(&url, dir.path(), "data/fox.txt", &text);
    let done = run_wasm(&url, "apps/wordcount.wat", &["--file", "data/fox.txt"], &[]);
    let native = text.split_ascii_whitespace().count();
    assert_eq!(done["state"], "done", "{done}");
    // Pinned at submit by content hash.
    let hash = blake3::hash(wordcount.as_bytes()).to_hex().to_string();
    assert_eq!(done["args"]["module_hash"], hash, "{done}");
    assert_eq!(
        done["result"].as_str().map(str::trim),
        Some(native.to_string().as_str()),
        "{done}"
    );

    let spin =
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;
    let grow = r#"(module (memory (export "memory") 1) (func (export "_start")
        (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable))"#;
    let flood = format!(
        r#"(module (import "{WASI}" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1) (func (export "_start")
        (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 1024))
        (loop $l (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))) (br $l))))"#
    );
    let trap = r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#;
    let before = restarts(&block_on(api.json("/v1/actors", Some(ADMIN_TOKEN))));
    let hostile: [(&str, &str, &[&str], &str); 5] = [
        ("apps/spin.wat", spin, &["fuel=1000000"], "cpu_limit"),
        ("apps/slow.wat", spin, &["wall_ms=200"], "time_limit"),
        (
            "apps/grow.wat",
            grow,
            &["memory_bytes=4194304"],
            "memory_limit",
        ),
        (
            "apps/flood.wat",
            &flood,
            &["output_bytes=10000"],
            "output_limit",
        ),
        ("apps/trap.wat", trap, &[], "trap"),
    ];
    for (name, wat, args, reason) in hostile {
        put(&url, dir.path(), name, wat);
        let failed = run_wasm(&url, name, &["--payload", ""], args);
        assert_eq!(failed["state"], "dead_letter", "{failed}");
        let error = failed["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(reason),
            "{name}: expected {reason}, got {failed}"
        );
        // A normal job alongside still runs.
        let job = cli(
            &url,
            &[
                "jobs",
                "submit",
                "-q",
                "plain",
                "-k",
                "wordcount",
                "--payload",
                "a b c",
                "--wait",
            ],
        );
        assert!(job.contains("\"words\":3"), "{job}");
    }
    let after = restarts(&block_on(api.json("/v1/actors", Some(ADMIN_TOKEN))));
    assert_eq!(before, after, "hostile modules caused restarts");

    // Refused at submit (400), before anything is durable: limits above
    // the ceiling, a module that does not validate, a missing module.
    put(
        &url,
        dir.path(),
        "apps/broken.wat",
        "(module (func (export \"_start\") i32.add))",
    );
    let refusals = [
        (
            "apps/trap.wat",
            "fuel=99999999999999",
            "above this node's ceiling",
        ),
        ("apps/broken.wat", "fuel=1000", "invalid_module"),
        ("apps/absent.wat", "fuel=1000", "apps/absent.wat"),
    ];
    for (module, arg, expected) in refusals {
        let module = format!("module={module}");
        let argv = [
            "jobs", "submit", "-q", "wasm", "-k", "wasm", "-a", &module, "-a", arg,
        ];
        let out = hypha_cli(&url, Some(ADMIN_TOKEN), &argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{module} was accepted");
        assert!(stderr.contains(expected), "{module}: {stderr}");
    }

    // 1 MiB of stdout: past what a job's record holds, so without `out`
    // it is output_limit; with `out` it is stored whole as a file.
    let mib = format!(
        r#"(module (import "{WASI}" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1) (func (export "_start") (local $i i32)
        (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 1024))
        (loop $l (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 1024))))))"#
    );
    put(&url, dir.path(), "apps/mib.wat", &mib);
    let inline = run_wasm(&url, "apps/mib.wat", &["--payload", ""], &[]);
    assert!(
        inline["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("output_limit"),
        "{inline}"
    );
    let stored = run_wasm(
        &url,
        "apps/mib.wat",
        &["--payload", ""],
        &["out=big/mib.bin"],
    );
    assert_eq!(stored["state"], "done", "{stored}");
    let bytes = block_on(async {
        let res = api.get("/v1/files/big/mib.bin", Some(ADMIN_TOKEN)).await;
        res.bytes().await.unwrap()
    });
    assert_eq!(bytes.len(), 1 << 20);
    assert!(bytes.iter().all(|b| *b == 0));
}

/// `hypha jobs map`: one job per stored file under a prefix, results
/// stored as files under `--out`, each right; a re-run submits nothing new.
#[test]
fn jobs_map_runs_a_module_over_every_file_once() {
    let _one = one_node_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(dir.path(), &["--dev"]);
    let url = node.url.clone();
    let wordcount = include_str!("../actors/wasm/examples/wordcount.wat");
    put(&url, dir.path(), "apps/wordcount.wat", wordcount);
    let texts: Vec<String> = (0..6).map(|i| "word ".repeat(i * 7 + 1)).collect();
    for (i, text) in texts.iter().enumerate() {
        put(&url, dir.path(), &format!("texts/t{i}.txt"), text);
    }
    let argv = [
        "jobs",
        "map",
        "--module",
        "apps/wordcount.wat",
        "--prefix",
        "texts/",
        "--out",
        "counts/",
        "--wait",
        "--json",
    ];
    for run in ["first", "again"] {
        let out: Value = serde_json::from_str(&cli(&url, &argv)).unwrap();
        let jobs = out["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), texts.len(), "{run}: {out}");
        for job in jobs {
            assert_eq!(job["state"], "done", "{run}: {job}");
            assert_eq!(job["existing"], run == "again", "{run}: {job}");
        }
    }
    for (i, text) in texts.iter().enumerate() {
        let stored = cli(&url, &["get", &format!("counts/t{i}.txt")]);
        let native = text.split_ascii_whitespace().count();
        assert_eq!(stored.trim(), native.to_string(), "counts/t{i}.txt");
    }
}
