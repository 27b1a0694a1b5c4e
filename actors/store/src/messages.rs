//! The store's message enum (local only; never on the wire).

use hypha_supervisors::CrashMessage;
use ractor::RpcReplyPort;

use super::batch::{Tree, WriteBatch};
use super::error::StoreError;

/// Key-value pairs returned by a scan.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Requests the store answers.
pub enum StoreMessage {
    /// Read one key.
    Get {
        /// Keyspace.
        tree: Tree,
        /// Key.
        key: Vec<u8>,
        /// The value, if present.
        reply: RpcReplyPort<Result<Option<Vec<u8>>, StoreError>>,
    },
    /// Keys with a prefix, in order, at most `limit`.
    Scan {
        /// Keyspace.
        tree: Tree,
        /// Prefix (empty: all).
        prefix: Vec<u8>,
        /// Upper bound on entries returned.
        limit: usize,
        /// The entries.
        reply: RpcReplyPort<Result<Entries, StoreError>>,
    },
    /// Keys with a prefix strictly after `after`, in order, at most `limit`.
    ScanAfter {
        /// Keyspace.
        tree: Tree,
        /// Prefix (empty: all).
        prefix: Vec<u8>,
        /// Exclusive start key (empty: from the prefix).
        after: Vec<u8>,
        /// Upper bound on entries returned.
        limit: usize,
        /// The entries.
        reply: RpcReplyPort<Result<Entries, StoreError>>,
    },
    /// Apply a batch and answer once it is durable.
    Write {
        /// The changes.
        batch: WriteBatch,
        /// `Ok` only after the flush covering the batch returned.
        reply: RpcReplyPort<Result<(), StoreError>>,
    },
    /// Chaos: panic inside the handler.
    Crash,
}

impl ractor::Message for StoreMessage {}

impl CrashMessage for StoreMessage {
    fn crash() -> Self {
        StoreMessage::Crash
    }
}
