//! In-process node tests of the admin API: health, metrics, the live tree,
//! auth on the chaos endpoint, hot restart with durable state, escalation.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use hypha::node::NodeExit;
use hypha_supervisors::{FaultMode, SupervisorRef};
use serde_json::Value;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn tree(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/v1/actors"))
        .header("authorization", bearer(READ_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn child<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    tree["children"].as_array()?.iter().find_map(|c| {
        if c["path"] == path {
            Some(c)
        } else {
            c.get("supervisor").and_then(|s| child(s, path))
        }
    })
}

fn assert_error_shape(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_metrics_and_tree() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_in_process(dir.path(), None).await;
    let base = format!("http://{}", node.http_addr);
    let http = client();

    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hypha_supervisor_restarts_total{supervisor=\"node\",child=\"store\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hypha_supervisor_escalations_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("process_cpu_seconds_total"),
        "process metrics missing"
    );

    let t = tree(&http, &base).await;
    assert_eq!(t["path"], "node");
    assert_eq!(t["strategy"], "rest_for_one");
    for path in ["node/store", "node/admin", "node/admin/http"] {
        let c = child(&t, path).unwrap_or_else(|| panic!("{path} missing in {t}"));
        assert_eq!(c["state"], "running", "{path}");
        assert_eq!(c["restarts"], 0, "{path}");
    }
    // Requests are counted by route and a latency histogram is kept.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics
        .contains("hypha_http_requests_total{route=\"/v1/actors\",method=\"GET\",status=\"200\"}"));
    assert!(metrics.contains("hypha_http_request_duration_seconds_bucket"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_endpoint_requires_the_admin_role() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_in_process(dir.path(), None).await;
    let base = format!("http://{}", node.http_addr);
    let http = client();
    let url = format!("{base}/v1/chaos/actors/store/kill?mode=panic");

    let none = http.post(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_error_shape(&none.json().await.unwrap(), "unauthorized");
    let forged = http
        .post(&url)
        .header("authorization", bearer("forged-token-0123456789"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let read = http
        .post(&url)
        .header("authorization", bearer(READ_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 403);
    assert_error_shape(&read.json().await.unwrap(), "forbidden");

    let admin = |u: String| {
        http.post(u)
            .header("authorization", bearer(ADMIN_TOKEN))
            .send()
    };
    let bad_mode = admin(format!("{base}/v1/chaos/actors/store/kill?mode=explode"))
        .await
        .unwrap();
    assert_eq!(bad_mode.status(), 400);
    assert_error_shape(&bad_mode.json().await.unwrap(), "bad_request");
    let missing = admin(format!("{base}/v1/chaos/actors/nope/kill"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_error_shape(&missing.json().await.unwrap(), "no_such_actor");

    // Nothing was restarted by the refused calls.
    let t = tree(&http, &base).await;
    assert_eq!(child(&t, "node/store").unwrap()["restarts"], 0);
    node.shutdown().await;
}

/// The store (durable state in sled) is killed through the chaos endpoint,
/// both ways; each time its restart count goes up by one, it runs again,
/// and every acknowledged label is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_restart_keeps_acknowledged_state() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_in_process(dir.path(), None).await;
    let base = format!("http://{}", node.http_addr);
    let http = client();
    let mut acknowledged = serde_json::Map::new();
    for i in 0..40 {
        let (key, value) = (format!("k{i:02}"), format!("value-{i}"));
        let resp = http
            .put(format!("{base}/v1/node/labels/{key}"))
            .header("authorization", bearer(ADMIN_TOKEN))
            .body(value.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        acknowledged.insert(key, Value::String(value));
    }

    for (round, mode) in [(1, "panic"), (2, "kill")] {
        let resp = http
            .post(format!(
                "{base}/v1/chaos/actors/node/store/kill?mode={mode}"
            ))
            .header("authorization", bearer(ADMIN_TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{mode}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["path"], "node/store");
        eventually(
            &format!("store restarted ({mode})"),
            Duration::from_secs(5),
            || async {
                let t = tree(&http, &base).await;
                let store = child(&t, "node/store").unwrap().clone();
                store["restarts"] == round && store["state"] == "running"
            },
        )
        .await;
        let labels: Value = http
            .get(format!("{base}/v1/node/labels"))
            .header("authorization", bearer(READ_TOKEN))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(labels, Value::Object(acknowledged.clone()), "after {mode}");
    }
    let t = tree(&http, &base).await;
    let failure = child(&t, "node/store").unwrap()["last_failure"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(failure, "stopped: killed");
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("hypha_supervisor_restarts_total{supervisor=\"node\",child=\"store\"}")
        })
        .unwrap();
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{line}");
    node.shutdown().await;
}

/// More restarts than the root allows: the root stops everything in reverse
/// order and the node reports the escalation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_storm_escalates_to_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_in_process(dir.path(), Some(2)).await;
    let root = SupervisorRef::new(node.root().clone(), Duration::from_secs(5));
    let storm = async {
        loop {
            // Refused while the store is between incarnations: just retry.
            let _ = root.inject_fault(&["store"], FaultMode::Kill).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let exit = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::select! {
            exit = node.wait() => exit,
            () = storm => unreachable!(),
        }
    })
    .await
    .expect("escalation within 20 s");
    match exit {
        NodeExit::Escalated(reason) => assert!(reason.contains("exceeded 2 restarts"), "{reason}"),
        other => panic!("expected escalation, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_in_process(dir.path(), None).await;
    let base = format!("http://{}", node.http_addr);
    let http = client();
    let put = |key: &str, body: Vec<u8>| {
        http.put(format!("{base}/v1/node/labels/{key}"))
            .header("authorization", bearer(ADMIN_TOKEN))
            .body(body)
            .send()
    };
    let big = put("big", vec![b'x'; 2 * 1024 * 1024]).await.unwrap();
    assert_eq!(big.status(), 413);
    assert_error_shape(&big.json().await.unwrap(), "body_too_large");
    let bad_key = put("Bad", b"x".to_vec()).await.unwrap();
    assert_eq!(bad_key.status(), 422);
    let not_utf8 = put("k", vec![0xff, 0xfe]).await.unwrap();
    assert_eq!(not_utf8.status(), 400);
    let unknown = http.get(format!("{base}/v1/nothing")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_error_shape(&unknown.json().await.unwrap(), "not_found");
    let wrong_method = http.delete(format!("{base}/health")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_error_shape(&wrong_method.json().await.unwrap(), "method_not_allowed");
    let unauth_read = http.get(format!("{base}/v1/actors")).send().await.unwrap();
    assert_eq!(unauth_read.status(), 401);
    node.shutdown().await;
}

/// A client that never finishes its headers is disconnected after the
/// header-read timeout (5 s by default) instead of holding a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let node = start_in_process(dir.path(), None).await;
    let mut stream = tokio::net::TcpStream::connect(node.http_addr)
        .await
        .unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "connection still open after 15 s");
    node.shutdown().await;
}

/// Two nodes share this process without clashing (actor names carry the node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_process() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_in_process(d1.path(), None).await;
    let b = start_in_process(d2.path(), None).await;
    assert_ne!(a.name, b.name);
    let http = client();
    for n in [&a, &b] {
        let t = tree(&http, &format!("http://{}", n.http_addr)).await;
        assert_eq!(child(&t, "node/store").unwrap()["state"], "running");
    }
    a.shutdown().await;
    let t = tree(&http, &format!("http://{}", b.http_addr)).await;
    assert_eq!(child(&t, "node/store").unwrap()["state"], "running");
    b.shutdown().await;
}
