//! The API's security properties, checked against an in-process node:
//! every route of the route table enforces its access rule against
//! missing, expired, wrong-role, forged and tampered tokens and changes
//! nothing when it refuses; per-token rate limits; slow clients are
//! dropped in bounded time.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use hypha::admin::{route_table, Access, RouteInfo};
use hypha::auth::{Claims, Role, TokenKey};
use reqwest::Method;
use serde_json::Value;

/// A concrete path for a route pattern.
fn concrete(route: &RouteInfo) -> String {
    route
        .path
        .replace("{key}", "enum-key")
        .replace("{*name}", "enum/file.txt")
        .replace("{id}", "0123456789abcdef0123456789abcdef")
        .replace("{*path}", "no-such-actor/kill")
}

/// A token over `claims` whose signature was made by another key.
fn forged(role: Role) -> String {
    let good = signed_token(role, 0, 600);
    let other = TokenKey::new(b"an-attacker-key-0123456789abcdef-0123")
        .unwrap()
        .sign(&Claims::new("hypha", "tests", role, 0, u64::MAX / 2))
        .unwrap();
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[2] = other.split('.').nth(2).unwrap();
    parts.join(".")
}

/// A valid read token whose payload was edited to claim `role`.
fn tampered(role: Role) -> String {
    let good = signed_token(Role::Read, 0, 600);
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["role"] = role.as_str().into();
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{}.{}", parts[0], payload, parts[2])
}

fn lower_role(role: Role) -> Option<Role> {
    match role {
        Role::Read => None,
        Role::Write => Some(Role::Read),
        Role::Admin => Some(Role::Write),
    }
}

/// What every mutating route could have changed.
async fn snapshot(api: &Api) -> Value {
    let admin = Some(ADMIN_TOKEN);
    let tree = api.json("/v1/actors", admin).await;
    let restarts: Vec<Value> = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["restarts"].clone())
        .collect();
    serde_json::json!({
        "labels": api.json("/v1/node/labels", admin).await,
        "files": api.json("/v1/files", admin).await["files"],
        "jobs": api.json("/v1/jobs", admin).await["jobs"],
        "restarts": restarts,
    })
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or_default();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_its_access_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), None);
    // Hundreds of bad tokens from one address: the failed-auth throttle
    // (tests/api_hardening.rs) would answer 429 before the check tested here.
    config.http.auth_failures_per_min = 0;
    let node = start_configured(&config).await;
    let api = Api::of(&node);
    let before = snapshot(&api).await;
    let routes = route_table();
    assert!(
        routes.len() >= 20,
        "the table lost routes: {}",
        routes.len()
    );
    let (mut refused, mut mutating) = (0, 0);
    for route in &routes {
        let path = concrete(route);
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let send = |token: Option<String>| {
            let (api, method, path) = (&api, method.clone(), path.clone());
            async move {
                api.send(method, &path, token.as_deref(), b"x".to_vec())
                    .await
            }
        };
        let Access::Needs(role) = route.access else {
            // Open and any-token routes: served without a role check.
            let ok = send(Some(ADMIN_TOKEN.to_owned())).await;
            assert!(
                ok.status().is_success(),
                "{} {path}: {}",
                route.method,
                ok.status()
            );
            continue;
        };
        mutating += usize::from(route.is_mutating());
        let mut bad = vec![
            ("missing", None, 401, "unauthorized"),
            (
                "expired",
                Some(signed_token(Role::Admin, 7_200, 3_600)),
                401,
                "token_expired",
            ),
            ("forged", Some(forged(Role::Admin)), 401, "unauthorized"),
            ("tampered", Some(tampered(Role::Admin)), 401, "unauthorized"),
            (
                "unknown static",
                Some("not-a-known-token-0123456789".into()),
                401,
                "unauthorized",
            ),
        ];
        if let Some(lower) = lower_role(role) {
            bad.push((
                "wrong role",
                Some(signed_token(lower, 0, 600)),
                403,
                "forbidden",
            ));
        }
        for (what, token, status, code) in bad {
            let got = error_code(send(token).await).await;
            assert_eq!(
                got,
                (status, code.to_owned()),
                "{} {path} with a {what} token",
                route.method
            );
            refused += 1;
        }
        // The right role gets past auth (whatever the handler then says).
        let resp = send(Some(signed_token(role, 0, 600))).await;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            ![401, 403, 405, 429].contains(&status) && !body.contains("no such route"),
            "{} {path} with a {role:?} token: {status} {body}",
            route.method
        );
    }
    assert_eq!(
        snapshot(&api).await,
        before,
        "a refused request changed state"
    );
    assert!(mutating >= 7, "only {mutating} mutating routes found");
    println!(
        "{} routes, {mutating} mutating, {refused} bad-token requests refused",
        routes.len()
    );
    node.shutdown().await;
}

/// No method is served on a path unless the table lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_outside_the_table_are_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_in_process(dir.path(), None).await;
    let api = Api::of(&node);
    let routes = route_table();
    let methods = [
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::PATCH,
    ];
    let mut checked = 0;
    for route in &routes {
        for method in &methods {
            let listed = routes
                .iter()
                .any(|r| r.path == route.path && r.method.as_str() == method.as_str());
            if listed {
                continue;
            }
            let resp = api
                .send(
                    method.clone(),
                    &concrete(route),
                    Some(ADMIN_TOKEN),
                    Vec::new(),
                )
                .await;
            assert_eq!(resp.status(), 405, "{method} {}", route.path);
            checked += 1;
        }
    }
    assert!(checked > 40, "{checked}");
    let (status, _) = error_code(api.get("/v2/anything", Some(ADMIN_TOKEN)).await).await;
    assert_eq!(status, 404);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_has_its_own_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), None);
    config.http.rate_limit_per_s = 1;
    config.http.rate_limit_burst = 5;
    let node = start_configured(&config).await;
    let api = Api::of(&node);
    let busy = signed_token(Role::Read, 0, 600);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let resp = api.get("/v1/node", Some(&busy)).await;
        if resp.status() == 429 {
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&retry), "Retry-After {retry}");
        }
        statuses.push(resp.status().as_u16());
    }
    // A burst of 5, then at most one more within the test's few ms.
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 2, "{statuses:?}");
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");
    let other = signed_token(Role::Read, 0, 600);
    assert_eq!(api.get("/v1/node", Some(&other)).await.status(), 200);
    // Open routes are not limited: scrapers keep working.
    for _ in 0..10 {
        assert_eq!(api.get("/health", None).await.status(), 200);
    }
    node.shutdown().await;
}

/// Clients that trickle their headers, or open a connection and send
/// nothing, are disconnected once the header-read timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_dropped_in_bounded_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), None);
    config.http.header_read_timeout_ms = 1_000;
    let node = start_configured(&config).await;
    let bound = Duration::from_millis(3_000);

    // Slowloris: one header byte every 100 ms, never finishing.
    let mut slow = tokio::net::TcpStream::connect(node.http_addr)
        .await
        .unwrap();
    let started = Instant::now();
    let request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut dropped_after = None;
    for byte in request.iter() {
        if slow.write_all(&[*byte]).await.is_err() {
            dropped_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                dropped_after = Some(started.elapsed());
                break;
            }
            // A 408 answer, then the close.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    let dropped_after =
        dropped_after.expect("a slow client still connected after its whole request");
    assert!(
        dropped_after <= bound,
        "slow client dropped after {dropped_after:?}"
    );

    // Idle: connects, sends nothing.
    let mut idle = tokio::net::TcpStream::connect(node.http_addr)
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "idle connection still open after 10 s");
    let idle_after = started.elapsed();
    assert!(
        idle_after <= bound,
        "idle client dropped after {idle_after:?}"
    );
    println!("slow client dropped after {dropped_after:?}, idle client after {idle_after:?}");

    // The server still serves.
    assert_eq!(Api::of(&node).get("/health", None).await.status(), 200);
    node.shutdown().await;
}
