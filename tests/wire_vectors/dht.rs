//! DHT wire version 1: samples and their pinned bytes.

use std::collections::BTreeMap;

use hypha_dht::anti_entropy::exchange::{AeAnswer, AeRequest, AE_WIRE_VERSION};
use hypha_dht::hlc::Timestamp;
use hypha_dht::manifest::{ChunkRef, FileState, Manifest, MANIFEST_FORMAT};
use hypha_dht::wire::{
    Contact, ErrorCode, FileSummary, ListNames, PutOutcome, Request, Response, Standing, WireError,
};

fn manifest() -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        name: "dir/a.txt".into(),
        size: 5,
        chunks: vec![ChunkRef {
            hash: [3; 32],
            len: 5,
        }],
        root: [4; 32],
        created: Timestamp(1 << 20),
        modified: Timestamp(2 << 20),
        writer: [5; 32],
        content_type: "text/plain".into(),
        labels: BTreeMap::from([("team".to_string(), "blue".to_string())]),
        state: FileState::Live,
        inline: Vec::new(),
    }
}

pub fn requests() -> Vec<(&'static str, Request)> {
    vec![
        (
            "find_node",
            Request::FindNode {
                target: [1; 32],
                count: 8,
            },
        ),
        (
            "store_chunk",
            Request::StoreChunk {
                partition: 7,
                hash: [2; 32],
                data: vec![1, 2, 3],
            },
        ),
        (
            "get_chunk",
            Request::GetChunk {
                partition: 7,
                hash: [2; 32],
            },
        ),
        (
            "has_chunks",
            Request::HasChunks {
                partition: 1,
                hashes: vec![[2; 32], [3; 32]],
            },
        ),
        (
            "put_manifest",
            Request::PutManifest {
                manifest: manifest(),
            },
        ),
        (
            "get_manifest",
            Request::GetManifest {
                name: "dir/a.txt".into(),
            },
        ),
        (
            "list_names",
            Request::ListNames(ListNames {
                prefix: "dir/".into(),
                after: "dir/0".into(),
                limit: 100,
            }),
        ),
        (
            "list_partition",
            Request::ListPartition {
                partition: 9,
                after: vec![0xaa; 4],
                limit: 10,
            },
        ),
        (
            "exchange",
            Request::Exchange {
                version: AE_WIRE_VERSION,
                request: AeRequest::Compare {
                    partition: 2,
                    buckets: 1024,
                    entries: 17,
                    root: [6; 32],
                    step: 2,
                },
            },
        ),
        (
            "manifests_by_key",
            Request::ManifestsByKey {
                partition: 3,
                keys: vec![[7; 32]],
            },
        ),
        (
            "read_manifest",
            Request::ReadManifest {
                name: "dir/a.txt".into(),
            },
        ),
    ]
}

pub fn responses() -> Vec<(&'static str, Response)> {
    let mut out = vec![
        (
            "nodes",
            Response::Nodes(vec![Contact {
                id: [8; 32],
                link: "ab.3".into(),
            }]),
        ),
        ("chunk_stored", Response::ChunkStored),
        ("chunk", Response::Chunk(Some(vec![9, 8, 7]))),
        ("no_chunk", Response::Chunk(None)),
        ("has", Response::Has(vec![true, false])),
        ("manifest_put", Response::ManifestPut(PutOutcome::Stored)),
        (
            "manifest_superseded",
            Response::ManifestPut(PutOutcome::Superseded),
        ),
        ("manifest", Response::Manifest(Some(manifest()))),
        (
            "files",
            Response::Files {
                entries: vec![FileSummary::of(&manifest())],
                more: true,
            },
        ),
        (
            "names",
            Response::Names {
                entries: vec![(vec![1, 2], "dir/a.txt".into())],
                more: false,
            },
        ),
        (
            "exchange",
            Response::Exchange(AeAnswer::Nodes {
                level: 3,
                hashes: vec![0x11; 4],
            }),
        ),
        (
            "manifests",
            Response::Manifests {
                handled: 1,
                manifests: vec![manifest()],
            },
        ),
    ];
    let standings = [
        ("replica_serving", Standing::Serving),
        ("replica_catching_up", Standing::CatchingUp),
        ("replica_not_replica", Standing::NotReplica),
    ];
    for (name, standing) in standings {
        let manifest = Some(manifest());
        out.push((name, Response::ReplicaManifest { manifest, standing }));
    }
    let codes = [
        ("error_bad_request", ErrorCode::BadRequest),
        ("error_version", ErrorCode::Version),
        ("error_hash_mismatch", ErrorCode::HashMismatch),
        ("error_disk_full", ErrorCode::DiskFull),
        ("error_unavailable", ErrorCode::Unavailable),
        ("error_storage", ErrorCode::Storage),
        ("error_not_replica", ErrorCode::NotReplica),
    ];
    for (name, code) in codes {
        out.push((name, Response::Error(WireError::new(code, "why"))));
    }
    out
}

/// A request a service takes, and one out of range it refuses.
pub fn valid_and_out_of_range() -> (Request, Request) {
    let out_of_range = Request::GetManifest {
        name: String::new(),
    };
    (Request::GetManifest { name: "x".into() }, out_of_range)
}

pub const VECTORS: &[(&str, &str)] = &[
    ("request_find_node", "000100010101010101010101010101010101010101010101010101010101010101010108"),
    ("request_store_chunk", "00010107020202020202020202020202020202020202020202020202020202020202020203010203"),
    ("request_get_chunk", "000102070202020202020202020202020202020202020202020202020202020202020202"),
    ("request_has_chunks", "000103010202020202020202020202020202020202020202020202020202020202020202020303030303030303030303030303030303030303030303030303030303030303"),
    ("request_put_manifest", "00010402096469722f612e74787405010303030303030303030303030303030303030303030303030303030303030303050404040404040404040404040404040404040404040404040404040404040404fc00001000fc0000200005050505050505050505050505050505050505050505050505050505050505050a746578742f706c61696e01047465616d04626c75650000"),
    ("request_get_manifest", "000105096469722f612e747874"),
    ("request_list_names", "000106046469722f056469722f3064"),
    ("request_list_partition", "0001070904aaaaaaaa0a"),
    ("request_exchange", "000108010002fb000411060606060606060606060606060606060606060606060606060606060606060602"),
    ("request_manifests_by_key", "00010903010707070707070707070707070707070707070707070707070707070707070707"),
    ("request_read_manifest", "00010a096469722f612e747874"),
    ("response_nodes", "0001000108080808080808080808080808080808080808080808080808080808080808080461622e33"),
    ("response_chunk_stored", "000101"),
    ("response_chunk", "0001020103090807"),
    ("response_no_chunk", "00010200"),
    ("response_has", "000103020100"),
    ("response_manifest_put", "00010400"),
    ("response_manifest_superseded", "00010401"),
    ("response_manifest", "0001050102096469722f612e74787405010303030303030303030303030303030303030303030303030303030303030303050404040404040404040404040404040404040404040404040404040404040404fc00001000fc0000200005050505050505050505050505050505050505050505050505050505050505050a746578742f706c61696e01047465616d04626c75650000"),
    ("response_files", "00010601096469722f612e747874050404040404040404040404040404040404040404040404040404040404040404fc00001000fc0000200005050505050505050505050505050505050505050505050505050505050505050a746578742f706c61696e01047465616d04626c75650001"),
    ("response_names", "00010701020102096469722f612e74787400"),
    ("response_exchange", "00010901030411111111"),
    ("response_manifests", "00010a010102096469722f612e74787405010303030303030303030303030303030303030303030303030303030303030303050404040404040404040404040404040404040404040404040404040404040404fc00001000fc0000200005050505050505050505050505050505050505050505050505050505050505050a746578742f706c61696e01047465616d04626c75650000"),
    ("response_replica_serving", "00010b0102096469722f612e74787405010303030303030303030303030303030303030303030303030303030303030303050404040404040404040404040404040404040404040404040404040404040404fc00001000fc0000200005050505050505050505050505050505050505050505050505050505050505050a746578742f706c61696e01047465616d04626c7565000000"),
    ("response_replica_catching_up", "00010b0102096469722f612e74787405010303030303030303030303030303030303030303030303030303030303030303050404040404040404040404040404040404040404040404040404040404040404fc00001000fc0000200005050505050505050505050505050505050505050505050505050505050505050a746578742f706c61696e01047465616d04626c7565000001"),
    ("response_replica_not_replica", "00010b0102096469722f612e74787405010303030303030303030303030303030303030303030303030303030303030303050404040404040404040404040404040404040404040404040404040404040404fc00001000fc0000200005050505050505050505050505050505050505050505050505050505050505050a746578742f706c61696e01047465616d04626c7565000002"),
    ("response_error_bad_request", "0001080003776879"),
    ("response_error_version", "0001080103776879"),
    ("response_error_hash_mismatch", "0001080203776879"),
    ("response_error_disk_full", "0001080303776879"),
    ("response_error_unavailable", "0001080403776879"),
    ("response_error_storage", "0001080503776879"),
    ("response_error_not_replica", "0001080603776879"),
    ("reply_refuse_short", "000108001f6d6573736167652073686f72746572207468616e2069747320686561646572"),
    ("reply_refuse_other_version", "0001080122776972652076657273696f6e20393b2074686973206e6f646520737065616b732031"),
    ("reply_refuse_invalid", "000108003f66696c65206e616d65732061726520312d31303234206279746573206f66205554462d3820776974686f757420636f6e74726f6c2063686172616374657273"),
];
