//! The chaos smoke set (issue 7): short runs of the scenarios that need
//! only processes and signals, and of the partition scenarios (issue 25,
//! on 5 nodes; they need root, else they are skipped), against real node
//! processes of this build. Each run must pass its checkers — nothing
//! acknowledged lost, no deleted file back, replicas and membership
//! converged, every acknowledged job done, no node dead that was not
//! killed. A failing run keeps its directory and prints the replay command.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use hypha_chaos::{Namespace, RunArgs, RunResult};

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
        hypha_bin: PathBuf::from(env!("CARGO_BIN_EXE_hypha")),
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
