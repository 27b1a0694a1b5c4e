//! In-process node tests of the admin API: health, metrics, the live tree,
//! auth on the chaos endpoint, hot restart with durable state, escalation,
//! input limits.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use hypha::node::NodeExit;
use hypha_supervisors::{FaultMode, SupervisorRef};
use serde_json::Value;

fn child<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    tree["children"].as_array()?.iter().find_map(|c| {
        if c["path"] == path {
            Some(c)
        } else {
            c.get("supervisor").and_then(|s| child(s, path))
        }
    })
}

async fn tree(api: &Api) -> Value {
    api.json("/v1/actors", Some(READ_TOKEN)).await
}

async fn assert_error(resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str();
    assert!(message.is_some_and(|m| !m.is_empty()), "{body}");
}

fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    let line = metrics.lines().find(|l| l.starts_with(series))?;
    line.rsplit(' ').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_metrics_and_tree() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_in_process(dir.path(), None).await;
    let api = Api::of(&node);

    assert_eq!(api.get("/health", None).await.status(), 200);
    assert_eq!(api.get("/ready", None).await.status(), 200);
    let metrics = api.text("/metrics").await;
    let store_restarts = "hypha_supervisor_restarts_total{supervisor=\"node\",child=\"store\"}";
    assert!(
        metric_value(&metrics, store_restarts).is_some(),
        "{metrics}"
    );
    assert!(metrics.contains("hypha_supervisor_escalations_total"));
    assert!(
        metrics.contains("process_cpu_seconds_total"),
        "process metrics missing"
    );

    let t = tree(&api).await;
    assert_eq!(t["path"], "node");
    assert_eq!(t["strategy"], "one_for_one");
    for path in ["node/store", "node/admin", "node/admin/http"] {
        let c = child(&t, path).unwrap_or_else(|| panic!("{path} missing in {t}"));
        assert_eq!(c["state"], "running", "{path}");
        assert_eq!(c["restarts"], 0, "{path}");
    }
    // Requests are counted by route, and a latency histogram is kept.
    let metrics = api.text("/metrics").await;
    let actors_ok = "hypha_http_requests_total{route=\"/v1/actors\",method=\"GET\",status=\"200\"}";
    assert!(metric_value(&metrics, actors_ok).is_some_and(|v| v >= 1.0));
    assert!(metrics.contains("hypha_http_request_duration_seconds_bucket"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_endpoint_requires_the_admin_role() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_in_process(dir.path(), None).await;
    let api = Api::of(&node);
    let kill = "/v1/chaos/actors/store/kill?mode=panic";

    assert_error(api.post(kill, None).await, 401, "unauthorized").await;
    let forged = api.post(kill, Some("forged-token-0123456789")).await;
    assert_error(forged, 401, "unauthorized").await;
    assert_error(api.post(kill, Some(READ_TOKEN)).await, 403, "forbidden").await;
    let bad_mode = api
        .post(
            "/v1/chaos/actors/store/kill?mode=explode",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_error(bad_mode, 400, "bad_request").await;
    let missing = api
        .post("/v1/chaos/actors/nope/kill", Some(ADMIN_TOKEN))
        .await;
    assert_error(missing, 404, "no_such_actor").await;

    // None of the refused calls restarted anything.
    assert_eq!(
        child(&tree(&api).await, "node/store").unwrap()["restarts"],
        0
    );
    node.shutdown().await;
}

/// The store (durable state in sled) is killed through the chaos endpoint,
/// both ways; each time its restart count goes up by one, it runs again,
/// and every acknowledged label is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_restart_keeps_acknowledged_state() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_in_process(dir.path(), None).await;
    let api = Api::of(&node);
    let series = "hypha_supervisor_restarts_total{supervisor=\"node\",child=\"store\"}";
    // The counter is process-wide (other tests' nodes add to it): use deltas.
    let restarts_before = metric_value(&api.text("/metrics").await, series).unwrap();
    let mut acknowledged = serde_json::Map::new();
    for i in 0..40 {
        let (key, value) = (format!("k{i:02}"), format!("value-{i}"));
        let path = format!("/v1/node/labels/{key}");
        let resp = api.put(&path, Some(ADMIN_TOKEN), value.as_bytes()).await;
        assert_eq!(resp.status(), 200);
        acknowledged.insert(key, Value::String(value));
    }

    for (round, mode) in [(1, "panic"), (2, "kill")] {
        let path = format!("/v1/chaos/actors/node/store/kill?mode={mode}");
        let resp = api.post(&path, Some(ADMIN_TOKEN)).await;
        assert_eq!(resp.status(), 202, "{mode}");
        assert_eq!(resp.json::<Value>().await.unwrap()["path"], "node/store");
        let what = format!("store restarted ({mode})");
        eventually(&what, Duration::from_secs(5), || async {
            let t = tree(&api).await;
            let store = child(&t, "node/store").unwrap().clone();
            store["restarts"] == round && store["state"] == "running"
        })
        .await;
        let labels = api.json("/v1/node/labels", Some(READ_TOKEN)).await;
        assert_eq!(labels, Value::Object(acknowledged.clone()), "after {mode}");
    }
    let t = tree(&api).await;
    let failure = child(&t, "node/store").unwrap()["last_failure"].clone();
    assert_eq!(failure, "stopped: killed");
    // The admin API was not restarted along with the store.
    assert_eq!(child(&t, "node/admin/http").unwrap()["restarts"], 0);
    assert_eq!(child(&t, "node/admin").unwrap()["restarts"], 0);
    let restarts_after = metric_value(&api.text("/metrics").await, series).unwrap();
    assert!(
        restarts_after - restarts_before >= 2.0,
        "{restarts_before} -> {restarts_after}"
    );
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
    let api = Api::of(&node);
    let put = |key: &'static str, body: Vec<u8>| {
        let path = format!("/v1/node/labels/{key}");
        let api = &api;
        async move { api.put(&path, Some(ADMIN_TOKEN), &body).await }
    };
    // hyper answers 413 before reading the body and then closes the
    // connection; a separate client keeps that off the shared pool.
    let big = Api::new(api.base.clone())
        .put(
            "/v1/node/labels/big",
            Some(ADMIN_TOKEN),
            &vec![b'x'; 2 << 20],
        )
        .await;
    assert_error(big, 413, "body_too_large").await;
    assert_error(put("Bad", b"x".to_vec()).await, 422, "invalid_label").await;
    assert_error(put("k", vec![0xff, 0xfe]).await, 400, "bad_request").await;
    assert_error(api.get("/v1/nothing", None).await, 404, "not_found").await;
    let wrong_method = api
        .send(reqwest::Method::DELETE, "/health", None, Vec::new())
        .await;
    assert_error(wrong_method, 405, "method_not_allowed").await;
    assert_error(api.get("/v1/actors", None).await, 401, "unauthorized").await;
    let absent = api
        .send(
            reqwest::Method::DELETE,
            "/v1/node/labels/none",
            Some(ADMIN_TOKEN),
            Vec::new(),
        )
        .await;
    assert_error(absent, 404, "not_found").await;
    node.shutdown().await;
}

/// Two nodes share this process without clashing (actor names carry the node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_process() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_in_process(d1.path(), None).await;
    let b = start_in_process(d2.path(), None).await;
    assert_ne!(a.name, b.name);
    for n in [&a, &b] {
        let t = tree(&Api::of(n)).await;
        assert_eq!(child(&t, "node/store").unwrap()["state"], "running");
    }
    let api_b = Api::of(&b);
    a.shutdown().await;
    assert_eq!(
        child(&tree(&api_b).await, "node/store").unwrap()["state"],
        "running"
    );
    b.shutdown().await;
}

/// The label cap (64) holds when PUTs of new keys race each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_cap_holds_under_concurrent_puts() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_in_process(dir.path(), None).await;
    let api = Api::of(&node);
    let puts = (0..80).map(|i| {
        let api = &api;
        async move {
            let path = format!("/v1/node/labels/k{i:03}");
            api.put(&path, Some(ADMIN_TOKEN), b"v")
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(puts).await;
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 422).count();
    assert_eq!((ok, refused), (64, 16), "{statuses:?}");
    let labels = api.json("/v1/node/labels", Some(READ_TOKEN)).await;
    assert_eq!(labels.as_object().unwrap().len(), 64);
    node.shutdown().await;
}
