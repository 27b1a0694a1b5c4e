//! The file coordinator: the node that receives a request drives it
//! against the replicas of the file's partition. Writes: chunks first
//! (each durable on W replicas), then the manifest (durable on W), so a
//! visible manifest always has readable chunks. Reads: the manifest from a
//! read quorum (newest version wins; stale replicas repaired), then chunks
//! from any replica, each verified against its hash before a byte of it is
//! sent; a replica with a bad or missing copy is repaired from a good one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream, FuturesOrdered, Stream, StreamExt};
use tokio::sync::watch;

use super::error::FilesError;
use super::listing::{self, ListQuery, NodePage, Page};
use super::quorum::{gather, gather_hedged, Gathered, Tails};
use crate::chunker::Chunker;
use crate::digest::blake3_of;
use crate::hlc::Hlc;
use crate::keyspace::Partition;
use crate::manifest::{
    newest, validate_labels, validate_name, ChunkRef, FileState, Manifest, MANIFEST_FORMAT,
    MAX_CONTENT_TYPE_BYTES, MAX_INLINE_BYTES,
};
use crate::placement::Placement;
use crate::transport::{DhtTransport, RpcError};
use crate::wire::{ErrorCode, ListNames, PutOutcome, Request, Response, Standing, MAX_LIST};
use hypha_cluster::membership::MemberKey;

/// Write quorum calls whose slower replicas may still be running in the
/// background; more make writers wait for their own.
const MAX_TAILS: usize = 256;

/// Coordinator settings: the `[dht]` section as it is (the coordinator
/// reads the quorums, timeouts, size limits and chunk grace of it).
pub type FilesConfig = crate::settings::DhtSettings;

/// What a read insists on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Fail (503) unless a read quorum of replicas answered.
    Quorum,
    /// Answer from fewer replicas when the quorum is unreachable, saying
    /// so (`degraded`); the bytes are still verified.
    Available,
}

/// Metadata given with an upload.
#[derive(Debug, Clone, Default)]
pub struct PutMeta {
    /// MIME type.
    pub content_type: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// An acknowledged upload.
#[derive(Debug, Clone)]
pub struct PutReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// Replicas that acknowledged the manifest durable.
    pub acks: usize,
    /// A newer version was already stored on some replica (this write
    /// lost last-writer-wins there).
    pub superseded: bool,
}

/// A byte range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// An open file: its manifest and a stream of verified bytes.
pub struct Opened {
    /// The manifest read.
    pub manifest: Manifest,
    /// The read quorum was not reached; the version may be stale.
    pub degraded: bool,
    /// The bytes streamed.
    pub range: ByteRange,
    /// Verified bytes; an `Err` item ends the stream (the response is cut).
    pub body: BoxStream<'static, Result<Vec<u8>, FilesError>>,
}

/// What an upload produced: chunks stored on the replicas, or (for a
/// small file) the bytes to put inline in the manifest.
struct Content {
    chunks: Vec<ChunkRef>,
    inline: Vec<u8>,
    size: u64,
    root: [u8; 32],
}

/// A manifest read from replicas.
struct ManifestRead {
    newest: Option<Manifest>,
    degraded: bool,
    /// Replicas that answered.
    answered: usize,
}

/// The coordinator (cheap to clone).
#[derive(Clone)]
pub struct Files {
    inner: Arc<Inner>,
}

struct Inner {
    me_id: [u8; 32],
    transport: Arc<dyn DhtTransport>,
    placement: watch::Receiver<Arc<Placement>>,
    hlc: Arc<Hlc>,
    config: FilesConfig,
    tails: Tails,
}

/// Whether a replica's answer to a quorum read counts toward the quorum.
fn counts_toward_quorum(response: &Response) -> bool {
    matches!(
        response,
        Response::ReplicaManifest {
            standing: Standing::Serving,
            ..
        }
    )
}

/// A read quorum missed: say how many replicas answered without counting.
fn read_quorum_error(needed: usize, counted: usize, gathered: &Gathered) -> FilesError {
    let uncounted = gathered.ok.len() - counted.min(gathered.ok.len());
    match quorum_error(needed, gathered) {
        FilesError::Quorum { detail, .. } if uncounted > 0 => FilesError::Quorum {
            needed,
            got: counted,
            detail: format!(
                "{uncounted} replica(s) answered but do not yet hold the partition; {detail}"
            ),
        },
        FilesError::Quorum { detail, .. } => FilesError::Quorum {
            needed,
            got: counted,
            detail,
        },
        other => other,
    }
}

/// Say which replicas refused a write as not theirs, and why: such a
/// replica counts as one that did not acknowledge (it is in `failed`,
/// never in `ok`), and a refusal means this node's view and the
/// replica's disagree about the partition. An upload drops a replica
/// after its first failed chunk, so this is said once per replica and
/// upload, not once per chunk.
fn log_refusals(gathered: &Gathered) {
    for (member, err) in &gathered.failed {
        if let RpcError::Remote(w) = err {
            if w.code == ErrorCode::NotReplica {
                tracing::warn!(replica = %member.link_name(), "write refused: {}", w.message);
            }
        }
    }
}

fn quorum_error(needed: usize, gathered: &Gathered) -> FilesError {
    if gathered.all_disk_full() {
        return FilesError::DiskFull(gathered.detail());
    }
    FilesError::Quorum {
        needed,
        got: gathered.ok.len(),
        detail: gathered.detail(),
    }
}

async fn hash_of(data: Vec<u8>) -> Result<([u8; 32], Vec<u8>), FilesError> {
    blake3_of(data)
        .await
        .map_err(|e| FilesError::Body(e.to_string()))
}

/// Chunker state carried through blocking cuts.
struct Cutter {
    chunker: Chunker,
    root: blake3::Hasher,
}

/// Whether the input has ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    More,
    Ended,
}

type Cut = Vec<([u8; 32], Vec<u8>)>;

async fn cut(
    mut cutter: Cutter,
    bytes: Vec<u8>,
    input: Input,
) -> Result<(Cutter, Cut), FilesError> {
    tokio::task::spawn_blocking(move || {
        cutter.root.update(&bytes);
        let mut chunks = cutter.chunker.push(&bytes);
        if input == Input::Ended {
            let chunker = std::mem::take(&mut cutter.chunker);
            chunks.extend(chunker.finish());
        }
        let hashed = chunks
            .into_iter()
            .map(|c| (*blake3::hash(&c).as_bytes(), c))
            .collect();
        (cutter, hashed)
    })
    .await
    .map_err(|e| FilesError::Body(format!("chunking failed: {e}")))
}

impl Files {
    /// A coordinator for node `me_id`.
    pub fn new(
        me_id: [u8; 32],
        transport: Arc<dyn DhtTransport>,
        placement: watch::Receiver<Arc<Placement>>,
        hlc: Arc<Hlc>,
        config: FilesConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                me_id,
                transport,
                placement,
                hlc,
                config,
                tails: Tails::new(MAX_TAILS),
            }),
        }
    }

    /// Settings.
    pub fn config(&self) -> &FilesConfig {
        &self.inner.config
    }

    fn placement(&self) -> Arc<Placement> {
        self.inner.placement.borrow().clone()
    }

    /// Placement to coordinate a file operation by: refused until the
    /// node's view has settled after its start, because until then its
    /// replica sets may hold only the members it has linked to — itself,
    /// with what it held before it went down ([`crate::router`]).
    fn settled_placement(&self) -> Result<Arc<Placement>, FilesError> {
        let placement = self.placement();
        if !placement.settled() {
            metrics::counter!("hypha_dht_quorum_failures_total", "op" => "not_settled")
                .increment(1);
            return Err(FilesError::NotSettled);
        }
        Ok(placement)
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.rpc_timeout_ms)
    }

    fn straggler(&self) -> Duration {
        Duration::from_millis(self.inner.config.straggler_ms)
    }

    async fn gather(&self, targets: &[MemberKey], request: &Request, need: usize) -> Gathered {
        gather(
            &self.inner.transport,
            targets,
            request,
            need,
            self.timeout(),
            self.straggler(),
        )
        .await
    }

    /// Replicas of `name`, checked against the write quorum before any
    /// byte moves: a write that cannot succeed fails at once and leaves
    /// nothing behind.
    fn write_targets(&self, name: &str) -> Result<(Partition, Vec<MemberKey>), FilesError> {
        let placement = self.settled_placement()?;
        let (partition, replicas) = placement.replicas_of_name(name);
        let w = self.inner.config.write_quorum;
        let live = replicas.iter().filter(|m| placement.is_live(m)).count();
        if live < w {
            metrics::counter!("hypha_dht_quorum_failures_total", "op" => "write").increment(1);
            return Err(FilesError::Quorum {
                needed: w,
                got: live,
                detail: format!(
                    "{live} of the partition's {} replicas are up",
                    replicas.len()
                ),
            });
        }
        Ok((partition, replicas))
    }

    /// Upload `body` as `name`; acknowledged once durable on W replicas.
    pub async fn put<S, B, E>(
        &self,
        name: &str,
        meta: PutMeta,
        body: S,
    ) -> Result<PutReport, FilesError>
    where
        S: Stream<Item = Result<B, E>> + Send + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        validate_name(name).map_err(|e| FilesError::BadRequest(e.to_string()))?;
        validate_labels(&meta.labels).map_err(|e| FilesError::BadRequest(e.to_string()))?;
        let ct_ok = meta.content_type.len() <= MAX_CONTENT_TYPE_BYTES
            && meta.content_type.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !ct_ok {
            return Err(FilesError::BadRequest("bad content type".into()));
        }
        let (partition, replicas) = self.write_targets(name)?;
        // The read learns the version to keep `created` from, and checks
        // that W replicas answer before the manifest is written: a write
        // refused for want of replicas then leaves nothing visible, even
        // before membership has noticed a replica died.
        let w = self.inner.config.write_quorum;
        let need = self.inner.config.read_quorum.max(w);
        let (upload, existing) = futures::join!(
            self.upload(partition, replicas.clone(), body),
            self.read_manifest_from(name, ReadConsistency::Available, need)
        );
        let content = upload?;
        let answered = existing.as_ref().map_or(0, |r| r.answered);
        if answered < w {
            metrics::counter!("hypha_dht_quorum_failures_total", "op" => "write").increment(1);
            return Err(FilesError::Quorum {
                needed: w,
                got: answered,
                detail: format!("{answered} of the partition's replicas answered"),
            });
        }
        let existing = existing.ok().and_then(|r| r.newest);
        self.commit(name, meta, replicas, content, existing).await
    }

    async fn commit(
        &self,
        name: &str,
        meta: PutMeta,
        replicas: Vec<MemberKey>,
        content: Content,
        existing: Option<Manifest>,
    ) -> Result<PutReport, FilesError> {
        let Content {
            chunks,
            inline,
            size,
            root,
        } = content;
        if let Some(old) = &existing {
            self.inner.hlc.observe(old.modified);
        }
        let modified = self.inner.hlc.now();
        let created = match &existing {
            Some(old) if old.is_live() => old.created,
            _ => modified,
        };
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            name: name.to_owned(),
            size,
            chunks,
            root,
            created,
            modified,
            writer: self.inner.me_id,
            content_type: meta.content_type,
            labels: meta.labels,
            state: FileState::Live,
            inline,
        };
        manifest
            .validate()
            .map_err(|e| FilesError::BadRequest(e.to_string()))?;
        let (acks, superseded) = self.put_manifest(&replicas, &manifest).await?;
        metrics::counter!("hypha_files_written_bytes_total").increment(size);
        Ok(PutReport {
            manifest,
            acks,
            superseded,
        })
    }

    async fn put_manifest(
        &self,
        replicas: &[MemberKey],
        manifest: &Manifest,
    ) -> Result<(usize, bool), FilesError> {
        let request = Request::PutManifest {
            manifest: manifest.clone(),
        };
        let gathered = self.write_quorum(replicas, &request).await?;
        let superseded = gathered
            .ok
            .iter()
            .any(|(_, r)| *r == Response::ManifestPut(PutOutcome::Superseded));
        Ok((gathered.ok.len(), superseded))
    }

    /// Stream the body through the chunker, storing each chunk on the
    /// replicas with a bounded number of chunks in flight; a body that
    /// ends within [`MAX_INLINE_BYTES`] before any chunk was cut is kept
    /// for the manifest instead.
    async fn upload<S, B, E>(
        &self,
        partition: Partition,
        replicas: Vec<MemberKey>,
        mut body: S,
    ) -> Result<Content, FilesError>
    where
        S: Stream<Item = Result<B, E>> + Send + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let config = self.inner.config;
        let started = Instant::now();
        let mut upload = Upload {
            files: self.clone(),
            partition,
            targets: replicas,
            in_flight: FuturesOrdered::new(),
            chunks: Vec::new(),
        };
        let mut cutter = Cutter {
            chunker: Chunker::default(),
            root: blake3::Hasher::new(),
        };
        let mut pending = Vec::new();
        let mut size = 0u64;
        while let Some(frame) = body.next().await {
            let frame = frame.map_err(|e| FilesError::Body(e.to_string()))?;
            let frame = frame.as_ref();
            size += frame.len() as u64;
            if size > config.max_file_bytes {
                return Err(FilesError::TooLarge {
                    limit_bytes: config.max_file_bytes,
                });
            }
            pending.extend_from_slice(frame);
            if pending.len() >= crate::chunker::MAX_CHUNK_BYTES {
                let (next, ready) = cut(cutter, std::mem::take(&mut pending), Input::More).await?;
                cutter = next;
                upload.send_all(ready).await?;
            }
            if started.elapsed().as_millis() > u128::from(config.chunk_grace_ms / 2) {
                return Err(FilesError::TooSlow(config.chunk_grace_ms / 2));
            }
        }
        if upload.chunks.is_empty() && pending.len() <= MAX_INLINE_BYTES {
            return Ok(Content {
                chunks: Vec::new(),
                root: *blake3::hash(&pending).as_bytes(),
                inline: pending,
                size,
            });
        }
        let (cutter, ready) = cut(cutter, pending, Input::Ended).await?;
        upload.send_all(ready).await?;
        upload.drain().await?;
        Ok(Content {
            chunks: upload.chunks,
            inline: Vec::new(),
            size,
            root: *cutter.root.finalize().as_bytes(),
        })
    }

    /// Store one chunk on `targets`; the replicas that failed.
    async fn store_chunk(
        &self,
        partition: Partition,
        targets: Vec<MemberKey>,
        hash: [u8; 32],
        data: Vec<u8>,
    ) -> Result<Vec<MemberKey>, FilesError> {
        let request = Request::StoreChunk {
            partition: partition.0,
            hash,
            data,
        };
        let gathered = self.write_quorum(&targets, &request).await?;
        Ok(gathered.failed.into_iter().map(|(m, _)| m).collect())
    }

    /// A write to `targets`, answered once W succeeded; the rest finish
    /// in the background.
    async fn write_quorum(
        &self,
        targets: &[MemberKey],
        request: &Request,
    ) -> Result<Gathered, FilesError> {
        let w = self.inner.config.write_quorum;
        let mut gathered = self.gather(targets, request, w).await;
        log_refusals(&gathered);
        self.inner
            .tails
            .adopt(std::mem::take(&mut gathered.pending))
            .await;
        if gathered.ok.len() < w {
            metrics::counter!("hypha_dht_quorum_failures_total", "op" => "write").increment(1);
            return Err(quorum_error(w, &gathered));
        }
        Ok(gathered)
    }

    async fn read_manifest(
        &self,
        name: &str,
        consistency: ReadConsistency,
    ) -> Result<ManifestRead, FilesError> {
        self.read_manifest_from(name, consistency, self.inner.config.read_quorum)
            .await
    }

    /// Read with `quorum` answers wanted. Only answers from replicas that
    /// hold the partition — in their own view, caught up since they joined
    /// its replica set — count toward it (docs/dht.md, "Which answers a
    /// quorum read counts"); the others still add what they hold. The
    /// quorum shrinks only with the configured replica count, never with
    /// this node's view: a view that lost owners (a restarted membership
    /// actor, a partition) must not make one local copy a quorum.
    async fn read_manifest_from(
        &self,
        name: &str,
        consistency: ReadConsistency,
        quorum: usize,
    ) -> Result<ManifestRead, FilesError> {
        let placement = self.settled_placement()?;
        let (_, mut replicas) = placement.replicas_of_name(name);
        let q = quorum.min(placement.replica_count()).max(1);
        let request = Request::ReadManifest {
            name: name.to_owned(),
        };
        // Local replica first (no network hop), then live ones.
        let me = placement.me().clone();
        replicas.sort_by_key(|m| (*m != me, !placement.is_live(m)));
        let gathered = gather_hedged(
            &self.inner.transport,
            &replicas,
            &request,
            q,
            self.timeout(),
            Duration::from_millis(self.inner.config.read_hedge_ms),
            counts_toward_quorum,
        )
        .await;
        // Answers from nodes that are not replicas in their own view are
        // data, but not repaired: a manifest read-repaired there would sit
        // without its chunks and never finish a hand-off.
        let mut answers: Vec<(MemberKey, Option<Manifest>)> = Vec::new();
        let mut outsiders: Vec<Manifest> = Vec::new();
        for (member, response) in &gathered.ok {
            match response {
                Response::ReplicaManifest {
                    manifest,
                    standing: Standing::NotReplica,
                } => outsiders.extend(verified(manifest)),
                Response::ReplicaManifest { manifest, .. } => {
                    answers.push((member.clone(), verified(manifest)));
                }
                _ => {}
            }
        }
        let counted = gathered
            .ok
            .iter()
            .filter(|(_, r)| counts_toward_quorum(r))
            .count();
        let degraded = counted < q;
        let answered = answers.len() + outsiders.len();
        if degraded && (answered == 0 || consistency == ReadConsistency::Quorum) {
            metrics::counter!("hypha_dht_quorum_failures_total", "op" => "read").increment(1);
            return Err(read_quorum_error(q, counted, &gathered));
        }
        let held = answers.iter().filter_map(|(_, m)| m.as_ref());
        let newest = newest(held.chain(outsiders.iter())).cloned();
        if let Some(n) = &newest {
            self.inner.hlc.observe(n.modified);
            self.repair_manifests(n, &answers).await;
        }
        Ok(ManifestRead {
            newest,
            degraded,
            answered,
        })
    }

    /// Read repair: give replicas that answered with an older version (or
    /// none) the newest one.
    async fn repair_manifests(&self, newest: &Manifest, answers: &[(MemberKey, Option<Manifest>)]) {
        let stale: Vec<MemberKey> = answers
            .iter()
            .filter(|(_, m)| m.as_ref().is_none_or(|m| m.version() < newest.version()))
            .map(|(member, _)| member.clone())
            .collect();
        if stale.is_empty() {
            return;
        }
        let request = Request::PutManifest {
            manifest: newest.clone(),
        };
        let gathered = self.gather(&stale, &request, stale.len()).await;
        metrics::counter!("hypha_dht_read_repairs_total", "what" => "manifest")
            .increment(gathered.ok.len() as u64);
    }

    /// The partition of `name` and its replica set, as this node sees it.
    pub fn placement_of(&self, name: &str) -> (Partition, Vec<MemberKey>) {
        self.placement().replicas_of_name(name)
    }

    /// The live manifest of `name`.
    pub async fn stat(
        &self,
        name: &str,
        consistency: ReadConsistency,
    ) -> Result<(Manifest, bool), FilesError> {
        validate_name(name).map_err(|e| FilesError::BadRequest(e.to_string()))?;
        let read = self.read_manifest(name, consistency).await?;
        match read.newest {
            Some(m) if m.is_live() => Ok((m, read.degraded)),
            _ => Err(FilesError::NotFound(name.to_owned())),
        }
    }

    /// Open `name` for reading (all of it, or `range`).
    pub async fn open(
        &self,
        name: &str,
        range: Option<ByteRange>,
        consistency: ReadConsistency,
    ) -> Result<Opened, FilesError> {
        let (manifest, degraded) = self.stat(name, consistency).await?;
        let range = range.unwrap_or(ByteRange {
            start: 0,
            end: manifest.size,
        });
        if range.start > range.end || range.end > manifest.size {
            return Err(FilesError::BadRequest("range outside the file".into()));
        }
        let body = self.read(&manifest, range);
        Ok(Opened {
            manifest,
            degraded,
            range,
            body,
        })
    }

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
        let me = placement.me().clone();
        let mut sources: Vec<MemberKey> = replicas
            .iter()
            .filter(|m| placement.is_live(m))
            .cloned()
            .collect();
        // Local first (no network hop), then the others.
        sources.sort_by_key(|m| *m != me);
        let fallback: Vec<MemberKey> = placement
            .live()
            .iter()
            .filter(|m| !sources.contains(m))
            .cloned()
            .collect();
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

    /// One chunk, verified, from the first replica with a good copy;
    /// replicas found without one are repaired.
    async fn fetch_chunk(
        &self,
        partition: Partition,
        chunk: ChunkRef,
        sources: &[MemberKey],
        fallback: &[MemberKey],
    ) -> Result<Vec<u8>, FilesError> {
        let mut to_repair = Vec::new();
        let me = self.placement().me().clone();
        let request = Request::GetChunk {
            partition: partition.0,
            hash: chunk.hash,
        };
        for (i, member) in sources.iter().chain(fallback).enumerate() {
            let is_replica = i < sources.len();
            let answer = self
                .inner
                .transport
                .call(member, request.clone(), self.timeout())
                .await;
            let Ok(Response::Chunk(found)) = answer else {
                continue;
            };
            let Some(bytes) = found else {
                if is_replica {
                    to_repair.push(member.clone());
                }
                continue;
            };
            // This node's store verified its own copy before answering;
            // only bytes that crossed the network are hashed again here.
            let (hash, bytes) = if *member == me {
                (chunk.hash, bytes)
            } else {
                hash_of(bytes).await?
            };
            if hash == chunk.hash && bytes.len() == chunk.len as usize {
                self.repair_chunk(partition, chunk.hash, &bytes, to_repair)
                    .await;
                return Ok(bytes);
            }
            metrics::counter!("hypha_dht_verification_failures_total", "where" => "remote")
                .increment(1);
            tracing::warn!(replica = %member.link_name(), chunk = %hex::encode(chunk.hash), "replica sent bytes that fail verification");
            if is_replica {
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

    /// Delete `name`: a tombstone, durable on W replicas.
    pub async fn delete(&self, name: &str) -> Result<(), FilesError> {
        validate_name(name).map_err(|e| FilesError::BadRequest(e.to_string()))?;
        let (_, replicas) = self.write_targets(name)?;
        let read = self.read_manifest(name, ReadConsistency::Available).await?;
        let old = match read.newest {
            Some(m) if m.is_live() => m,
            _ => return Err(FilesError::NotFound(name.to_owned())),
        };
        self.inner.hlc.observe(old.modified);
        let tombstone = Manifest {
            format: MANIFEST_FORMAT,
            name: name.to_owned(),
            size: 0,
            chunks: Vec::new(),
            root: [0; 32],
            created: old.created,
            modified: self.inner.hlc.now(),
            writer: self.inner.me_id,
            content_type: String::new(),
            labels: BTreeMap::new(),
            state: FileState::Tombstone,
            inline: Vec::new(),
        };
        self.put_manifest(&replicas, &tombstone).await?;
        Ok(())
    }

    /// One page of a cluster-wide listing. `incomplete` is true when some
    /// live member did not answer (names held only there are missing).
    pub async fn list(&self, query: &ListQuery) -> Result<(Page, bool), FilesError> {
        let limit = u32::try_from(query.limit).unwrap_or(u32::MAX);
        if limit == 0 || limit > MAX_LIST {
            return Err(FilesError::BadRequest(format!(
                "limit must be 1-{MAX_LIST}"
            )));
        }
        let placement = self.settled_placement()?;
        let members = placement.live().to_vec();
        let request = Request::ListNames(ListNames {
            prefix: query.prefix.clone(),
            after: query.after.clone(),
            limit,
        });
        let gathered = self.gather(&members, &request, members.len()).await;
        let pages: Vec<NodePage> = gathered
            .ok
            .iter()
            .filter_map(|(_, r)| match r {
                Response::Files { entries, more } => Some(NodePage {
                    entries: entries.clone(),
                    more: *more,
                }),
                _ => None,
            })
            .collect();
        if pages.is_empty() {
            return Err(quorum_error(1, &gathered));
        }
        let incomplete = pages.len() < members.len();
        Ok((listing::merge(pages, query), incomplete))
    }
}

/// A replica's manifest, unless its inline content fails verification
/// (then it counts as absent, and read repair replaces it).
fn verified(found: &Option<Manifest>) -> Option<Manifest> {
    match found {
        Some(m) if !m.inline_verified() => {
            metrics::counter!("hypha_dht_verification_failures_total", "where" => "remote")
                .increment(1);
            None
        }
        other => other.clone(),
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

/// An upload's chunks in flight.
struct Upload {
    files: Files,
    partition: Partition,
    targets: Vec<MemberKey>,
    in_flight:
        FuturesOrdered<futures::future::BoxFuture<'static, Result<Vec<MemberKey>, FilesError>>>,
    chunks: Vec<ChunkRef>,
}

impl Upload {
    async fn send_all(&mut self, ready: Cut) -> Result<(), FilesError> {
        for (hash, data) in ready {
            let len = u32::try_from(data.len())
                .map_err(|_| FilesError::BadRequest("chunk too large".into()))?;
            self.chunks.push(ChunkRef { hash, len });
            let files = self.files.clone();
            let targets = self.healthy_targets();
            let partition = self.partition;
            self.in_flight.push_back(Box::pin(async move {
                files.store_chunk(partition, targets, hash, data).await
            }));
            while self.in_flight.len() >= self.files.inner.config.upload_pipeline.max(1) {
                self.complete_one().await?;
            }
        }
        Ok(())
    }

    /// The targets, without replicas whose background writes failed
    /// recently, as long as W remain.
    fn healthy_targets(&self) -> Vec<MemberKey> {
        let tails = &self.files.inner.tails;
        let healthy: Vec<MemberKey> = self
            .targets
            .iter()
            .filter(|m| !tails.troubled(m))
            .cloned()
            .collect();
        if healthy.len() >= self.files.inner.config.write_quorum {
            healthy
        } else {
            self.targets.clone()
        }
    }

    async fn complete_one(&mut self) -> Result<(), FilesError> {
        if let Some(result) = self.in_flight.next().await {
            let failed = result?;
            // A replica that failed a chunk is skipped for the rest of the
            // upload (anti-entropy fills it in), so that a frozen replica
            // costs one straggler wait, not one per chunk.
            let w = self.files.inner.config.write_quorum;
            if self.targets.len() - failed.len() >= w {
                self.targets.retain(|m| !failed.contains(m));
            }
        }
        Ok(())
    }

    async fn drain(&mut self) -> Result<(), FilesError> {
        while !self.in_flight.is_empty() {
            self.complete_one().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
