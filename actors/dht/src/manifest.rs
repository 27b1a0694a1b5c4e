//! File manifests: what a file is (name, size, chunk list, content hash,
//! times, type, labels) or that it was deleted (a tombstone). A manifest
//! is stored under its name in the partition of BLAKE3(name), written only
//! after all its chunks are durable. Versions are (modified HLC, writer
//! node id): the greater one wins everywhere (last writer wins).
//!
//! A file of at most [`MAX_INLINE_BYTES`] carries its content inside the
//! manifest instead of in chunks: one durable write per replica instead of
//! two, and one round trip to read it. Inline content is checked against
//! the manifest's root hash like any chunk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::codec::{self, CodecError};
use super::hlc::Timestamp;
use super::keyspace::{Key, Partition, Partitioning};

/// Format of stored and transmitted manifests. Format 2 added inline
/// content; format 1 existed only before the first release and is not read.
pub const MANIFEST_FORMAT: u8 = 2;
/// Largest file stored inline in its manifest.
pub const MAX_INLINE_BYTES: usize = 16 * 1024;
/// Longest file name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Most chunks in one file (keeps a manifest well under 1 MiB).
pub const MAX_CHUNKS: usize = 16_384;
/// Longest content type.
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;
/// Most labels on one file.
pub const MAX_FILE_LABELS: usize = 32;
/// Bytes of the version prefix on stored manifests.
pub const VERSION_BYTES: usize = 40;

/// One chunk of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// BLAKE3 of the chunk's bytes (its storage key).
    pub hash: [u8; 32],
    /// Length in bytes.
    pub len: u32,
}

/// Whether a manifest describes a file or its deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileState {
    /// The file exists.
    Live,
    /// Deleted; kept so that older versions do not come back.
    Tombstone,
}

/// A file version (or tombstone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// `MANIFEST_FORMAT`.
    pub format: u8,
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Chunks in order.
    pub chunks: Vec<ChunkRef>,
    /// BLAKE3 of the whole content.
    pub root: [u8; 32],
    /// When the name was first written (HLC), kept across overwrites.
    pub created: Timestamp,
    /// When this version was written (HLC): the version.
    pub modified: Timestamp,
    /// Node that wrote this version: breaks HLC ties.
    pub writer: [u8; 32],
    /// MIME type given at upload.
    pub content_type: String,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Live or tombstone.
    pub state: FileState,
    /// The content itself, for a small file (then `chunks` is empty).
    #[serde(with = "serde_bytes")]
    pub inline: Vec<u8>,
}

/// A manifest (or name) that is not acceptable.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Bad name.
    #[error("file names are 1-{MAX_NAME_BYTES} bytes of UTF-8 without control characters")]
    BadName,
    /// Too many chunks or inconsistent sizes.
    #[error("bad chunk list: {0}")]
    BadChunks(String),
    /// Bad content type.
    #[error("content type must be at most {MAX_CONTENT_TYPE_BYTES} printable ASCII bytes")]
    BadContentType,
    /// Bad labels.
    #[error("bad label: {0}")]
    BadLabel(String),
    /// Undecodable.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Unknown format.
    #[error("manifest format {0} is not supported")]
    Format(u8),
}

/// Names under this prefix belong to the node itself (job and queue
/// records, docs/jobs.md): the API refuses to write or delete them, and
/// only an admin may read them (docs/security.md).
pub const RESERVED_PREFIX: &str = ".hypha/";

/// Whether `name` is reserved for the node's own records. Names are
/// compared exactly (the DHT key is the hash of the exact name), so no
/// other spelling reaches the same file.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

/// Check a file name.
pub fn validate_name(name: &str) -> Result<(), ManifestError> {
    let ok =
        !name.is_empty() && name.len() <= MAX_NAME_BYTES && !name.chars().any(char::is_control);
    ok.then_some(()).ok_or(ManifestError::BadName)
}

/// Check file labels (same shape as node labels, fewer of them).
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), ManifestError> {
    if labels.len() > MAX_FILE_LABELS {
        return Err(ManifestError::BadLabel(format!(
            "at most {MAX_FILE_LABELS} labels"
        )));
    }
    for (k, v) in labels {
        hypha_core::labels::validate_key(k).map_err(|e| ManifestError::BadLabel(e.to_string()))?;
        hypha_core::labels::validate_value(v)
            .map_err(|e| ManifestError::BadLabel(e.to_string()))?;
    }
    Ok(())
}

/// The DHT key of a name.
pub fn name_key(name: &str) -> Key {
    Key::hash(name.as_bytes())
}

impl Manifest {
    /// The version: (modified, writer) as 40 big-endian bytes, which
    /// compare like the pair.
    pub fn version(&self) -> [u8; VERSION_BYTES] {
        let mut out = [0u8; VERSION_BYTES];
        out[..8].copy_from_slice(&self.modified.0.to_be_bytes());
        out[8..].copy_from_slice(&self.writer);
        out
    }

    /// The partition holding this manifest.
    pub fn partition(&self, p: &Partitioning) -> Partition {
        p.partition_of_name(&self.name, &name_key(&self.name))
    }

    /// Whether this is a live file.
    pub fn is_live(&self) -> bool {
        self.state == FileState::Live
    }

    /// Check every field's shape and that sizes add up.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format(self.format));
        }
        validate_name(&self.name)?;
        validate_labels(&self.labels)?;
        let ct_ok = self.content_type.len() <= MAX_CONTENT_TYPE_BYTES
            && self.content_type.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !ct_ok {
            return Err(ManifestError::BadContentType);
        }
        if self.chunks.len() > MAX_CHUNKS {
            return Err(ManifestError::BadChunks(format!(
                "{} chunks, at most {MAX_CHUNKS}",
                self.chunks.len()
            )));
        }
        let total: u64 =
            self.chunks.iter().map(|c| u64::from(c.len)).sum::<u64>() + self.inline.len() as u64;
        if self.state == FileState::Live && total != self.size {
            return Err(ManifestError::BadChunks(format!(
                "chunks add up to {total} bytes, size says {}",
                self.size
            )));
        }
        if self.chunks.iter().any(|c| c.len == 0) {
            return Err(ManifestError::BadChunks("empty chunk".into()));
        }
        self.validate_inline()
    }

    fn validate_inline(&self) -> Result<(), ManifestError> {
        if self.inline.is_empty() {
            return Ok(());
        }
        let ok = self.state == FileState::Live
            && self.chunks.is_empty()
            && self.inline.len() <= MAX_INLINE_BYTES
            && self.inline.len() as u64 == self.size;
        if !ok {
            return Err(ManifestError::BadChunks(format!(
                "inline content must be a live file's only content, at most {MAX_INLINE_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// Whether inline content (if any) matches the root hash. Checked on
    /// every read, as chunks are: a flipped bit on disk is caught here.
    pub fn inline_verified(&self) -> bool {
        self.inline.is_empty() || blake3::hash(&self.inline).as_bytes() == &self.root
    }

    /// Stored form: version prefix, then the encoded manifest.
    pub fn to_stored(&self) -> Result<Vec<u8>, ManifestError> {
        let body = codec::encode(self)?;
        let mut out = Vec::with_capacity(VERSION_BYTES + body.len());
        out.extend_from_slice(&self.version());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Parse the stored form.
    pub fn from_stored(bytes: &[u8]) -> Result<Self, ManifestError> {
        let body = bytes
            .get(VERSION_BYTES..)
            .ok_or_else(|| CodecError::Malformed("stored manifest too short".into()))?;
        let manifest: Manifest = codec::decode(body)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Byte offset of each chunk's start, and the total.
    pub fn offsets(&self) -> Vec<u64> {
        let mut at = 0u64;
        let mut out = Vec::with_capacity(self.chunks.len());
        for c in &self.chunks {
            out.push(at);
            at += u64::from(c.len);
        }
        out
    }
}

/// The newest of some manifests (by version).
pub fn newest<'a>(manifests: impl IntoIterator<Item = &'a Manifest>) -> Option<&'a Manifest> {
    manifests.into_iter().max_by_key(|m| m.version())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(name: &str, modified: u64, writer: u8) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            name: name.into(),
            size: 3,
            chunks: vec![ChunkRef {
                hash: *blake3::hash(b"abc").as_bytes(),
                len: 3,
            }],
            root: *blake3::hash(b"abc").as_bytes(),
            created: Timestamp(1),
            modified: Timestamp(modified),
            writer: [writer; 32],
            content_type: "text/plain".into(),
            labels: BTreeMap::new(),
            state: FileState::Live,
            inline: Vec::new(),
        }
    }

    #[test]
    fn inline_content_is_checked() {
        let mut m = sample("small", 1, 1);
        m.chunks.clear();
        m.inline = b"abc".to_vec();
        assert!(m.validate().is_ok() && m.inline_verified());
        m.inline = b"abd".to_vec();
        assert!(
            m.validate().is_ok() && !m.inline_verified(),
            "hash mismatch caught"
        );
        m.inline = vec![0; MAX_INLINE_BYTES + 1];
        m.size = m.inline.len() as u64;
        assert!(m.validate().is_err(), "too large to inline");
        let mut both = sample("both", 1, 1);
        both.inline = b"abc".to_vec();
        assert!(both.validate().is_err(), "chunks and inline at once");
    }

    #[test]
    fn versions_order_by_time_then_writer() {
        let a = sample("f", 10, 1);
        let b = sample("f", 10, 2);
        let c = sample("f", 11, 0);
        assert!(a.version() < b.version() && b.version() < c.version());
        assert_eq!(newest([&a, &c, &b]), Some(&c));
    }

    #[test]
    fn stored_form_round_trips_and_rejects_garbage() {
        let m = sample("dir/file.txt", 42, 9);
        let stored = m.to_stored().unwrap();
        assert_eq!(stored[..VERSION_BYTES], m.version());
        assert_eq!(Manifest::from_stored(&stored).unwrap(), m);
        assert!(Manifest::from_stored(&stored[..10]).is_err());
        assert!(Manifest::from_stored(&[0u8; 80]).is_err());
        let mut bad = m.clone();
        bad.size = 4;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("a/b c.txt").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
    }
}
