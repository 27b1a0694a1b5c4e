//! Talking to a node's admin API from tests: a client, bearer-token
//! requests, the node documents as JSON and Prometheus samples summed.

use std::time::Duration;

use crate::ADMIN_TOKEN;

/// A client with a 10 s timeout, for small requests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A client for one node's admin API.
pub struct Api {
    /// The client requests go through.
    pub http: reqwest::Client,
    /// `http://host:port` of the node.
    pub base: String,
}

impl Api {
    /// A client for the node at `base`.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            http: client(),
            base: base.into(),
        }
    }

    /// For file transfers: large bodies in a debug build take longer
    /// than the default client timeout.
    pub fn for_files(base: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            base: base.into(),
        }
    }

    /// The in-process node's API.
    pub fn of(node: &hypha::node::RunningNode) -> Self {
        Self::new(format!("http://{}", node.http_addr))
    }

    /// Send `method path` with an optional bearer token and body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.body(body).send().await.unwrap()
    }

    /// GET `path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, token, Vec::new())
            .await
    }

    /// POST `path` with no body.
    pub async fn post(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, token, Vec::new())
            .await
    }

    /// PUT `body` at `path`.
    pub async fn put(&self, path: &str, token: Option<&str>, body: &[u8]) -> reqwest::Response {
        self.send(reqwest::Method::PUT, path, token, body.to_vec())
            .await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, path, token, Vec::new())
            .await
    }

    /// GET `path` as JSON.
    pub async fn json(&self, path: &str, token: Option<&str>) -> serde_json::Value {
        self.get(path, token).await.json().await.unwrap()
    }

    /// GET `path` without a token, as text.
    pub async fn text(&self, path: &str) -> String {
        self.get(path, None).await.text().await.unwrap()
    }
}

/// Run one async block to completion from a synchronous test.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// GET `path` on a node's admin API with the admin token, as JSON.
pub fn get_json(url: &str, path: &str) -> Option<serde_json::Value> {
    block_on(async {
        let res = Api::new(url)
            .send(reqwest::Method::GET, path, Some(ADMIN_TOKEN), Vec::new())
            .await;
        if !res.status().is_success() {
            return None;
        }
        res.json::<serde_json::Value>().await.ok()
    })
}

/// How many members a members document (`GET /v1/cluster/members`) has Up.
pub fn up_in(members: &serde_json::Value) -> usize {
    members["members"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["state"] == "up").count())
}

/// How many members the node at `url` sees Up, asked with `token`
/// through `http`; 0 when it does not answer.
pub async fn up_count(http: &reqwest::Client, url: &str, token: &str) -> usize {
    let res = http
        .get(format!("{url}/v1/cluster/members"))
        .bearer_auth(token)
        .send()
        .await;
    match res {
        Ok(res) if res.status().is_success() => res
            .json::<serde_json::Value>()
            .await
            .map_or(0, |d| up_in(&d)),
        _ => 0,
    }
}

/// Sum of the Prometheus samples whose line starts with `name` (a metric
/// name, optionally with a label selector), on the node at `url`.
pub fn metric(url: &str, name: &str) -> f64 {
    metric_of(&reqwest::Client::new(), url, name)
}

/// [`metric`] through `client` (one that trusts an HTTPS node's CA, say).
pub fn metric_of(client: &reqwest::Client, url: &str, name: &str) -> f64 {
    let text = block_on(metrics_text(client, url));
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0
}

/// The node's whole `/metrics` page.
pub async fn metrics_text(client: &reqwest::Client, url: &str) -> String {
    client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Poll (≤ 30 s) until the node at `url` places files on at least
/// `owners` live members.
pub fn wait_for_owners(url: &str, owners: usize) {
    let placed = || (metric(url, "hypha_dht_owners") >= owners as f64).then_some(());
    if crate::poll::poll_blocking(Duration::from_secs(30), Duration::from_millis(20), placed)
        .is_err()
    {
        panic!("placement never reached {owners} owners");
    }
}
