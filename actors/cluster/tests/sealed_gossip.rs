//! Sealed gossip end to end: real chitchat instances on loopback UDP,
//! each behind a [`SealedTransport`]. Nodes with the cluster key converge;
//! a plain chitchat node (the right cluster id, no key) and a node sealed
//! with another key change nothing; keys rotate with no gap.
//!
//! Absence is checked against a control: a legitimate node started after
//! the attackers must join within the same deadline, so "nothing changed"
//! is measured over a span in which a real change did happen.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::{Transport, UdpTransport};
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use hypha_cluster::membership::seal::{Keyring, SealSettings, SealedTransport};
use hypha_core::clock::{ManualClock, SharedClock};
use tokio::sync::watch;

const OLD: &str = "the-old-gossip-secret-of-32-bytes-or-more";
const NEW: &str = "the-new-gossip-secret-of-32-bytes-or-more";
const CLUSTER: &str = "sealed-test";
const DEADLINE: Duration = Duration::from_secs(10);

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn ring(secrets: &[&str]) -> Arc<Keyring> {
    Arc::new(Keyring::from_secrets(CLUSTER, secrets).unwrap())
}

struct Node {
    handle: ChitchatHandle,
    addr: SocketAddr,
    keys: watch::Sender<Arc<Keyring>>,
}

async fn start(
    node_id: &str,
    generation: u64,
    seeds: &[SocketAddr],
    transport: &dyn Transport,
    kvs: Vec<(String, String)>,
) -> (ChitchatHandle, SocketAddr) {
    let addr = free_udp();
    let config = ChitchatConfig {
        chitchat_id: ChitchatId::new(node_id.to_owned(), generation, addr),
        cluster_id: CLUSTER.into(),
        gossip_interval: Duration::from_millis(100),
        listen_addr: addr,
        seed_nodes: seeds.iter().map(ToString::to_string).collect(),
        failure_detector_config: FailureDetectorConfig {
            phi_threshold: 8.0,
            sampling_window_size: 1_000,
            max_interval: Duration::from_secs(10),
            initial_interval: Duration::from_millis(50),
            dead_node_grace_period: Duration::from_secs(60),
        },
        marked_for_deletion_grace_period: Duration::from_secs(60),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: chitchat::ProtocolVersion::V1,
    };
    let handle = chitchat::spawn_chitchat(config, kvs, transport)
        .await
        .unwrap();
    (handle, addr)
}

async fn sealed(node_id: &str, seeds: &[SocketAddr], secrets: &[&str]) -> Node {
    sealed_at(node_id, seeds, secrets, SharedClock::system()).await
}

/// A sealed node whose transport reads `clock`.
async fn sealed_at(
    node_id: &str,
    seeds: &[SocketAddr],
    secrets: &[&str],
    clock: SharedClock,
) -> Node {
    let (keys, rx) = watch::channel(ring(secrets));
    let transport = SealedTransport::new(rx, SealSettings::default(), clock);
    let kvs = vec![("name".to_owned(), node_id.to_owned())];
    let (handle, addr) = start(node_id, 1, seeds, &transport, kvs).await;
    Node { handle, addr, keys }
}

/// The (node id, generation, value of `key`) of every node `at` knows.
async fn known(at: &Node, key: &str) -> Vec<(String, u64, Option<String>)> {
    at.handle
        .with_chitchat(|c| {
            c.node_states()
                .iter()
                .map(|(id, state)| {
                    (
                        id.node_id.to_string(),
                        id.generation_id,
                        state.get(key).map(str::to_owned),
                    )
                })
                .collect()
        })
        .await
}

async fn knows(at: &Node, node_id: &str) -> bool {
    known(at, "name")
        .await
        .iter()
        .any(|(id, _, name)| id == node_id && name.as_deref() == Some(node_id))
}

async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {DEADLINE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_without_the_key_change_nothing() {
    let a = sealed("a", &[], &[OLD]).await;
    let b = sealed("b", &[a.addr], &[OLD]).await;
    until("a and b converge", async || {
        knows(&a, "b").await && knows(&b, "a").await
    })
    .await;

    // Plain chitchat with the right cluster id, claiming to be a newer
    // generation of b that is leaving, and pointing b's address elsewhere.
    let forged = vec![
        ("name".to_owned(), "b".to_owned()),
        ("leaving".to_owned(), "1".to_owned()),
        ("info".to_owned(), "forged".to_owned()),
    ];
    let (_plain, _) = start("b", 99, &[a.addr, b.addr], &UdpTransport, forged).await;
    // A node sealed with another cluster's key.
    let _stranger = sealed("stranger", &[a.addr, b.addr], &[NEW]).await;
    // The control: a legitimate node started after them.
    let c = sealed("c", &[a.addr], &[OLD]).await;
    until("c joins a and b", async || {
        knows(&a, "c").await && knows(&b, "c").await
    })
    .await;

    for at in [&a, &b, &c] {
        let nodes = known(at, "leaving").await;
        assert!(
            nodes
                .iter()
                .all(|(id, generation, leaving)| *generation == 1
                    && leaving.is_none()
                    && id != "stranger"),
            "an outsider changed the view: {nodes:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_with_no_gap() {
    let a = sealed("a", &[], &[OLD]).await;
    let b = sealed("b", &[a.addr], &[OLD]).await;
    until("a and b converge", async || {
        knows(&a, "b").await && knows(&b, "a").await
    })
    .await;

    // Step 1: every node accepts the new key, still sealing with the old.
    a.keys.send_replace(ring(&[OLD, NEW]));
    b.keys.send_replace(ring(&[OLD, NEW]));
    // A node that seals with the new key already can join.
    let c = sealed("c", &[a.addr], &[NEW, OLD]).await;
    until("c joins after step 1", async || {
        knows(&a, "c").await && knows(&c, "b").await
    })
    .await;

    // Step 2: every node seals with the new key; step 3: the old retires.
    a.keys.send_replace(ring(&[NEW, OLD]));
    b.keys.send_replace(ring(&[NEW, OLD]));
    for node in [&a, &b, &c] {
        node.keys.send_replace(ring(&[NEW]));
    }
    let d = sealed("d", &[a.addr], &[NEW]).await;
    let stale = sealed("stale", &[a.addr, b.addr], &[OLD]).await;
    until("d joins after step 3", async || {
        knows(&a, "d").await && knows(&b, "d").await && knows(&d, "c").await
    })
    .await;
    assert!(!knows(&a, "stale").await && !knows(&stale, "a").await);
}

/// The transport reads the clock it is given: a node whose wall clock runs
/// ten minutes ahead (past the 120 s of skew allowed) is not heard, while
/// a node started after it with the right time joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_whose_clock_is_past_the_skew_window_is_not_heard() {
    let a = sealed("a", &[], &[OLD]).await;
    let ahead = ManualClock::new(SharedClock::system().wall_ms() + 600_000);
    let _skewed = sealed_at("skewed", &[a.addr], &[OLD], SharedClock::new(ahead)).await;
    let control = sealed("control", &[a.addr], &[OLD]).await;
    until("the control joins", async || {
        knows(&a, "control").await && knows(&control, "a").await
    })
    .await;
    assert!(!knows(&a, "skewed").await, "a skewed sender was heard");
}
