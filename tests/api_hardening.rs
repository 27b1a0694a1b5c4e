//! Issue 23, hole 6, against real node processes: what an API client
//! (with a valid token) can reach beyond its data. Each test shows one
//! attack failing; docs/security.md names them.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{spawn_node, Api, ADMIN_TOKEN};
use serde_json::{json, Value};

/// Start one node process (its environment holds the cookie and the
/// admin token, as `cluster up` gives them) with `toml` as configuration.
fn node_with(toml: &str) -> (tempfile::TempDir, common::NodeProcess) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hypha.toml");
    std::fs::write(&config, toml).unwrap();
    let data = dir.path().join("data");
    let node = spawn_node(&data, &["--config", config.to_str().unwrap()]);
    (dir, node)
}

/// Submit a job and poll (≤ 60 s) until it is done or dead-lettered.
async fn run_job(api: &Api, body: Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let res = api
            .http
            .post(format!("{}/v1/jobs", api.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await;
        match res {
            Ok(res) if res.status().is_success() => {
                break res.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            // 503 (or a timeout) while the node settles placement and queues.
            other => assert!(Instant::now() < deadline, "submit: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    loop {
        let job = api.json(&format!("/v1/jobs/{id}"), Some(ADMIN_TOKEN)).await;
        if job["state"] == "done" || job["state"] == "dead_letter" {
            return job;
        }
        assert!(Instant::now() < deadline, "job never finished: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One node holds every replica.
const EXEC_CONFIG: &str = "\
[dht]
replicas = 1
write_quorum = 1
read_quorum = 1
[storage]
min_free_bytes = 0
[work.exec_allow]
env = \"/usr/bin/env\"
[work.exec_allow.echo]
program = \"/bin/echo\"
argv = \"operands\"
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_jobs_get_no_secrets_and_only_the_arguments_allowed() {
    let (_dir, node) = node_with(EXEC_CONFIG);
    let api = Api::new(&node.url);
    let job = |args: Value| json!({"queue": "q", "kind": "exec", "args": args, "max_attempts": 1});
    let env = run_job(&api, job(json!({"command": "env"}))).await;
    assert_eq!(env["state"], "done", "{env}");
    let printed = env["result"].as_str().unwrap();
    assert!(
        !printed.contains("HYPHA_"),
        "exec saw the node's secrets:\n{printed}"
    );
    assert!(printed.contains("PATH="), "{printed}");
    // `env` takes no job arguments: `env sh -c …` would run anything.
    let escape = run_job(
        &api,
        job(json!({"command": "env", "argv": r#"["sh", "-c", "id"]"#})),
    )
    .await;
    assert_eq!(escape["state"], "dead_letter", "{escape}");
    let error = escape["error"].as_str().unwrap();
    assert!(error.contains("argv refused for `env`"), "{error}");
    // `echo` takes operands, not options.
    let ok = run_job(&api, job(json!({"command": "echo", "argv": r#"["hi"]"#}))).await;
    assert_eq!(ok["result"], "hi\n", "{ok}");
    let option = run_job(
        &api,
        job(json!({"command": "echo", "argv": r#"["-e", "x"]"#})),
    )
    .await;
    assert!(
        option["error"].as_str().unwrap().contains("operands only"),
        "{option}"
    );
}

/// A one-node cluster inside this process (every replica on it).
async fn one_node(dir: &std::path::Path) -> hypha::node::RunningNode {
    let mut config = common::config(dir, None);
    config.dht.replicas = 1;
    config.dht.write_quorum = 1;
    config.dht.read_quorum = 1;
    config.storage.min_free_bytes = 0;
    common::start_configured(&config).await
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_own_records_cannot_be_forged_or_dropped_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(dir.path()).await;
    let api = Api::of(&node);
    // The node's own writer still records jobs under .hypha/.
    let job = run_job(&api, json!({"queue": "q", "kind": "echo", "payload": "hi"})).await;
    assert_eq!(job["state"], "done", "{job}");
    let record = format!("/v1/files/.hypha/jobs/{}", job["id"].as_str().unwrap());
    let reserved = (403, "reserved_name".to_owned());
    // Nobody may write or delete them, admins included.
    let forged = api.put(&record, Some(ADMIN_TOKEN), b"forged result").await;
    assert_eq!(error_code(forged).await, reserved);
    let queue = api
        .put("/v1/files/.hypha/queues/q", Some(ADMIN_TOKEN), b"")
        .await;
    assert_eq!(error_code(queue).await, reserved);
    let dropped = api.delete(&record, Some(ADMIN_TOKEN)).await;
    assert_eq!(error_code(dropped).await, reserved);
    let after = api
        .json(
            &format!("/v1/jobs/{}", job["id"].as_str().unwrap()),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(
        (after["state"].clone(), after["result"].clone()),
        (json!("done"), json!("hi"))
    );
    // Only an admin reads them, and listings leave them out otherwise.
    let read = Some(common::READ_TOKEN);
    assert_eq!(error_code(api.get(&record, read).await).await, reserved);
    let stat = record.replace("/v1/files/", "/v1/stat/");
    assert_eq!(error_code(api.get(&stat, read).await).await, reserved);
    let listed = api.get("/v1/files?prefix=.hypha/", read).await;
    assert_eq!(error_code(listed).await, reserved);
    assert_eq!(api.get(&record, Some(ADMIN_TOKEN)).await.status(), 200);
    let admin_list = api
        .json("/v1/files?prefix=.hypha/jobs/", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(
        admin_list["files"].as_array().unwrap().len(),
        1,
        "{admin_list}"
    );
    assert_eq!(
        api.put("/v1/files/mine.txt", Some(ADMIN_TOKEN), b"x")
            .await
            .status(),
        201
    );
    for token in [read, Some(ADMIN_TOKEN)] {
        let all = api.json("/v1/files", token).await;
        let names: Vec<&str> = all["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["mine.txt"], "{all}");
    }
    node.shutdown().await;
}

async fn put_typed(api: &Api, name: &str, content_type: &str, body: &[u8]) {
    let res = api
        .http
        .put(format!("{}/v1/files/{name}", api.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", content_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_files_never_run_on_the_consoles_origin() {
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(dir.path()).await;
    let api = Api::of(&node);
    let page = b"<script>fetch('/v1/files',{headers:{authorization:localStorage.t}})</script>";
    put_typed(&api, "x/evil.html", "text/html", page).await;
    put_typed(
        &api,
        "x/evil.svg",
        "image/svg+xml",
        b"<svg onload=alert(1)/>",
    )
    .await;
    put_typed(&api, "x/notes.txt", "text/plain; charset=utf-8", b"hello").await;
    for name in ["x/evil.html", "x/evil.svg"] {
        let res = api
            .get(&format!("/v1/files/{name}"), Some(ADMIN_TOKEN))
            .await;
        assert_eq!(res.status(), 200);
        let base = name.rsplit('/').next().unwrap();
        assert_eq!(
            header(&res, "content-disposition"),
            format!("attachment; filename=\"{base}\"")
        );
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
        assert!(header(&res, "content-security-policy").starts_with("sandbox; default-src 'none'"));
    }
    let text = api.get("/v1/files/x/notes.txt", Some(ADMIN_TOKEN)).await;
    assert_eq!(
        header(&text, "content-disposition"),
        "",
        "a safe type shows inline"
    );
    assert_eq!(header(&text, "x-content-type-options"), "nosniff");
    assert!(header(&text, "content-security-policy").contains("sandbox"));
    // Every answer, JSON errors and open routes too, says nosniff.
    for path in ["/health", "/metrics", "/v1/files/none", "/no/such/route"] {
        let res = api.get(path, Some(ADMIN_TOKEN)).await;
        assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{path}");
    }
    // The console keeps its own policy: its script from its own origin.
    let console = api.get("/", None).await;
    let csp = header(&console, "content-security-policy");
    assert!(
        csp.contains("default-src 'self'") && !csp.contains("sandbox"),
        "{csp}"
    );
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("base-uri 'none'"),
        "{csp}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_range_positions_are_clamped_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(dir.path()).await;
    let api = Api::of(&node);
    put_typed(&api, "r.bin", "application/octet-stream", &[7u8; 20]).await;
    let get = |range: String| {
        let api = &api;
        async move {
            api.http
                .get(format!("{}/v1/files/r.bin", api.base))
                .bearer_auth(ADMIN_TOKEN)
                .header("range", range)
                .send()
                .await
                .unwrap()
        }
    };
    let max = u64::MAX;
    let clamped = get(format!("bytes=5-{max}")).await;
    assert_eq!(clamped.status(), 206);
    assert_eq!(header(&clamped, "content-range"), "bytes 5-19/20");
    assert_eq!(clamped.bytes().await.unwrap().len(), 15);
    let past = get(format!("bytes={max}-")).await;
    assert_eq!(past.status(), 416);
    assert_eq!(header(&past, "content-range"), "bytes */20");
    let suffix = get("bytes=-99999999999999999999999".into()).await;
    assert_eq!(suffix.status(), 206);
    assert_eq!(header(&suffix, "content-range"), "bytes 0-19/20");
    node.shutdown().await;
}

/// A client whose connections come from `source` (any 127/8 address
/// reaches the node on loopback).
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn whoami_from(node: &str, client: &reqwest::Client, token: &str) -> reqwest::Response {
    client
        .get(format!("{node}/v1/auth/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn throttled_count(base: &str) -> f64 {
    let text = Api::new(base).text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("hypha_http_auth_throttled_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_throttled_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), None);
    config.http.auth_failure_burst = 3;
    config.http.auth_failures_per_min = 1;
    let node = common::start_configured(&config).await;
    let base = format!("http://{}", node.http_addr);
    let (guesser, neighbour, busy) = (
        client_from("127.0.0.2"),
        client_from("127.0.0.3"),
        client_from("127.0.0.4"),
    );
    let throttled_before = throttled_count(&base).await;
    for i in 0..3 {
        let res = whoami_from(&base, &guesser, &format!("guess-{i}")).await;
        assert_eq!(error_code(res).await, (401, "unauthorized".to_owned()));
    }
    // Its allowance spent, the source is refused before any check, on
    // every route that takes a credential.
    let res = whoami_from(&base, &guesser, "guess-3").await;
    assert_eq!(res.status(), 429);
    let retry_after: u64 = header(&res, "retry-after").parse().unwrap();
    assert!((1..=61).contains(&retry_after), "{retry_after}");
    assert_eq!(error_code(res).await.1, "auth_throttled");
    let listed = guesser
        .get(format!("{base}/v1/files"))
        .bearer_auth("guess-4")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 429);
    // Open routes stay open to it; other sources keep working.
    let health = guesser.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        whoami_from(&base, &neighbour, ADMIN_TOKEN).await.status(),
        200
    );
    let wrong = whoami_from(&base, &neighbour, "typo").await;
    assert_eq!(wrong.status(), 401, "one typo is not a throttle");
    // Successful authentications never use up the allowance.
    for _ in 0..50 {
        assert_eq!(whoami_from(&base, &busy, ADMIN_TOKEN).await.status(), 200);
    }
    assert_eq!(whoami_from(&base, &busy, "typo").await.status(), 401);
    let throttled = throttled_count(&base).await - throttled_before;
    assert_eq!(throttled, 2.0);
    node.shutdown().await;
}

/// The status line's code of a raw `GET path` sent with `Host: host`.
async fn status_with_host(addr: std::net::SocketAddr, path: &str, host: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_other_host_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), None);
    config.http.allowed_hosts = vec!["hypha.test".to_owned()];
    let node = common::start_configured(&config).await;
    let addr = node.http_addr;
    let port = addr.port();
    // A rebound name: the page's origin would be the node's.
    for path in [
        "/",
        "/console/app.js",
        "/health",
        "/v1/auth/policy",
        "/nope",
    ] {
        let status = status_with_host(addr, path, &format!("evil.example:{port}")).await;
        assert_eq!(status, 421, "{path}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "hypha.test".to_owned(),
    ] {
        assert_eq!(
            status_with_host(addr, "/health", &host).await,
            200,
            "{host}"
        );
    }
    // What clients (CLI, tests, reqwest) send by default still works.
    let api = Api::of(&node);
    assert_eq!(api.get("/v1/node", Some(ADMIN_TOKEN)).await.status(), 200);
    node.shutdown().await;
}

/// Stop the node, flip the chunks of `name`'s partition that `pick`
/// chooses, and start it again.
fn corrupt_and_restart(
    cluster: &mut common::cluster::Cluster,
    partition: u16,
    pick: impl Fn(&[u8]) -> bool,
) -> usize {
    let mut node = cluster.nodes[0].take().unwrap();
    node.signal("TERM");
    node.wait_exit(Duration::from_secs(30));
    drop(node);
    let flipped = common::corrupt_chunks(&cluster.root.join("n0"), partition, pick);
    cluster.nodes[0] = Some(cluster.spawn(0));
    flipped
}

/// curl's exit code for a GET of `url` (18: "partial file").
fn curl_exit(url: &str) -> Option<i32> {
    let status = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-H"])
        .arg(format!("authorization: Bearer {ADMIN_TOKEN}"))
        .arg(url)
        .status()
        .ok()?;
    status.code()
}

#[test]
fn a_download_that_cannot_be_read_is_never_a_complete_looking_200() {
    let mut cluster = common::cluster::Cluster::start(1, EXEC_CONFIG);
    let name = "unreadable/big.bin";
    let content = common::pseudo_random(4 << 20, 23);
    let path = format!("/v1/files/{name}");
    let stored = common::block_on(async {
        Api::for_files(cluster.url(0))
            .put(&path, Some(ADMIN_TOKEN), &content)
            .await
            .status()
    });
    assert_eq!(stored, 201);
    let stat = common::get_json(&cluster.url(0), &format!("/v1/stat/{name}")).unwrap();
    assert!(stat["chunks"].as_u64().unwrap() >= 3, "{stat}");
    let partition = u16::try_from(stat["partition"].as_u64().unwrap()).unwrap();

    // Every chunk but the first unreadable: the answer starts (200 with
    // the full Content-Length), then the connection closes short of it.
    let flipped = corrupt_and_restart(&mut cluster, partition, |c| !content.starts_with(c));
    assert!(flipped >= 2);
    let url = cluster.url(0);
    let (status, length, body) = common::block_on(async {
        let res = Api::for_files(&url).get(&path, Some(ADMIN_TOKEN)).await;
        (res.status(), res.content_length(), res.bytes().await)
    });
    assert_eq!((status.as_u16(), length), (200, Some(content.len() as u64)));
    assert!(
        body.is_err(),
        "a short body read as complete: {:?}",
        body.map(|b| b.len())
    );
    if let Some(code) = curl_exit(&format!("{url}{path}")) {
        assert_eq!(code, 18, "curl must report a partial transfer");
    }

    // The first chunk unreadable too: 503 before any header.
    corrupt_and_restart(&mut cluster, partition, |c| content.starts_with(c));
    let url = cluster.url(0);
    let (status, code) = common::block_on(async {
        error_code(Api::for_files(&url).get(&path, Some(ADMIN_TOKEN)).await).await
    });
    assert_eq!((status, code.as_str()), (503, "unreadable"));
}
