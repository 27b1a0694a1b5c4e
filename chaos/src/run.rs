//! One run: start the nodes, warm the workload up, apply the schedule,
//! heal, wait for convergence, read everything back, check, report.
//! The run's directory keeps the history, the report, every node's log
//! and data dir; it is deleted after a pass unless asked to keep it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use hypha_testkit::http::up_count;
use hypha_testkit::poll::poll;

use crate::check::{self, violation, FinalRead};
use crate::clock::{self, Clocks};
use crate::cluster::{self, Layout, Nodes, RunAs, ADMIN_TOKEN};
use crate::history::{History, Op, OpKind, Outcome};
use crate::nemesis::Nemesis;
use crate::net::{self, Partitions};
use crate::report::{self, Report};
use crate::scenario::{self, Needs, Scenario};
use crate::workload::{self, Shared};

/// Replicas per partition (the node default).
const REPLICAS: usize = 3;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunArgs {
    /// Scenario name.
    pub scenario: String,
    /// Node processes.
    pub nodes: usize,
    /// Fault window, s.
    pub duration_s: u64,
    /// Seed of the schedule and the workload.
    pub seed: u64,
    /// The `hypha` binary the nodes run.
    pub hypha_bin: PathBuf,
    /// Run directory (default: under the temp dir).
    pub out: Option<PathBuf>,
    /// Keep the run directory after a pass.
    pub keep: bool,
    /// File clients.
    pub clients: u32,
    /// Workload before the first fault, s.
    pub warmup_s: u64,
    /// Acknowledged operations per second the warm-up must reach.
    pub min_rate: f64,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunResult {
    /// The machine cannot inject this scenario's faults.
    Skipped(String),
    /// It ran; the report and the run directory (removed after a pass
    /// unless kept).
    Ran(Box<Report>, PathBuf),
}

/// Where the run executes: the netns scenarios need the harness inside
/// its own network namespace (see [`crate::net`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// The caller's network namespace; a netns scenario moves itself onto
    /// a thread in a new one ([`crate::net::spawn_in_own_netns`]).
    Host,
    /// The run's own already (the caller made it).
    Own,
}

/// Run a scenario to its report.
pub async fn run(args: &RunArgs, namespace: Namespace) -> anyhow::Result<RunResult> {
    let Some(scenario) = scenario::by_name(&args.scenario) else {
        bail!("no scenario {:?} (see `hypha-chaos list`)", args.scenario);
    };
    if args.nodes < scenario.min_nodes {
        bail!(
            "{} needs at least {} nodes",
            scenario.name,
            scenario.min_nodes
        );
    }
    if let Some(why) = unavailable(&scenario) {
        return Ok(RunResult::Skipped(why));
    }
    if scenario.needs == Needs::Netns && namespace == Namespace::Host {
        // The same run, on a thread of its own inside a new namespace.
        let args = args.clone();
        let answer = net::spawn_in_own_netns(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run(&args, Namespace::Own))
        })?;
        return answer
            .await
            .map_err(|_| anyhow!("the namespace thread ended without an answer"))?;
    }
    let dir = run_dir(args)?;
    let run_as = match scenario.needs {
        Needs::Netns => RunAs::NodeUids,
        _ => RunAs::Harness,
    };
    let clocks = match scenario.needs {
        Needs::Faketime => {
            let library = clock::library().map_err(|why| anyhow!(why))?;
            Some(Clocks::new(library, &dir))
        }
        _ => None,
    };
    let layout = Layout {
        nodes: args.nodes,
        octet: u8::try_from(std::process::id() % 250 + 1).unwrap_or(1),
        run_as,
        clocks,
    };
    let tmpfs = (scenario.needs == Needs::Tmpfs)
        .then(|| cluster::data_dir(&dir, scenario::disk_victim(args.nodes, args.seed)));
    // Mounted before the nodes are laid out: the node id their
    // certificates name is written into the data dir then, and a tmpfs
    // mounted over it afterwards would hide it (the node would make a new
    // id and refuse its certificate).
    if let Some(dir) = &tmpfs {
        net::mount_tmpfs(dir, 192)?;
    }
    let result = match Nodes::new(&args.hypha_bin, &dir, layout) {
        Ok(nodes) => {
            let nodes = Arc::new(nodes);
            let result = drive(args, &scenario, &nodes, &dir, namespace).await;
            nodes.stop_all();
            result
        }
        Err(e) => Err(e),
    };
    if let Some(dir) = &tmpfs {
        net::unmount(dir);
    }
    let report = result?;
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    if report.passed && !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(RunResult::Ran(Box::new(report), dir))
}

fn unavailable(scenario: &Scenario) -> Option<String> {
    match scenario.needs {
        Needs::Processes => None,
        Needs::Tmpfs => net::tmpfs_unavailable(),
        Needs::Faketime => clock::library().err(),
        Needs::Netns => net::netns_unavailable(),
    }
}

fn run_dir(args: &RunArgs) -> anyhow::Result<PathBuf> {
    let dir = args.out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "hypha-chaos-{}-{}-{}",
            args.scenario,
            args.seed,
            std::process::id()
        ))
    });
    if dir.exists() {
        std::fs::remove_dir_all(&dir).context("clearing the run directory")?;
    }
    std::fs::create_dir_all(&dir).context("creating the run directory")?;
    Ok(dir)
}

/// Everything between the nodes' start and the report.
async fn drive(
    args: &RunArgs,
    scenario: &Scenario,
    nodes: &Arc<Nodes>,
    dir: &Path,
    namespace: Namespace,
) -> anyhow::Result<Report> {
    // Before the nodes start, so every link between them is stamped with
    // the node that opened it (crate::net).
    let partitions = match namespace {
        Namespace::Own if scenario.needs == Needs::Netns => Some(Partitions::new(nodes.addrs())?),
        _ => None,
    };
    for node in 0..nodes.len() {
        nodes.start(node).await?;
    }
    let urls: Vec<String> = (0..nodes.len()).map(|i| nodes.url(i)).collect();
    wait_membership(&urls, Duration::from_secs(60))
        .await
        .context("the cluster did not form")?;
    let history = Arc::new(History::new());
    let shared = Arc::new(Shared {
        history: history.clone(),
        urls: urls.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        next_id: AtomicU64::new(0),
        seed: args.seed,
    });
    let clients = start_clients(&shared, args.clients, scenario);
    tokio::time::sleep(Duration::from_secs(args.warmup_s)).await;
    let window_start_ms = history.now_ms();
    let warmup_ok_per_s = ok_count(&history.ops(), window_start_ms) as f64 / args.warmup_s as f64;
    let steps = scenario::schedule(scenario, args.nodes, args.duration_s * 1000, args.seed);
    let nemesis = Nemesis {
        nodes: nodes.clone(),
        history: history.clone(),
        partitions,
    };
    nemesis.run(&steps, window_start_ms).await;
    let window_end_ms = window_start_ms + args.duration_s * 1000;
    let now = history.now_ms();
    if window_end_ms > now {
        tokio::time::sleep(Duration::from_millis(window_end_ms - now)).await;
    }
    heal(&nemesis, nodes).await?;
    let healed = Instant::now();
    shared.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await??;
    }
    let ops = history.ops();
    history.save(&dir.join("history.jsonl"))?;
    let mut violations = Vec::new();
    let membership = wait_membership(&urls, Duration::from_secs(90)).await.ok();
    let membership_converged_s = membership.map(|_| healed.elapsed().as_secs_f64());
    if membership.is_none() {
        violations.push(violation(
            "membership_diverged",
            "cluster",
            "not all Up in 90 s",
        ));
    }
    let replicas_converged_s = wait_replicas(&urls, Duration::from_secs(120))
        .await
        .map(|_| healed.elapsed().as_secs_f64())
        .map_err(|e| violations.push(violation("replicas_diverged", "cluster", &e)))
        .ok();
    let finals = final_reads(&urls, &ops).await?;
    violations.extend(check::check_files(&ops, &finals));
    let (states, jobs_done_s) = job_states(&urls, &ops, healed, Duration::from_secs(120)).await?;
    violations.extend(check::check_jobs(&ops, &states));
    for death in nodes.deaths() {
        violations.push(violation("node_died", "cluster", &death));
    }
    let mut invalid = Vec::new();
    if warmup_ok_per_s < args.min_rate {
        invalid.push(format!(
            "the warm-up reached {warmup_ok_per_s:.1} ok ops/s, below {}",
            args.min_rate
        ));
    }
    if let Err(e) = last_op(&shared).await {
        invalid.push(format!("the operation after heal failed: {e}"));
    }
    let faults = history.faults();
    if !steps.is_empty() && faults.iter().all(|f| f.result != "ok") {
        invalid.push("no fault could be applied".into());
    }
    let disk_full_refusals = match scenario.needs {
        Needs::Tmpfs => {
            let victim = scenario::disk_victim(args.nodes, args.seed);
            let refused = disk_full_refusals(&nodes.url(victim)).await;
            if refused == 0 {
                invalid.push(format!(
                    "n{victim} refused no write for a full disk: the fault did not bite"
                ));
            }
            Some(refused)
        }
        _ => None,
    };
    let writes = report::write_cost(
        &ops,
        (window_start_ms, window_end_ms),
        &crate::history::fault_spans(&faults, window_end_ms),
    );
    let acknowledged_lost = check::lost_count(&violations);
    let passed = violations.is_empty() && invalid.is_empty();
    Ok(Report {
        scenario: scenario.name.to_owned(),
        seed: args.seed,
        nodes: args.nodes,
        duration_s: args.duration_s,
        kinds: report::kinds(&ops),
        warmup_ok_per_s,
        writes,
        faults,
        acknowledged_lost,
        membership_converged_s,
        replicas_converged_s,
        jobs_done_s,
        disk_full_refusals,
        violations,
        invalid,
        passed,
        replay: replay_command(args),
    })
}

fn start_clients(
    shared: &Arc<Shared>,
    clients: u32,
    scenario: &Scenario,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let mut handles: Vec<_> = (0..clients)
        .map(|c| tokio::spawn(workload::file_client(shared.clone(), c)))
        .collect();
    let submitters = match scenario.jobs {
        scenario::JobLoad::Light => 1,
        scenario::JobLoad::Heavy => 3,
    };
    for j in 0..submitters {
        handles.push(tokio::spawn(workload::job_client(
            shared.clone(),
            1000 + j,
            scenario.jobs,
        )));
    }
    handles
}

fn ok_count(ops: &[Op], before_ms: u64) -> usize {
    ops.iter()
        .filter(|o| o.outcome == Outcome::Ok && o.complete_ms <= before_ms)
        .count()
}

/// Close whatever the schedule left open (it closes everything itself;
/// this is the safety net).
async fn heal(nemesis: &Nemesis, nodes: &Nodes) -> anyhow::Result<()> {
    if let Some(p) = &nemesis.partitions {
        p.heal()?;
    }
    for node in 0..nodes.len() {
        let _ = std::fs::remove_file(nodes.data_dir(node).join(crate::nemesis::FILLER));
        if let Some(clocks) = nodes.clocks() {
            clocks.skew(node, 0)?;
        }
    }
    nodes.heal_all().await
}

/// The command that replays this run.
pub fn replay_command(args: &RunArgs) -> String {
    format!(
        "hypha-chaos run --scenario {} --nodes {} --duration {} --seed {} --clients {} --warmup {} --hypha-bin {}",
        args.scenario,
        args.nodes,
        args.duration_s,
        args.seed,
        args.clients,
        args.warmup_s,
        args.hypha_bin.display()
    )
}

pub(crate) async fn get_json(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    let res = http.get(url).bearer_auth(ADMIN_TOKEN).send().await.ok()?;
    if !res.status().is_success() {
        return None;
    }
    res.json().await.ok()
}

/// Poll until every node sees every member Up.
async fn wait_membership(urls: &[String], limit: Duration) -> anyhow::Result<()> {
    let http = workload::http()?;
    let http = &http;
    let all_up = move || async move {
        for url in urls {
            if up_count(http, url, ADMIN_TOKEN).await != urls.len() {
                return None;
            }
        }
        Some(())
    };
    poll(limit, Duration::from_millis(200), all_up)
        .await
        .map_err(|_| anyhow!("members not all Up in {limit:?}"))
}

/// Poll until every partition has its R replicas, each holding the same
/// root and replica set.
async fn wait_replicas(urls: &[String], limit: Duration) -> Result<(), String> {
    let http = workload::http().map_err(|e| e.to_string())?;
    // Why the last check said no, for the violation.
    let why = std::sync::Mutex::new(String::new());
    let (http, why_ref) = (&http, &why);
    let converged = move || async move {
        match replicas_converged(http, urls).await {
            Ok(()) => Some(()),
            Err(not_yet) => {
                if let Ok(mut why) = why_ref.lock() {
                    *why = not_yet;
                }
                None
            }
        }
    };
    poll(limit, Duration::from_millis(500), converged)
        .await
        .map_err(|_| {
            let why = why.lock().map(|w| w.clone()).unwrap_or_default();
            format!("not converged in {limit:?}: {why}")
        })
}

async fn replicas_converged(http: &reqwest::Client, urls: &[String]) -> Result<(), String> {
    type View = (String, Vec<String>);
    let mut by_partition: BTreeMap<u64, Vec<View>> = BTreeMap::new();
    for (i, url) in urls.iter().enumerate() {
        let doc = get_json(http, &format!("{url}/v1/dht/partitions"))
            .await
            .ok_or_else(|| format!("n{i}: no partitions answer"))?;
        for v in doc["partitions"].as_array().into_iter().flatten() {
            let p = v["partition"].as_u64().unwrap_or(u64::MAX);
            if v["role"] != "replica" {
                return Err(format!("n{i} still hands off partition {p}"));
            }
            let mut replicas: Vec<String> = v["replicas"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["node_id"].as_str().map(str::to_owned))
                .collect();
            replicas.sort();
            let root = v["root"].as_str().unwrap_or_default().to_owned();
            by_partition.entry(p).or_default().push((root, replicas));
        }
    }
    let want = REPLICAS.min(urls.len());
    for (p, views) in &by_partition {
        if views.len() != want {
            return Err(format!("partition {p}: {} replicas hold it", views.len()));
        }
        if views.iter().any(|v| v != &views[0]) {
            return Err(format!("partition {p}: roots or replica sets differ"));
        }
    }
    Ok(())
}

/// A quorum read of every key the history touched, retried (≤ 30 s)
/// while the answer is neither the content nor 404.
async fn final_reads(urls: &[String], ops: &[Op]) -> anyhow::Result<BTreeMap<String, FinalRead>> {
    let http = workload::http()?;
    let keys: BTreeSet<&str> = ops
        .iter()
        .filter(|o| o.kind != OpKind::Submit)
        .map(|o| o.key.as_str())
        .collect();
    let mut out = BTreeMap::new();
    for (i, key) in keys.into_iter().enumerate() {
        let url = format!("{}/v1/files/{key}?consistency=quorum", urls[i % urls.len()]);
        out.insert(key.to_owned(), final_read(&http, &url).await);
    }
    Ok(out)
}

async fn final_read(http: &reqwest::Client, url: &str) -> FinalRead {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = match http.get(url).bearer_auth(ADMIN_TOKEN).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => return FinalRead::Absent,
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(b) => return FinalRead::Value(workload::hash(&b)),
                Err(e) => e.to_string(),
            },
            Ok(r) => r.status().to_string(),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return FinalRead::Error(last);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Poll every acknowledged job until done or `limit`; the states seen
/// last and when the last one was done (since heal).
async fn job_states(
    urls: &[String],
    ops: &[Op],
    healed: Instant,
    limit: Duration,
) -> anyhow::Result<(BTreeMap<String, String>, Option<f64>)> {
    let http = workload::http()?;
    let ids: Vec<&str> = ops
        .iter()
        .filter(|o| o.kind == OpKind::Submit && o.outcome == Outcome::Ok)
        .map(|o| o.detail.as_str())
        .collect();
    let mut states: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + limit;
    loop {
        for (i, id) in ids.iter().enumerate() {
            if states.get(*id).is_some_and(|s| s == "done") {
                continue;
            }
            let url = format!("{}/v1/jobs/{id}", urls[i % urls.len()]);
            let state = get_json(&http, &url)
                .await
                .and_then(|d| d["state"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "unreadable".to_owned());
            states.insert((*id).to_owned(), state);
        }
        if states.values().all(|s| s == "done") {
            return Ok((states, Some(healed.elapsed().as_secs_f64())));
        }
        if Instant::now() >= deadline {
            return Ok((states, None));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How many writes the node's store refused for a full disk (its
/// `hypha_store_write_errors_total{reason="disk_full"}`; 0 if unreadable).
async fn disk_full_refusals(url: &str) -> u64 {
    let Ok(http) = workload::http() else { return 0 };
    let text = match http.get(format!("{url}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0,
    };
    text.lines()
        .filter(|l| l.starts_with("hypha_store_write_errors_total{") && l.contains("disk_full"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// After heal, a write and its read-back must succeed.
async fn last_op(shared: &Shared) -> anyhow::Result<()> {
    let http = workload::http()?;
    let body = format!("after heal, seed {}", shared.seed).into_bytes();
    let want = workload::hash(&body);
    let key = "chaos/after-heal".to_owned();
    let wrote = workload::write(shared, &http, u32::MAX, 0, key.clone(), body).await;
    if wrote != Outcome::Ok {
        bail!("write: {wrote:?}");
    }
    let (read, got) = workload::read(shared, &http, u32::MAX, shared.urls.len() - 1, key).await;
    if read != Outcome::Ok || got.as_deref() != Some(want.as_str()) {
        bail!("read back: {read:?} {got:?}");
    }
    Ok(())
}
