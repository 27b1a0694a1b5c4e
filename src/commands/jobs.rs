//! `hypha jobs submit | status | ls | cancel | chain | map` and `hypha
//! queues`: clients of a node's `/v1/jobs` and `/v1/queues` API. `--json`
//! prints the API's own JSON answer.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::files::{print_json, Api, Output};
use crate::cli::{ApiArgs, JobArgs, JobsCommand, JobsLsArgs, MapArgs, SubmitArgs};

/// How often `--wait` asks whether the job finished.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// Run one `hypha jobs` subcommand.
pub async fn run(cmd: JobsCommand) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::Submit(args) => submit(args).await,
        JobsCommand::Status(args) => status(args).await,
        JobsCommand::Ls(args) => ls(args).await,
        JobsCommand::Cancel(args) => cancel(args).await,
        JobsCommand::Chain(args) => chain(args).await,
        JobsCommand::Map(args) => map(args).await,
    }
}

fn parse_args(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    raw.iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("argument {a:?} is not key=value"))
        })
        .collect()
}

/// `--then "KIND key=value …"` as the API's steps.
fn parse_steps(raw: &[String]) -> anyhow::Result<Vec<Value>> {
    raw.iter()
        .map(|step| {
            let mut words = step.split_whitespace();
            let kind = words
                .next()
                .with_context(|| format!("--then {step:?} names no kind"))?;
            let args: Vec<String> = words.map(str::to_owned).collect();
            Ok(json!({ "kind": kind, "args": parse_args(&args)? }))
        })
        .collect()
}

async fn get_json(api: &Api, path: &str) -> anyhow::Result<Value> {
    Ok(api
        .send(api.request(reqwest::Method::GET, path))
        .await?
        .json()
        .await?)
}

async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let mut body = json!({
        "queue": args.queue,
        "kind": args.kind,
        "args": parse_args(&args.args)?,
        "priority": args.priority,
        "then": parse_steps(&args.then)?,
    });
    let fields = [
        ("payload", args.payload.map(Value::from)),
        ("file", args.file.map(Value::from)),
        ("idempotency_key", args.key.map(Value::from)),
        ("max_attempts", args.max_attempts.map(Value::from)),
        ("timeout_ms", args.timeout_ms.map(Value::from)),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            body[k] = v;
        }
    }
    let job: Value = api
        .send(api.request(reqwest::Method::POST, "/v1/jobs").json(&body))
        .await?
        .json()
        .await?;
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    if !args.wait {
        return show(&api, &job, Detail::IdOnly);
    }
    if !args.then.is_empty() {
        return wait_chain(&api, &id).await;
    }
    loop {
        let doc = get_json(&api, &format!("/v1/jobs/{id}")).await?;
        if matches!(
            doc["state"].as_str(),
            Some("done" | "dead_letter" | "cancelled")
        ) {
            return show(&api, &doc, Detail::Full);
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Detail {
    IdOnly,
    Full,
}

fn show(api: &Api, job: &Value, detail: Detail) -> anyhow::Result<()> {
    if api.output == Output::Json {
        return print_json(job);
    }
    if detail == Detail::IdOnly {
        println!("{}", job["id"].as_str().unwrap_or_default());
        return Ok(());
    }
    println!(
        "{}  queue {}  kind {}  {}  attempts {}/{}",
        job["id"].as_str().unwrap_or_default(),
        job["queue"].as_str().unwrap_or_default(),
        job["kind"].as_str().unwrap_or_default(),
        job["state"].as_str().unwrap_or_default(),
        job["attempts"],
        job["max_attempts"],
    );
    for a in job["history"].as_array().into_iter().flatten() {
        println!(
            "  attempt {} on {}: {}",
            a["number"],
            a["worker"].as_str().unwrap_or("?"),
            a["end"]
        );
    }
    if let Some(e) = job["error"].as_str() {
        println!("  error: {e}");
    }
    if let Some(r) = job["result"].as_str() {
        println!("{r}");
    }
    if job["state"] == "dead_letter" {
        bail!("job dead-lettered");
    }
    Ok(())
}

async fn chain(args: JobArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let doc = get_json(&api, &format!("/v1/jobs/{}/chain", args.id)).await?;
    show_chain(&api, &doc)
}

/// Poll a chain until it is done, failed or cancelled, then show it.
async fn wait_chain(api: &Api, id: &str) -> anyhow::Result<()> {
    loop {
        let doc = get_json(api, &format!("/v1/jobs/{id}/chain")).await?;
        if doc["state"] != "running" {
            return show_chain(api, &doc);
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

fn show_chain(api: &Api, doc: &Value) -> anyhow::Result<()> {
    if api.output == Output::Json {
        print_json(doc)?;
    } else {
        println!("chain {}", doc["state"].as_str().unwrap_or_default());
        for s in doc["steps"].as_array().into_iter().flatten() {
            println!(
                "  step {} {:<10} {:<12} on {}  {}",
                s["index"],
                s["kind"].as_str().unwrap_or_default(),
                s["state"].as_str().unwrap_or("not started"),
                s["worker"].as_str().unwrap_or("-"),
                s["id"].as_str().unwrap_or_default(),
            );
            if let Some(e) = s["error"].as_str() {
                println!("    error: {e}");
            }
        }
        if let Some(r) = doc["result"].as_str() {
            println!("{r}");
        }
    }
    match doc["state"].as_str() {
        Some("failed") => bail!("the chain stopped at step {}", doc["stopped_at"]),
        Some("cancelled") => bail!("the chain was cancelled at step {}", doc["stopped_at"]),
        _ => Ok(()),
    }
}

async fn status(args: JobArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let job = get_json(&api, &format!("/v1/jobs/{}", args.id)).await?;
    show(&api, &job, Detail::Full)
}

async fn cancel(args: JobArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let path = format!("/v1/jobs/{}", args.id);
    let job: Value = api
        .send(api.request(reqwest::Method::DELETE, &path))
        .await?
        .json()
        .await?;
    show(&api, &job, Detail::Full)
}

async fn ls(args: JobsLsArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let mut query = vec![("limit".to_owned(), args.limit.to_string())];
    if let Some(q) = args.queue {
        query.push(("queue".into(), q));
    }
    if let Some(s) = args.state {
        query.push(("state".into(), s));
    }
    let request = api.request(reqwest::Method::GET, "/v1/jobs").query(&query);
    let doc: Value = api.send(request).await?.json().await?;
    if api.output == Output::Json {
        return print_json(&doc);
    }
    for j in doc["jobs"].as_array().into_iter().flatten() {
        println!(
            "{}  {:<16} {:<10} {:<12} attempts {}",
            j["id"].as_str().unwrap_or_default(),
            j["queue"].as_str().unwrap_or_default(),
            j["kind"].as_str().unwrap_or_default(),
            j["state"].as_str().unwrap_or_default(),
            j["attempts"],
        );
    }
    Ok(())
}

/// `hypha queues`.
pub async fn queues(args: ApiArgs) -> anyhow::Result<()> {
    let api = Api::new(&args)?;
    let doc = get_json(&api, "/v1/queues").await?;
    if api.output == Output::Json {
        return print_json(&doc);
    }
    println!(
        "{:<24} {:>8} {:>10} {:>12}  owner",
        "QUEUE", "DEPTH", "IN FLIGHT", "DEAD LETTERS"
    );
    for q in doc["queues"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:>8} {:>10} {:>12}  {}",
            q["queue"].as_str().unwrap_or_default(),
            q["depth"],
            q["in_flight"],
            q["dead_letters"],
            q["owner"].as_str().unwrap_or("-"),
        );
    }
    Ok(())
}

/// One input of `hypha jobs map` and what became of it.
struct Mapped {
    input: String,
    job: Value,
    existing: bool,
}

/// A line of stderr, when it is a terminal.
fn progress_note(what: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!("{what}");
    }
}

/// Progress on one line of stderr, when it is a terminal.
fn progress(what: &str, done: usize, total: usize) {
    use std::io::{IsTerminal, Write};
    if std::io::stderr().is_terminal() {
        eprint!("\r{what} {done}/{total}");
        if done == total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
}

async fn map(args: MapArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let mut body = json!({
        "queue": args.queue, "module": args.module, "prefix": args.prefix,
        "args": parse_args(&args.args)?, "then": parse_steps(&args.then)?,
    });
    if let Some(out) = &args.out {
        body["out"] = Value::from(out.as_str());
    }
    if let Some(n) = args.max_attempts {
        body["max_attempts"] = Value::from(n);
    }
    progress_note(&format!(
        "submitting one job per file under {}",
        args.prefix
    ));
    let doc: Value = api
        .send(
            api.request(reqwest::Method::POST, "/v1/jobs/map")
                .json(&body),
        )
        .await?
        .json()
        .await?;
    let mut mapped: Vec<Mapped> = doc["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| Mapped {
            input: row["input"].as_str().unwrap_or_default().to_owned(),
            job: match row["error"].as_str() {
                Some(e) => json!({ "state": "refused", "error": e }),
                None => row["job"].clone(),
            },
            existing: row["existing"].as_bool().unwrap_or(false),
        })
        .collect();
    progress("submitted", mapped.len(), mapped.len());
    if args.wait {
        wait_all(&api, &mut mapped).await?;
    }
    report(&api, &mapped, args.wait)
}

/// Poll every unfinished job until all have finished.
async fn wait_all(api: &Api, mapped: &mut [Mapped]) -> anyhow::Result<()> {
    let finished = |m: &Mapped| {
        matches!(
            m.job["state"].as_str(),
            Some("done" | "dead_letter" | "cancelled" | "refused")
        )
    };
    loop {
        for m in mapped.iter_mut().filter(|m| !finished(m)) {
            let id = m.job["id"].as_str().unwrap_or_default().to_owned();
            m.job = get_json(api, &format!("/v1/jobs/{id}")).await?;
        }
        let done = mapped.iter().filter(|m| finished(m)).count();
        progress("finished", done, mapped.len());
        if done == mapped.len() {
            return Ok(());
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

fn report(api: &Api, mapped: &[Mapped], waited: bool) -> anyhow::Result<()> {
    let failed = mapped
        .iter()
        .filter(|m| matches!(m.job["state"].as_str(), Some("dead_letter" | "refused")))
        .count();
    if api.output == Output::Json {
        let rows: Vec<Value> = mapped
            .iter()
            .map(|m| {
                json!({
                    "input": m.input, "id": m.job["id"], "existing": m.existing,
                    "state": m.job["state"], "result": m.job["result"], "error": m.job["error"],
                })
            })
            .collect();
        print_json(&json!({ "jobs": rows, "failed": failed }))?;
    } else {
        for m in mapped {
            let outcome = match (waited, m.job["error"].as_str()) {
                (true, Some(e)) => e.to_owned(),
                (true, None) => m.job["result"]
                    .as_str()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                (false, _) if m.existing => "already submitted".to_owned(),
                (false, _) => "submitted".to_owned(),
            };
            let state = m.job["state"].as_str().unwrap_or_default();
            println!("{}  {state}  {outcome}", m.input);
        }
    }
    if failed > 0 {
        bail!("{failed} of {} inputs failed", mapped.len());
    }
    Ok(())
}
