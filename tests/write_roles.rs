//! Data paths check their role (issue 23), against real node processes.
//!
//! A client that holds the cluster cookie (here: plaintext links, so the
//! cookie is all the bulk port asks for) speaks the DHT wire to a node's
//! bulk port and tries to park a chunk and a manifest in a partition that
//! node does not replicate. The node refuses both with `NotReplica` and
//! stores nothing, once the grace after its start has passed (a start is
//! a placement transition: until then every partition counts as recently
//! held). Honest files written through the API meanwhile read back from
//! every node.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{get_json, metric, Api, ADMIN_TOKEN, COOKIE};
use hypha_dht::bulk::handshake::BulkKey;
use hypha_dht::bulk::{BulkClient, BulkPeer};
use hypha_dht::hlc::Timestamp;
use hypha_dht::keyspace::{Key, Partition, Partitioning};
use hypha_dht::manifest::{name_key, FileState, Manifest, MANIFEST_FORMAT};
use hypha_dht::wire::{self, ErrorCode, Request, Response};

/// One replica per partition, so that of three nodes one is beyond the
/// replica and its one place of slack for about a third of the partitions.
/// A short Down grace (the write grace after a start) needs a shorter
/// majority lease than the default (docs/dht.md, "The fence").
const CONFIG: &str = "[dht]\nreplicas = 1\nwrite_quorum = 1\nread_quorum = 1\n\
                      partition_bits = 4\ndown_grace_ms = 2000\nrpc_timeout_ms = 3000\n\
                      [cluster]\nping_interval_ms = 500\nping_timeout_ms = 500\nlease_ms = 1500\n\
                      [storage]\nmin_free_bytes = 0\n";
const BITS: u8 = 4;

/// A node and a partition where that node is the farthest of `ids`: node 2
/// if it is the farthest anywhere, else another. Node ids are random, and
/// a node whose top partition bits equal another's, and which sits below
/// it, is the farthest of none (about 6% of clusters with 16 partitions),
/// while every partition has a farthest node.
fn far_pair(ids: &[String]) -> (usize, Partition) {
    let partitioning = Partitioning::new(BITS).unwrap();
    let points: Vec<Key> = ids.iter().map(|i| Key::from_hex(i).unwrap()).collect();
    let far_for = |target: usize| {
        (0..partitioning.count() as u16).map(Partition).find(|p| {
            let at = partitioning.partition_id(*p);
            let mine = at.distance(&points[target]);
            points.iter().all(|o| at.distance(o) <= mine)
        })
    };
    (0..ids.len())
        .rev()
        .find_map(|target| Some((target, far_for(target)?)))
        .expect("every partition has a farthest node")
}

fn name_in(partition: Partition) -> String {
    let partitioning = Partitioning::new(BITS).unwrap();
    (0..)
        .map(|i| format!("parked-{i}"))
        .find(|n| partitioning.partition_of(&name_key(n)) == partition)
        .unwrap()
}

struct Wire {
    client: BulkClient,
    peer: BulkPeer,
    runtime: tokio::runtime::Runtime,
}

impl Wire {
    fn to(url: &str) -> Self {
        let node = get_json(url, "/v1/node").unwrap();
        let field = |name: &str| node[name].as_str().unwrap().to_owned();
        let peer = BulkPeer {
            node: field("id").parse().unwrap(),
            addr: field("bulk").parse().unwrap(),
        };
        let cookie = hypha_cluster::peers::link_cookie("hypha", COOKIE);
        Self {
            client: BulkClient::new(BulkKey::from_cookie(&cookie), None),
            peer,
            runtime: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    fn call(&self, request: Request) -> Response {
        let bytes = wire::encode_request(&request).unwrap();
        let answer = self
            .runtime
            .block_on(self.client.call(self.peer, &bytes, Duration::from_secs(5)))
            .unwrap();
        wire::decode_response(&answer).unwrap()
    }
}

fn store_chunk(partition: Partition, data: &[u8]) -> Request {
    Request::StoreChunk {
        partition: partition.0,
        hash: *blake3::hash(data).as_bytes(),
        data: data.to_vec(),
    }
}

fn not_replica(response: &Response) -> bool {
    matches!(response, Response::Error(e) if e.code == ErrorCode::NotReplica)
}

fn inline_manifest(name: &str) -> Manifest {
    let inline = b"parked".to_vec();
    Manifest {
        format: MANIFEST_FORMAT,
        name: name.to_owned(),
        size: inline.len() as u64,
        chunks: Vec::new(),
        root: *blake3::hash(&inline).as_bytes(),
        created: Timestamp::from_unix_ms(1),
        modified: Timestamp::from_unix_ms(1),
        writer: [7; 32],
        content_type: "text/plain".into(),
        labels: Default::default(),
        state: FileState::Live,
        inline,
    }
}

#[test]
fn a_cookie_holder_cannot_park_data_on_a_node_off_the_replica_set() {
    let cluster = Cluster::start_with_args(3, CONFIG, &["--plaintext-links"]);
    cluster.wait_all_up(3, Duration::from_secs(30));
    let (target, far) = far_pair(&cluster.ids);
    let wire = Wire::to(&cluster.url(target));

    // Within the grace after its start the node still takes the write;
    // then it refuses. Each probe is a new chunk.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut probes = 0u32;
    loop {
        probes += 1;
        let answer = wire.call(store_chunk(far, format!("probe {probes}").as_bytes()));
        if not_replica(&answer) {
            break;
        }
        assert_eq!(answer, Response::ChunkStored, "probe {probes}");
        assert!(
            Instant::now() < deadline,
            "node {target} still takes chunks for partition {far:?} after {probes} probes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let parked = b"a chunk meant to sit where nobody looks".to_vec();
    let answer = wire.call(store_chunk(far, &parked));
    assert!(not_replica(&answer), "{answer:?}");
    let hash = *blake3::hash(&parked).as_bytes();
    let held = wire.call(Request::GetChunk {
        partition: far.0,
        hash,
    });
    assert_eq!(held, Response::Chunk(None), "nothing stored");

    let name = name_in(far);
    let answer = wire.call(Request::PutManifest {
        manifest: inline_manifest(&name),
    });
    assert!(not_replica(&answer), "{answer:?}");
    let held = wire.call(Request::GetManifest { name: name.clone() });
    assert_eq!(held, Response::Manifest(None), "no manifest stored");

    let url = cluster.url(target);
    assert!(metric(&url, "hypha_dht_writes_refused_total{kind=\"chunk\"}") >= 2.0);
    assert!(metric(&url, "hypha_dht_writes_refused_total{kind=\"manifest\"}") >= 1.0);

    // Honest files, one in that very partition, go to their replicas and
    // read back from every node.
    let names: Vec<String> = (0..6)
        .map(|i| format!("honest-{i}"))
        .chain([name.clone()])
        .collect();
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    wire.runtime.block_on(async {
        let api = Api::new(urls[0].clone());
        for n in &names {
            let put = api
                .put(&format!("/v1/files/{n}"), Some(ADMIN_TOKEN), n.as_bytes())
                .await;
            assert!(put.status().is_success(), "{n}: {}", put.status());
        }
        for (i, url) in urls.iter().enumerate() {
            let api = Api::new(url.clone());
            for n in &names {
                let res = api.get(&format!("/v1/files/{n}"), Some(ADMIN_TOKEN)).await;
                assert_eq!(res.status().as_u16(), 200, "{n} from node {i}");
                assert_eq!(res.bytes().await.unwrap().as_ref(), n.as_bytes());
            }
        }
    });
}
