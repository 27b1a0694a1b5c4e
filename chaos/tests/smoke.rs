//! The chaos smoke set (issue 7): short runs of the scenarios that need
//! only processes and signals, and of the partition scenarios (issue 25,
//! on 5 nodes; they need root, else they are skipped), against real node
//! processes of this build. Each run must pass its checkers — nothing
//! acknowledged lost, no deleted file back, replicas and membership
//! converged, every acknowledged job done, no node dead that was not
//! killed. A failing run keeps its directory and prints the replay command.
//!
//! The runs drive the `hypha` binary Cargo built beside this test
//! (`target/<profile>/hypha`), or `HYPHA_BIN`. `cargo test --workspace`
//! builds it with everything else; `cargo test -p hypha-chaos` alone does
//! not, so build it first there (`cargo build -p hypha`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use hypha_chaos::{Namespace, RunArgs, RunResult};

/// `HYPHA_BIN`, else the binary of this build (the kit asserts it is
/// there).
fn hypha_bin() -> PathBuf {
    std::env::var_os("HYPHA_BIN").map_or_else(hypha_testkit::paths::hypha_bin, PathBuf::from)
}

fn smoke(scenario: &str, seed: u64) {
    let args = RunArgs {
        scenario: scenario.into(),
        nodes: if scenario.starts_with("partition-") {
            5
        } else {
            3
        },
        duration_s: 12,
        seed,
        hypha_bin: hypha_bin(),
        out: None,
        keep: false,
        clients: 3,
        warmup_s: 4,
        min_rate: 5.0,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match runtime
        .block_on(hypha_chaos::run(&args, Namespace::Host))
        .unwrap()
    {
        RunResult::Skipped(why) => println!("SKIP {scenario}: {why}"),
        RunResult::Ran(report, dir) => {
            print!("{}", report.summary());
            assert!(
                report.passed,
                "{scenario} seed {seed} failed; kept {}",
                dir.display()
            );
        }
    }
}

#[test]
fn smoke_set_passes() {
    for scenario in [
        "kill-one-repeatedly",
        "freeze-one",
        "actor-kill-storm",
        "partition-halves",
        "partition-bridge",
        "partition-ring",
        "partition-oneway",
    ] {
        smoke(scenario, 1);
    }
}
