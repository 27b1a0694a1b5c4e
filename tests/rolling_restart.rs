//! Rolling restart on three real `hypha` processes while a client keeps
//! writing: `hypha cluster restart --rolling --json` restarts every node
//! once, in place (same pid, same ports, next generation), one at a time,
//! each back and caught up before the next; every write acknowledged
//! before, during or after reads back byte-identical; the API refuses a
//! restart that is not rolling.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::Cluster;
use common::{get_json, Api, ADMIN_TOKEN};
use serde_json::Value;

const CONFIG: &str = "\
[dht]
down_grace_ms = 10000
rpc_timeout_ms = 3000

[storage]
min_free_bytes = 0
";

fn body(i: usize) -> Vec<u8> {
    common::pseudo_random(500 + (i % 7) * 3_000, i as u64)
}

/// Write `w/<i>` for i = 0, 1, … through the nodes in turn until told to
/// stop; the names acknowledged (201), and how many attempts failed.
async fn writer(urls: Vec<String>, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<usize>>>) -> usize {
    let mut failed = 0;
    let mut i = 0;
    let http = common::client();
    while !stop.load(Ordering::Relaxed) {
        // A node restarting refuses connections for a moment: that is a
        // failed attempt, not an acknowledged write.
        let res = http
            .put(format!("{}/v1/files/w/{i}", urls[i % urls.len()]))
            .bearer_auth(ADMIN_TOKEN)
            .body(body(i))
            .send()
            .await;
        if res.is_ok_and(|r| r.status().as_u16() == 201) {
            acked.lock().unwrap().push(i);
        } else {
            failed += 1;
        }
        // ~20 writes a second: a steady workload, not a flood that makes
        // each node's catch-up the test's whole run time.
        tokio::time::sleep(Duration::from_millis(50)).await;
        i += 1;
    }
    failed
}

#[test]
fn a_rolling_restart_restarts_every_node_once_and_loses_no_acknowledged_write() {
    let cluster = Cluster::start(3, CONFIG);
    cluster.wait_all_up(3, Duration::from_secs(60));
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    let pids = cluster.pids();
    let before: Vec<Value> = urls
        .iter()
        .map(|u| get_json(u, "/v1/node").unwrap())
        .collect();

    // Not rolling: refused, nothing restarts.
    let refused =
        common::block_on(Api::new(urls[0].clone()).post("/v1/cluster/restart", Some(ADMIN_TOKEN)));
    assert_eq!(refused.status().as_u16(), 400);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writes = runtime.spawn(writer(urls.clone(), stop.clone(), acked.clone()));
    let out = std::process::Command::new(common::paths::hypha_bin())
        .args([
            "cluster",
            "restart",
            "--rolling",
            "--json",
            "--step-timeout-s",
            "120",
        ])
        .args(["--url", &urls[0], "--token", ADMIN_TOKEN])
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let failed = runtime.block_on(writes).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "plan",
            "restarting",
            "back",
            "restarting",
            "back",
            "restarting",
            "back",
            "done"
        ],
        "{stdout}"
    );
    let backs: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "back")
        .map(|e| e["took_ms"].as_u64().unwrap())
        .collect();

    // Every node once, in place: same process, same address, generation + 1.
    assert_eq!(
        cluster.pids(),
        pids,
        "restarted in place (exec), not replaced"
    );
    for (url, old) in urls.iter().zip(&before) {
        let now = get_json(url, "/v1/node").unwrap();
        assert_eq!(now["id"], old["id"]);
        assert_eq!(
            now["generation"],
            old["generation"].as_u64().unwrap() + 1,
            "{url}"
        );
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "rolling restart: steps took {backs:?} ms; {} writes acknowledged, {failed} refused or failed",
        acked.len()
    );
    assert!(
        acked.len() > 20,
        "the writer made progress: {}",
        acked.len()
    );
    common::block_on(async {
        for (k, i) in acked.iter().enumerate() {
            let api = Api::new(urls[k % urls.len()].clone());
            let res = api
                .get(&format!("/v1/files/w/{i}"), Some(ADMIN_TOKEN))
                .await;
            assert_eq!(res.status().as_u16(), 200, "acknowledged w/{i} lost");
            assert!(
                res.bytes().await.unwrap()[..] == body(*i)[..],
                "w/{i} differs"
            );
        }
    });
}
