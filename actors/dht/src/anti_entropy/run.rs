//! Running exchanges against a peer over the [`DhtTransport`]: the
//! protocol steps, then the repairs its outcome calls for — manifests
//! pulled by key and pushed whole, each live manifest's missing chunks
//! moved first (verified by hash on arrival) so that a manifest is never
//! stored where its chunks are not — and the hand-off of a partition this
//! node no longer replicates. No actor state: the exchange actor runs
//! these in its task set and records what they report.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::buckets::Entry;
use super::exchange::{AeAnswer, AeRequest, ExchangeError, Initiator, Next, AE_WIRE_VERSION};
use super::replica::{snapshot, FetchedBuckets};
use super::throttle::Throttle;
use crate::digest::blake3_of;
use crate::keyspace::Partition;
use crate::manifest::{name_key, Manifest};
use crate::storage::{ChunkRead, DhtStore};
use crate::transport::{DhtTransport, RpcError};
use crate::wire::{Request, Response, MAX_HAS, MAX_MANIFEST_KEYS};
use hypha_cluster::membership::MemberKey;
use hypha_core::clock::SharedClock;
use hypha_core::codec;
use hypha_store::StoreError;

/// How exchanges run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSettings {
    /// Tree levels per descent round trip.
    pub step: u8,
    /// Entries repaired per exchange at most (the rest: next exchange).
    pub max_entries: usize,
    /// Timeout of one request.
    pub rpc_timeout_ms: u64,
    /// Tombstones older than this that this node never held are not
    /// pulled: the collector may already have removed them elsewhere.
    pub tombstone_grace_ms: u64,
}

/// Why an exchange stopped.
#[derive(Debug, Error)]
pub enum RunError {
    /// A request failed.
    #[error("request failed: {0}")]
    Rpc(#[from] RpcError),
    /// The local store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The peer's answers broke the protocol, or it refused.
    #[error("protocol: {0}")]
    Protocol(#[from] ExchangeError),
    /// An answer of the wrong kind.
    #[error("unexpected answer: {0}")]
    Answer(String),
}

/// Which way repairs may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Pull what the peer has newer, push what this node has newer.
    Both,
    /// Only push (hand-off: what is pulled here would be dropped).
    PushOnly,
}

/// What one exchange did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Equal roots at the first step: nothing to repair.
    pub equal: bool,
    /// Unix ms when this node took its snapshot.
    pub started_ms: u64,
    /// Protocol requests sent.
    pub round_trips: u32,
    /// Protocol bytes, both ways (not what repairs moved).
    pub protocol_bytes: u64,
    /// Manifest and chunk bytes repairs moved, both ways.
    pub moved_bytes: u64,
    /// Entries taken from the peer.
    pub pulled: usize,
    /// Entries given to the peer.
    pub pushed: usize,
    /// Entries the peer lacked (or held older) at this exchange, whether
    /// or not the push went through: 0 (with nothing deferred) means the
    /// peer held everything this node held.
    pub behind: usize,
    /// Entries that could not be repaired this time (a chunk missing on
    /// its source, a failed request): the next exchange retries them.
    pub skipped: usize,
    /// Buckets that differed.
    pub differing_buckets: usize,
    /// Differing buckets left for the next exchange (the entry cap).
    pub deferred_buckets: usize,
}

/// What a hand-off attempt did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandOff {
    /// Entries pushed to the replicas.
    pub pushed: usize,
    /// Entries dropped here after every replica confirmed them.
    pub dropped: usize,
    /// Nothing of the partition is left here.
    pub done: bool,
}

/// Runs exchanges for one node.
#[derive(Clone)]
pub struct Runner {
    store: DhtStore,
    transport: Arc<dyn DhtTransport>,
    throttle: Throttle,
    settings: RunSettings,
    clock: SharedClock,
}

fn wire_len<T: serde::Serialize>(message: &T) -> u64 {
    codec::encode(message).map_or(0, |b| b.len() as u64 + 2)
}

impl Runner {
    /// Over this node's store and transport, reading the time from
    /// `clock`.
    pub fn new(
        store: DhtStore,
        transport: Arc<dyn DhtTransport>,
        throttle: Throttle,
        settings: RunSettings,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            transport,
            throttle,
            settings,
            clock,
        }
    }

    async fn call(&self, peer: &MemberKey, request: Request) -> Result<Response, RunError> {
        let timeout = Duration::from_millis(self.settings.rpc_timeout_ms);
        Ok(self.transport.call(peer, request, timeout).await?)
    }

    async fn step(&self, peer: &MemberKey, request: AeRequest) -> Result<AeAnswer, RunError> {
        let request = Request::Exchange {
            version: AE_WIRE_VERSION,
            request,
        };
        match self.call(peer, request).await? {
            Response::Exchange(answer) => Ok(answer),
            other => Err(RunError::Answer(format!("{other:?}"))),
        }
    }

    /// One exchange of `partition` with `peer`, repairs included.
    pub async fn exchange(
        &self,
        partition: Partition,
        peer: &MemberKey,
        direction: Direction,
    ) -> Result<Report, RunError> {
        let mut report = Report {
            started_ms: self.clock.wall_ms(),
            ..Report::default()
        };
        let own = snapshot(&self.store, partition).await?;
        let (mut initiator, mut request) = Initiator::start(
            partition.0,
            own,
            self.settings.step,
            self.settings.max_entries,
        );
        let mut source = FetchedBuckets::default();
        let mut first = true;
        let outcome = loop {
            report.protocol_bytes += wire_len(&request);
            let answer = self.step(peer, request).await?;
            report.protocol_bytes += wire_len(&answer);
            if first {
                report.equal = answer == AeAnswer::Same;
                first = false;
            }
            let wanted = initiator.reads(&answer);
            source.fetch(&self.store, partition, &wanted).await?;
            match initiator.on_answer(answer, &source)? {
                Next::Ask(next) => request = next,
                Next::Done(outcome) => break outcome,
            }
        };
        report.round_trips = outcome.round_trips;
        report.differing_buckets = outcome.differing_buckets;
        report.deferred_buckets = outcome.deferred_buckets;
        report.behind = outcome.push.len();
        if direction == Direction::Both {
            self.pull(partition, peer, &outcome.pull, &mut report)
                .await?;
        }
        self.push(partition, peer, &outcome.push, &mut report)
            .await?;
        Ok(report)
    }

    async fn pull(
        &self,
        partition: Partition,
        peer: &MemberKey,
        entries: &[Entry],
        report: &mut Report,
    ) -> Result<(), RunError> {
        let mut keys: Vec<[u8; 32]> = entries.iter().map(|e| e.key).collect();
        while !keys.is_empty() {
            let batch: Vec<[u8; 32]> = keys.iter().take(MAX_MANIFEST_KEYS).copied().collect();
            let request = Request::ManifestsByKey {
                partition: partition.0,
                keys: batch.clone(),
            };
            let (handled, manifests) = match self.call(peer, request).await? {
                Response::Manifests { handled, manifests } => (handled as usize, manifests),
                other => return Err(RunError::Answer(format!("{other:?}"))),
            };
            if handled == 0 || handled > batch.len() {
                return Err(RunError::Answer(format!(
                    "{handled} of {} keys",
                    batch.len()
                )));
            }
            keys.drain(..handled);
            for m in manifests {
                if !batch[..handled].contains(&name_key(&m.name).0)
                    || m.validate().is_err()
                    || m.partition(&self.store.partitioning()) != partition
                {
                    report.skipped += 1;
                    continue;
                }
                if self.pull_one(partition, peer, &m, report).await? {
                    report.pulled += 1;
                } else {
                    report.skipped += 1;
                }
            }
        }
        Ok(())
    }

    /// Store a pulled manifest after its missing chunks; false if a chunk
    /// could not be had (the manifest is then not stored).
    async fn pull_one(
        &self,
        partition: Partition,
        peer: &MemberKey,
        m: &Manifest,
        report: &mut Report,
    ) -> Result<bool, RunError> {
        if !m.is_live() && self.expired_and_unknown(m).await? {
            return Ok(true);
        }
        let hashes: Vec<[u8; 32]> = m.chunks.iter().map(|c| c.hash).collect();
        for window in hashes.chunks(MAX_HAS) {
            let held = self.store.has_chunks(partition, window).await?;
            for (hash, held) in window.iter().zip(held) {
                if !held && !self.pull_chunk(partition, peer, hash, report).await? {
                    return Ok(false);
                }
            }
        }
        report.moved_bytes += wire_len(m);
        self.store.put_manifest(m).await?;
        Ok(true)
    }

    /// A tombstone past its grace for a name this node does not hold: the
    /// collector may have removed it on other replicas already, so taking
    /// it would only bring it back; there is nothing here for it to hide.
    async fn expired_and_unknown(&self, m: &Manifest) -> Result<bool, RunError> {
        let age_ms = self.clock.wall_ms().saturating_sub(m.modified.unix_ms());
        if age_ms <= self.settings.tombstone_grace_ms {
            return Ok(false);
        }
        Ok(self.store.get_manifest(&m.name).await?.is_none())
    }

    async fn pull_chunk(
        &self,
        partition: Partition,
        peer: &MemberKey,
        hash: &[u8; 32],
        report: &mut Report,
    ) -> Result<bool, RunError> {
        let request = Request::GetChunk {
            partition: partition.0,
            hash: *hash,
        };
        let data = match self.call(peer, request).await {
            Ok(Response::Chunk(Some(data))) => data,
            Ok(_) | Err(RunError::Rpc(RpcError::Remote(_))) => return Ok(false),
            Err(err) => return Err(err),
        };
        self.throttle.acquire(data.len() as u64).await;
        report.moved_bytes += data.len() as u64;
        let (found, data) = blake3_of(data)
            .await
            .map_err(|e| StoreError::Io(e.to_string()))?;
        if &found != hash {
            metrics::counter!("hypha_dht_verification_failures_total", "where" => "anti_entropy")
                .increment(1);
            return Ok(false);
        }
        self.store
            .put_chunk(partition, hash, data, self.clock.wall_ms())
            .await?;
        Ok(true)
    }

    async fn push(
        &self,
        partition: Partition,
        peer: &MemberKey,
        entries: &[Entry],
        report: &mut Report,
    ) -> Result<(), RunError> {
        for entry in entries {
            // The newest version here now (it may have moved on since).
            let Some(m) = self.store.manifest_by_key(partition, &entry.key).await? else {
                continue;
            };
            if self.push_one(partition, peer, &m, report).await? {
                report.pushed += 1;
            } else {
                report.skipped += 1;
            }
        }
        Ok(())
    }

    async fn push_one(
        &self,
        partition: Partition,
        peer: &MemberKey,
        m: &Manifest,
        report: &mut Report,
    ) -> Result<bool, RunError> {
        let hashes: Vec<[u8; 32]> = m.chunks.iter().map(|c| c.hash).collect();
        for window in hashes.chunks(MAX_HAS) {
            let request = Request::HasChunks {
                partition: partition.0,
                hashes: window.to_vec(),
            };
            let held = match self.call(peer, request).await? {
                Response::Has(held) if held.len() == window.len() => held,
                other => return Err(RunError::Answer(format!("{other:?}"))),
            };
            for (hash, held) in window.iter().zip(held) {
                if !held && !self.push_chunk(partition, peer, hash, report).await? {
                    return Ok(false);
                }
            }
        }
        report.moved_bytes += wire_len(m);
        let request = Request::PutManifest {
            manifest: m.clone(),
        };
        match self.call(peer, request).await? {
            Response::ManifestPut(_) => Ok(true),
            other => Err(RunError::Answer(format!("{other:?}"))),
        }
    }

    async fn push_chunk(
        &self,
        partition: Partition,
        peer: &MemberKey,
        hash: &[u8; 32],
        report: &mut Report,
    ) -> Result<bool, RunError> {
        let ChunkRead::Found(data) = self.store.get_chunk(partition, hash).await? else {
            // Missing or corrupt here: the peer gets it from another replica.
            return Ok(false);
        };
        self.throttle.acquire(data.len() as u64).await;
        report.moved_bytes += data.len() as u64;
        let request = Request::StoreChunk {
            partition: partition.0,
            hash: *hash,
            data,
        };
        match self.call(peer, request).await {
            Ok(Response::ChunkStored) => Ok(true),
            Ok(_) | Err(RunError::Rpc(RpcError::Remote(_))) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Hand `partition` off to `replicas` (this node no longer is one):
    /// push everything to each until an exchange finds it lacking nothing
    /// this node holds, then drop what was read before those confirming
    /// exchanges. A replica may hold more (writes this node never saw):
    /// the confirmation is "holds all of ours", which is "equal roots"
    /// whenever nothing else changed. Entries written here after the read
    /// stay for the next attempt.
    pub async fn hand_off(
        &self,
        partition: Partition,
        replicas: &[MemberKey],
    ) -> Result<HandOff, RunError> {
        let mut result = HandOff::default();
        let entries = self.store.partition_entries(partition).await?;
        if entries.is_empty() {
            result.done = !self.store.holds(partition).await?;
            return Ok(result);
        }
        for peer in replicas {
            let mut confirmed = false;
            for _ in 0..HAND_OFF_ROUNDS {
                let report = self.exchange(partition, peer, Direction::PushOnly).await?;
                result.pushed += report.pushed;
                if report.behind == 0 && report.deferred_buckets == 0 {
                    confirmed = true;
                    break;
                }
            }
            if !confirmed {
                return Ok(result);
            }
        }
        result.dropped = self.store.drop_entries(partition, &entries).await?;
        result.done = !self.store.holds(partition).await?;
        Ok(result)
    }
}

/// Exchanges per replica in one hand-off attempt: the first pushes, the
/// next confirms (more when the entry cap deferred buckets).
const HAND_OFF_ROUNDS: usize = 3;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use futures::future::BoxFuture;
    use tokio::sync::watch;

    use super::*;
    use crate::anti_entropy::caught_up::CaughtUp;
    use crate::keyspace::Partitioning;
    use crate::manifest::tests::sample;
    use crate::manifest::{ChunkRef, FileState};
    use crate::placement::{Placement, PlacementRules};
    use crate::service::DhtHandler;
    use crate::test_store;
    use crate::wire;

    /// Nodes' handlers in one process, every message through the codec.
    struct Loopback(HashMap<MemberKey, DhtHandler>);

    impl DhtTransport for Loopback {
        fn call(
            &self,
            peer: &MemberKey,
            request: Request,
            _timeout: Duration,
        ) -> BoxFuture<'static, Result<Response, RpcError>> {
            let handler = self.0.get(peer).cloned();
            let peer = peer.link_name();
            Box::pin(async move {
                let handler = handler.ok_or(RpcError::Unreachable(peer))?;
                let bytes = wire::encode_request(&request).map_err(RpcError::codec)?;
                let response = match wire::decode_request(&bytes) {
                    Ok(request) => handler.handle(request).await,
                    Err(err) => Response::Error(err),
                };
                let bytes = wire::encode_response(&response).map_err(RpcError::codec)?;
                match wire::decode_response(&bytes).map_err(RpcError::Codec)? {
                    Response::Error(err) => Err(RpcError::Remote(err)),
                    other => Ok(other),
                }
            })
        }
    }

    struct Node {
        key: MemberKey,
        store: DhtStore,
        actor: ractor::ActorRef<hypha_store::StoreMessage>,
        _kept: test_store::TestStore,
    }

    fn partitioning() -> Partitioning {
        Partitioning::new(2).expect("bits")
    }

    async fn node(i: u8) -> Node {
        let kept = test_store::open(&format!("ae-run-test-{i}"), partitioning()).await;
        Node {
            key: MemberKey::new(hex::encode([i; 32]), 1),
            store: kept.store.clone(),
            actor: kept.actor.clone(),
            _kept: kept,
        }
    }

    fn runner_of(me: &Node, all: &[&Node]) -> Runner {
        let handlers = all
            .iter()
            .map(|n| {
                let rules = PlacementRules {
                    partitioning: partitioning(),
                    replicas: 3,
                    down_grace_ms: 1_000,
                    write_quorum: 2,
                    pins: Default::default(),
                };
                let (_, rx) = watch::channel(Arc::new(Placement::alone(n.key.clone(), rules)));
                (
                    n.key.clone(),
                    DhtHandler::new(n.store.clone(), rx, CaughtUp::default()),
                )
            })
            .collect();
        Runner::new(
            me.store.clone(),
            Arc::new(Loopback(handlers)),
            Throttle::new(0, SharedClock::system()),
            RunSettings {
                step: 2,
                max_entries: 8_192,
                rpc_timeout_ms: 5_000,
                tombstone_grace_ms: 3_600_000,
            },
            SharedClock::system(),
        )
    }

    /// A live file of `content`, its chunk stored on `node`.
    async fn write_file(node: &Node, name: &str, content: &[u8], modified_ms: u64) -> Manifest {
        let hash = *blake3::hash(content).as_bytes();
        let mut m = sample(name, 0, 1);
        m.modified = crate::hlc::Timestamp::from_unix_ms(modified_ms);
        m.size = content.len() as u64;
        m.root = hash;
        m.chunks = vec![ChunkRef {
            hash,
            len: content.len() as u32,
        }];
        let p = m.partition(&partitioning());
        node.store
            .put_chunk(p, &hash, content.to_vec(), SharedClock::system().wall_ms())
            .await
            .expect("chunk");
        node.store.put_manifest(&m).await.expect("manifest");
        m
    }

    async fn tombstone(node: &Node, live: &Manifest, modified_ms: u64) {
        let mut t = live.clone();
        t.state = FileState::Tombstone;
        t.chunks.clear();
        t.size = 0;
        t.root = *blake3::hash(b"").as_bytes();
        t.modified = crate::hlc::Timestamp::from_unix_ms(modified_ms);
        node.store.put_manifest(&t).await.expect("tombstone");
    }

    async fn roots(node: &Node) -> Vec<(u64, [u8; 32])> {
        let mut out = Vec::new();
        for p in 0..4 {
            let s = snapshot(&node.store, Partition(p)).await.expect("digests");
            out.push((s.digests.entries(), s.tree.root()));
        }
        out
    }

    async fn content_of(node: &Node, name: &str) -> Option<Vec<u8>> {
        let m = node.store.get_manifest(name).await.expect("read")?;
        if !m.is_live() {
            return None;
        }
        let p = m.partition(&partitioning());
        let mut out = Vec::new();
        for c in &m.chunks {
            match node.store.get_chunk(p, &c.hash).await.expect("read") {
                ChunkRead::Found(bytes) => out.extend(bytes),
                other => panic!("chunk of {name}: {other:?}"),
            }
        }
        Some(out)
    }

    #[tokio::test]
    async fn an_exchange_moves_manifests_and_chunks_both_ways_and_never_resurrects() {
        let a = node(1).await;
        let b = node(2).await;
        let now = SharedClock::system().wall_ms();
        let mut names = Vec::new();
        for i in 0..30u64 {
            let name = format!("f{i}");
            let body = format!("content of {i}").into_bytes();
            // Files 0-9 on a only, 10-19 on b only, 20-29 on both.
            if !(10..20).contains(&i) {
                write_file(&a, &name, &body, now - 10_000).await;
            }
            if i >= 10 {
                write_file(&b, &name, &body, now - 10_000).await;
            }
            names.push((name, body));
        }
        // f20 deleted on b after both had it; f21 overwritten on a.
        let f20 = b.store.get_manifest("f20").await.unwrap().unwrap();
        tombstone(&b, &f20, now - 5_000).await;
        write_file(&a, "f21", b"newer", now - 1_000).await;
        assert_ne!(roots(&a).await, roots(&b).await);

        let runner = runner_of(&a, &[&a, &b]);
        for p in 0..4 {
            let report = runner
                .exchange(Partition(p), &b.key, Direction::Both)
                .await
                .expect("exchange");
            assert_eq!(report.skipped, 0);
        }
        assert_eq!(
            roots(&a).await,
            roots(&b).await,
            "equal after one exchange each"
        );
        for node in [&a, &b] {
            for (name, body) in &names {
                let want = match name.as_str() {
                    "f20" => None,
                    "f21" => Some(b"newer".to_vec()),
                    _ => Some(body.clone()),
                };
                assert_eq!(content_of(node, name).await, want, "{name}");
            }
        }
        // Now equal: one round trip per partition, nothing moved.
        let report = runner
            .exchange(Partition(0), &b.key, Direction::Both)
            .await
            .expect("exchange");
        assert!(report.equal && report.round_trips == 1 && report.moved_bytes == 0);
        a.actor.stop(None);
        b.actor.stop(None);
    }

    #[tokio::test]
    async fn a_hand_off_drops_only_what_every_replica_confirmed() {
        let old = node(1).await;
        let r1 = node(2).await;
        let r2 = node(3).await;
        let now = SharedClock::system().wall_ms();
        let mut files = Vec::new();
        for i in 0..20u64 {
            let body = i.to_be_bytes().to_vec();
            files.push((write_file(&old, &format!("h{i}"), &body, now).await, body));
        }
        let p = files[0].0.partition(&partitioning());
        let replicas = [r1.key.clone(), r2.key.clone()];
        // r2 unreachable: the hand-off fails and nothing is dropped.
        let partial = runner_of(&old, &[&old, &r1]);
        assert!(partial.hand_off(p, &replicas).await.is_err());
        assert!(old.store.holds(p).await.unwrap());
        let runner = runner_of(&old, &[&old, &r1, &r2]);
        let h = runner.hand_off(p, &replicas).await.expect("hand-off");
        assert!(h.done && h.dropped > 0, "{h:?}");
        assert!(!old.store.holds(p).await.unwrap());
        for (f, body) in files
            .iter()
            .filter(|(f, _)| f.partition(&partitioning()) == p)
        {
            assert!(old.store.get_manifest(&f.name).await.unwrap().is_none());
            for r in [&r1, &r2] {
                assert_eq!(
                    content_of(r, &f.name).await.as_ref(),
                    Some(body),
                    "{}",
                    f.name
                );
            }
        }
        for n in [&old, &r1, &r2] {
            n.actor.stop(None);
        }
    }
}
