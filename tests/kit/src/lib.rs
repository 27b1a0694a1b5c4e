//! The one test kit of Hypha: what the tests (through `tests/common`), the
//! benchmarks and the chaos harness use to run real nodes.
//!
//! - [`process`]: one `hypha node` child process (start it on loopback
//!   with free ports and wait for its admin URL, signal, stop, kill).
//! - [`cluster`]: N such processes seeded by one another, waited for until
//!   every node sees every other Up and places files on them all.
//! - [`fleet`]: watched node processes for long runs (the chaos harness):
//!   fixed or kernel-picked addresses, a uid, extra environment and a log
//!   file per node; kill, freeze, thaw, restart on the same data dir, and
//!   the exits nobody asked for.
//! - [`poll`]: waiting for a condition with a deadline (`eventually`,
//!   `wait_until`), never sleeping and hoping.
//! - [`http`]: admin API clients, node documents and Prometheus samples.
//! - [`certs`]: the test cluster CA and each node's link certificate.
//! - [`bitrot`]: seeded bit flips in a stopped node's store files.
//!
//! The command line of a node comes from [`hypha::launch`], which
//! `hypha cluster up` uses too. A failing helper panics (it fails the test
//! that called it), except in [`poll`] and [`fleet`], whose errors the
//! chaos harness reports as its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod bitrot;
pub mod certs;
pub mod cluster;
pub mod fleet;
pub mod http;
pub mod paths;
pub mod poll;
pub mod process;
pub mod volatile_fs;

pub use certs::{test_ca_dir, test_tls_dir};
pub use http::{block_on, client, get_json, metric, metric_of, wait_for_owners, Api};
pub use poll::{eventually, wait_until};
pub use process::{
    admin_url_in, node_command, spawn_command, spawn_node, spawn_or_exit, NodeProcess, Spawned,
};

/// The admin token every test node accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
/// The read-only token every test node accepts.
pub const READ_TOKEN: &str = "test-read-token-0123456789abcdef";
/// The cookie every test node shares.
pub const COOKIE: &str = "test-cookie-0123456789abcdef0123";

/// Deterministic incompressible test data (xorshift64).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
