//! The exchange actor's messages (local only; peers speak the versioned
//! `Request::Exchange` of the DHT wire, never these).

use hypha_supervisors::CrashMessage;
use ractor::RpcReplyPort;

use super::run::{HandOff, Report};
use super::view::PartitionView;
use crate::storage::Rebuild;
use hypha_cluster::membership::MemberKey;

/// What a finished exchange task reports.
pub enum TaskDone {
    /// An exchange of `partition` with `peer`.
    Exchanged {
        /// Partition.
        partition: u16,
        /// The other replica.
        peer: MemberKey,
        /// Its report, or why it failed.
        result: Result<Report, String>,
    },
    /// A full rebuild of a partition's digests.
    Rebuilt {
        /// Partition.
        partition: u16,
        /// What it fixed, or why it failed.
        result: Result<Rebuild, String>,
    },
    /// A hand-off attempt.
    HandedOff {
        /// Partition.
        partition: u16,
        /// What it did, or why it failed.
        result: Result<HandOff, String>,
    },
}

/// Requests the exchange actor handles.
pub enum AntiEntropyMessage {
    /// Collect finished work, follow placement, look for held data,
    /// start due work (on a timer).
    Tick,
    /// A task finished: record it and start the next due work at once.
    Finished {
        /// The task.
        id: tokio::task::Id,
        /// What it did.
        done: TaskDone,
    },
    /// The schedule of every partition replicated or handed off here.
    Status {
        /// Answered with one view per partition (digests not filled in).
        reply: RpcReplyPort<Vec<PartitionView>>,
    },
    /// Graceful leave: hand every partition off to the replicas it has
    /// without this node. Answered with the partitions still held here
    /// (ask again until 0).
    Leave {
        /// Partitions left to hand off.
        reply: RpcReplyPort<usize>,
    },
    /// Chaos: panic inside the handler.
    Crash,
}

impl ractor::Message for AntiEntropyMessage {}

impl CrashMessage for AntiEntropyMessage {
    fn crash() -> Self {
        AntiEntropyMessage::Crash
    }
}
