//! The backup index: what one snapshot holds (every file with its
//! metadata and chunk list) and its root hash, computed over a canonical
//! encoding of the entries so that `hypha backup verify` can recompute it
//! from the index file whatever its JSON layout. Also the file document
//! the backup API serves, which is the index entry plus inline content.
//! Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;

use hypha_dht::manifest::Manifest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Format of a snapshot index (`format` in the file).
pub const SNAPSHOT_FORMAT: u32 = 1;
/// Domain separation of the root hash.
const ROOT_CONTEXT: &[u8] = b"hypha-backup-index-v1";

/// A BLAKE3 hash, written as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// BLAKE3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Parse 64 hex digits.
    pub fn parse(hex_text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_text, &mut out).ok()?;
        Some(Self(out))
    }

    /// The 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// One chunk of a file: its hash and length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// BLAKE3 of the chunk's bytes (its file name under `chunks/`).
    pub hash: Hash32,
    /// Length in bytes.
    pub len: u32,
}

/// One file of a snapshot (and of a backup API page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the whole content.
    pub root: Hash32,
    /// MIME type.
    pub content_type: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// First written (Unix ms).
    pub created_ms: u64,
    /// This version written (Unix ms).
    pub modified_ms: u64,
    /// The version backed up: the HLC stamp and writer of the manifest.
    pub version: String,
    /// Partition of the name in the source cluster.
    pub partition: u16,
    /// Chunks in order. In a snapshot, a file the cluster stored inline
    /// (small) has one chunk, its content (hash = root); an empty file
    /// has none.
    pub chunks: Vec<ChunkEntry>,
    /// Only in backup API pages: a small file's content, hex (it lives in
    /// its manifest, not in chunks). Never in a snapshot index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
}

impl FileEntry {
    /// The entry of a live manifest in `partition`, as the API serves it.
    pub fn of_manifest(m: &Manifest, partition: u16) -> Self {
        Self {
            name: m.name.clone(),
            size: m.size,
            root: Hash32(m.root),
            content_type: m.content_type.clone(),
            labels: m.labels.clone(),
            created_ms: m.created.unix_ms(),
            modified_ms: m.modified.unix_ms(),
            version: format!("{:016x}.{}", m.modified.0, hex::encode(m.writer)),
            partition,
            chunks: m
                .chunks
                .iter()
                .map(|c| ChunkEntry {
                    hash: Hash32(c.hash),
                    len: c.len,
                })
                .collect(),
            inline: (!m.inline.is_empty()).then(|| hex::encode(&m.inline)),
        }
    }

    /// Whether the chunk lengths add up to the size.
    pub fn sizes_add_up(&self) -> bool {
        self.chunks.iter().map(|c| u64::from(c.len)).sum::<u64>() == self.size
    }

    /// The canonical bytes of the entry (what the root hash covers):
    /// every field length-prefixed, big-endian, in declaration order;
    /// `inline` is not part of an index entry.
    fn canonical(&self, out: &mut Vec<u8>) {
        fn text(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u64).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        text(out, &self.name);
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.root.0);
        text(out, &self.content_type);
        out.extend_from_slice(&(self.labels.len() as u64).to_be_bytes());
        for (k, v) in &self.labels {
            text(out, k);
            text(out, v);
        }
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        out.extend_from_slice(&self.modified_ms.to_be_bytes());
        text(out, &self.version);
        out.extend_from_slice(&self.partition.to_be_bytes());
        out.extend_from_slice(&(self.chunks.len() as u64).to_be_bytes());
        for c in &self.chunks {
            out.extend_from_slice(&c.hash.0);
            out.extend_from_slice(&c.len.to_be_bytes());
        }
    }
}

/// One snapshot: `snapshots/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_FORMAT`].
    pub format: u32,
    /// Its id (Unix ms of its start, 13 digits: ids sort by time).
    pub id: String,
    /// When it started (Unix ms).
    pub started_ms: u64,
    /// When it was complete (Unix ms).
    pub finished_ms: u64,
    /// The node it was taken through.
    pub source: String,
    /// Partitions of the source cluster.
    pub partitions: u32,
    /// [`root_of`] the files.
    pub root: Hash32,
    /// Every file, in name order.
    pub files: Vec<FileEntry>,
}

impl Snapshot {
    /// A snapshot of `files` (sorted here), its root computed.
    pub fn new(
        id: String,
        started_ms: u64,
        finished_ms: u64,
        source: String,
        partitions: u32,
        mut files: Vec<FileEntry>,
    ) -> Self {
        files.sort_by(|a, b| a.name.cmp(&b.name));
        for f in &mut files {
            f.inline = None;
        }
        Self {
            format: SNAPSHOT_FORMAT,
            id,
            started_ms,
            finished_ms,
            source,
            partitions,
            root: root_of(&files),
            files,
        }
    }

    /// Total bytes of its files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Every chunk it references, each once.
    pub fn chunk_set(&self) -> std::collections::BTreeSet<Hash32> {
        self.files
            .iter()
            .flat_map(|f| f.chunks.iter().map(|c| c.hash))
            .collect()
    }
}

/// The root hash of an index: BLAKE3 over a context string, the entry
/// count and each entry's canonical bytes, in the order given (a snapshot
/// keeps them in name order).
pub fn root_of(files: &[FileEntry]) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(ROOT_CONTEXT);
    hasher.update(&(files.len() as u64).to_be_bytes());
    let mut buf = Vec::new();
    for f in files {
        buf.clear();
        f.canonical(&mut buf);
        hasher.update(&(buf.len() as u64).to_be_bytes());
        hasher.update(&buf);
    }
    Hash32(*hasher.finalize().as_bytes())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn file(name: &str, chunks: &[(&[u8], u32)]) -> FileEntry {
        let chunks: Vec<ChunkEntry> = chunks
            .iter()
            .map(|(bytes, len)| ChunkEntry {
                hash: Hash32::of(bytes),
                len: *len,
            })
            .collect();
        FileEntry {
            name: name.into(),
            size: chunks.iter().map(|c| u64::from(c.len)).sum(),
            root: Hash32::of(name.as_bytes()),
            content_type: "application/octet-stream".into(),
            labels: BTreeMap::new(),
            created_ms: 1,
            modified_ms: 2,
            version: "v".into(),
            partition: 3,
            chunks,
            inline: None,
        }
    }

    #[test]
    fn hashes_round_trip_as_hex_and_bad_hex_is_refused() {
        let h = Hash32::of(b"x");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Hash32>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Hash32>("\"abc\"").is_err());
        assert!(Hash32::parse(&"g".repeat(64)).is_none());
    }

    #[test]
    fn the_root_survives_a_json_round_trip_and_sees_every_field() {
        let snap = Snapshot::new(
            "1".into(),
            1,
            2,
            "http://n".into(),
            1024,
            vec![file("b", &[(b"x", 1)]), file("a", &[(b"y", 1)])],
        );
        assert_eq!(snap.files[0].name, "a", "sorted by name");
        let text = serde_json::to_string_pretty(&snap).unwrap();
        let back: Snapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(root_of(&back.files), snap.root);
        let mut changed = back.clone();
        changed.files[0].labels.insert("k".into(), "v".into());
        assert_ne!(root_of(&changed.files), snap.root);
        let mut changed = back;
        changed.files[1].chunks[0].len = 2;
        assert_ne!(root_of(&changed.files), snap.root);
    }

    proptest! {
        /// Two different entry lists (by name or chunk) have different
        /// roots: the length prefixes leave no ambiguity in the encoding.
        #[test]
        fn names_split_differently_hash_differently(a in "[ab]{0,4}", b in "[ab]{0,4}") {
            let x = vec![file(&a, &[]), file(&b, &[])];
            let y = vec![file(&format!("{a}{b}"), &[]), file("", &[])];
            if !(b.is_empty()) {
                prop_assert_ne!(root_of(&x), root_of(&y));
            }
        }
    }
}
