//! A property-based test of the whole API against a live node, driven by
//! the node's own OpenAPI spec: random path parameters (unicode, dots,
//! percent signs, very long), random query values (negative, huge, not
//! numbers), random bodies (garbage and near-valid JSON) on every
//! operation the spec lists. Whatever the input, the node answers with a
//! status below 500: bad input is the client's error, never the server's.
//!
//! The chaos route is left out: its purpose is to crash actors, after
//! which a 503 while they restart is the correct answer.
//! `HYPHA_API_CASES` sets the number of requests (default 1,500).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

/// One operation of the spec.
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    path: String,
    query: Vec<String>,
    body: Option<String>,
}

fn operations(spec: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        if path.starts_with("/v1/chaos") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let body = op["requestBody"]["content"]
                .as_object()
                .and_then(|c| c.keys().next().cloned());
            out.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                query,
                body,
            });
        }
    }
    out
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._-]{1,12}",
        "[a-z0-9]{1,8}(/[a-z0-9.]{1,8}){0,3}",
        "\\PC{0,24}",
        Just("..".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("%00%ff%".to_owned()),
        Just("x".repeat(4_000)),
        "-?[0-9]{1,25}",
        Just(String::new()),
    ]
}

fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        text().prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::Null),
        Just(serde_json::json!({"labels": {"a": "b"}, "min_cores": 99})),
        Just(serde_json::json!(["x", 1])),
    ];
    let keys = prop_oneof![
        Just("queue"),
        Just("kind"),
        Just("payload"),
        Just("file"),
        Just("args"),
        Just("idempotency_key"),
        Just("priority"),
        Just("max_attempts"),
        Just("timeout_ms"),
        Just("constraints"),
        Just("unknown"),
    ];
    prop_oneof![
        prop::collection::btree_map(keys, field, 0..8).prop_map(|m: BTreeMap<&str, Value>| {
            let mut doc = serde_json::json!({"queue": "q", "kind": "echo", "payload": "hi"});
            for (k, v) in m {
                doc[k] = v;
            }
            doc.to_string().into_bytes()
        }),
        prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// A request: which operation, its path values, query, body.
#[derive(Debug, Clone)]
struct Case {
    op: usize,
    path_values: Vec<String>,
    query: Vec<(usize, String)>,
    body: Vec<u8>,
    json: Vec<u8>,
}

fn case(n_ops: usize) -> impl Strategy<Value = Case> {
    (
        0..n_ops,
        prop::collection::vec(text(), 2),
        prop::collection::vec((0..8usize, text()), 0..4),
        prop::collection::vec(any::<u8>(), 0..2_048),
        json_body(),
    )
        .prop_map(|(op, path_values, query, body, json)| Case {
            op,
            path_values,
            query,
            body,
            json,
        })
}

fn encode(value: &str, keep_slashes: bool) -> String {
    value
        .split('/')
        .map(|seg| form_urlencoded::byte_serialize(seg.as_bytes()).collect::<String>())
        .collect::<Vec<_>>()
        .join(if keep_slashes { "/" } else { "%2F" })
}

fn url_of(op: &Operation, case: &Case) -> String {
    let mut values = case.path_values.iter();
    let mut path = String::new();
    for seg in op.path.split('/').skip(1) {
        path.push('/');
        if seg.starts_with('{') {
            let value = values.next().map(String::as_str).unwrap_or("x");
            let wildcard = matches!(seg, "{name}" | "{path}");
            path.push_str(&encode(value, wildcard));
        } else {
            path.push_str(seg);
        }
    }
    let query: Vec<String> = case
        .query
        .iter()
        .filter_map(|(i, v)| {
            let name = op.query.get(i % op.query.len().max(1))?;
            Some(format!("{name}={}", encode(v, false)))
        })
        .collect();
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

#[test]
fn no_input_makes_the_server_fail() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), None);
    // One node: every write can reach its quorum, so a 503 is a bug.
    config.dht.replicas = 1;
    config.dht.write_quorum = 1;
    config.dht.read_quorum = 1;
    config.http.rate_limit_per_s = 0;
    let node = rt.block_on(start_configured(&config));
    let api = Api::of(&node);
    let spec = serde_json::to_value(hypha::admin::openapi_spec()).unwrap();
    let ops = operations(&spec);
    assert!(ops.len() >= 20, "{} operations", ops.len());
    let cases: u32 = std::env::var("HYPHA_API_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        // Each shrinking step is a request; a hung one costs the client's
        // 10 s timeout.
        max_shrink_iters: 64,
        ..Config::default()
    });
    let statuses: std::sync::Mutex<BTreeMap<u16, u32>> = Default::default();
    let result = runner.run(&case(ops.len()), |case| {
        let op = &ops[case.op];
        let url = url_of(op, &case);
        let body = match op.body.as_deref() {
            Some("application/json") => case.json.clone(),
            Some(_) => case.body.clone(),
            None => Vec::new(),
        };
        let method = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
        let request = api
            .http
            .request(method, format!("{}{url}", api.base))
            .bearer_auth(ADMIN_TOKEN)
            .body(body);
        let resp = rt
            .block_on(async { request.send().await })
            .map_err(|e| TestCaseError::fail(format!("{} {url}: no answer: {e}", op.method)))?;
        let status = resp.status().as_u16();
        *statuses.lock().unwrap().entry(status).or_default() += 1;
        if status >= 500 {
            let text = rt.block_on(resp.text()).unwrap_or_default();
            return Err(TestCaseError::fail(format!(
                "{} {url} -> {status} {text}",
                op.method
            )));
        }
        Ok(())
    });
    let statuses = statuses.into_inner().unwrap();
    let total: u32 = statuses.values().sum();
    println!(
        "{total} requests over {} operations; statuses {statuses:?}",
        ops.len()
    );
    rt.block_on(node.shutdown());
    result.unwrap();
    assert!(
        statuses.keys().any(|s| (200..300).contains(s)),
        "nothing succeeded: {statuses:?}"
    );
}
