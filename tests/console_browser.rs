//! The web console in a real browser: Debian's Chromium, headless,
//! driven through ChromeDriver's WebDriver API from this test. A 3-node
//! cluster of real processes serves the page; the test checks that it
//! loads with no console errors, shows the three members, shows an
//! actor's restart after a chaos kill, draws the node's history as line
//! charts, and draws one partition-map cell per partition coloured by the
//! health the API's answer implies. It saves a screenshot of the whole
//! page (`target/tmp/console.png`; with `HYPHA_UPDATE_SCREENSHOT=1` also
//! `docs/console.png`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::cluster::Cluster;
use common::tools::{ensure, Reaped};
use serde_json::{json, Value};

/// Reads are open, so the page needs no token to show the cluster; the
/// history is sampled every 500 ms so the charts have lines within seconds.
const CONFIG: &str = "[auth]\nopen_reads = true\n\n[telemetry]\nhistory_interval_ms = 500\n";
/// The console's charts (`data-chart` of each SVG).
const CHARTS: &[&str] = &[
    "requests",
    "bytes",
    "latency",
    "restarts",
    "membership",
    "repairs",
    "queue",
];
const DRIVER_PORT: u16 = 27595;
/// The actor the test kills: restarted by its supervisor, harmless.
const VICTIM: &str = "node/work/workers";

/// A WebDriver session (W3C protocol over HTTP, ChromeDriver dialect for
/// the browser log).
struct Browser {
    http: reqwest::Client,
    session: String,
}

impl Browser {
    async fn open(chromium: &str) -> Self {
        let http = common::client();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1440,1000",
        ];
        let profile = tempfile::tempdir().unwrap().keep();
        let mut chrome_args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        chrome_args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": chrome_args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let doc: Value = http
            .post(format!("http://127.0.0.1:{DRIVER_PORT}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = doc["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {doc}"))
            .to_owned();
        Self { http, session }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!(
            "http://127.0.0.1:{DRIVER_PORT}/session/{}{path}",
            self.session
        );
        let mut request = self.http.request(method.clone(), url);
        if method == reqwest::Method::POST {
            request = request.json(&body);
        }
        let doc: Value = request.send().await.unwrap().json().await.unwrap();
        doc["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn eval(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Poll `script` (≤ `limit`) until it returns true.
    async fn wait(&self, what: &str, limit: Duration, script: &str) {
        let deadline = Instant::now() + limit;
        while self.eval(script).await != Value::Bool(true) {
            if Instant::now() >= deadline {
                // What the page says is wrong: shown notices and panel messages.
                let said = self
                    .eval(
                        "return [...document.querySelectorAll('.panel-msg:not([hidden]), #notice:not([hidden])')] \
                           .map((e) => `${e.id}: ${e.textContent}`);",
                    )
                    .await;
                panic!("page: not within {limit:?}: {what}; the page says {said}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Console entries at level SEVERE (errors, failed loads) so far.
    async fn console_errors(&self) -> Vec<Value> {
        let entries = self
            .command(
                reqwest::Method::POST,
                "/se/log",
                json!({ "type": "browser" }),
            )
            .await;
        entries
            .as_array()
            .unwrap_or_else(|| panic!("no browser log: {entries}"))
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .cloned()
            .collect()
    }

    async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    async fn screenshot(&self) -> Vec<u8> {
        let b64 = self
            .command(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap()
    }

    async fn close(self) {
        let _ = self
            .http
            .delete(format!(
                "http://127.0.0.1:{DRIVER_PORT}/session/{}",
                self.session
            ))
            .send()
            .await;
    }
}

fn start_driver(chromedriver: &std::path::Path) -> Reaped {
    let driver = Reaped(
        Command::new(chromedriver)
            .arg(format!("--port={DRIVER_PORT}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", DRIVER_PORT)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    driver
}

/// The health the console must show for one partition of
/// `/v1/dht/partitions`, by the rules of its README: `bad` with a replica
/// down, a failed exchange or differing buckets; `warn` when not caught
/// up, unconfirmed or handing off; else `ok`.
fn expected_health(p: &Value) -> &'static str {
    let replicas = p["replicas"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if replicas
        .iter()
        .any(|r| r["live"] == false || r["last_result"] == "failed")
        || p["divergence"].as_u64().unwrap_or(0) > 0
    {
        "bad"
    } else if p["caught_up"] == false
        || p["diverged_since_ms"].is_u64()
        || p["role"] == "handing_off"
    {
        "warn"
    } else {
        "ok"
    }
}

fn restarts_of(url: &str, path: &str) -> u64 {
    fn find(node: &Value, path: &str) -> Option<u64> {
        if node["path"] == path {
            return node["restarts"].as_u64();
        }
        let children = node["children"]
            .as_array()
            .or_else(|| node["supervisor"]["children"].as_array())?;
        children.iter().find_map(|c| find(c, path))
    }
    let tree = common::get_json(url, "/v1/actors").unwrap();
    find(&tree, path).unwrap_or_else(|| panic!("{path} not in {tree}"))
}

#[test]
fn the_console_shows_the_cluster_and_a_restart_without_console_errors() {
    let Some(chromium) = ensure("chromium", &["chromium", "chromium-driver"]) else {
        return;
    };
    let Some(chromedriver) = ensure("chromedriver", &["chromium-driver"]) else {
        return;
    };
    let cluster = Cluster::start(3, CONFIG);
    cluster.wait_all_up(3, Duration::from_secs(60));
    let url = cluster.url(0);
    let _driver = start_driver(&chromedriver);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let browser = rt.block_on(Browser::open(chromium.to_str().unwrap()));
    rt.block_on(browser.go(&format!("{url}/")));
    rt.block_on(browser.wait(
        "three members Up",
        Duration::from_secs(30),
        "return document.querySelectorAll('#members tr[data-member][data-state=\"up\"]').length === 3 \
         && document.getElementById('member-count').textContent.trim() === '3'",
    ));
    rt.block_on(browser.wait(
        "every panel loaded",
        Duration::from_secs(30),
        "return document.body.dataset.ready === '1'",
    ));
    let read_only = rt.block_on(browser.eval(
        "const f = document.getElementById('upload-form'); \
         return !f || f.closest('[hidden]') !== null || getComputedStyle(f).display === 'none';",
    ));
    assert_eq!(
        read_only,
        Value::Bool(true),
        "no upload form without a token"
    );

    let before = restarts_of(&url, VICTIM);
    let kill = rt.block_on(async {
        common::client()
            .post(format!("{url}/v1/chaos/actors/{VICTIM}/kill"))
            .bearer_auth(common::ADMIN_TOKEN)
            .send()
            .await
    });
    assert_eq!(kill.unwrap().status(), 202);
    let shown = format!(
        "const e = document.querySelector('[data-actor=\"{VICTIM}\"]'); \
         return e !== null && Number(e.dataset.restarts) > {before};"
    );
    rt.block_on(browser.wait("the restart shown", Duration::from_secs(30), &shown));
    let restarts = rt.block_on(browser.eval(&format!(
        "return document.querySelector('[data-actor=\"{VICTIM}\"]').dataset.restarts"
    )));
    println!("{VICTIM}: restarts {before} -> {restarts} shown in the page");

    // A wasm job submitted here: its module is compiled at submit on this
    // node, and the WebAssembly panel (read from /metrics) shows it.
    rt.block_on(async {
        let http = common::client();
        let put = http
            .put(format!("{url}/v1/files/apps/trap.wat"))
            .bearer_auth(common::ADMIN_TOKEN)
            .body(r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#)
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "{}", put.status());
        let job = serde_json::json!({
            "queue": "console", "kind": "wasm", "args": {"module": "apps/trap.wat"},
            "max_attempts": 1,
        });
        let submit = http
            .post(format!("{url}/v1/jobs"))
            .bearer_auth(common::ADMIN_TOKEN)
            .json(&job)
            .send()
            .await
            .unwrap();
        assert_eq!(submit.status(), 201);
    });
    rt.block_on(browser.wait(
        "the WebAssembly panel",
        Duration::from_secs(30),
        "const s = document.getElementById('wasm-summary'); \
         return s !== null && s.textContent.includes('module lookups') \
         && document.querySelector('#wasm tr[data-wasm=\"cache\"]') !== null;",
    ));

    // Charts: every line chart has a line of at least two points (the
    // history is sampled every 500 ms; the page reads it every 2 s).
    let keys = serde_json::to_string(CHARTS).unwrap();
    rt.block_on(browser.wait(
        "every chart drawn with a line of 2+ points",
        Duration::from_secs(30),
        &format!(
            "return {keys}.every((k) => {{ \
               const lines = document.querySelectorAll(`#charts svg[data-chart=\"${{k}}\"] path.line`); \
               return lines.length > 0 && [...lines].some((l) => Number(l.dataset.points) >= 2 \
                 && /^M[0-9.]+,[0-9.]+L/.test(l.getAttribute('d') || '')); }});"
        ),
    ));

    // Partition map: one cell per partition the node lists, each with the
    // health its API answer implies. Polled until page and API agree: the
    // page reads partitions every 10 s while anti-entropy settles them.
    let deadline = Instant::now() + Duration::from_secs(90);
    let cells = loop {
        let api = common::get_json(&url, "/v1/dht/partitions").unwrap();
        let expected: std::collections::BTreeMap<String, String> = api["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["partition"].to_string(), expected_health(p).to_owned()))
            .collect();
        let shown = rt.block_on(browser.eval(
            "return Object.fromEntries([...document.querySelectorAll('#partition-map svg rect.cell[data-partition]')] \
               .map((c) => [c.dataset.partition, c.dataset.health]));",
        ));
        let shown: std::collections::BTreeMap<String, String> =
            serde_json::from_value(shown).unwrap_or_default();
        if !expected.is_empty() && shown == expected {
            break expected.len();
        }
        assert!(
            Instant::now() < deadline,
            "partition map never matched the API: {} cells shown, {} partitions; first differences: {:?}",
            shown.len(),
            expected.len(),
            expected
                .iter()
                .filter(|(k, v)| shown.get(*k) != Some(*v))
                .take(5)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let declared = rt.block_on(
        browser.eval("return document.querySelector('#partition-map svg').dataset.cells"),
    );
    assert_eq!(declared, Value::String(cells.to_string()));
    println!("partition map: {cells} cells, each with the API's health");
    // A click on a cell selects that partition in the table.
    rt.block_on(browser.eval(
        "document.querySelector('#partition-map rect.cell[data-partition]') \
           .dispatchEvent(new MouseEvent('click', { bubbles: true }));",
    ));
    rt.block_on(browser.wait(
        "the clicked partition selected in the table",
        Duration::from_secs(5),
        "const c = document.querySelector('#partition-map rect.cell.focused'); \
         return c !== null && document.querySelector( \
           `#partitions tr.selected[data-partition=\"${c.dataset.partition}\"]`) !== null;",
    ));
    rt.block_on(browser.eval("document.getElementById('partitions-unfocus').click();"));

    let notice = rt.block_on(browser.eval("return document.getElementById('notice').hidden"));
    assert_eq!(notice, Value::Bool(true), "the page shows an error notice");

    // Tall enough for the charts, the members, the tree and the map.
    rt.block_on(browser.resize(1440, 2400));
    let png = rt.block_on(browser.screenshot());
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png");
    std::fs::write(&shot, &png).unwrap();
    println!("screenshot: {} ({} bytes)", shot.display(), png.len());
    if std::env::var_os("HYPHA_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console.png");
        std::fs::write(&docs, &png).unwrap();
        println!("screenshot: {}", docs.display());
    }
    let errors = rt.block_on(browser.console_errors());
    rt.block_on(browser.close());
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
