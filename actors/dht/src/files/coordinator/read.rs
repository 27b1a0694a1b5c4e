//! Downloads: the chunks of a range fetched ahead from replicas (the
//! local one first), every one verified against its hash before a byte
//! of it is passed on; a replica found with a missing or bad copy is
//! repaired with the good bytes. Inline files are cut from the manifest.

use futures::stream::{self, BoxStream, StreamExt};

use super::{ByteRange, Files, FilesError};
use crate::digest::blake3_of;
use crate::files::decide::verdict::{judge_chunk, ChunkCopy, ChunkStep, Repair, Source};
use crate::keyspace::Partition;
use crate::manifest::{ChunkRef, Manifest};
use crate::placement::Placement;
use crate::wire::{Request, Response};
use hypha_cluster::membership::MemberKey;

impl Files {
    /// Verified bytes of `range` of the file `manifest` describes (a range
    /// outside the file yields what overlaps it).
    pub fn read(
        &self,
        manifest: &Manifest,
        range: ByteRange,
    ) -> BoxStream<'static, Result<Vec<u8>, FilesError>> {
        if !manifest.inline.is_empty() {
            return inline_range(manifest, range);
        }
        let placement = self.placement();
        let (partition, replicas) = placement.replicas_of_name(&manifest.name);
        let (sources, fallback) = self.chunk_sources(&placement, &replicas);
        let offsets = manifest.offsets();
        let wanted: Vec<(ChunkRef, u64)> = manifest
            .chunks
            .iter()
            .zip(offsets)
            .filter(|(c, at)| *at < range.end && at + u64::from(c.len) > range.start)
            .map(|(c, at)| (*c, at))
            .collect();
        let files = self.clone();
        let read_ahead = self.inner.config.read_ahead.max(1);
        stream::iter(wanted)
            .map(move |(chunk, at)| {
                let files = files.clone();
                let sources = sources.clone();
                let fallback = fallback.clone();
                async move {
                    let bytes = files
                        .fetch_chunk(partition, chunk, &sources, &fallback)
                        .await?;
                    let mut bytes = bytes;
                    let to = usize::try_from((range.end - at).min(u64::from(chunk.len)))
                        .unwrap_or(bytes.len())
                        .min(bytes.len());
                    let from = usize::try_from(range.start.saturating_sub(at))
                        .unwrap_or(0)
                        .min(to);
                    // Cut in place: a whole chunk (the common case) is
                    // passed on without a copy.
                    bytes.truncate(to);
                    bytes.drain(..from);
                    metrics::counter!("hypha_files_read_bytes_total").increment(bytes.len() as u64);
                    Ok(bytes)
                }
            })
            .buffered(read_ahead)
            .boxed()
    }

    /// Where to fetch a chunk of a partition with `replicas` from: its live
    /// replicas (the local one first: no network hop), then every other
    /// live member (a fallback while a partition moves).
    pub(super) fn chunk_sources(
        &self,
        placement: &Placement,
        replicas: &[MemberKey],
    ) -> (Vec<MemberKey>, Vec<MemberKey>) {
        let me = placement.me().clone();
        let mut sources: Vec<MemberKey> = replicas
            .iter()
            .filter(|m| placement.is_live(m))
            .cloned()
            .collect();
        sources.sort_by_key(|m| *m != me);
        let fallback: Vec<MemberKey> = placement
            .live()
            .iter()
            .filter(|m| !sources.contains(m))
            .cloned()
            .collect();
        (sources, fallback)
    }

    /// One chunk, verified, from the first replica with a good copy;
    /// replicas found without one are repaired. On a node that does not
    /// replicate the file, the edge cache ([`crate::files::cache`]) is
    /// asked first and keeps what was fetched.
    pub(super) async fn fetch_chunk(
        &self,
        partition: Partition,
        chunk: ChunkRef,
        sources: &[MemberKey],
        fallback: &[MemberKey],
    ) -> Result<Vec<u8>, FilesError> {
        let mut to_repair = Vec::new();
        let me = self.placement().me().clone();
        let cache = &self.inner.cache;
        let edge = cache.enabled() && !sources.contains(&me);
        if edge {
            if let Some(bytes) = cache.get(&chunk.hash) {
                return Ok(bytes);
            }
        }
        let request = Request::GetChunk {
            partition: partition.0,
            hash: chunk.hash,
        };
        for (i, member) in sources.iter().chain(fallback).enumerate() {
            let source = if i < sources.len() {
                Source::Replica
            } else {
                Source::Fallback
            };
            let answer = self
                .inner
                .transport
                .call(member, request.clone(), self.timeout())
                .await;
            let (copy, bytes) = match answer {
                Ok(Response::Chunk(Some(bytes))) => {
                    // This node's store verified its own copy before
                    // answering; only bytes that crossed the network are
                    // hashed again here.
                    let (hash, bytes) = if *member == me {
                        (chunk.hash, bytes)
                    } else {
                        hash_of(bytes).await?
                    };
                    let len = bytes.len();
                    (ChunkCopy::Bytes { hash, len }, bytes)
                }
                Ok(Response::Chunk(None)) => (ChunkCopy::Missing, Vec::new()),
                _ => (ChunkCopy::NoAnswer, Vec::new()),
            };
            let repair = match judge_chunk(copy, chunk, source) {
                ChunkStep::Serve => {
                    if edge && *member != me {
                        cache.insert(chunk.hash, &bytes);
                    }
                    self.repair_chunk(partition, chunk.hash, &bytes, to_repair)
                        .await;
                    return Ok(bytes);
                }
                ChunkStep::Next { repair } => repair,
                ChunkStep::Corrupt { repair } => {
                    metrics::counter!("hypha_dht_verification_failures_total", "where" => "remote")
                        .increment(1);
                    tracing::warn!(replica = %member.link_name(), chunk = %hex::encode(chunk.hash), "replica sent bytes that fail verification");
                    repair
                }
            };
            if repair == Repair::Yes {
                to_repair.push(member.clone());
            }
        }
        Err(FilesError::Unreadable(hex::encode(chunk.hash)))
    }

    async fn repair_chunk(
        &self,
        partition: Partition,
        hash: [u8; 32],
        bytes: &[u8],
        targets: Vec<MemberKey>,
    ) {
        if targets.is_empty() {
            return;
        }
        let request = Request::StoreChunk {
            partition: partition.0,
            hash,
            data: bytes.to_vec(),
        };
        let gathered = self.gather(&targets, &request, targets.len()).await;
        metrics::counter!("hypha_dht_read_repairs_total", "what" => "chunk")
            .increment(gathered.ok.len() as u64);
    }
}

/// The part of an inline file within `range` (its manifest was verified
/// when it was read).
fn inline_range(
    manifest: &Manifest,
    range: ByteRange,
) -> BoxStream<'static, Result<Vec<u8>, FilesError>> {
    let len = manifest.inline.len();
    let from = usize::try_from(range.start).unwrap_or(len).min(len);
    let to = usize::try_from(range.end).unwrap_or(len).clamp(from, len);
    let bytes = manifest.inline[from..to].to_vec();
    metrics::counter!("hypha_files_read_bytes_total").increment(bytes.len() as u64);
    stream::once(async move { Ok(bytes) }).boxed()
}

async fn hash_of(data: Vec<u8>) -> Result<([u8; 32], Vec<u8>), FilesError> {
    blake3_of(data)
        .await
        .map_err(|e| FilesError::Body(e.to_string()))
}
