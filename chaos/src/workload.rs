//! The clients: file writers that each own a set of keys and write,
//! overwrite, read and delete them through random nodes, and job
//! submitters. Every request becomes an [`Op`] in the history with an
//! outcome judged conservatively: only a request that never reached a
//! node, or a 4xx, counts as failed; a timeout, a dropped connection or a
//! 5xx is unknown (it may still take effect).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::cluster::ADMIN_TOKEN;
use crate::history::{History, Op, OpKind, Outcome};
use crate::scenario::JobLoad;

/// Keys each file client owns.
pub const KEYS_PER_CLIENT: usize = 16;

/// What the clients share.
pub struct Shared {
    /// Where operations are recorded.
    pub history: Arc<History>,
    /// Admin URLs of the nodes.
    pub urls: Vec<String>,
    /// Raised to stop every client after its current request.
    pub stop: Arc<AtomicBool>,
    /// Next operation id.
    pub next_id: AtomicU64,
    /// The run's seed (values and choices derive from it).
    pub seed: u64,
}

/// An HTTP client whose timeout turns a hung node into an unknown outcome.
pub fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()?)
}

/// Outcome of a request that got no response.
pub fn error_outcome(e: &reqwest::Error) -> Outcome {
    if e.is_connect() {
        Outcome::Fail
    } else {
        Outcome::Unknown
    }
}

/// Outcome of a response's status.
pub fn status_outcome(status: reqwest::StatusCode) -> Outcome {
    if status.is_success() {
        Outcome::Ok
    } else if status.is_client_error() {
        Outcome::Fail
    } else {
        Outcome::Unknown
    }
}

/// BLAKE3 of `bytes`, hex.
pub fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

struct Pending {
    id: u64,
    client: u32,
    kind: OpKind,
    key: String,
    node: usize,
    invoke_ms: u64,
}

impl Pending {
    fn done(self, shared: &Shared, outcome: Outcome, value: Option<String>, detail: String) {
        shared.history.push(Op {
            id: self.id,
            client: self.client,
            kind: self.kind,
            key: self.key,
            value,
            node: self.node,
            invoke_ms: self.invoke_ms,
            complete_ms: shared.history.now_ms(),
            outcome,
            detail,
        });
    }
}

fn begin(shared: &Shared, client: u32, kind: OpKind, key: String, node: usize) -> Pending {
    Pending {
        id: shared.next_id.fetch_add(1, Ordering::Relaxed),
        client,
        kind,
        key,
        node,
        invoke_ms: shared.history.now_ms(),
    }
}

/// One file client: until stopped, a random operation on one of its keys
/// through a random node, then a short pause.
pub async fn file_client(shared: Arc<Shared>, client: u32) -> anyhow::Result<()> {
    let http = http()?;
    let mut rng = ChaCha8Rng::seed_from_u64(shared.seed ^ ((u64::from(client) + 1) << 32));
    while !shared.stop.load(Ordering::Relaxed) {
        let node = rng.random_range(0..shared.urls.len());
        let key = format!("chaos/c{client}/k{}", rng.random_range(0..KEYS_PER_CLIENT));
        let roll: f64 = rng.random();
        if roll < 0.45 {
            let len = rng.random_range(64..16_384);
            let mut body = vec![0u8; len];
            rng.fill(&mut body[..]);
            write(&shared, &http, client, node, key, body).await;
        } else if roll < 0.8 {
            read(&shared, &http, client, node, key).await;
        } else {
            delete(&shared, &http, client, node, key).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..30))).await;
    }
    Ok(())
}

/// PUT `body` as `key` through `node`.
pub async fn write(
    shared: &Shared,
    http: &reqwest::Client,
    client: u32,
    node: usize,
    key: String,
    body: Vec<u8>,
) -> Outcome {
    let value = Some(hash(&body));
    let url = format!("{}/v1/files/{key}", shared.urls[node]);
    let op = begin(shared, client, OpKind::Write, key, node);
    let res = http
        .put(url)
        .bearer_auth(ADMIN_TOKEN)
        .body(body)
        .send()
        .await;
    let (outcome, detail) = match res {
        Ok(r) if r.status().is_success() => (Outcome::Ok, r.status().to_string()),
        Ok(r) => (status_outcome(r.status()), answer_detail(r).await),
        Err(e) => (error_outcome(&e), e.to_string()),
    };
    op.done(shared, outcome, value, detail);
    outcome
}

/// A refusal as the history keeps it: the status and the API's error
/// code and message (why a 503 was a 503: `no_majority`,
/// `quorum_unavailable`, …), cut to a line.
async fn answer_detail(r: reqwest::Response) -> String {
    let line = hypha::commands::files::api_error(r).await.to_string();
    line.chars().take(240).collect()
}

/// GET `key` through `node`; the content's hash, `None` if absent.
pub async fn read(
    shared: &Shared,
    http: &reqwest::Client,
    client: u32,
    node: usize,
    key: String,
) -> (Outcome, Option<String>) {
    // Quorum: the consistency the stale-read checker holds reads to.
    let url = format!("{}/v1/files/{key}?consistency=quorum", shared.urls[node]);
    let op = begin(shared, client, OpKind::Read, key, node);
    let (outcome, value, detail) = match http.get(url).bearer_auth(ADMIN_TOKEN).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
            (Outcome::Ok, None, "404".to_owned())
        }
        Ok(r) if r.status().is_success() => match r.bytes().await {
            Ok(b) => (Outcome::Ok, Some(hash(&b)), "200".to_owned()),
            Err(e) => (Outcome::Unknown, None, e.to_string()),
        },
        Ok(r) => (status_outcome(r.status()), None, answer_detail(r).await),
        Err(e) => (error_outcome(&e), None, e.to_string()),
    };
    op.done(shared, outcome, value.clone(), detail);
    (outcome, value)
}

async fn delete(shared: &Shared, http: &reqwest::Client, client: u32, node: usize, key: String) {
    let url = format!("{}/v1/files/{key}", shared.urls[node]);
    let op = begin(shared, client, OpKind::Delete, key, node);
    let (outcome, detail) = match http.delete(url).bearer_auth(ADMIN_TOKEN).send().await {
        // Absent already: the state a delete leaves, acknowledged.
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => (Outcome::Ok, "404".to_owned()),
        Ok(r) if r.status().is_success() => (Outcome::Ok, r.status().to_string()),
        Ok(r) => (status_outcome(r.status()), answer_detail(r).await),
        Err(e) => (error_outcome(&e), e.to_string()),
    };
    op.done(shared, outcome, None, detail);
}

/// One job submitter: jobs with idempotency keys unique to the run.
pub async fn job_client(shared: Arc<Shared>, client: u32, load: JobLoad) -> anyhow::Result<()> {
    let http = http()?;
    let mut rng = ChaCha8Rng::seed_from_u64(shared.seed ^ 0x10B5 ^ (u64::from(client) << 40));
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let node = rng.random_range(0..shared.urls.len());
        let key = format!("chaos-{}-{client}-{n}", shared.seed);
        let (kind, args, pause_ms) = match load {
            JobLoad::Light => ("echo", json!({}), 250),
            JobLoad::Heavy => {
                let ms = rng.random_range(200..600).to_string();
                ("sleep", json!({ "ms": ms }), 60)
            }
        };
        let body = json!({
            "queue": format!("chaos-{}", n % 3), "kind": kind, "args": args, "payload": key,
            "idempotency_key": key, "max_attempts": 50, "timeout_ms": 30_000,
        });
        submit(&shared, &http, client, node, key, body).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
    Ok(())
}

async fn submit(
    shared: &Shared,
    http: &reqwest::Client,
    client: u32,
    node: usize,
    key: String,
    body: serde_json::Value,
) {
    let url = format!("{}/v1/jobs", shared.urls[node]);
    let op = begin(shared, client, OpKind::Submit, key, node);
    let res = http
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await;
    let (outcome, detail) = match res {
        Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
            Ok(doc) => match doc["id"].as_str() {
                Some(id) => (Outcome::Ok, id.to_owned()),
                None => (Outcome::Unknown, format!("no id in {doc}")),
            },
            Err(e) => (Outcome::Unknown, e.to_string()),
        },
        Ok(r) => (status_outcome(r.status()), r.status().to_string()),
        Err(e) => (error_outcome(&e), e.to_string()),
    };
    op.done(shared, outcome, None, detail);
}
