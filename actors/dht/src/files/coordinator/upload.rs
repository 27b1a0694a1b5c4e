//! Uploads: the body streamed through the content-defined chunker, each
//! chunk stored on W replicas with a bounded number in flight, or kept
//! inline when the whole file is small. The rules (the upload deadline,
//! which replicas get the next chunk) are in `files/decide`.

use futures::stream::{FuturesOrdered, Stream, StreamExt};

use super::{Files, FilesError};
use crate::chunker::Chunker;
use crate::files::decide::verdict::{drop_failed, healthy_targets, upload_in_time, Stored};
use crate::keyspace::Partition;
use crate::manifest::{ChunkRef, MAX_INLINE_BYTES};
use crate::wire::Request;
use hypha_cluster::membership::MemberKey;

impl Files {
    /// Stream the body through the chunker, storing each chunk on the
    /// replicas with a bounded number of chunks in flight; a body that
    /// ends within [`MAX_INLINE_BYTES`] before any chunk was cut is kept
    /// for the manifest instead.
    pub(super) async fn upload<S, B, E>(
        &self,
        partition: Partition,
        replicas: Vec<MemberKey>,
        mut body: S,
    ) -> Result<Stored, FilesError>
    where
        S: Stream<Item = Result<B, E>> + Send + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let config = self.inner.config;
        let clock = self.inner.clock.clone();
        let started = clock.now();
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
            let elapsed = clock.now().saturating_duration_since(started);
            let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            upload_in_time(elapsed_ms, config.chunk_grace_ms)?;
        }
        if upload.chunks.is_empty() && pending.len() <= MAX_INLINE_BYTES {
            return Ok(Stored {
                chunks: Vec::new(),
                root: *blake3::hash(&pending).as_bytes(),
                inline: pending,
                size,
            });
        }
        let (cutter, ready) = cut(cutter, pending, Input::Ended).await?;
        upload.send_all(ready).await?;
        upload.drain().await?;
        Ok(Stored {
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
        let (_, gathered) = self.write_quorum(&targets, &request).await?;
        Ok(gathered.failed.into_iter().map(|(m, _)| m).collect())
    }
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
        let w = self.files.inner.config.write_quorum;
        healthy_targets(&self.targets, |m| tails.troubled(m), w)
    }

    async fn complete_one(&mut self) -> Result<(), FilesError> {
        if let Some(result) = self.in_flight.next().await {
            let failed = result?;
            drop_failed(
                &mut self.targets,
                &failed,
                self.files.inner.config.write_quorum,
            );
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
