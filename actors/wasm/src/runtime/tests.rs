//! The sandbox against real modules, one hostile module per limit, each
//! followed by a normal run on the same runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

const WASI: &str = "wasi_snapshot_preview1";

/// Copies stdin to stdout, 4 KiB at a time.
fn echo() -> String {
    format!(
        r#"(module
  (import "{WASI}" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "{WASI}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $n i32)
    (block $done
      (loop $again
        (i32.store (i32.const 0) (i32.const 64))
        (i32.store (i32.const 4) (i32.const 4096))
        (br_if $done (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
        (local.set $n (i32.load (i32.const 16)))
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store (i32.const 8) (i32.const 64))
        (i32.store (i32.const 12) (local.get $n))
        (drop (call $write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 20)))
        (br $again)))))"#
    )
}

/// Exits with the errno a WASI call returned (`call` is its body).
fn exit_with(import: &str, params: &str, call: &str) -> String {
    format!(
        r#"(module
  (import "{WASI}" "{import}" (func $f (param {params}) (result i32)))
  (import "{WASI}" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit {call})))"#
    )
}

const SPIN: &str = r#"(module (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))"#;

const GROW: &str = r#"(module (memory (export "memory") 1)
  (func (export "_start")
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable))"#;

const HUGE_MEMORY: &str = r#"(module (memory (export "memory") 1000)
  (func (export "_start")))"#;

const TRAP: &str = r#"(module (memory (export "memory") 1)
  (func (export "_start") unreachable))"#;

const FOREIGN_IMPORT: &str = r#"(module (import "env" "escape" (func))
  (memory (export "memory") 1) (func (export "_start")))"#;

/// Writes 1 KiB to stdout forever.
fn flood() -> String {
    format!(
        r#"(module
  (import "{WASI}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 1024))
    (loop $l
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
      (br $l))))"#
    )
}

fn runtime() -> WasmRuntime {
    WasmRuntime::new(Ceilings::default(), 8).unwrap()
}

fn limits(pairs: &[(&str, &str)]) -> Limits {
    let args: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Limits::for_job(&args, 60_000, &Ceilings::default()).unwrap()
}

fn run(rt: &WasmRuntime, wat: &str, stdin: &[u8], limits: &Limits) -> Result<RunOutput, RunError> {
    let module = rt.compile(wat.as_bytes()).expect("compiles");
    let cancel = Arc::new(AtomicBool::new(false));
    rt.run(&module, stdin.to_vec(), &[], &[], limits, &cancel)
}

fn reason(result: Result<RunOutput, RunError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.failure.code(),
    }
}

/// After anything hostile, the same runtime still runs a normal module.
fn still_works(rt: &WasmRuntime) {
    let out = run(rt, &echo(), b"still here", &limits(&[])).unwrap();
    assert_eq!(out.stdout, b"still here");
}

#[test]
fn a_command_reads_stdin_and_writes_stdout() {
    let rt = runtime();
    let input: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let out = run(&rt, &echo(), &input, &limits(&[])).unwrap();
    assert_eq!(out.stdout, input);
    assert!(out.fuel_used > 0);
    assert_eq!(
        rt.ticker.shared.lock().0,
        0,
        "the ticker idles between runs"
    );
}

#[test]
fn each_limit_stops_hostile_code_with_its_reason() {
    let rt = runtime();
    let cases: [(&str, String, Limits); 5] = [
        ("cpu_limit", SPIN.into(), limits(&[("fuel", "1000000")])),
        ("time_limit", SPIN.into(), limits(&[("wall_ms", "100")])),
        (
            "memory_limit",
            GROW.into(),
            limits(&[("memory_bytes", "4194304")]),
        ),
        (
            "memory_limit",
            HUGE_MEMORY.into(),
            limits(&[("memory_bytes", "4194304")]),
        ),
        (
            "output_limit",
            flood(),
            limits(&[("output_bytes", "10000")]),
        ),
    ];
    for (expected, wat, limits) in cases {
        let started = Instant::now();
        assert_eq!(reason(run(&rt, &wat, b"", &limits)), expected, "{wat}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{expected} took too long"
        );
        still_works(&rt);
    }
}

#[test]
fn traps_exits_and_foreign_imports_fail_with_their_reason() {
    let rt = runtime();
    assert_eq!(reason(run(&rt, TRAP, b"", &limits(&[]))), "trap");
    let exit3 = exit_with("sched_yield", "", "(i32.add (call $f) (i32.const 3))");
    let failed = run(&rt, &exit3, b"", &limits(&[])).unwrap_err();
    assert_eq!(failed.failure, Failure::Exit(3));
    assert_eq!(
        reason(run(&rt, FOREIGN_IMPORT, b"", &limits(&[]))),
        "link_error"
    );
    let invalid = rt.compile(b"\0asm but not really").map(|_| ());
    assert!(matches!(invalid, Err(Failure::InvalidModule(_))));
    still_works(&rt);
}

#[test]
fn no_files_and_no_sockets_are_reachable() {
    let rt = runtime();
    // fd 3 would be the first preopened directory; there is none.
    let prestat = exit_with(
        "fd_prestat_get",
        "i32 i32",
        "(call $f (i32.const 3) (i32.const 64))",
    );
    let sock = exit_with(
        "sock_accept",
        "i32 i32 i32",
        "(call $f (i32.const 3) (i32.const 0) (i32.const 64))",
    );
    let open = exit_with(
        "path_open",
        "i32 i32 i32 i32 i32 i64 i64 i32 i32",
        "(call $f (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 4) \
         (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 64))",
    );
    for wat in [prestat, sock, open] {
        match run(&rt, &wat, b"", &limits(&[])) {
            Err(RunError {
                failure: Failure::Exit(errno),
                ..
            }) => assert_ne!(errno, 0, "{wat}"),
            other => panic!("{wat}: {other:?}"),
        }
    }
    still_works(&rt);
}

#[test]
fn a_cancelled_run_stops_within_ticks() {
    let rt = runtime();
    let module = rt.compile(SPIN.as_bytes()).unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        flag.store(true, Ordering::Relaxed);
    });
    let started = Instant::now();
    let ended = rt.run(&module, Vec::new(), &[], &[], &limits(&[]), &cancel);
    canceller.join().unwrap();
    assert_eq!(
        ended.map(|_| ()).map_err(|e| e.failure),
        Err(Failure::Cancelled)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn modules_are_compiled_once_per_content() {
    let rt = runtime();
    let a = rt.compile(echo().as_bytes()).unwrap();
    let b = rt.compile(echo().as_bytes()).unwrap();
    assert_eq!(a.hash, b.hash);
    assert!(
        Module::same(&a.module, &b.module),
        "the second compile came from the cache"
    );
    let other = rt.compile(TRAP.as_bytes()).unwrap();
    assert_ne!(a.hash, other.hash);
}

#[test]
fn the_wordcount_example_counts_words_like_rust_does() {
    let rt = runtime();
    let wat = include_str!("../../examples/wordcount.wat");
    let texts: [&[u8]; 5] = [
        b"",
        b"one",
        b"  two words\n",
        b"a\tb\r\nc  d\n\n e",
        &[b'x'; 200_000],
    ];
    for text in texts {
        let native = String::from_utf8_lossy(text)
            .split_ascii_whitespace()
            .count();
        let out = run(&rt, wat, text, &limits(&[])).unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{native}\n")
        );
    }
}
