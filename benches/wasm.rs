//! WebAssembly jobs benchmark (not a timed test). In process, on the
//! node's sandbox (`hypha_wasm`): how long a module takes to compile; what
//! a cached instantiate-and-run of a trivial module costs per job (the
//! sandbox's overhead beyond the job's own work); a CPU-bound kernel in
//! WebAssembly against the same kernel compiled natively, as a ratio.
//! Then on 3 release node processes: trivial `wasm` jobs per second end to
//! end against no-op built-in `echo` jobs per second in the same run.
//!
//! ```text
//! cargo bench --bench wasm
//! HYPHA_BENCH_JOBS=2000 HYPHA_BENCH_CONCURRENCY=32
//! ```
//! Figures are recorded in docs/jobs.md ("WebAssembly jobs").
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hypha_testkit::cluster::Cluster;
use hypha_wasm::{Ceilings, Limits, WasmRuntime};
use serde_json::json;
use support::{
    client, counter, median, nodes_cpu_s, percentile, put, sized, small_ops, submit_job,
    wait_completed,
};

/// A command that does nothing: the sandbox's own cost per job.
const TRIVIAL: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;

/// The kernel: `rounds` xorshift64 steps, summed (a serial dependency
/// chain, so neither compiler can vectorise it away), in WebAssembly…
fn kernel_wat(rounds: u64) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $x i64) (local $sum i64) (local $i i64)
    (local.set $x (i64.const 88172645463325252))
    (loop $l
      (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
      (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
      (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
      (local.set $sum (i64.add (local.get $sum) (local.get $x)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (i64.const {rounds}))))
    (call $exit (i32.wrap_i64 (i64.and (local.get $sum) (i64.const 1))))))"#
    )
}

/// …and in Rust.
fn kernel_native(rounds: u64) -> u64 {
    let mut x: u64 = std::hint::black_box(88172645463325252);
    let mut sum: u64 = 0;
    for _ in 0..std::hint::black_box(rounds) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sum = sum.wrapping_add(x);
    }
    sum
}

fn limits() -> Limits {
    Limits::for_job(&Default::default(), 600_000, &Ceilings::default()).unwrap()
}

/// Median and p99 of `samples` timings of `f`, in µs.
fn time_us(samples: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut us: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(|a, b| a.total_cmp(b));
    (percentile(&us, 50.0), percentile(&us, 99.0))
}

fn in_process() {
    let ceilings = Ceilings {
        fuel: u64::MAX / 2,
        ..Ceilings::default()
    };
    let rt = WasmRuntime::new(ceilings, 4).unwrap();
    let wordcount = include_str!("../actors/wasm/examples/wordcount.wat");
    let mut n = 0;
    let (compile50, compile99) = time_us(sized("HYPHA_BENCH_COMPILES", 50, 3), || {
        // A comment makes new bytes: a cache miss, a real compile.
        n += 1;
        rt.compile(format!("{wordcount};; {n}").as_bytes()).unwrap();
    });
    println!(
        "compile (wordcount.wat, text format, cache missed): p50 {compile50:.0} µs, p99 {compile99:.0} µs"
    );

    let trivial = rt.compile(TRIVIAL.as_bytes()).unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let (run50, run99) = time_us(sized("HYPHA_BENCH_RUNS", 5_000, 20), || {
        rt.run(&trivial, Vec::new(), &[], &[], &limits(), &cancel)
            .unwrap();
    });
    println!(
        "cached instantiate + run of a trivial module, per job: p50 {run50:.1} µs, p99 {run99:.1} µs \
         (one thread: wall time = CPU time; target ≤ 100 µs)"
    );

    let rounds = sized("HYPHA_BENCH_KERNEL_ROUNDS", 200_000_000, 1_000_000) as u64;
    let kernel = rt.compile(kernel_wat(rounds).as_bytes()).unwrap();
    let mut wasm_s = Vec::new();
    let mut native_s = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        // The module exits with the sum's low bit: a non-zero exit is fine.
        let _ = rt.run(&kernel, Vec::new(), &[], &[], &limits(), &cancel);
        wasm_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(kernel_native(rounds));
        native_s.push(t.elapsed().as_secs_f64());
    }
    let (wasm, native) = (median(wasm_s), median(native_s));
    println!(
        "kernel (xorshift64, {rounds} rounds), median of 3: wasm {:.0} ms, native {:.0} ms: \
         wasm runs at {:.2}× native (target ≥ 0.6×; fuel metering on)",
        wasm * 1e3,
        native * 1e3,
        native / wasm
    );
}

/// `jobs` jobs of `body` through the nodes, 32 in flight: jobs/s end to
/// end and node CPU per job.
async fn jobs_per_s(
    c: &Cluster,
    http: &reqwest::Client,
    jobs: usize,
    body: serde_json::Value,
) -> (f64, f64) {
    let urls: Vec<String> = c.alive().into_iter().map(|i| c.url(i)).collect();
    let concurrency = sized("HYPHA_BENCH_CONCURRENCY", 32, 4);
    let before = counter(http, &urls, "hypha_jobs_completed_total").await;
    let cpu = nodes_cpu_s(c);
    let started = Instant::now();
    small_ops(jobs, concurrency, |i| {
        let (http, url, body) = (http, &urls[i % urls.len()], &body);
        async move { submit_job(http, url, body).await }
    })
    .await;
    let target = before + jobs as f64;
    wait_completed(http, &urls, target, Duration::from_secs(600)).await;
    let rate = jobs as f64 / started.elapsed().as_secs_f64();
    (rate, 1e6 * (nodes_cpu_s(c) - cpu) / jobs as f64)
}

fn on_cluster() {
    let c = Cluster::start(3, "[work]\nslots = 16\n\n[storage]\nmin_free_bytes = 0\n");
    c.wait_all_up(3, Duration::from_secs(60));
    let partitions = 1 << hypha_dht::settings::DhtSettings::default().partition_bits;
    c.wait_caught_up(partitions, Duration::from_secs(60));
    let jobs = sized("HYPHA_BENCH_JOBS", 2_000, 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = client();
        put(
            &http,
            &c.url(0),
            "apps/trivial.wat",
            TRIVIAL.as_bytes().to_vec(),
        )
        .await;
        let echo = json!({ "queue": "bench-echo", "kind": "echo", "payload": "" });
        let wasm = json!({
            "queue": "bench-wasm", "kind": "wasm", "payload": "",
            "args": { "module": "apps/trivial.wat" }
        });
        // Warm-up: owners loaded, links open, the module compiled on every node.
        let _ = jobs_per_s(&c, &http, 30, echo.clone()).await;
        let _ = jobs_per_s(&c, &http, 30, wasm.clone()).await;
        let (echo_rate, echo_cpu) = jobs_per_s(&c, &http, jobs, echo).await;
        let (wasm_rate, wasm_cpu) = jobs_per_s(&c, &http, jobs, wasm).await;
        println!(
            "3 nodes, {jobs} jobs each, 32 submits in flight: trivial wasm {wasm_rate:.0} jobs/s \
             ({wasm_cpu:.0} µs node CPU/job) vs echo {echo_rate:.0} jobs/s ({echo_cpu:.0} µs): \
             {:.2}× the built-in rate, +{:.0} µs CPU per job",
            wasm_rate / echo_rate,
            wasm_cpu - echo_cpu
        );
        let dead = counter(
            &http,
            &c.alive().into_iter().map(|i| c.url(i)).collect::<Vec<_>>(),
            "hypha_jobs_dead_lettered_total",
        )
        .await;
        assert_eq!(dead, 0.0, "no job may be dead-lettered");
    });
}

fn main() {
    in_process();
    on_cluster();
}
