//! What the store holds (named trees) and what a write is (a batch of
//! puts and deletes), as plain values.

use serde::Serialize;

/// A keyspace of the store. Adding one is a storage-format change only if
/// it changes what existing trees mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tree {
    /// Node-local facts: format version, boot count.
    Meta,
    /// Operator-set node labels (UTF-8 key → UTF-8 value).
    NodeLabels,
    /// DHT chunks: partition (2 bytes, big-endian) ‖ BLAKE3 hash (32) →
    /// a versioned chunk record (see `dht::storage`).
    DhtChunks,
    /// DHT chunk write times: same key as `DhtChunks` → Unix ms (8 bytes,
    /// big-endian). Kept apart so that garbage collection scans small
    /// values, not chunk bytes.
    DhtChunkTimes,
    /// DHT manifests by file name (UTF-8) → version prefix ‖ manifest.
    DhtManifests,
    /// DHT partition index: partition (2) ‖ BLAKE3(name) (32) → name, so a
    /// partition's manifests can be listed without a full scan.
    DhtPartitionIndex,
    /// Anti-entropy entries: partition (2) ‖ bucket (4) ‖ BLAKE3(name)
    /// (32) → entry hash (32) ‖ entry (see `dht::storage`). Kept by
    /// [`DigestOp`]s, never written directly.
    AeEntries,
    /// Anti-entropy bucket digests: partition (2) ‖ bucket (4) → XOR of
    /// the bucket's entry hashes (32) ‖ entry count (4, big-endian).
    AeDigests,
}

impl Tree {
    /// Every tree, for opening them all at start.
    pub const ALL: [Tree; 8] = [
        Tree::Meta,
        Tree::NodeLabels,
        Tree::DhtChunks,
        Tree::DhtChunkTimes,
        Tree::DhtManifests,
        Tree::DhtPartitionIndex,
        Tree::AeEntries,
        Tree::AeDigests,
    ];

    /// The sled tree name; never change one (it is on disk).
    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::NodeLabels => "node_labels",
            Tree::DhtChunks => "dht_chunks",
            Tree::DhtChunkTimes => "dht_chunk_times",
            Tree::DhtManifests => "dht_manifests",
            Tree::DhtPartitionIndex => "dht_partition_index",
            Tree::AeEntries => "ae_entries",
            Tree::AeDigests => "ae_digests",
        }
    }
}

/// One change inside a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Set `key` to `value`.
    Put {
        /// Keyspace.
        tree: Tree,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// Keyspace.
        tree: Tree,
        /// Key.
        key: Vec<u8>,
    },
}

impl WriteOp {
    fn tree(&self) -> Tree {
        match self {
            WriteOp::Put { tree, .. } | WriteOp::Delete { tree, .. } => *tree,
        }
    }
}

/// Set or remove one entry of a hashed set and keep that set's digest row
/// current: the row holds the XOR of its entries' hashes (32 bytes) and
/// their count (4 bytes, big-endian). The store reads the entry's previous
/// hash when it applies the batch — the writer applies batches one at a
/// time, so the read and the two writes see no other write between them —
/// which makes a digest update O(1) and durable with the write it follows.
/// Applied after the batch's puts and deletes: a crash between them leaves
/// a digest that lacks the write (a difference anti-entropy repairs by
/// writing it again), never one that claims a write the store lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestOp {
    /// Keyspace of the entries; each value starts with its 32-byte hash.
    pub entries: Tree,
    /// The entry's key.
    pub key: Vec<u8>,
    /// Its new value (hash first), or `None` to remove it.
    pub value: Option<Vec<u8>>,
    /// Keyspace of the digest rows.
    pub digests: Tree,
    /// The row that covers this entry.
    pub row: Vec<u8>,
}

/// Recompute a digest row from the entries under its key prefix: the
/// repair of a row that drifted from its entries (a bit flip, a bug),
/// done inside the writer so that no write lands between the scan and
/// the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRebuild {
    /// Keyspace of the entries; each value starts with its 32-byte hash.
    pub entries: Tree,
    /// Keyspace of the digest rows.
    pub digests: Tree,
    /// The row, which is also the key prefix of its entries.
    pub row: Vec<u8>,
}

/// Bytes of a digest row: XOR (32) ‖ count (4).
pub const DIGEST_ROW_BYTES: usize = 36;

/// A precondition checked by the store immediately before it applies a
/// batch. The store handles one request at a time, so check and write are
/// atomic with respect to every other store request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `key` already exists in `tree`, or `tree` holds fewer than `max` keys.
    RoomFor {
        /// Keyspace.
        tree: Tree,
        /// The key about to be written.
        key: Vec<u8>,
        /// Upper bound on keys in the tree.
        max: usize,
    },
    /// `key` is absent from `tree`.
    Absent {
        /// Keyspace.
        tree: Tree,
        /// The key.
        key: Vec<u8>,
    },
    /// `key` is absent, or its stored value starts with a version prefix
    /// that is not newer (bytewise) than `version`. Versioned values put
    /// a big-endian version first so that last-writer-wins is one compare
    /// inside the store, atomic with the write.
    NotNewer {
        /// Keyspace.
        tree: Tree,
        /// The key about to be written.
        key: Vec<u8>,
        /// The version prefix of the value about to be written.
        version: Vec<u8>,
    },
}

/// Changes applied together and acknowledged once durable. Changes to one
/// tree are atomic; across trees they are applied tree by tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub(crate) ops: Vec<WriteOp>,
    pub(crate) digests: Vec<DigestOp>,
    pub(crate) rebuilds: Vec<RowRebuild>,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) space: SpaceClass,
}

/// How a batch may use the free-space reserve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SpaceClass {
    /// Ordinary data: refused once free space reaches the reserve.
    #[default]
    Data,
    /// Small writes that let an operator recover (tombstones, settings):
    /// may use the lower half of the reserve.
    Recovery,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a put.
    pub fn put(mut self, tree: Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.ops.push(WriteOp::Put {
            tree,
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Add a delete.
    pub fn delete(mut self, tree: Tree, key: impl Into<Vec<u8>>) -> Self {
        self.ops.push(WriteOp::Delete {
            tree,
            key: key.into(),
        });
        self
    }

    /// Add a digest update, applied after the puts and deletes.
    pub fn digest(mut self, op: DigestOp) -> Self {
        self.digests.push(op);
        self
    }

    /// The digest updates, in order.
    pub fn digest_ops(&self) -> &[DigestOp] {
        &self.digests
    }

    /// Add a row rebuild, applied after the digest updates.
    pub fn rebuild_row(mut self, op: RowRebuild) -> Self {
        self.rebuilds.push(op);
        self
    }

    /// The row rebuilds, in order.
    pub fn row_rebuilds(&self) -> &[RowRebuild] {
        &self.rebuilds
    }

    /// Apply the batch only if `condition` holds (else `ConditionFailed`).
    pub fn require(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// The preconditions.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// The changes, in order.
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    /// Mark the batch as a small recovery write (see [`SpaceClass`]).
    pub fn recovery(mut self) -> Self {
        self.space = SpaceClass::Recovery;
        self
    }

    /// How the batch may use the reserve.
    pub fn space_class(&self) -> SpaceClass {
        self.space
    }

    /// Whether the batch adds data (puts), as opposed to only removing it:
    /// a full disk refuses the former and still accepts the latter.
    pub fn grows(&self) -> bool {
        self.ops.iter().any(|op| matches!(op, WriteOp::Put { .. }))
            || self.digests.iter().any(|d| d.value.is_some())
    }

    /// Approximate payload size in bytes (keys and values).
    pub fn payload_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                WriteOp::Put { key, value, .. } => key.len() + value.len(),
                WriteOp::Delete { key, .. } => key.len(),
            })
            .sum::<usize>()
            + self
                .digests
                .iter()
                .map(|d| d.key.len() + d.value.as_ref().map_or(0, Vec::len) + DIGEST_ROW_BYTES)
                .sum::<usize>()
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.ops.len() + self.digests.len() + self.rebuilds.len()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.digests.is_empty() && self.rebuilds.is_empty()
    }

    /// The trees touched, each once, in first-touched order.
    pub fn trees(&self) -> Vec<Tree> {
        let mut trees = Vec::new();
        for op in &self.ops {
            if !trees.contains(&op.tree()) {
                trees.push(op.tree());
            }
        }
        trees
    }
}
