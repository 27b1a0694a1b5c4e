//! Errors of file operations, as the HTTP layer maps them.

use thiserror::Error;

/// Why a file operation failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FilesError {
    /// The request is malformed (name, labels, filters).
    #[error("{0}")]
    BadRequest(String),
    /// No such file (or it was deleted).
    #[error("no file named {0:?}")]
    NotFound(String),
    /// The upload exceeds the configured size limit.
    #[error("file exceeds the {limit_bytes}-byte limit")]
    TooLarge {
        /// The limit.
        limit_bytes: u64,
    },
    /// Fewer replicas than the quorum answered: nothing was made visible.
    #[error("quorum not reached: {got} of {needed} replicas ({detail})")]
    Quorum {
        /// Replicas needed.
        needed: usize,
        /// Replicas that answered.
        got: usize,
        /// What the others said.
        detail: String,
    },
    /// Replicas refused the write because their disks are full.
    #[error("replica disks are full: {0}")]
    DiskFull(String),
    /// Every replica's copy of a chunk is missing or fails verification.
    #[error("chunk {0} is unreadable on every replica")]
    Unreadable(String),
    /// The client's request body failed mid-stream.
    #[error("request body: {0}")]
    Body(String),
    /// This node started moments ago and has not linked to its peers yet,
    /// so it cannot tell where the file's replicas are.
    #[error("this node is still joining the cluster (not linked to its peers yet); retry shortly or ask another node")]
    NotSettled,
    /// This node cannot confirm that it is on the majority side of the
    /// cluster (its majority lease ran out: docs/dht.md, "The fence"), so
    /// it acknowledges no write and serves no quorum read.
    #[error("this node cannot confirm a majority of the cluster ({have} of the {need} other nodes it needs answered within the lease; {cluster} nodes): it may be cut off by a network partition; retry on a node on the majority side")]
    NoMajority {
        /// Other nodes that answered within the lease.
        have: usize,
        /// Other nodes whose answers are needed.
        need: usize,
        /// Nodes in the cluster, this one included.
        cluster: usize,
    },
    /// This node was cut off from the majority and has just reached it
    /// again; it waits one lease length before acknowledging, so that
    /// the nodes that moved its partitions meanwhile hear that it is
    /// back (docs/dht.md, "The fence").
    #[error("this node was cut off from the majority of the cluster and acknowledges again in {wait_ms} ms; retry shortly or on another node")]
    Rejoining {
        /// How long until it acknowledges again.
        wait_ms: u64,
    },
    /// The name is under a prefix pinned to zones in which fewer than W
    /// nodes are live (docs/dht.md, "Zones"): the write would have to
    /// leave the zones, so it is refused.
    #[error("cannot meet the zone pin: {0}")]
    Pinned(String),
    /// The upload took longer than the chunk collection grace allows.
    #[error("upload took longer than {0} ms")]
    TooSlow(u64),
}
