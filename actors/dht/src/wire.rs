//! DHT node-to-node messages (wire version 1). These are network types,
//! separate from every actor's local messages: [`DhtWire`] makes them an
//! instance of the shared [`rpc`] layer, which frames them behind a
//! two-byte version, validates them on decode (with the bounds checked
//! here),
//! and answers with an error response — never a panic — when they do not
//! decode.
//!
//! Compatibility rule: within a version, only append enum variants (bincode
//! numbers them in order); any other change bumps [`WIRE_VERSION`].

use hypha_core::rpc::{self, frame, Direction, Protocol};
use serde::{Deserialize, Serialize};

use super::anti_entropy::exchange::{AeAnswer, AeRequest, AE_WIRE_VERSION};
use super::codec::CodecError;
use super::manifest::Manifest;

/// Version of this wire format.
pub const WIRE_VERSION: u16 = 1;
/// Most contacts a find-node answer carries.
pub const MAX_CONTACTS: usize = 64;
/// Most hashes in one has-chunks request.
pub const MAX_HAS: usize = 4_096;
/// Most entries a list request may ask for.
pub const MAX_LIST: u32 = 1_000;
/// Most keys in one manifests-by-key request.
pub const MAX_MANIFEST_KEYS: usize = 256;
/// Listing answers stop adding entries past this many bytes (estimated),
/// keeping every message under the 1 MiB limit.
pub const LIST_BYTES_BUDGET: usize = 512 * 1024;

/// A node as named on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Node id.
    pub id: [u8; 32],
    /// Member link name (`<id hex>.<generation>`).
    pub link: String,
}

/// Filter of a name listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListNames {
    /// Names start with this.
    pub prefix: String,
    /// Names strictly after this (cursor); empty: from the start.
    pub after: String,
    /// At most this many entries.
    pub limit: u32,
}

/// A file's metadata without its chunk list (listings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSummary {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the content.
    pub root: [u8; 32],
    /// First written (HLC).
    pub created: super::hlc::Timestamp,
    /// This version written (HLC).
    pub modified: super::hlc::Timestamp,
    /// Writer of this version.
    pub writer: [u8; 32],
    /// MIME type.
    pub content_type: String,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Live or tombstone.
    pub state: super::manifest::FileState,
}

impl FileSummary {
    /// The summary of a manifest.
    pub fn of(m: &Manifest) -> Self {
        Self {
            name: m.name.clone(),
            size: m.size,
            root: m.root,
            created: m.created,
            modified: m.modified,
            writer: m.writer,
            content_type: m.content_type.clone(),
            labels: m.labels.clone(),
            state: m.state,
        }
    }

    /// Version, comparable like [`Manifest::version`].
    pub fn version(&self) -> (super::hlc::Timestamp, [u8; 32]) {
        (self.modified, self.writer)
    }
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The receiver's known contacts closest to `target`.
    FindNode {
        /// Target key.
        target: [u8; 32],
        /// How many.
        count: u16,
    },
    /// Store a chunk durably.
    StoreChunk {
        /// Partition of the file.
        partition: u16,
        /// BLAKE3 of `data`; the receiver checks it.
        hash: [u8; 32],
        /// The bytes (one length-prefixed run, not a u8 sequence: same
        /// encoding, decoded in one copy instead of per element).
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Read a chunk.
    GetChunk {
        /// Partition of the file.
        partition: u16,
        /// Its hash.
        hash: [u8; 32],
    },
    /// Which of these chunks are stored.
    HasChunks {
        /// Partition of the file.
        partition: u16,
        /// Hashes.
        hashes: Vec<[u8; 32]>,
    },
    /// Store a manifest durably unless a newer version is stored.
    PutManifest {
        /// The manifest.
        manifest: Manifest,
    },
    /// Read a manifest.
    GetManifest {
        /// File name.
        name: String,
    },
    /// Manifests (and tombstones) by name, in name order.
    ListNames(ListNames),
    /// Names in a partition, in index order (anti-entropy, hand-off).
    ListPartition {
        /// Partition.
        partition: u16,
        /// Index keys strictly after this BLAKE3(name); empty: from the start.
        #[serde(with = "serde_bytes")]
        after: Vec<u8>,
        /// At most this many.
        limit: u32,
    },
    /// One step of an anti-entropy exchange: its own protocol, versioned
    /// on its own ([`AE_WIRE_VERSION`]), carried here.
    Exchange {
        /// Version of `request`.
        version: u16,
        /// The step.
        request: AeRequest,
    },
    /// Manifests and tombstones of a partition by name key (anti-entropy
    /// pulls: the exchange names entries by key, not by name).
    ManifestsByKey {
        /// Partition.
        partition: u16,
        /// BLAKE3 of each name.
        keys: Vec<[u8; 32]>,
    },
    /// Read a manifest for a quorum read: answered with the replica's
    /// [`Standing`] in the name's partition, so that the reader counts
    /// only replicas that hold the partition.
    ReadManifest {
        /// File name.
        name: String,
    },
}

/// What a node is to the partition a quorum read asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Standing {
    /// One of its replicas, caught up since it became one: its answer
    /// counts toward the read quorum.
    Serving,
    /// One of its replicas, still pulling from the others (it joined the
    /// set or restarted): its answer is data, not a quorum member.
    CatchingUp,
    /// Not one of its replicas in this node's view.
    NotReplica,
}

/// Why a request failed, as carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request did not decode or is out of range.
    BadRequest,
    /// The wire version is not spoken here.
    Version,
    /// Chunk bytes do not match their hash.
    HashMismatch,
    /// The receiver's disk is full.
    DiskFull,
    /// The receiver is overloaded or restarting.
    Unavailable,
    /// Local storage failed.
    Storage,
    /// A write (chunk or manifest) to a partition the receiver has no
    /// business holding ([`super::admission`]). Appended within wire
    /// version 1: a peer built before it fails to decode the answer, which
    /// its coordinator counts as a failed replica too — never a success.
    NotReplica,
}

/// A failed request, as carried on the wire.
pub type WireError = rpc::WireError<ErrorCode>;

impl rpc::Code for ErrorCode {
    const BAD_REQUEST: Self = Self::BadRequest;
    const VERSION: Self = Self::Version;
    const UNAVAILABLE: Self = Self::Unavailable;
}

/// Whether a manifest write took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutOutcome {
    /// Stored (or the same version was already stored).
    Stored,
    /// A newer version is stored; this one lost (last writer wins).
    Superseded,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Find-node answer.
    Nodes(Vec<Contact>),
    /// Chunk stored durably.
    ChunkStored,
    /// A chunk's verified bytes, if held.
    Chunk(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    /// Has-chunks answer, one per hash.
    Has(Vec<bool>),
    /// Manifest write outcome (durable either way).
    ManifestPut(PutOutcome),
    /// A manifest, if held.
    Manifest(Option<Manifest>),
    /// Listing answer, in name order; `more`: the page stopped at a size
    /// or count limit, so names after the last one may exist here.
    Files {
        /// Entries (tombstones included: they hide older versions).
        entries: Vec<FileSummary>,
        /// Whether the page is cut short.
        more: bool,
    },
    /// Partition listing: (index key, name) pairs; `more` as for `Files`.
    Names {
        /// Entries.
        entries: Vec<(Vec<u8>, String)>,
        /// Whether the page is cut short.
        more: bool,
    },
    /// Failure.
    Error(WireError),
    /// An anti-entropy answer.
    Exchange(AeAnswer),
    /// Manifests found for the first `handled` keys asked (the rest did
    /// not fit: ask again); keys not held are left out.
    Manifests {
        /// Keys looked up, from the first.
        handled: u32,
        /// What was found.
        manifests: Vec<Manifest>,
    },
    /// Answer to [`Request::ReadManifest`].
    ReplicaManifest {
        /// The manifest, if held.
        manifest: Option<Manifest>,
        /// Whether the answer counts toward a read quorum.
        standing: Standing,
    },
}

/// The DHT protocol, one instance of the shared [`rpc`] layer.
pub struct DhtWire;

impl Protocol for DhtWire {
    type Request = Request;
    type Response = Response;
    type Code = ErrorCode;
    const VERSION: u16 = WIRE_VERSION;
    const FORMAT: &'static str = "wire";
    const GROUP: &'static str = "hypha.dht";
    const BAD_REQUESTS_METRIC: &'static str = "hypha_dht_bad_requests_total";
    // An answer too large to encode is a storage-side failure to the caller.
    const ENCODE_FAILED: ErrorCode = ErrorCode::Storage;

    fn validate(request: &Request) -> Result<(), WireError> {
        validate(request)
    }

    fn refusal(err: WireError) -> Response {
        Response::Error(err)
    }

    fn into_result(response: Response) -> Result<Response, WireError> {
        match response {
            Response::Error(err) => Err(err),
            other => Ok(other),
        }
    }

    fn count_bytes(direction: Direction, bytes: usize) {
        let bytes = bytes as u64;
        match direction {
            Direction::Sent => metrics::counter!("hypha_dht_sent_bytes_total").increment(bytes),
            Direction::Received => {
                metrics::counter!("hypha_dht_received_bytes_total").increment(bytes)
            }
        }
    }
}

/// Encode a request with its version.
pub fn encode_request(request: &Request) -> Result<Vec<u8>, CodecError> {
    frame::encode_request::<DhtWire>(request)
}

/// Encode a response with its version.
pub fn encode_response(response: &Response) -> Result<Vec<u8>, CodecError> {
    frame::encode_response::<DhtWire>(response)
}

/// Decode and validate a request.
pub fn decode_request(bytes: &[u8]) -> Result<Request, WireError> {
    frame::decode_request::<DhtWire>(bytes)
}

/// Decode a response.
pub fn decode_response(bytes: &[u8]) -> Result<Response, WireError> {
    frame::decode_response::<DhtWire>(bytes)
}

fn bad(message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::BadRequest, message)
}

fn validate(request: &Request) -> Result<(), WireError> {
    match request {
        Request::FindNode { count, .. } if usize::from(*count) > MAX_CONTACTS => {
            Err(bad(format!("at most {MAX_CONTACTS} contacts")))
        }
        Request::StoreChunk { data, .. } if data.is_empty() => Err(bad("empty chunk")),
        Request::HasChunks { hashes, .. } if hashes.len() > MAX_HAS => {
            Err(bad(format!("at most {MAX_HAS} hashes")))
        }
        Request::PutManifest { manifest } => manifest.validate().map_err(|e| bad(e.to_string())),
        Request::GetManifest { name } | Request::ReadManifest { name } => {
            super::manifest::validate_name(name).map_err(|e| bad(e.to_string()))
        }
        Request::ListNames(l) if l.limit == 0 || l.limit > MAX_LIST => {
            Err(bad(format!("limit must be 1-{MAX_LIST}")))
        }
        Request::ListPartition { limit, .. } if *limit == 0 || *limit > MAX_LIST => {
            Err(bad(format!("limit must be 1-{MAX_LIST}")))
        }
        Request::Exchange { version, .. } if *version != AE_WIRE_VERSION => Err(WireError::new(
            ErrorCode::Version,
            format!("anti-entropy version {version}; this node speaks {AE_WIRE_VERSION}"),
        )),
        Request::ManifestsByKey { keys, .. } if keys.len() > MAX_MANIFEST_KEYS => {
            Err(bad(format!("at most {MAX_MANIFEST_KEYS} keys")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use proptest::prelude::*;

    #[test]
    fn requests_round_trip() {
        let r = Request::StoreChunk {
            partition: 7,
            hash: [1; 32],
            data: vec![1, 2, 3],
        };
        assert_eq!(decode_request(&encode_request(&r).unwrap()).unwrap(), r);
        let m = crate::manifest::tests::sample("f", 1, 1);
        let r = Request::PutManifest { manifest: m };
        assert_eq!(decode_request(&encode_request(&r).unwrap()).unwrap(), r);
    }

    /// `serde_bytes` fields must encode exactly as the plain `Vec<u8>`
    /// sequences that wire version 1 and manifest format 2 were written
    /// with, so that stored records and older peers stay readable.
    #[test]
    fn byte_fields_keep_the_sequence_encoding() {
        #[derive(Serialize)]
        enum PlainResponse {
            _Nodes(Vec<Contact>),
            _ChunkStored,
            Chunk(Option<Vec<u8>>),
        }
        let data = vec![7u8; 300];
        assert_eq!(
            codec::encode(&Response::Chunk(Some(data.clone()))).unwrap(),
            codec::encode(&PlainResponse::Chunk(Some(data.clone()))).unwrap()
        );
        let bytes = codec::encode(&PlainResponse::Chunk(Some(data.clone()))).unwrap();
        assert_eq!(
            codec::decode::<Response>(&bytes).unwrap(),
            Response::Chunk(Some(data))
        );
    }
    /// `NotReplica` was appended within wire version 1: the older codes
    /// keep their encoding, and a peer that predates it fails to decode
    /// the answer (an error it counts as a failed replica) — it never
    /// reads it as another code.
    #[test]
    fn not_replica_is_appended_and_older_peers_fail_to_decode_it() {
        #[derive(Debug, Serialize, Deserialize, PartialEq)]
        enum VersionOneCodes {
            BadRequest,
            Version,
            HashMismatch,
            DiskFull,
            Unavailable,
            Storage,
        }
        let pairs = [
            (ErrorCode::BadRequest, VersionOneCodes::BadRequest),
            (ErrorCode::DiskFull, VersionOneCodes::DiskFull),
            (ErrorCode::Storage, VersionOneCodes::Storage),
        ];
        for (now, then) in pairs {
            assert_eq!(codec::encode(&now).unwrap(), codec::encode(&then).unwrap());
        }
        let refusal = Response::Error(WireError::new(ErrorCode::NotReplica, "not mine"));
        let bytes = encode_response(&refusal).unwrap();
        assert_eq!(decode_response(&bytes).unwrap(), refusal);
        let code = codec::encode(&ErrorCode::NotReplica).unwrap();
        assert!(codec::decode::<VersionOneCodes>(&code).is_err());
    }

    #[test]
    fn other_versions_and_invalid_requests_are_refused() {
        let mut bytes = encode_request(&Request::GetManifest { name: "x".into() }).unwrap();
        bytes[1] = 9;
        assert_eq!(decode_request(&bytes).unwrap_err().code, ErrorCode::Version);
        let empty = Request::GetManifest {
            name: String::new(),
        };
        let bytes = encode_request(&empty).unwrap();
        assert_eq!(
            decode_request(&bytes).unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(decode_request(&[]).unwrap_err().code, ErrorCode::BadRequest);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
            let mut framed = WIRE_VERSION.to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode_request(&framed);
            let _ = decode_response(&framed);
        }
    }
}
