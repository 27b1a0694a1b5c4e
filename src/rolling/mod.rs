//! Rolling restart (`hypha cluster restart --rolling`, `POST
//! /v1/cluster/restart`): one node at a time, each asked to leave
//! gracefully (hand-off included) and start again in place
//! (`POST /v1/node/restart`), the next only once the restarted node is
//! back — a newer generation, Up — and every node is caught up on every
//! partition it replicates; stops and reports when the cluster does not
//! get healthy within a step's bound. The decisions are [`plan`]'s; this
//! module observes the cluster over the admin API and carries the steps
//! out (docs/operations.md, "Rolling restart").

pub mod plan;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use plan::{Member, Observation, Rolling, Step};

/// How often the cluster is observed while a step waits.
const POLL_MS: u64 = 500;

/// What a rolling restart reports, one event per step (NDJSON on the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The plan: nodes in the order they will restart.
    Plan {
        /// Node names.
        order: Vec<String>,
    },
    /// A node was asked to restart.
    Restarting {
        /// Its name.
        node: String,
        /// The generation stopping.
        generation: u64,
    },
    /// A restarted node is back and the cluster healthy.
    Back {
        /// Its name.
        node: String,
        /// Its new generation.
        generation: u64,
        /// From the request to healthy again.
        took_ms: u64,
    },
    /// Every node restarted.
    Done {
        /// Nodes restarted.
        restarted: usize,
        /// The whole restart.
        took_ms: u64,
    },
    /// Stopped: the reason, with what was seen.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Why a rolling restart could not run.
#[derive(Debug, Error)]
pub enum RollingError {
    /// No node answered with its membership view.
    #[error("no node answered /v1/cluster/members (tried {0})")]
    NoView(String),
}

/// The admin API of the cluster, as a rolling restart reaches it.
#[derive(Clone)]
pub struct ClusterApi {
    client: reqwest::Client,
    token: Option<String>,
    scheme: &'static str,
    /// Admin addresses (`host:port`) to ask for the view, first first.
    seeds: Vec<String>,
}

impl ClusterApi {
    /// Through the node at `url` (`http://` or `https://`), with `token`
    /// (admin role); `client` trusts the admin CA if HTTPS.
    pub fn new(client: reqwest::Client, url: &str, token: Option<String>) -> Self {
        let (scheme, rest) = match url.split_once("://") {
            Some(("https", rest)) => ("https", rest),
            Some((_, rest)) => ("http", rest),
            None => ("http", url),
        };
        Self {
            client,
            token,
            scheme,
            seeds: vec![rest.trim_end_matches('/').to_owned()],
        }
    }

    fn request(&self, method: reqwest::Method, addr: &str, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(method, format!("{}://{addr}{path}", self.scheme));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn json(&self, addr: &str, path: &str) -> Option<Value> {
        let res = self
            .request(reqwest::Method::GET, addr, path)
            .send()
            .await
            .ok()?;
        if !res.status().is_success() {
            return None;
        }
        res.json().await.ok()
    }

    /// The view of the first seed that answers, and every member's
    /// admin address (seeds for the next time).
    async fn view(&mut self) -> Option<(BTreeMap<String, Member>, BTreeMap<String, String>)> {
        for seed in self.seeds.clone() {
            let Some(doc) = self.json(&seed, "/v1/cluster/members").await else {
                continue;
            };
            let (members, addrs) = members_of(&doc);
            let mut seeds: Vec<String> = addrs.values().cloned().collect();
            seeds.retain(|s| *s != seed);
            seeds.insert(0, seed);
            self.seeds = seeds;
            return Some((members, addrs));
        }
        None
    }

    /// Partitions the node at `addr` replicates and has not caught up on.
    async fn lagging(&self, addr: &str) -> Option<usize> {
        let doc = self.json(addr, "/v1/dht/partitions").await?;
        let all = doc["partitions"].as_array()?;
        Some(
            all.iter()
                .filter(|p| p["role"] == "replica" && p["caught_up"] != true)
                .count(),
        )
    }

    /// What the cluster looks like now.
    pub async fn observe(&mut self) -> Option<(Observation, BTreeMap<String, String>)> {
        let (members, addrs) = self.view().await?;
        let mut lagging = BTreeMap::new();
        for (id, m) in &members {
            let lag = match (m.up, addrs.get(id)) {
                (true, Some(addr)) => self.lagging(addr).await,
                _ => None,
            };
            lagging.insert(id.clone(), lag);
        }
        Some((Observation { members, lagging }, addrs))
    }

    /// Ask the node at `addr` to restart; whether it accepted.
    async fn restart(&self, addr: &str) -> Result<(), String> {
        let res = self
            .request(reqwest::Method::POST, addr, "/v1/node/restart")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match res.status().as_u16() {
            202 => Ok(()),
            status => Err(format!(
                "{addr} answered {status}: {}",
                res.text().await.unwrap_or_default()
            )),
        }
    }
}

/// Members of a `/v1/cluster/members` document, newest generation per
/// id, and their admin addresses.
fn members_of(doc: &Value) -> (BTreeMap<String, Member>, BTreeMap<String, String>) {
    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for m in doc["members"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let (Some(id), Some(generation)) = (m["id"].as_str(), m["generation"].as_u64()) else {
            continue;
        };
        if members
            .get(id)
            .is_some_and(|old| old.generation >= generation)
        {
            continue;
        }
        let name = m["name"].as_str().unwrap_or(id).to_owned();
        // A node whose newest generation left is not part of the restart.
        if m["state"] == "left" {
            members.remove(id);
            continue;
        }
        let up = m["state"] == "up";
        if let Some(addr) = m["http_addr"].as_str() {
            addrs.insert(id.to_owned(), addr.to_owned());
        }
        members.insert(
            id.to_owned(),
            Member {
                id: id.to_owned(),
                name,
                generation,
                up,
            },
        );
    }
    (members, addrs)
}

/// A rolling restart being carried out: call [`Runner::step`] until it
/// returns `None`.
pub struct Runner {
    api: ClusterApi,
    plan: Option<Rolling>,
    last: Option<String>,
    step_timeout_ms: u64,
    started: tokio::time::Instant,
    finished: bool,
}

impl Runner {
    /// Restart every node of the cluster `api` reaches, `last` (a node
    /// id: the coordinating node) at the end, each step bounded by
    /// `step_timeout_ms`.
    pub fn new(api: ClusterApi, last: Option<String>, step_timeout_ms: u64) -> Self {
        Self {
            api,
            plan: None,
            last,
            step_timeout_ms,
            started: tokio::time::Instant::now(),
            finished: false,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The next event, after as many observations as it takes; `None`
    /// once done or failed.
    pub async fn step(&mut self) -> Option<Result<Event, RollingError>> {
        if self.finished {
            return None;
        }
        loop {
            let Some((obs, addrs)) = self.api.observe().await else {
                self.finished = true;
                return Some(Err(RollingError::NoView(self.api.seeds.join(", "))));
            };
            let now_ms = self.now_ms();
            let Some(plan) = &mut self.plan else {
                let plan = Rolling::new(&obs, self.last.as_deref(), self.step_timeout_ms, now_ms);
                let order = plan
                    .queue()
                    .map(|id| {
                        obs.members
                            .get(id)
                            .map_or(id, |m| m.name.as_str())
                            .to_owned()
                    })
                    .collect();
                self.plan = Some(plan);
                return Some(Ok(Event::Plan { order }));
            };
            let event = match plan.next(&obs, now_ms) {
                Step::Wait => {
                    tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                    continue;
                }
                Step::Restart(node) => match addrs.get(&node.id) {
                    Some(addr) => match self.api.restart(addr).await {
                        Ok(()) => Event::Restarting {
                            node: node.name,
                            generation: node.generation,
                        },
                        Err(why) => self.fail(format!("{} refused the restart: {why}", node.name)),
                    },
                    None => self.fail(format!("{}: no admin address in the view", node.name)),
                },
                Step::Back { node, took_ms } => Event::Back {
                    node: node.name,
                    generation: node.generation,
                    took_ms,
                },
                Step::Done { restarted } => {
                    self.finished = true;
                    Event::Done {
                        restarted,
                        took_ms: now_ms,
                    }
                }
                Step::Abort(reason) => self.fail(reason),
            };
            return Some(Ok(event));
        }
    }

    fn fail(&mut self, reason: String) -> Event {
        self.finished = true;
        Event::Failed { reason }
    }
}
