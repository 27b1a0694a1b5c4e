//! The edge chunk cache on two real `hypha` processes with R = 1, so that
//! every file has one replica and the other node serves it as an edge:
//!
//! - the first read through the edge misses on every chunk and keeps
//!   them, the second is served from the cache (hits counted) with the
//!   same bytes;
//! - an overwritten file reads back new: the manifest is still read by
//!   quorum, and new content has new chunk hashes;
//! - a read never lands in the cache on the replica itself;
//! - the byte bound holds under a workload larger than it (evictions
//!   counted), and `DELETE /v1/dht/cache` empties it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::{Api, ADMIN_TOKEN};
use serde_json::Value;

const CACHE_BYTES: u64 = 1 << 20;
const CONFIG: &str = "\
[dht]
replicas = 1
write_quorum = 1
read_quorum = 1
cache_max_bytes = 1048576
cache_policy = \"lru\"

[storage]
min_free_bytes = 0
";

fn body(i: usize, round: u64) -> Vec<u8> {
    // Odd seeds: `pseudo_random` sets the low bit, so 2k and 2k + 1 agree.
    common::pseudo_random(100_000 + i * 1_000, (i as u64 * 1_000 + round) * 2 + 1)
}

async fn cache(url: &str) -> Value {
    Api::new(url).json("/v1/dht/cache", Some(ADMIN_TOKEN)).await
}

async fn counts(url: &str) -> (u64, u64) {
    let c = cache(url).await;
    (c["hits"].as_u64().unwrap(), c["misses"].as_u64().unwrap())
}

async fn get(api: &Api, name: &str) -> Vec<u8> {
    let res = api
        .get(&format!("/v1/files/{name}"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(res.status().as_u16(), 200, "GET {name}");
    res.bytes().await.unwrap().to_vec()
}

async fn put(api: &Api, name: &str, body: Vec<u8>) {
    let res = api
        .send(
            reqwest::Method::PUT,
            &format!("/v1/files/{name}"),
            Some(ADMIN_TOKEN),
            body,
        )
        .await;
    assert!(res.status().is_success(), "PUT {name}: {}", res.status());
}

#[test]
fn an_edge_node_serves_repeat_reads_from_its_cache_within_its_bound() {
    let cluster = Cluster::start(2, CONFIG);
    cluster.wait_all_up(2, Duration::from_secs(60));
    let (edge, replica) = (cluster.url(0), cluster.url(1));
    let replica_id = cluster.id_of(1);
    let api = Api::new(edge.clone());
    let at_replica = Api::new(replica.clone());
    common::block_on(async {
        // Names whose one replica is node 1: node 0 is their edge.
        let mut names = Vec::new();
        for i in 0..60 {
            let name = format!("hot/{i}");
            put(&api, &name, body(i, 0)).await;
            let stat = api
                .json(&format!("/v1/stat/{name}"), Some(ADMIN_TOKEN))
                .await;
            if stat["replicas"][0] == replica_id.as_str() {
                names.push((i, name));
            }
        }
        assert!(
            names.len() >= 8,
            "too few files placed on node 1: {}",
            names.len()
        );
        let hot = &names[..4];
        let (hits0, misses0) = counts(&edge).await;
        for (i, name) in hot {
            assert_eq!(get(&api, name).await, body(*i, 0));
        }
        let (hits1, misses1) = counts(&edge).await;
        assert_eq!(hits1, hits0, "a first read misses");
        assert!(misses1 >= misses0 + hot.len() as u64);
        for (i, name) in hot {
            assert_eq!(get(&api, name).await, body(*i, 0));
        }
        let (hits2, misses2) = counts(&edge).await;
        assert_eq!(misses2, misses1, "the second read is served from the cache");
        assert_eq!(
            hits2 - hits1,
            misses1 - misses0,
            "every chunk missed once hits now"
        );

        // Overwrite: the edge reads the new bytes (new manifest, new hashes).
        let (i, name) = &hot[0];
        put(&at_replica, name, body(*i, 1)).await;
        assert_eq!(get(&api, name).await, body(*i, 1));

        // The replica reads its own store, never its cache.
        let before = cache(&replica).await;
        get(&at_replica, name).await;
        assert_eq!(cache(&replica).await["misses"], before["misses"]);
        assert_eq!(cache(&replica).await["entries"], 0);

        // More than the bound: it holds, and evictions are counted.
        for (i, name) in &names {
            assert_eq!(
                get(&api, name).await,
                body(*i, if name == &hot[0].1 { 1 } else { 0 })
            );
        }
        let c = cache(&edge).await;
        assert!(c["bytes"].as_u64().unwrap() <= CACHE_BYTES, "{c}");
        assert!(c["evictions"].as_u64().unwrap() > 0, "{c}");
        assert_eq!(c["policy"], "lru");
        let res = api.delete("/v1/dht/cache", Some(ADMIN_TOKEN)).await;
        assert_eq!(res.status().as_u16(), 204);
        assert_eq!(cache(&edge).await["entries"], 0);
        let res = api.delete("/v1/dht/cache", None).await;
        assert_eq!(res.status().as_u16(), 401, "clearing needs the admin role");
    });
}
