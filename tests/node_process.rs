//! Tests of the real `hypha` binary: graceful stop with durable data, the
//! escalation exit, and refusals at start.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn get_json(url: &str) -> Value {
    block_on(Api::new(url).json("", Some(ADMIN_TOKEN)))
}

/// Status of an admin-token request, or 0 when the node did not answer.
fn status(method: reqwest::Method, url: &str, body: &str) -> u16 {
    block_on(async {
        client()
            .request(method, url)
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(body.to_owned())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
}

#[test]
fn sigterm_exits_zero_and_acknowledged_data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = spawn_node(dir.path(), &[]);
    let first = get_json(&format!("{}/v1/node", node.url));
    assert_eq!(first["generation"], 1);
    for (k, v) in [("zone", "eu-1"), ("rack", "r7")] {
        let url = format!("{}/v1/node/labels/{k}", node.url);
        assert_eq!(status(reqwest::Method::PUT, &url, v), 200);
    }
    node.signal("TERM");
    let exit = node.wait_exit(Duration::from_secs(30));
    assert_eq!(exit.code(), Some(0), "stderr: {}", node.stderr_text());

    let node = spawn_node(dir.path(), &[]);
    let second = get_json(&format!("{}/v1/node", node.url));
    assert_eq!(second["id"], first["id"], "node id is persisted");
    assert_eq!(second["generation"], 2);
    assert_eq!(second["labels"]["zone"], "eu-1");
    assert_eq!(second["labels"]["rack"], "r7");
}

#[test]
fn restart_storm_exits_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = spawn_node(dir.path(), &["--max-restarts", "2"]);
    let kill = format!("{}/v1/chaos/actors/store/kill?mode=kill", node.url);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = node.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node survived the storm"
        );
        // 202, or 409/503/0 while the tree is restarting or exiting.
        let _ = status(reqwest::Method::POST, &kill, "");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(70));
    let stderr = node.stderr_text();
    let gave_up: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("supervision tree gave up"))
        .collect();
    assert_eq!(gave_up.len(), 1, "{stderr}");
    assert!(gave_up[0].contains("exceeded 2 restarts"), "{}", gave_up[0]);
}

#[test]
fn refuses_to_start_without_a_cookie_outside_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = node_command(dir.path(), &[])
        .env_remove("HYPHA_COOKIE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no cluster cookie"), "{stderr}");

    let short = node_command(dir.path(), &[])
        .env("HYPHA_COOKIE", "short")
        .output()
        .unwrap();
    assert_eq!(short.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 16"));
}

#[test]
fn dev_mode_generates_and_announces_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = node_command(dir.path(), &["--dev"]);
    cmd.env_remove("HYPHA_COOKIE")
        .env_remove("HYPHA_ADMIN_TOKEN");
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .take_while(|l| !l.starts_with("hypha: try:"))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    assert!(text.contains("admin API at http://127.0.0.1:"), "{text}");
    assert!(
        text.contains("generated a throwaway cluster cookie"),
        "{text}"
    );
    assert!(text.contains("generated a throwaway admin token"), "{text}");
}

/// `hypha` run as a client of the node at `url` with the admin token;
/// what it printed, once it succeeded.
fn cli(url: &str, args: &[&str]) -> String {
    cli_stdout(&hypha_cli(url, Some(ADMIN_TOKEN), args))
}

/// One `--dev` node is a working node: it stores with one copy (R = W = 1,
/// announced), runs a job to its end, and stops at once on Ctrl-C, as no
/// peer waits for a hand-off (it used to refuse every write for want of a
/// second replica, and to wait 11 s for the hand-off when stopped).
#[test]
fn a_lone_dev_node_stores_computes_and_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = spawn_node(dir.path(), &["--dev"]);
    let url = node.url.clone();
    let src = dir.path().join("hello.txt");
    std::fs::write(&src, "hello lone node\n").unwrap();
    let put = cli(&url, &["put", src.to_str().unwrap(), "/dev/hello.txt"]);
    assert!(put.contains("1 acks"), "{put}");
    let got = cli(&url, &["get", "/dev/hello.txt"]);
    assert_eq!(got, "hello lone node\n");
    let job = cli(
        &url,
        &[
            "jobs",
            "submit",
            "-q",
            "dev",
            "-k",
            "wordcount",
            "--file",
            "/dev/hello.txt",
            "--wait",
        ],
    );
    assert!(job.contains("\"words\":3"), "{job}");

    let asked = std::time::Instant::now();
    node.signal("INT");
    let status = node.wait_exit(Duration::from_secs(30));
    let took = asked.elapsed();
    println!("a lone node stopped {took:?} after SIGINT");
    assert!(status.success(), "{status}: {}", node.stderr_text());
    // Generous against a loaded machine; the hand-off wait it replaces
    // took 10 s (the bound) plus the gossip grace.
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
}

#[test]
fn a_data_dir_in_use_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = spawn_node(dir.path(), &[]);
    let out = node_command(dir.path(), &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another Hypha node"), "{stderr}");
}

/// The chaos harness's watched processes (the kit's `Fleet`) on one real
/// node: port 0 read back from its log, freeze and thaw, a restart on the
/// same data dir, a kill it caused (no death) and a kill it did not (a
/// death, reported).
#[test]
fn a_fleet_node_is_frozen_thawed_restarted_and_watched_for_deaths() {
    use hypha::launch::{LinkFlags, Listen, NodeLaunch};
    use hypha_testkit::fleet::{Fleet, NodeSpec};

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("n0");
    let mut launch = NodeLaunch::new(&data_dir, Listen::loopback_any(), COOKIE, ADMIN_TOKEN);
    launch.links = LinkFlags::TlsDir(test_tls_dir(&data_dir));
    let log = dir.path().join("n0.log");
    let fleet = Fleet::new(vec![NodeSpec::new(&paths::hypha_bin(), launch, &log)]).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    runtime.block_on(fleet.start(0)).unwrap();
    let first = fleet.url(0).unwrap();
    assert!(
        !first.ends_with(":0"),
        "the printed URL, not port 0: {first}"
    );
    let id = get_json(&format!("{first}/v1/node"))["id"].clone();
    fleet.freeze(0).unwrap();
    assert_eq!(fleet.running(), Vec::<usize>::new());
    fleet.thaw(0).unwrap();
    assert_eq!(fleet.running(), [0]);

    runtime.block_on(fleet.restart(0)).unwrap();
    let again = get_json(&format!("{}/v1/node", fleet.url(0).unwrap()));
    assert_eq!(again["id"], id, "restarted on the same data dir");
    assert_eq!(again["generation"], 2);
    fleet.kill(0).unwrap();
    assert_eq!(fleet.deaths(), Vec::<String>::new(), "kills it made");

    runtime.block_on(fleet.start(0)).unwrap();
    let pid = fleet.pid(0).unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    wait_until("the fleet sees the death", Duration::from_secs(10), || {
        !fleet.deaths().is_empty()
    });
    assert_eq!(fleet.deaths().len(), 1);
    assert!(fleet.deaths()[0].starts_with("n0 exited on its own"));
    let starts = std::fs::read_to_string(&log).unwrap();
    assert_eq!(starts.matches("hypha: admin API at ").count(), 3);
}
