//! Fuzz targets: one function per decoder that takes bytes from outside
//! the process, be it from a peer (node RPCs, bulk frames, gossip), from
//! disk (stored manifests, job records) or from an API client (bearer
//! tokens). Each must refuse bad input with an error, never panic, and
//! what it accepts must survive the checks its callers rely on.
//!
//! The same functions run under libFuzzer (`cargo fuzz run --features
//! libfuzzer <target>`, see docs/security.md) and, on mutated seeds, in
//! the workspace's tests (`tests/short_run.rs`), so CI exercises them on
//! every change. [`seeds`] gives each target valid inputs to start from.

use hypha::auth::{Claims, Role, TokenKey, TokenTable};
use hypha_cluster::membership::info;
use hypha_cluster::membership::seal::{bounds, Keyring, Opener, Sealer};
use hypha_cluster::peers::LinkMessage;
use hypha_dht::bulk::frame;
use hypha_dht::hlc::Timestamp;
use hypha_dht::manifest::{ChunkRef, FileState, Manifest, MANIFEST_FORMAT};
use hypha_dht::service::DhtServiceMessage;
use hypha_dht::wire as dht_wire;
use hypha_work::job::{JobId, JobRecord, JobSpec, JobState, Payload};
use hypha_work::service::WorkServiceMessage;
use hypha_work::{log, wire as work_wire};
use ractor::message::SerializedMessage;
use ractor::{Message, RpcReplyPort};

/// A fuzz target: bytes in, a panic on a bug.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of the libFuzzer binaries).
pub const TARGETS: &[(&str, Target)] = &[
    ("dht_request", dht_request),
    ("dht_response", dht_response),
    ("work_request", work_request),
    ("work_response", work_response),
    ("job_record", job_record),
    ("manifest", manifest),
    ("gossip_values", gossip_values),
    ("bulk_frames", bulk_frames),
    ("node_envelope", node_envelope),
    ("api_token", api_token),
    ("gossip_seal", gossip_seal),
];

/// Inputs that once broke a target (found by the long runs), replayed by
/// the short run on every change.
pub const REGRESSIONS: &[(&str, &[u8])] = &[
    // A ping-req whose target name is not UTF-8: ractor decoded the
    // `String` argument with `unwrap()` (LinkMessage now carries bytes).
    (
        "node_envelope",
        &[
            0, 80, 105, 110, 103, 82, 101, 113, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 244,
        ],
    ),
    // A ping-req whose timeout is shorter than a u64.
    (
        "node_envelope",
        &[
            0, 80, 105, 110, 103, 82, 101, 113, 0, 0, 0, 0, 0, 0, 0, 0, 2, 97, 98, 0, 0, 0, 0, 0,
            0, 0, 3, 1, 2, 3,
        ],
    ),
    // A ping whose nonce is shorter than a u64.
    (
        "node_envelope",
        &[0, 80, 105, 110, 103, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3],
    ),
];

/// Decode `data`; whatever decodes must encode again (a value a node
/// accepts but cannot send on or store would fail later, far from here).
fn round_trip<T, E, F>(
    data: &[u8],
    decode: fn(&[u8]) -> Result<T, E>,
    encode: fn(&T) -> Result<Vec<u8>, F>,
) {
    if let Ok(value) = decode(data) {
        assert!(encode(&value).is_ok());
    }
}

/// A DHT request from a peer: decoded, validated, and re-encodable.
pub fn dht_request(data: &[u8]) {
    round_trip(data, dht_wire::decode_request, dht_wire::encode_request);
}

/// A DHT response from a peer.
pub fn dht_response(data: &[u8]) {
    round_trip(data, dht_wire::decode_response, dht_wire::encode_response);
}

/// A work request from a peer: decoded and validated.
pub fn work_request(data: &[u8]) {
    round_trip(data, work_wire::decode_request, work_wire::encode_request);
}

/// A work response from a peer.
pub fn work_response(data: &[u8]) {
    round_trip(data, work_wire::decode_response, work_wire::encode_response);
}

/// A job record read back from the job log.
pub fn job_record(data: &[u8]) {
    round_trip(data, log::decode_record, log::encode_record);
}

/// A manifest read back from disk: what decodes has passed validation.
pub fn manifest(data: &[u8]) {
    if let Ok(manifest) = Manifest::from_stored(data) {
        assert!(manifest.validate().is_ok());
        assert!(manifest.to_stored().is_ok());
        let _ = manifest.offsets();
    }
}

/// Values a peer gossips: the first byte picks the key, the rest is its
/// text (keys and values are strings in chitchat).
pub fn gossip_values(data: &[u8]) {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 4 {
        0 => {
            let _ = info::parse_info(&text);
        }
        1 => {
            let _ = info::parse_load(&text);
        }
        2 => {
            let _ = info::parse_u64("incarnation", &text);
        }
        _ => {
            let _ = info::parse_down_key(&text);
        }
    }
}

/// The secret of the fuzzed gossip keyring.
const FUZZ_GOSSIP_SECRET: &str = "fuzz-gossip-secret-of-thirty-two-bytes-or-more";
/// The clock of the fuzzed opener (sealed seeds carry it).
const FUZZ_NOW_MS: u64 = 1_780_000_000_000;

fn fuzz_ring() -> Option<Keyring> {
    Keyring::from_secrets("hypha", &[FUZZ_GOSSIP_SECRET]).ok()
}

/// A sealed gossip datagram as the transport opens it. The first byte
/// picks the path: 0, the bytes are a datagram off the wire (open, then
/// the decode budget of what opens); 1, they are a plaintext an
/// authentic peer sealed (it must open to itself, then the budget);
/// otherwise the budget walk alone.
pub fn gossip_seal(data: &[u8]) {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    let Some(ring) = fuzz_ring() else {
        return;
    };
    let mut opener = Opener::new(8, u64::MAX);
    match which % 3 {
        0 => {
            let mut datagram = rest.to_vec();
            if let Ok(range) = opener.open(&ring, FUZZ_NOW_MS, &mut datagram) {
                let _ = bounds::check(&datagram[range], 1 << 22);
            }
        }
        1 => {
            let mut sealed = Vec::new();
            Sealer::new([3; 16]).seal(&ring, FUZZ_NOW_MS, rest, &mut sealed);
            let range = opener.open(&ring, FUZZ_NOW_MS, &mut sealed);
            assert_eq!(range.map(|r| &sealed[r] == rest), Ok(true));
            let _ = bounds::check(rest, 1 << 22);
        }
        _ => {
            let _ = bounds::check(rest, 1 << 22);
        }
    }
}

/// chitchat v1 plaintexts: an Ack with one raw block, a Syn with an empty
/// digest and its cluster id, a BadCluster.
fn chitchat_plaintexts() -> Vec<Vec<u8>> {
    let header = |kind: u8| {
        let mut v = 45_139u16.to_le_bytes().to_vec();
        v.extend_from_slice(&[1, kind]);
        v
    };
    let mut ack = header(2);
    ack.extend_from_slice(&[2, 5, 0, b'h', b'e', b'l', b'l', b'o', 0]);
    let mut syn = header(0);
    syn.extend_from_slice(&[0, 5, 0]);
    syn.extend_from_slice(b"hypha");
    vec![ack, syn, header(3)]
}

/// A bulk-link stream: frames, each decoded as a DHT request.
pub fn bulk_frames(data: &[u8]) {
    futures::executor::block_on(async {
        let mut reader = data;
        while let Ok(Some(bytes)) = frame::read(&mut reader).await {
            dht_request(&bytes);
        }
    });
}

thread_local! {
    /// Decoding an RPC envelope spawns the task that bridges its reply
    /// port, so the target runs inside a runtime (one per fuzzing thread).
    static RUNTIME: Option<tokio::runtime::Runtime> =
        tokio::runtime::Builder::new_current_thread().build().ok();
}

/// A ractor_cluster envelope for one of the three remotable services:
/// variant name, length-prefixed arguments.
pub fn node_envelope(data: &[u8]) {
    RUNTIME.with(|runtime| {
        if let Some(runtime) = runtime {
            runtime.block_on(async {
                decode_envelope(data);
                // Let the bridging tasks of dropped reply ports finish.
                tokio::task::yield_now().await;
            });
        }
    });
}

fn decode_envelope(data: &[u8]) {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    let split = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    let variant = String::from_utf8_lossy(&rest[..split]).into_owned();
    let args = rest.get(split + 1..).unwrap_or_default().to_vec();
    let envelope = |variant: String, args: Vec<u8>| {
        let (tx, _rx) = ractor::concurrency::oneshot();
        SerializedMessage::Call {
            variant,
            args,
            reply: RpcReplyPort::from(tx),
            metadata: None,
        }
    };
    match which % 3 {
        0 => drop(LinkMessage::deserialize(envelope(variant, args))),
        1 => {
            if let Ok(DhtServiceMessage::Call(bytes, _)) =
                DhtServiceMessage::deserialize(envelope(variant, args))
            {
                dht_request(&bytes);
            }
        }
        _ => {
            if let Ok(message) = WorkServiceMessage::deserialize(envelope(variant, args)) {
                drop(message);
            }
        }
    }
}

/// The key the token target's table trusts.
const FUZZ_TOKEN_KEY: &[u8] = b"fuzz-token-key-0123456789abcdef-0123456789";

/// An `Authorization` header from an API client.
pub fn api_token(data: &[u8]) {
    let Ok(key) = TokenKey::new(FUZZ_TOKEN_KEY) else {
        return;
    };
    let mut table = TokenTable::new("hypha", false);
    table.add("static-token-0123456789abcdef", Role::Read);
    table.add_key(&key);
    let header = String::from_utf8_lossy(data);
    if let Ok(principal) = table.authorize(Some(&header), Role::Read) {
        // Anything accepted must really be one of our credentials.
        assert!(principal.key.starts_with("static:") || principal.key.starts_with("token:"));
    }
}

fn sample_manifest() -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        name: "dir/file.txt".into(),
        size: 10,
        chunks: vec![ChunkRef {
            hash: [3; 32],
            len: 10,
        }],
        root: [7; 32],
        created: Timestamp(1 << 20),
        modified: Timestamp(2 << 20),
        writer: [9; 32],
        content_type: "text/plain".into(),
        labels: [("zone".to_string(), "a".to_string())].into(),
        state: FileState::Live,
        inline: Vec::new(),
    }
}

fn sample_spec() -> JobSpec {
    JobSpec {
        queue: "default".into(),
        kind: "sleep".into(),
        payload: Payload::Bytes(b"hello".to_vec()),
        args: [("ms".to_string(), "20".to_string())].into(),
        idempotency_key: Some("k".into()),
        priority: 0,
        max_attempts: 3,
        timeout_ms: 1_000,
        constraints: Default::default(),
        then: vec![hypha_work::job::Step {
            kind: "echo".into(),
            args: Default::default(),
        }],
    }
}

/// Valid inputs for `target`, to mutate from.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let id = JobId([5; 16]);
    let manifest = sample_manifest();
    let mut record = JobRecord::new(id, sample_spec(), 1_000);
    record.state = JobState::Running;
    let dht_requests = [
        dht_wire::Request::FindNode {
            target: [1; 32],
            count: 20,
        },
        dht_wire::Request::GetChunk {
            partition: 3,
            hash: [2; 32],
        },
        dht_wire::Request::HasChunks {
            partition: 3,
            hashes: vec![[2; 32], [4; 32]],
        },
        dht_wire::Request::PutManifest {
            manifest: manifest.clone(),
        },
    ];
    let encoded_dht: Vec<Vec<u8>> = dht_requests
        .iter()
        .filter_map(|r| dht_wire::encode_request(r).ok())
        .collect();
    match target {
        "dht_request" => encoded_dht,
        "bulk_frames" => encoded_dht
            .iter()
            .map(|b| {
                let mut out = (b.len() as u32).to_be_bytes().to_vec();
                out.extend_from_slice(b);
                out
            })
            .collect(),
        "dht_response" => [
            dht_wire::Response::ChunkStored,
            dht_wire::Response::Has(vec![true, false]),
            dht_wire::Response::Chunk(Some(b"chunk".to_vec())),
            dht_wire::Response::Manifest(Some(manifest)),
        ]
        .iter()
        .filter_map(|r| dht_wire::encode_response(r).ok())
        .collect(),
        "work_request" => [
            work_wire::WorkRequest::Submit {
                id,
                spec: sample_spec(),
            },
            work_wire::WorkRequest::Status {
                queue: "default".into(),
                id,
            },
            work_wire::WorkRequest::List {
                queue: "default".into(),
                state: Some(JobState::Queued),
                limit: 10,
            },
        ]
        .iter()
        .filter_map(|r| work_wire::encode_request(r).ok())
        .collect(),
        "work_response" => [work_wire::WorkResponse::Ok, work_wire::WorkResponse::Abort(vec![id])]
            .iter()
            .filter_map(|r| work_wire::encode_response(r).ok())
            .collect(),
        "job_record" => log::encode_record(&record).into_iter().collect(),
        "manifest" => sample_manifest().to_stored().into_iter().collect(),
        "gossip_values" => vec![
            [&[0u8][..], br#"{"version":1,"name":"n0","cluster_addr":"127.0.0.1:7071","http_addr":"127.0.0.1:7070","capacity":{"cores":2,"memory_bytes":1,"free_disk_bytes":1},"labels":{}}"#].concat(),
            [&[1u8][..], br#"{"run_queue":1,"load_avg_1m":0.5,"job_queue_depth":0,"free_disk_bytes":1,"jobs_running":0,"job_slots":4}"#].concat(),
            b"\x0212345".to_vec(),
            b"\x03down.abcdef.7".to_vec(),
        ],
        "node_envelope" => {
            let frame = |which: u8, variant: &str, args: &[&[u8]]| {
                let mut out = vec![which];
                out.extend_from_slice(variant.as_bytes());
                out.push(0);
                for a in args {
                    out.extend_from_slice(&(a.len() as u64).to_be_bytes());
                    out.extend_from_slice(a);
                }
                out
            };
            let mut out = vec![
                frame(0, "Ping", &[&7u64.to_be_bytes()]),
                frame(0, "PingReq", &[b"n1.1", &500u64.to_be_bytes()]),
            ];
            if let Some(request) = encoded_dht.first() {
                out.push(frame(1, "Call", &[request]));
            }
            out
        }
        "gossip_seal" => {
            let plain = chitchat_plaintexts();
            let mut out: Vec<Vec<u8>> = Vec::new();
            if let Some(ring) = fuzz_ring() {
                let mut sealer = Sealer::new([3; 16]);
                for p in &plain {
                    let mut sealed = Vec::new();
                    sealer.seal(&ring, FUZZ_NOW_MS, p, &mut sealed);
                    out.push([&[0u8][..], &sealed].concat());
                }
            }
            out.extend(plain.iter().map(|p| [&[1u8][..], p].concat()));
            out.extend(plain.iter().map(|p| [&[2u8][..], p].concat()));
            out
        }
        "api_token" => {
            let Ok(key) = TokenKey::new(FUZZ_TOKEN_KEY) else {
                return Vec::new();
            };
            let claims = Claims::new("hypha", "fuzz", Role::Write, 1_000, u64::MAX / 4);
            let mut out = vec![b"Bearer static-token-0123456789abcdef".to_vec()];
            if let Ok(token) = key.sign(&claims) {
                out.push(format!("Bearer {token}").into_bytes());
            }
            out
        }
        _ => Vec::new(),
    }
}
