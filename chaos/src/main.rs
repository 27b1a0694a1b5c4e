//! `hypha-chaos`: run a scenario against real node processes and print
//! its report. Exit status: 0 pass or skipped, 1 fail, 2 usage or setup
//! error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hypha_chaos::{net, scenario, Namespace, RunArgs, RunResult};

#[derive(Parser)]
#[command(
    name = "hypha-chaos",
    about = "Seeded fault injection against Hypha nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario and check it.
    Run(Run),
    /// List the scenarios.
    List,
    /// Print a scenario's fault schedule for a seed (what a replay applies).
    Schedule(Run),
}

#[derive(clap::Args)]
struct Run {
    /// Scenario name (`hypha-chaos list`).
    #[arg(long)]
    scenario: String,
    /// Node processes.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Fault window, seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seed of the schedule and the workload (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// File clients.
    #[arg(long, default_value_t = 4)]
    clients: u32,
    /// Workload before the first fault, seconds.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Acknowledged operations per second the warm-up must reach.
    #[arg(long, default_value_t = 10.0)]
    min_rate: f64,
    /// The `hypha` binary (default: beside this one).
    #[arg(long, env = "HYPHA_BIN")]
    hypha_bin: Option<PathBuf>,
    /// Run directory (default: in the temp dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the run directory after a pass.
    #[arg(long)]
    keep: bool,
    /// Also write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::List => {
            for s in scenario::SCENARIOS {
                println!("{:<20} {}", s.name, s.summary);
            }
            ExitCode::SUCCESS
        }
        Cmd::Schedule(r) => schedule(&r),
        Cmd::Run(r) => match run(r) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("hypha-chaos: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn schedule(r: &Run) -> ExitCode {
    let Some(s) = scenario::by_name(&r.scenario) else {
        eprintln!("hypha-chaos: no scenario {:?}", r.scenario);
        return ExitCode::from(2);
    };
    let seed = r.seed.unwrap_or(0);
    for step in scenario::schedule(&s, r.nodes, r.duration * 1000, seed) {
        println!("{:>7} ms  {}", step.at_ms, serde_json::json!(step.fault));
    }
    ExitCode::SUCCESS
}

fn run(r: Run) -> anyhow::Result<ExitCode> {
    let scenario = scenario::by_name(&r.scenario)
        .ok_or_else(|| anyhow::anyhow!("no scenario {:?}", r.scenario))?;
    let in_netns = std::env::var_os(net::IN_NETNS_ENV).is_some();
    let seed = r.seed.unwrap_or_else(clock_seed);
    if scenario.needs == scenario::Needs::Netns && !in_netns {
        if let Some(why) = net::netns_unavailable() {
            println!("SKIP {}: {why}", scenario.name);
            return Ok(ExitCode::SUCCESS);
        }
        // Same arguments, with the seed fixed, inside a namespace of its own.
        if r.seed.is_none() {
            std::env::set_var("HYPHA_CHAOS_SEED", seed.to_string());
        }
        let status = net::reexec_in_netns()?;
        return Ok(ExitCode::from(
            u8::try_from(status.code().unwrap_or(2)).unwrap_or(2),
        ));
    }
    if in_netns {
        net::setup_netns()?;
    }
    let seed = std::env::var("HYPHA_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|_| r.seed.is_none())
        .unwrap_or(seed);
    let args = RunArgs {
        scenario: r.scenario,
        nodes: r.nodes,
        duration_s: r.duration,
        seed,
        hypha_bin: match r.hypha_bin {
            Some(bin) => bin,
            None => std::env::current_exe()?.with_file_name("hypha"),
        },
        out: r.out,
        keep: r.keep,
        clients: r.clients,
        warmup_s: r.warmup,
        min_rate: r.min_rate,
    };
    let namespace = if in_netns {
        Namespace::Own
    } else {
        Namespace::Host
    };
    let runtime = tokio::runtime::Runtime::new()?;
    match runtime.block_on(hypha_chaos::run(&args, namespace))? {
        RunResult::Skipped(why) => {
            println!("SKIP {}: {why}", args.scenario);
            Ok(ExitCode::SUCCESS)
        }
        RunResult::Ran(report, dir) => {
            print!("{}", report.summary());
            if let Some(path) = r.report {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
            }
            if report.passed {
                Ok(ExitCode::SUCCESS)
            } else {
                println!("  kept: {}", dir.display());
                Ok(ExitCode::from(1))
            }
        }
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs())
}
