//! File storage on a 5-node cluster of real `hypha` processes: 200 files
//! from 0 B to 20 MiB read back byte-identical from other nodes; a chunk
//! corrupted on disk is never returned and gets repaired; kill -9 of a
//! replica holder leaves everything readable; with 2 of 3 replicas of a
//! partition down, writes there fail with 503 while reads return verified
//! bytes flagged degraded (or 503 with `consistency=quorum`); bad requests
//! get 4xx JSON errors. Waits poll with deadlines.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{get_json, metric, Api, ADMIN_TOKEN};
use futures::StreamExt;
use hypha_dht::keyspace::{Key, Partitioning};
use serde_json::Value;

const NODES: usize = 5;
const MAX_FILE: usize = 24 << 20;

fn config_text(dht: &str) -> String {
    format!(
        "[dht]\ndown_grace_ms = 600000\nmax_file_bytes = {MAX_FILE}\nrpc_timeout_ms = 3000\n{dht}\
         [storage]\nmin_free_bytes = 0\n"
    )
}

fn content(i: usize) -> Vec<u8> {
    let size = content_len(i);
    common::pseudo_random(size, (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// 0 B, 1 B, many small, some around chunk sizes, a few large, one 20 MiB.
fn content_len(i: usize) -> usize {
    match i {
        0 => 0,
        1 => 1,
        199 => 20 << 20,
        190..=198 => (i - 188) << 20,
        150..=189 => (i - 149) * 50_000,
        _ => i * 397,
    }
}

fn name(i: usize) -> String {
    format!("set/{i:03}.bin")
}

async fn put(api: &Api, name: &str, body: Vec<u8>) -> reqwest::Response {
    api.send(
        reqwest::Method::PUT,
        &format!("/v1/files/{name}"),
        Some(ADMIN_TOKEN),
        body,
    )
    .await
}

async fn get_bytes(api: &Api, path: &str) -> (u16, Option<String>, Vec<u8>) {
    let res = api.get(path, Some(ADMIN_TOKEN)).await;
    let status = res.status().as_u16();
    let read = res
        .headers()
        .get("hypha-read")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, read, res.bytes().await.unwrap().to_vec())
}

fn stat(url: &str, name: &str) -> Value {
    get_json(url, &format!("/v1/stat/{name}")).unwrap()
}

fn read_all_back(cluster: &Cluster, files: &[usize]) {
    let alive = cluster.alive();
    common::block_on(async {
        let results: Vec<(usize, u16, bool)> = futures::stream::iter(files.iter().copied())
            .map(|i| {
                let api = Api::for_files(cluster.url(alive[(i + 1) % alive.len()]));
                async move {
                    let (status, _, bytes) =
                        get_bytes(&api, &format!("/v1/files/{}", name(i))).await;
                    (i, status, bytes == content(i))
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (i, status, same) in results {
            assert_eq!(status, 200, "file {i}");
            assert!(same, "file {i} differs");
        }
    });
}

/// Flip one byte in every chunk this node stores for `partition`.
fn corrupt_partition(data_dir: &Path, partition: u16) -> usize {
    common::corrupt_chunks(data_dir, partition, |_| true)
}

#[test]
fn files_survive_corruption_crashes_and_lost_quorums() {
    let mut cluster = Cluster::start(NODES, &config_text(""));
    cluster.wait_all_up(NODES, Duration::from_secs(30));

    // 200 files, written through every node, read back through others.
    let all: Vec<usize> = (0..200).collect();
    common::block_on(async {
        let small: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| content_len(*i) < 1 << 20)
            .collect();
        let results: Vec<(usize, u16)> = futures::stream::iter(small)
            .map(|i| {
                let api = Api::for_files(cluster.url(i % NODES));
                async move { (i, put(&api, &name(i), content(i)).await.status().as_u16()) }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (i, status) in results {
            assert_eq!(status, 201, "put {i}");
        }
        let large: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| content_len(*i) >= 1 << 20)
            .collect();
        let results: Vec<(usize, u16)> = futures::stream::iter(large)
            .map(|i| {
                let api = Api::for_files(cluster.url(i % NODES));
                async move {
                    let res = put(&api, &name(i), content(i)).await;
                    let status = res.status().as_u16();
                    if status != 201 {
                        eprintln!("put {i}: {}", res.text().await.unwrap_or_default());
                    }
                    (i, status)
                }
            })
            // Concurrent multi-MiB uploads: chunks travel on bulk links,
            // so node links (and their pings) stay free.
            .buffer_unordered(4)
            .collect()
            .await;
        for (i, status) in results {
            assert_eq!(status, 201, "put {i}");
        }
    });
    read_all_back(&cluster, &all);
    let dials: f64 = (0..NODES)
        .map(|i| metric(&cluster.url(i), "hypha_dht_bulk_dials_total"))
        .sum();
    assert!(dials > 0.0, "chunks did not travel on bulk links");
    let listed = get_json(&cluster.url(2), "/v1/files?prefix=set/&limit=1000").unwrap();
    assert_eq!(listed["files"].as_array().unwrap().len(), 200);

    // Corrupt every chunk of a large file's partition on one replica,
    // restart that replica, read through it: verified bytes only, and the
    // bad copies are repaired.
    let big = name(195);
    let s = stat(&cluster.url(0), &big);
    let partition = u16::try_from(s["partition"].as_u64().unwrap()).unwrap();
    let z = cluster.index_of(s["replicas"][0].as_str().unwrap());
    let mut node = cluster.nodes[z].take().unwrap();
    node.signal("TERM");
    node.wait_exit(Duration::from_secs(30));
    drop(node);
    let corrupted = corrupt_partition(&cluster.root.join(format!("n{z}")), partition);
    assert!(corrupted > 0);
    cluster.nodes[z] = Some(cluster.spawn(z));
    cluster.wait_all_up(NODES, Duration::from_secs(30));
    let z_url = cluster.url(z);
    let (status, _, bytes) = common::block_on(get_bytes(
        &Api::for_files(&z_url),
        &format!("/v1/files/{big}"),
    ));
    assert_eq!(status, 200);
    assert!(bytes == content(195), "corrupt bytes were returned");
    let failures = metric(
        &z_url,
        "hypha_dht_verification_failures_total{where=\"local_store\"}",
    );
    assert!(failures >= 1.0, "local corruption was not detected");
    assert!(metric(&z_url, "hypha_dht_read_repairs_total{what=\"chunk\"}") >= 1.0);
    // Repaired: a second read finds nothing corrupt.
    let (status, _, bytes) = common::block_on(get_bytes(
        &Api::for_files(&z_url),
        &format!("/v1/files/{big}"),
    ));
    assert_eq!(status, 200);
    assert!(bytes == content(195));
    let again = metric(
        &z_url,
        "hypha_dht_verification_failures_total{where=\"local_store\"}",
    );
    assert_eq!(again, failures, "the corrupt copy was not repaired");

    // kill -9 one replica holder: everything stays readable.
    let x = cluster.index_of(
        stat(&cluster.url(0), &name(199))["replicas"][0]
            .as_str()
            .unwrap(),
    );
    let mut victim = cluster.nodes[x].take().unwrap();
    victim.signal("KILL");
    victim.wait_exit(Duration::from_secs(10));
    read_all_back(&cluster, &all);

    // Take down a second replica of a partition X held: writes there fail
    // with 503 and nothing; reads return verified bytes, flagged degraded.
    let alive = cluster.alive();
    let s = stat(&cluster.url(alive[0]), &name(199));
    let replicas: Vec<String> = s["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(
        replicas.contains(&cluster.ids[x]),
        "a Down member keeps its partitions during the grace"
    );
    let y = replicas
        .iter()
        .map(|id| cluster.index_of(id))
        .find(|i| *i != x)
        .unwrap();
    let mut second = cluster.nodes[y].take().unwrap();
    second.signal("KILL");
    second.wait_exit(Duration::from_secs(10));
    let url = cluster.url(cluster.alive()[0]);
    let partitioning = Partitioning::new(10).unwrap();
    let target = partitioning.partition_of(&Key::hash(name(199).as_bytes()));
    let sibling = (0..)
        .map(|n| format!("sibling-{n}"))
        .find(|n| partitioning.partition_of(&Key::hash(n.as_bytes())) == target)
        .unwrap();
    // Until the others see the second node Down, its link may still look
    // up; poll for the 503.
    let deadline = Instant::now() + Duration::from_secs(20);
    let error = loop {
        let (status, body) = common::block_on(async {
            let res = put(&Api::for_files(&url), &sibling, b"new data".to_vec()).await;
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        });
        if status == 503 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "write with 1 of 3 replicas up was not refused"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(error["error"]["code"], "quorum_unavailable");
    let (status, _, _) = common::block_on(get_bytes(
        &Api::for_files(&url),
        &format!("/v1/files/{sibling}"),
    ));
    assert_eq!(status, 404, "a refused write left something visible");
    let (status, read, bytes) = common::block_on(get_bytes(
        &Api::for_files(&url),
        &format!("/v1/files/{}", name(199)),
    ));
    assert_eq!(status, 200);
    assert_eq!(read.as_deref(), Some("degraded"));
    assert!(bytes == content(199));
    let (status, _, _) = common::block_on(get_bytes(
        &Api::for_files(&url),
        &format!("/v1/files/{}?consistency=quorum", name(199)),
    ));
    assert_eq!(status, 503);
}

#[test]
fn bad_requests_get_json_errors() {
    let cluster = Cluster::start(
        1,
        &config_text("replicas = 1\nwrite_quorum = 1\nread_quorum = 1\n"),
    );
    let api = Api::for_files(cluster.url(0));
    let node = get_json(&cluster.url(0), "/v1/node").unwrap();
    let ours_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let theirs_ms = node["clock_unix_ms"].as_u64().unwrap();
    assert!(
        ours_ms.abs_diff(theirs_ms) < 60_000,
        "{theirs_ms} vs {ours_ms}"
    );
    let bulk: std::net::SocketAddr = node["bulk"].as_str().unwrap().parse().unwrap();
    let bulk_node: hypha_core::identity::NodeId = node["id"].as_str().unwrap().parse().unwrap();
    common::block_on(async {
        let expect = |res: reqwest::Response, status: u16, code: &'static str| async move {
            assert_eq!(res.status().as_u16(), status);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
        };
        let put_path = "/v1/files/a.txt";
        expect(api.put(put_path, None, b"x").await, 401, "unauthorized").await;
        expect(
            api.put(put_path, Some(common::READ_TOKEN), b"x").await,
            403,
            "forbidden",
        )
        .await;
        expect(api.get("/v1/files/a.txt", None).await, 401, "unauthorized").await;
        expect(
            api.put("/v1/files/a%0Ab", Some(ADMIN_TOKEN), b"x").await,
            400,
            "bad_request",
        )
        .await;
        expect(
            api.put("/v1/files/a?label=BAD=1", Some(ADMIN_TOKEN), b"x")
                .await,
            400,
            "bad_request",
        )
        .await;
        // A declared length over the limit is refused before any byte is
        // read (raw socket: the client must not be mid-send when the 413
        // arrives).
        let (status, body) = declared_oversize(&api.base);
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("too_large"), "{body}");
        expect(
            api.get("/v1/files?limit=0", Some(ADMIN_TOKEN)).await,
            400,
            "bad_request",
        )
        .await;
        expect(
            api.get("/v1/files/none", Some(ADMIN_TOKEN)).await,
            404,
            "not_found",
        )
        .await;
        assert_eq!(
            api.put(put_path, Some(ADMIN_TOKEN), b"0123456789")
                .await
                .status()
                .as_u16(),
            201
        );
        let res = api
            .http
            .get(format!("{}/v1/files/a.txt", api.base))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .header("range", "bytes=20-")
            .send()
            .await
            .unwrap();
        expect(res, 416, "range_not_satisfiable").await;
        let res = api
            .http
            .get(format!("{}/v1/files/a.txt", api.base))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .header("range", "bytes=2-4")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 206);
        assert_eq!(res.bytes().await.unwrap().as_ref(), b"234");
        bulk_link_is_authenticated_and_checked(bulk_node, bulk).await;
    });
}

/// The bulk listener: a wrong cookie is refused at the handshake, and so
/// is a dialer that meant another node (a gossiped address pointing
/// here); with the right node and cookie, requests are answered, a chunk
/// whose bytes do not match its hash is refused, and malformed frames get
/// an error answer.
async fn bulk_link_is_authenticated_and_checked(
    node: hypha_core::identity::NodeId,
    addr: std::net::SocketAddr,
) {
    use hypha_dht::bulk::handshake::BulkKey;
    use hypha_dht::bulk::{BulkClient, BulkPeer};
    let peer = BulkPeer { node, addr };
    use hypha_dht::wire::{self, ErrorCode, Request, Response};
    let limit = Duration::from_secs(5);
    let get = wire::encode_request(&Request::GetChunk {
        partition: 0,
        hash: [9; 32],
    })
    .unwrap();
    let cookie = hypha_cluster::peers::link_cookie("hypha", common::COOKIE);
    // Bulk links run inside the node's mutual TLS: a client without it
    // never gets to the cookie handshake.
    let plaintext = BulkClient::new(BulkKey::from_cookie(&cookie), None);
    assert!(plaintext.call(peer, &get, limit).await.is_err());
    let client_dir = tempfile::tempdir().unwrap();
    let tls =
        hypha_cluster::peers::tls::LinkTls::load(&common::test_tls_dir(client_dir.path())).unwrap();
    let wrong = BulkClient::new(BulkKey::from_cookie("not-the-cookie"), Some(tls.clone()));
    let refused = wrong.call(peer, &get, limit).await.unwrap_err();
    assert!(refused.to_string().contains("cookie"), "{refused}");

    let right = BulkClient::new(BulkKey::from_cookie(&cookie), Some(tls));
    let elsewhere = BulkPeer {
        node: hypha_core::identity::NodeId::random(),
        addr,
    };
    let refused = right.call(elsewhere, &get, limit).await.unwrap_err();
    assert!(refused.to_string().contains("TLS"), "{refused}");
    let answer = right.call(peer, &get, limit).await.unwrap();
    assert_eq!(
        wire::decode_response(&answer).unwrap(),
        Response::Chunk(None)
    );
    let forged = wire::encode_request(&Request::StoreChunk {
        partition: 0,
        hash: [1; 32],
        data: b"not those bytes".to_vec(),
    })
    .unwrap();
    let answer = right.call(peer, &forged, limit).await.unwrap();
    match wire::decode_response(&answer).unwrap() {
        Response::Error(err) => assert_eq!(err.code, ErrorCode::HashMismatch),
        other => panic!("forged chunk answered {other:?}"),
    }
    let answer = right
        .call(peer, b"\x00\x01\xffgarbage", limit)
        .await
        .unwrap();
    match wire::decode_response(&answer).unwrap() {
        Response::Error(err) => assert_eq!(err.code, ErrorCode::BadRequest, "{err:?}"),
        other => panic!("garbage answered {other:?}"),
    }
}

fn declared_oversize(base: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "PUT /v1/files/big HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        MAX_FILE + 1
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
