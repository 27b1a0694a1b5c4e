//! The web console in a real browser: Debian's Chromium, headless,
//! driven through ChromeDriver's WebDriver API from this test. A 3-node
//! cluster of real processes serves the page; the test checks that it
//! loads with no console errors, shows the three members, and shows an
//! actor's restart after a chaos kill. It saves a screenshot
//! (`target/tmp/console.png`; `docs/console.png` is one of these).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::cluster::Cluster;
use common::tools::{ensure, Reaped};
use serde_json::{json, Value};

/// Reads are open, so the page needs no token to show the cluster.
const CONFIG: &str = "[auth]\nopen_reads = true\n";
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
            assert!(
                Instant::now() < deadline,
                "page: not within {limit:?}: {what}"
            );
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

    let png = rt.block_on(browser.screenshot());
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png");
    std::fs::write(&shot, &png).unwrap();
    println!("screenshot: {} ({} bytes)", shot.display(), png.len());
    let errors = rt.block_on(browser.console_errors());
    rt.block_on(browser.close());
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
