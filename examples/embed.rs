//! A program that runs a Hypha node as a library: it adds its own actor
//! to the node's supervision tree and its own job kind, joins a cluster
//! started by `hypha cluster up`, runs one job of its kind there, and
//! leaves.
//!
//! ```sh
//! cargo run --release -- cluster up          # terminal 1: ./hypha-cluster
//! cargo run --release --example embed        # terminal 2
//! ```
//!
//! Flags: `--cluster-dir DIR` (default `hypha-cluster`: the cookie, the
//! admin token and the cluster CA are read there, and this node's data
//! and certificate are kept in `DIR/embedded`), `--seed HOST:PORT` (a
//! node's gossip address; default `127.0.0.1:7072`, node-0 of `cluster up`)
//! and `--cluster-id ID` (default `hypha`).
//!
//! The job kind `shout` upper-cases its payload and numbers it by asking
//! the `tally` actor, which the node supervises under `node/app`: kill it
//! (`POST /v1/chaos/actors/node/app/tally/kill`) and it is restarted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use async_trait::async_trait;
use futures::TryStreamExt;
use hypha::cli::NodeArgs;
use hypha::config::NodeConfig;
use hypha::node::{self, Extensions, RunningNode};
use hypha::secrets;
use hypha_cluster::peers::tls;
use hypha_core::actor_name;
use hypha_supervisors::ChildSpec;
use hypha_work::handler::{JobError, JobHandler, JobInput};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Value};

/// The label this node carries and the job's constraint asks for: only
/// this node knows the `shout` kind.
const LABEL: (&str, &str) = ("embedded", "yes");
const NODE_NAME: &str = "embedded";
/// How long the example waits for the cluster, and for its job.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Counts the jobs shouted on this node (restarts from 0: it is an
/// example of a supervised actor, not of durable state).
struct Tally;

enum TallyMessage {
    /// One more; answers the new count.
    Add(RpcReplyPort<u64>),
}

impl ractor::Message for TallyMessage {}

impl Actor for Tally {
    type Msg = TallyMessage;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<Self::Msg>, (): ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        message: Self::Msg,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TallyMessage::Add(reply) => {
                *count += 1;
                let _ = reply.send(*count);
            }
        }
        Ok(())
    }
}

/// The `shout` job kind.
struct Shout {
    tally: String,
}

#[async_trait]
impl JobHandler for Shout {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, JobError> {
        let chunks: Vec<Vec<u8>> = input.stream().await?.try_collect().await?;
        let text = String::from_utf8(chunks.concat())
            .map_err(|_| JobError::BadInput("the payload is not UTF-8".into()))?;
        let tally: ActorRef<TallyMessage> = ractor::registry::where_is(self.tally.clone())
            .ok_or_else(|| JobError::Failed("the tally actor is restarting".into()))?
            .into();
        let n = ractor::call_t!(tally, TallyMessage::Add, 1_000)
            .map_err(|e| JobError::Failed(format!("tally: {e}")))?;
        Ok(format!("{} (shout #{n})", text.to_uppercase()).into_bytes())
    }
}

struct Flags {
    cluster_dir: PathBuf,
    seed: String,
    cluster_id: String,
}

fn flags() -> anyhow::Result<Flags> {
    let mut flags = Flags {
        cluster_dir: PathBuf::from("hypha-cluster"),
        seed: "127.0.0.1:7072".into(),
        cluster_id: "hypha".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--cluster-dir" => flags.cluster_dir = value.into(),
            "--seed" => flags.seed = value,
            "--cluster-id" => flags.cluster_id = value,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(flags)
}

/// A certificate for this node from the cluster's CA, naming the node's
/// id (as `hypha cert node --data-dir` makes it), unless it has one.
fn certificate(cluster_dir: &Path, tls_dir: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let ca_dir = cluster_dir.join("tls-ca");
    if !ca_dir.join(tls::CA_KEY_FILE).exists() {
        bail!(
            "{} holds no cluster CA (start the cluster with `hypha cluster up`)",
            ca_dir.display()
        );
    }
    std::fs::create_dir_all(data_dir)?;
    hypha::commands::cert::ensure_node(&ca_dir, NODE_NAME, tls_dir, data_dir)
}

fn config(flags: &Flags) -> anyhow::Result<NodeConfig> {
    let data_dir = flags.cluster_dir.join(NODE_NAME);
    let tls_dir = data_dir.join("tls");
    certificate(&flags.cluster_dir, &tls_dir, &data_dir)?;
    let loopback = |port: u16| Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let args = NodeArgs {
        data_dir: Some(data_dir),
        node_name: Some(NODE_NAME.into()),
        http_listen: loopback(0),
        cluster_listen: loopback(0),
        gossip_listen: loopback(0),
        bulk_listen: loopback(0),
        seeds: vec![flags.seed.clone()],
        cluster_id: Some(flags.cluster_id.clone()),
        tls_dir: Some(tls_dir),
        cookie_file: Some(flags.cluster_dir.join("cookie")),
        admin_token_file: Some(flags.cluster_dir.join("admin-token")),
        ..NodeArgs::default()
    };
    let mut config = NodeConfig::resolve(&args)?;
    config.labels.insert(LABEL.0.into(), LABEL.1.into());
    Ok(config)
}

/// This node's own admin API, with the cluster's admin token.
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok(response.error_for_status()?.json().await?)
    }

    async fn submit(&self, text: &str) -> anyhow::Result<String> {
        let body = json!({
            "queue": "embedded",
            "kind": "shout",
            "payload": text,
            "constraints": { "labels": { LABEL.0: LABEL.1 } },
        });
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let doc: Value = response.json().await?;
        if !status.is_success() {
            bail!("submit answered {status}: {doc}");
        }
        doc["id"].as_str().map(str::to_owned).context("no job id")
    }
}

/// Poll `check` every 200 ms until it answers, for at most [`WAIT_LIMIT`].
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("gave up after {WAIT_LIMIT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run(node: &RunningNode, token: String) -> anyhow::Result<()> {
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        url: format!("http://{}", node.http_addr),
        token,
    };
    let members = wait_for("every member Up", || async {
        let doc = api.get("/v1/cluster/members").await.ok()?;
        let members = doc["members"].as_array()?;
        let up = members.iter().filter(|m| m["state"] == "up").count();
        (up >= 2 && up == members.len()).then_some(up)
    })
    .await?;
    println!("embed: joined; {members} members Up");
    let tree = api.get("/v1/actors").await?;
    println!(
        "embed: supervised under node/app: {}",
        tree.to_string().contains("node/app/tally")
    );
    let id = api.submit("hello from an embedded node").await?;
    println!("embed: submitted job {id}");
    let job = wait_for("the job to finish", || async {
        let job = api.get(&format!("/v1/jobs/{id}")).await.ok()?;
        matches!(
            job["state"].as_str(),
            Some("done" | "dead_letter" | "cancelled")
        )
        .then_some(job)
    })
    .await?;
    if job["state"] != "done" {
        bail!("the job ended {}: {}", job["state"], job["error"]);
    }
    println!(
        "embed: job {id} done: {}",
        job["result"].as_str().unwrap_or("")
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = flags()?;
    let config = config(&flags)?;
    let secrets = secrets::resolve(&config.secrets, config.mode, &config.cluster.id)?;
    let token = std::fs::read_to_string(flags.cluster_dir.join("admin-token"))?
        .trim()
        .to_owned();
    let tally = actor_name(NODE_NAME, "tally");
    let tally_name = tally.clone();
    let extensions = Extensions::new()
        .job_kind(
            "shout",
            Shout {
                tally: tally.clone(),
            },
        )
        .child(ChildSpec::actor("tally", move |_ctx| {
            (Some(tally_name.clone()), Tally, ())
        }));
    let node = node::start_with(&config, &secrets, extensions).await?;
    println!("embed: node {} up at http://{}", node.name, node.http_addr);
    let outcome = run(&node, token).await;
    node.leave().await;
    node.shutdown().await;
    outcome
}
