use std::collections::BTreeSet;

use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use hypha_core::clock::ManualClock;

use super::*;
use crate::admission::tests::{id, key, placement_of};
use crate::wire::{ErrorCode, PutOutcome, Standing, WireError};

/// Replicas answering from memory; the `refusing` ones refuse every write
/// as not theirs. Counts the writes each replica acknowledged.
struct Replicas {
    refusing: BTreeSet<MemberKey>,
    acked: std::sync::Mutex<Vec<MemberKey>>,
}

impl DhtTransport for Replicas {
    fn call(
        &self,
        peer: &MemberKey,
        request: Request,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<Response, RpcError>> {
        let refuses = self.refusing.contains(peer);
        let answer = match request {
            Request::ReadManifest { .. } => Ok(Response::ReplicaManifest {
                manifest: None,
                standing: Standing::Serving,
            }),
            Request::StoreChunk { .. } | Request::PutManifest { .. } if refuses => Err(
                RpcError::Remote(WireError::new(ErrorCode::NotReplica, "not mine")),
            ),
            Request::StoreChunk { .. } => Ok(Response::ChunkStored),
            Request::PutManifest { .. } => Ok(Response::ManifestPut(PutOutcome::Stored)),
            other => panic!("unexpected {other:?}"),
        };
        if answer.is_ok() {
            self.acked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(peer.clone());
        }
        Box::pin(async move { answer })
    }
}

/// A coordinator over three replicas (R = 3, W = 2), `refusing` of them
/// refusing writes.
fn coordinator(refusing: &[MemberKey]) -> Files {
    coordinator_on(refusing, SharedClock::system())
}

/// [`coordinator`], reading the time from `clock`.
fn coordinator_on(refusing: &[MemberKey], clock: SharedClock) -> Files {
    let placement = placement_of(id(0x00), &[id(0x80), id(0xc0)]).with_settled(true);
    let (_tx, rx) = watch::channel(Arc::new(placement));
    let transport = Arc::new(Replicas {
        refusing: refusing.iter().cloned().collect(),
        acked: std::sync::Mutex::new(Vec::new()),
    });
    Files::new(
        id(0x00),
        transport,
        rx,
        Arc::new(Hlc::new(clock.clone())),
        FilesConfig::default(),
        clock,
    )
}

async fn put(files: &Files) -> Result<PutReport, FilesError> {
    let body = vec![7u8; 200 * 1024];
    let frames = stream::iter([Ok::<_, std::io::Error>(body)]);
    files.put("f", PutMeta::default(), frames).await
}

#[tokio::test]
async fn a_replica_that_refuses_a_write_is_not_counted_as_acknowledging() {
    let one = coordinator(&[key(id(0xc0))]);
    let report = put(&one).await.expect("W of 3 still accept");
    assert_eq!(report.acks, 2, "the refusing replica is no acknowledgement");

    let two = coordinator(&[key(id(0x80)), key(id(0xc0))]);
    match put(&two).await {
        Err(FilesError::Quorum { needed: 2, got, .. }) => assert!(got < 2),
        other => panic!("two refusals of three must fail the write: {other:?}"),
    }
}

#[tokio::test]
async fn an_upload_slower_than_half_the_chunk_grace_fails_on_the_injected_clock() {
    let manual = ManualClock::new(1_000);
    let files = coordinator_on(&[], SharedClock::new(manual.clone()));
    let half_grace_ms = FilesConfig::default().chunk_grace_ms / 2;
    // Each frame arrives "later" on the node's clock: no sleep, no wait.
    let frames = stream::iter([vec![1u8; 1_024], vec![2u8; 1_024]]).map(move |frame| {
        manual.advance(Duration::from_millis(half_grace_ms / 2 + 1));
        Ok::<_, std::io::Error>(frame)
    });
    match files.put("slow", PutMeta::default(), frames).await {
        Err(FilesError::TooSlow(ms)) => assert_eq!(ms, half_grace_ms),
        other => panic!("a slow upload must fail: {other:?}"),
    }
}

#[tokio::test]
async fn a_new_version_takes_its_time_from_the_nodes_clock() {
    let manual = ManualClock::new(42_000);
    let files = coordinator_on(&[], SharedClock::new(manual));
    let report = put(&files).await.expect("all replicas accept");
    assert_eq!(report.manifest.modified.unix_ms(), 42_000);
}
