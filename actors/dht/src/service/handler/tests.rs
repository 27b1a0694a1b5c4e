use std::sync::Arc;

use tokio::sync::watch;

use super::*;
use crate::admission::tests::{id, placement_of};
use crate::keyspace::Partitioning;
use crate::manifest::tests::sample;
use crate::test_store;

/// This node (first of 8 spread over the keyspace) and the partitions
/// where it is owner 1 and owner 8 by distance.
fn spread() -> (Placement, Partition, Partition) {
    let others: Vec<[u8; 32]> = (1..8).map(|i| id(i * 0x20)).collect();
    let placement = placement_of(id(0x00), &others);
    let rank = |p: &Partition| placement.rank_of_me(*p);
    let all = || (0..16).map(Partition);
    let near = all()
        .find(|p| rank(p) == Some(1))
        .expect("a partition here");
    let far = all()
        .find(|p| rank(p) == Some(8))
        .expect("a partition far away");
    (placement, near, far)
}

fn name_in(partition: Partition, partitioning: Partitioning) -> String {
    (0..)
        .map(|i| format!("file-{i}"))
        .find(|n| partitioning.partition_of(&crate::manifest::name_key(n)) == partition)
        .expect("some name lands in every partition")
}

fn refused(response: &Response) -> bool {
    matches!(response, Response::Error(e) if e.code == ErrorCode::NotReplica)
}

#[tokio::test]
async fn writes_for_a_partition_this_node_does_not_hold_are_refused_and_store_nothing() {
    let (placement, near, far) = spread();
    let partitioning = placement.partitioning();
    let kept = test_store::open("handler-admission", partitioning).await;
    let (_tx, rx) = watch::channel(Arc::new(placement));
    let handler = DhtHandler::new(kept.store.clone(), rx, CaughtUp::default());
    let data = b"parked here".to_vec();
    let hash = *blake3::hash(&data).as_bytes();

    let store_chunk = |partition: Partition| Request::StoreChunk {
        partition: partition.0,
        hash,
        data: data.clone(),
    };
    let answer = handler.handle(store_chunk(far)).await;
    assert!(refused(&answer), "{answer:?}");
    assert!(!kept.store.holds(far).await.expect("read"));
    assert_eq!(kept.store.has_chunks(far, &[hash]).await, Ok(vec![false]));

    let far_name = name_in(far, partitioning);
    let put = Request::PutManifest {
        manifest: sample(&far_name, 5, 1),
    };
    let answer = handler.handle(put).await;
    assert!(refused(&answer), "{answer:?}");
    assert_eq!(kept.store.get_manifest(&far_name).await, Ok(None));

    // Its own partitions take both, as before.
    assert_eq!(
        handler.handle(store_chunk(near)).await,
        Response::ChunkStored
    );
    let near_name = name_in(near, partitioning);
    let put = Request::PutManifest {
        manifest: sample(&near_name, 5, 1),
    };
    assert!(matches!(
        handler.handle(put).await,
        Response::ManifestPut(_)
    ));
    kept.actor.stop(None);
}
