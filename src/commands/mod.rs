//! Client-side subcommands: `cluster up` (a local cluster of real node
//! processes), `members` (the membership view of a running node) and the
//! file commands (`put`, `get`, `ls`, `stat`, `rm`) and the job commands
//! (`jobs submit|status|ls|cancel`, `queues`).

pub mod cert;
pub mod cluster_up;
pub mod files;
pub mod jobs;
pub mod members;
pub mod token;

use std::time::Duration;

/// Timeout of one admin API request made by a subcommand.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP client for the admin API.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}
