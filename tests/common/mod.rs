//! Helpers for black-box node tests: the test kit (`tests/kit`, node
//! processes, clusters, polling, the admin API) re-exported, and what only
//! the tests use: nodes inside the test process, signed tokens, a stopped
//! node's store opened directly.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

pub mod tools;

pub use hypha_testkit::*;

use hypha::auth::{Claims, Role, TokenKey, TokenTable};
use hypha::cli::NodeArgs;
use hypha::config::NodeConfig;
use hypha::node::{self, RunningNode};
use hypha::secrets::{self, Secrets};

/// The key test nodes verify signed tokens with.
pub const TOKEN_KEY: &[u8] = b"test-token-key-0123456789abcdef-0123456789";

/// A token signed with [`TOKEN_KEY`] for the default cluster, issued
/// `age_s` ago and valid `ttl_s` from then.
pub fn signed_token(role: Role, age_s: u64, ttl_s: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims::new("hypha", "tests", role, now - age_s, ttl_s);
    TokenKey::new(TOKEN_KEY).unwrap().sign(&claims).unwrap()
}

pub fn secrets() -> Secrets {
    let mut tokens = TokenTable::new("hypha", false);
    tokens.add(ADMIN_TOKEN, Role::Admin);
    tokens.add(READ_TOKEN, Role::Read);
    tokens.add_key(&TokenKey::new(TOKEN_KEY).unwrap());
    Secrets {
        cookie: secrets::generate(),
        tokens,
        generated: Vec::new(),
    }
}

pub fn config(dir: &Path, max_restarts: Option<u32>) -> NodeConfig {
    let args = NodeArgs {
        data_dir: Some(dir.to_owned()),
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        cluster_listen: Some("127.0.0.1:0".parse().unwrap()),
        gossip_listen: Some("127.0.0.1:0".parse().unwrap()),
        bulk_listen: Some("127.0.0.1:0".parse().unwrap()),
        max_restarts,
        ..NodeArgs::default()
    };
    let mut config = NodeConfig::resolve(&args).unwrap();
    config.cluster.tls_dir = Some(test_tls_dir(dir));
    config
}

/// Start a node inside this test process.
pub async fn start_in_process(dir: &Path, max_restarts: Option<u32>) -> RunningNode {
    start_configured(&config(dir, max_restarts)).await
}

/// Start a node with `config` (from [`config`], then adjusted) inside this
/// test process.
pub async fn start_configured(config: &NodeConfig) -> RunningNode {
    hypha_supervisors::install_quiet_panic_hook();
    node::start(config, &secrets()).await.unwrap()
}

/// Flip one byte in each chunk a stopped node stores for `partition` whose
/// bytes `pick` chooses; how many were flipped.
pub fn corrupt_chunks(data_dir: &Path, partition: u16, pick: impl Fn(&[u8]) -> bool) -> usize {
    use hypha_store::{KvEngine, SledEngine, Tree, WriteBatch};
    let engine = SledEngine::open(&data_dir.join("db")).unwrap();
    let chunks = engine
        .scan_prefix(Tree::DhtChunks, &partition.to_be_bytes(), usize::MAX)
        .unwrap();
    let mut batch = WriteBatch::new();
    let mut flipped = 0;
    for (key, mut value) in chunks {
        if pick(&value) {
            value[0] ^= 0xff;
            batch = batch.put(Tree::DhtChunks, key, value);
            flipped += 1;
        }
    }
    engine.apply(&batch).unwrap();
    engine.flush().unwrap();
    flipped
}

/// `hypha ARGS` as a client of the node at `url`, with `token` as its
/// admin token (none: no token at all, whatever the environment holds).
pub fn hypha_cli(url: &str, token: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hypha"));
    cmd.args(args)
        .env("HYPHA_URL", url)
        .env_remove("HYPHA_ADMIN_TOKEN");
    if let Some(token) = token {
        cmd.env("HYPHA_ADMIN_TOKEN", token);
    }
    cmd.output().unwrap()
}

/// What a client command printed, after checking that it succeeded.
pub fn cli_stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Restarts in a `/v1/actors` tree: the supervisor's own and every
/// child's, all the way down.
pub fn restarts(tree: &serde_json::Value) -> u64 {
    let own = tree["restarts"].as_u64().unwrap_or(0);
    let children = tree["children"].as_array().map_or(0, |cs| {
        cs.iter()
            .map(|c| c["restarts"].as_u64().unwrap_or(0) + c.get("supervisor").map_or(0, restarts))
            .sum()
    });
    own + children
}
