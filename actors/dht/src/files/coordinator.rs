//! The file coordinator: the node that receives a request drives it
//! against the replicas of the file's partition. Writes: chunks first
//! (each durable on W replicas), then the manifest (durable on W), so a
//! visible manifest always has readable chunks. Reads: the manifest from a
//! read quorum (newest version wins; stale replicas repaired), then chunks
//! from any replica, each verified against its hash before a byte of it is
//! sent; a replica with a bad or missing copy is repaired from a good one.

use super::cache::ChunkCache;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, Stream};
use tokio::sync::watch;

pub use super::decide::verdict::ReadConsistency;
use super::decide::verdict::{
    counts_toward_quorum, enough_live, live_manifest, live_or_not_found, quorum_error,
    read_verdict, tombstone, write_verdict, ReadFound, Stamp, Stored, WriteAck, READ_BEFORE_WRITE,
};
use super::error::FilesError;
use super::listing::{self, ListQuery, NodePage, Page};
use super::quorum::{gather, gather_hedged, Caller, Gathered, Tails};
use crate::hlc::Hlc;
use crate::keyspace::Partition;
use crate::manifest::{validate_labels, validate_name, Manifest, MAX_CONTENT_TYPE_BYTES};
use crate::placement::Placement;
use crate::transport::{DhtTransport, RpcError};
use crate::wire::{ErrorCode, ListNames, Request, Response, MAX_LIST};
use hypha_cluster::fence::{Fence, Standing as LeaseStanding};
use hypha_cluster::membership::MemberKey;
use hypha_core::clock::SharedClock;

mod backup;
mod read;
mod upload;

/// Write quorum calls whose slower replicas may still be running in the
/// background; more make writers wait for their own.
const MAX_TAILS: usize = 256;

/// Coordinator settings: the `[dht]` section as it is (the coordinator
/// reads the quorums, timeouts, size limits and chunk grace of it).
pub type FilesConfig = crate::settings::DhtSettings;

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

/// Labels and content type within their bounds.
fn check_meta(meta: &PutMeta) -> Result<(), FilesError> {
    validate_labels(&meta.labels).map_err(|e| FilesError::BadRequest(e.to_string()))?;
    let ct_ok = meta.content_type.len() <= MAX_CONTENT_TYPE_BYTES
        && meta.content_type.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !ct_ok {
        return Err(FilesError::BadRequest("bad content type".into()));
    }
    Ok(())
}

/// Count a failed file operation by why (`write`, `read`: quorum lost;
/// `not_settled`).
fn count_failure(op: &'static str) {
    metrics::counter!("hypha_dht_quorum_failures_total", "op" => op).increment(1);
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
    clock: SharedClock,
    fence: Fence,
    cache: ChunkCache,
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

impl Files {
    /// A coordinator for node `me_id`, reading the time from `clock`.
    pub fn new(
        me_id: [u8; 32],
        transport: Arc<dyn DhtTransport>,
        placement: watch::Receiver<Arc<Placement>>,
        hlc: Arc<Hlc>,
        config: FilesConfig,
        clock: SharedClock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                me_id,
                transport,
                placement,
                hlc,
                cache: ChunkCache::new(config.cache_max_bytes, config.cache_policy),
                config,
                tails: Tails::new(MAX_TAILS, clock.clone()),
                // Alone, the lease is always held: a node built without
                // the cluster's fence (tests of one coordinator) is not
                // fenced. The node passes its own with `with_fence`.
                fence: Fence::alone(clock.now()),
                clock,
            }),
        }
    }

    /// This node's edge chunk cache.
    pub fn cache(&self) -> &ChunkCache {
        &self.inner.cache
    }

    /// The same coordinator, acknowledging only while `fence` holds the
    /// node's majority lease (docs/dht.md, "The fence"). Call before the
    /// coordinator is cloned.
    pub fn with_fence(mut self, fence: Fence) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.fence = fence;
        }
        self
    }

    /// Where this node's majority lease stands now (shown by the admin
    /// API).
    pub fn lease(&self) -> (LeaseStanding, tokio::time::Instant) {
        let now = self.inner.clock.now();
        (self.inner.fence.standing(now), now)
    }

    /// Refused unless this node holds its majority lease: a node that
    /// cannot show that a majority of the cluster heard it recently may
    /// be on the minority side of a partition, where a replica set the
    /// majority no longer uses could acknowledge a write nobody reads.
    fn fenced(&self) -> Result<(), FilesError> {
        let now = self.inner.clock.now();
        match self.inner.fence.standing(now) {
            LeaseStanding::Held { .. } => Ok(()),
            LeaseStanding::Probation { until } => {
                count_failure("no_majority");
                let wait = until.saturating_duration_since(now);
                Err(FilesError::Rejoining {
                    wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                })
            }
            LeaseStanding::Lost {
                need,
                have,
                cluster,
            } => {
                count_failure("no_majority");
                Err(FilesError::NoMajority {
                    have,
                    need,
                    cluster,
                })
            }
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
            count_failure("not_settled");
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

    fn caller(&self) -> Caller<'_> {
        Caller {
            transport: &self.inner.transport,
            timeout: self.timeout(),
            clock: &self.inner.clock,
        }
    }

    async fn gather(&self, targets: &[MemberKey], request: &Request, need: usize) -> Gathered {
        gather(&self.caller(), targets, request, need, self.straggler()).await
    }

    /// Replicas of `name`, checked against the write quorum before any
    /// byte moves: a write that cannot succeed fails at once and leaves
    /// nothing behind.
    fn write_targets(&self, name: &str) -> Result<(Partition, Vec<MemberKey>), FilesError> {
        let placement = self.settled_placement()?;
        self.fenced()?;
        let (partition, replicas) = placement.replicas_of_name(name);
        let w = self.inner.config.write_quorum;
        if let Some(why) = placement.pin_shortfall(partition, w) {
            count_failure("write");
            return Err(FilesError::Pinned(why));
        }
        let live = replicas.iter().filter(|m| placement.is_live(m)).count();
        enough_live(w, replicas.len(), live).inspect_err(|_| count_failure("write"))?;
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
        check_meta(&meta)?;
        self.put_then(name, body, move || meta).await
    }

    /// [`Files::put`] with the metadata made once the body has been read:
    /// an S3 object's ETag is the MD5 of its bytes, known only then. A
    /// metadata that does not pass [`validate_labels`] or the content-type
    /// bound fails the write after the upload (nothing becomes visible).
    pub async fn put_then<S, B, E, F>(
        &self,
        name: &str,
        body: S,
        meta: F,
    ) -> Result<PutReport, FilesError>
    where
        S: Stream<Item = Result<B, E>> + Send + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
        F: FnOnce() -> PutMeta,
    {
        validate_name(name).map_err(|e| FilesError::BadRequest(e.to_string()))?;
        let (partition, replicas) = self.write_targets(name)?;
        // The read learns the version to keep `created` from and to stamp
        // the new one after, and checks that a quorum of replicas that
        // are caught up answer before the manifest is written: a write
        // refused for want of replicas then leaves nothing visible, even
        // before membership has noticed a replica died, and a sub-quorum
        // answer (which may miss the newest version, so the new stamp
        // could order before it) is a 503, never a guess.
        let w = self.inner.config.write_quorum;
        let need = self.inner.config.read_quorum.max(w);
        let (upload, existing) = futures::join!(
            self.upload(partition, replicas.clone(), body),
            self.read_manifest_from(name, READ_BEFORE_WRITE, need)
        );
        let content = upload?;
        let existing = existing.inspect_err(|_| count_failure("write"))?.newest;
        let meta = meta();
        check_meta(&meta)?;
        self.commit(name, meta, replicas, content, existing).await
    }

    async fn commit(
        &self,
        name: &str,
        meta: PutMeta,
        replicas: Vec<MemberKey>,
        stored: Stored,
        existing: Option<Manifest>,
    ) -> Result<PutReport, FilesError> {
        let size = stored.size;
        let stamp = self.stamp_after(existing.as_ref());
        let manifest = live_manifest(
            name,
            meta.content_type,
            meta.labels,
            stored,
            existing.as_ref(),
            stamp,
        );
        manifest
            .validate()
            .map_err(|e| FilesError::BadRequest(e.to_string()))?;
        let ack = self.put_manifest(&replicas, &manifest).await?;
        metrics::counter!("hypha_files_written_bytes_total").increment(size);
        Ok(PutReport {
            manifest,
            acks: ack.acks,
            superseded: ack.superseded,
        })
    }

    /// This node's stamp for a version replacing `existing`: the HLC moves
    /// past the version it read first, so the new one orders after it.
    fn stamp_after(&self, existing: Option<&Manifest>) -> Stamp {
        if let Some(old) = existing {
            self.inner.hlc.observe(old.modified);
        }
        Stamp {
            modified: self.inner.hlc.now(),
            writer: self.inner.me_id,
        }
    }

    async fn put_manifest(
        &self,
        replicas: &[MemberKey],
        manifest: &Manifest,
    ) -> Result<WriteAck, FilesError> {
        let request = Request::PutManifest {
            manifest: manifest.clone(),
        };
        let (ack, _) = self.write_quorum(replicas, &request).await?;
        Ok(ack)
    }

    /// A write to `targets`, answered once W succeeded; the rest finish
    /// in the background.
    async fn write_quorum(
        &self,
        targets: &[MemberKey],
        request: &Request,
    ) -> Result<(WriteAck, Gathered), FilesError> {
        let w = self.inner.config.write_quorum;
        let mut gathered = self.gather(targets, request, w).await;
        log_refusals(&gathered);
        self.inner
            .tails
            .adopt(std::mem::take(&mut gathered.pending))
            .await;
        let ack = write_verdict(w, &gathered).inspect_err(|_| count_failure("write"))?;
        Ok((ack, gathered))
    }

    async fn read_manifest(
        &self,
        name: &str,
        consistency: ReadConsistency,
    ) -> Result<ReadFound, FilesError> {
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
    ) -> Result<ReadFound, FilesError> {
        let placement = self.settled_placement()?;
        // Without the lease a quorum read is refused and any other read
        // is served as degraded (the version may be stale).
        let leased = match consistency {
            ReadConsistency::Quorum | ReadConsistency::BeforeWrite => {
                self.fenced().map(|()| true)?
            }
            ReadConsistency::Available => self.fenced().is_ok(),
        };
        let (_, mut replicas) = placement.replicas_of_name(name);
        let q = quorum.min(placement.replica_count()).max(1);
        let request = Request::ReadManifest {
            name: name.to_owned(),
        };
        // Local replica first (no network hop), then live ones.
        let me = placement.me().clone();
        replicas.sort_by_key(|m| (*m != me, !placement.is_live(m)));
        let hedge = Duration::from_millis(self.inner.config.read_hedge_ms);
        let caller = self.caller();
        let gathered =
            gather_hedged(&caller, &replicas, &request, q, hedge, counts_toward_quorum).await;
        let verdict = read_verdict(q, consistency, &gathered);
        if verdict.unverified > 0 {
            metrics::counter!("hypha_dht_verification_failures_total", "where" => "remote")
                .increment(verdict.unverified as u64);
        }
        let mut found = verdict.outcome.inspect_err(|_| count_failure("read"))?;
        found.degraded |= !leased;
        if let Some(n) = &found.newest {
            self.inner.hlc.observe(n.modified);
            self.repair_manifests(n, &found.repair).await;
        }
        Ok(found)
    }

    /// Read repair: give the replicas that answered with an older version
    /// (or none) the newest one.
    async fn repair_manifests(&self, newest: &Manifest, stale: &[MemberKey]) {
        if stale.is_empty() {
            return;
        }
        let request = Request::PutManifest {
            manifest: newest.clone(),
        };
        let gathered = self.gather(stale, &request, stale.len()).await;
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
        Ok((live_or_not_found(name, read.newest)?, read.degraded))
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

    /// Delete `name`: a tombstone, durable on W replicas.
    pub async fn delete(&self, name: &str) -> Result<(), FilesError> {
        validate_name(name).map_err(|e| FilesError::BadRequest(e.to_string()))?;
        let (_, replicas) = self.write_targets(name)?;
        // A quorum read: a sub-quorum "absent" may be the one replica
        // that missed the file, and a 404 for a file that exists is a
        // wrong answer (503 is an honest one).
        let read = self.read_manifest(name, READ_BEFORE_WRITE).await?;
        let old = live_or_not_found(name, read.newest)?;
        let tombstone = tombstone(&old, self.stamp_after(Some(&old)));
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

#[cfg(test)]
mod tests;
