//! `hypha-chaos`: run a scenario against real node processes and print
//! its report. Exit status: 0 pass or skipped, 1 fail, 2 usage or setup
//! error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hypha_chaos::matrix::{self, Cell};
use hypha_chaos::{scenario, Namespace, RunArgs, RunResult};

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
    /// Run every scenario × seed, one at a time, and print a markdown
    /// table of the results (docs/chaos.md). Exit 1 if any run failed.
    Matrix(Matrix),
}

#[derive(clap::Args)]
struct Matrix {
    /// Scenario names, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    scenarios: Vec<String>,
    /// Seeds: `1-5`, `1,3,7` or both.
    #[arg(long, default_value = "1-5")]
    seeds: String,
    /// Node processes.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Fault window of each run, seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// The `hypha` binary (default: beside this one).
    #[arg(long, env = "HYPHA_BIN")]
    hypha_bin: Option<PathBuf>,
    /// Write each run's JSON report here, as SCENARIO-SEED.json.
    #[arg(long)]
    reports: Option<PathBuf>,
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
        Cmd::Matrix(m) => match matrix(&m) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("hypha-chaos: {e:#}");
                ExitCode::from(2)
            }
        },
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
    let args = RunArgs {
        scenario: r.scenario,
        nodes: r.nodes,
        duration_s: r.duration,
        seed: r.seed.unwrap_or_else(clock_seed),
        hypha_bin: hypha_bin(r.hypha_bin)?,
        out: r.out,
        keep: r.keep,
        clients: r.clients,
        warmup_s: r.warmup,
        min_rate: r.min_rate,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    // Network faults move the run into a network namespace of its own
    // (crate::net::spawn_in_own_netns).
    match runtime.block_on(hypha_chaos::run(&args, Namespace::Host))? {
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

fn hypha_bin(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(bin) => Ok(bin),
        None => Ok(std::env::current_exe()?.with_file_name("hypha")),
    }
}

/// Each scenario × seed in turn (two at once would share the cores and
/// skew each other's latencies), each summary as it ends, then the table.
fn matrix(m: &Matrix) -> anyhow::Result<ExitCode> {
    let seeds = matrix::parse_seeds(&m.seeds).map_err(anyhow::Error::msg)?;
    if let Some(s) = m.scenarios.iter().find(|s| scenario::by_name(s).is_none()) {
        anyhow::bail!("no scenario {s:?} (see `hypha-chaos list`)");
    }
    if let Some(dir) = &m.reports {
        std::fs::create_dir_all(dir)?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let mut cells = Vec::new();
    for name in &m.scenarios {
        for &seed in &seeds {
            let args = RunArgs {
                scenario: name.clone(),
                nodes: m.nodes,
                duration_s: m.duration,
                seed,
                hypha_bin: hypha_bin(m.hypha_bin.clone())?,
                out: None,
                keep: false,
                clients: 4,
                warmup_s: 5,
                min_rate: 10.0,
            };
            let cell = match runtime.block_on(hypha_chaos::run(&args, Namespace::Host)) {
                Ok(RunResult::Ran(report, dir)) => {
                    print!("{}", report.summary());
                    if !report.passed {
                        println!("  kept: {}", dir.display());
                    }
                    if let Some(reports) = &m.reports {
                        let path = reports.join(format!("{name}-{seed}.json"));
                        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
                    }
                    Cell::Ran(report)
                }
                Ok(RunResult::Skipped(why)) => Cell::Skipped(why),
                Err(e) => {
                    println!("ERROR {name} seed {seed}: {e:#}");
                    Cell::Error(format!("{e:#}"))
                }
            };
            cells.push((name.clone(), seed, cell));
        }
    }
    print!("\n{}", matrix::table(&cells));
    let all_passed = cells.iter().all(|(_, _, c)| match c {
        Cell::Ran(r) => r.passed,
        Cell::Skipped(_) => true,
        Cell::Error(_) => false,
    });
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs())
}
