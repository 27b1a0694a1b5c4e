//! Reads for backups: one page of a partition's live manifests, gathered
//! from its replicas at one moment (each replica lists the page's names
//! and sends their manifests; the newest version of each name wins, as
//! [`crate::files::snapshot`] merges them), and one chunk by hash, verified
//! before it is returned, as file reads fetch chunks.

use futures::future::join_all;

use super::{Files, FilesError};
use crate::files::snapshot::{self, PartitionPage, ReplicaPage};
use crate::keyspace::{Partition, Partitioning};
use crate::manifest::{ChunkRef, Manifest};
use crate::transport::RpcError;
use crate::wire::{Request, Response, MAX_LIST, MAX_MANIFEST_KEYS};
use hypha_cluster::membership::MemberKey;

impl Files {
    /// The partitioning in use (pinned classes included).
    pub fn partitioning(&self) -> Partitioning {
        self.placement().partitioning()
    }

    /// The live manifests of `partition` after name key `after` (from the
    /// start if `None`), at most about `limit` names per replica, from
    /// every live replica; at least the read quorum of them must answer.
    pub async fn partition_page(
        &self,
        partition: Partition,
        after: Option<[u8; 32]>,
        limit: u32,
    ) -> Result<PartitionPage, FilesError> {
        if limit == 0 || limit > MAX_LIST {
            return Err(FilesError::BadRequest(format!(
                "limit must be 1-{MAX_LIST}"
            )));
        }
        let placement = self.settled_placement()?;
        if !placement.partitioning().contains(partition) {
            return Err(FilesError::BadRequest(format!(
                "partition {} does not exist (this cluster has {})",
                partition.0,
                placement.partitioning().count()
            )));
        }
        self.fenced()?;
        let replicas: Vec<MemberKey> = placement
            .replicas(partition)
            .into_iter()
            .filter(|m| placement.is_live(m))
            .collect();
        let answers = join_all(
            replicas
                .iter()
                .map(|m| self.replica_page(m, partition, after, limit)),
        )
        .await;
        let need = self
            .inner
            .config
            .read_quorum
            .min(placement.replica_count())
            .max(1);
        let mut pages = Vec::new();
        let mut failed = Vec::new();
        for (member, answer) in replicas.iter().zip(answers) {
            match answer {
                Ok(page) => pages.push(page),
                Err(e) => failed.push(format!("{}: {e}", member.link_name())),
            }
        }
        if pages.len() < need {
            return Err(FilesError::Quorum {
                needed: need,
                got: pages.len(),
                detail: if failed.is_empty() {
                    "no replica available".into()
                } else {
                    failed.join("; ")
                },
            });
        }
        Ok(snapshot::merge(pages))
    }

    /// One replica's names after `after` and their manifests.
    async fn replica_page(
        &self,
        member: &MemberKey,
        partition: Partition,
        after: Option<[u8; 32]>,
        limit: u32,
    ) -> Result<ReplicaPage, RpcError> {
        let after_index = after
            .map(|k| [partition.to_be_bytes().as_slice(), &k].concat())
            .unwrap_or_default();
        let listed = self
            .inner
            .transport
            .call(
                member,
                Request::ListPartition {
                    partition: partition.0,
                    after: after_index,
                    limit,
                },
                self.timeout(),
            )
            .await?;
        let Response::Names { entries, more } = listed else {
            return Err(RpcError::Unreachable(
                "unexpected answer to a listing".into(),
            ));
        };
        let mut keys: Vec<[u8; 32]> = entries
            .iter()
            .filter_map(|(index, _)| index.get(2..).and_then(|k| <[u8; 32]>::try_from(k).ok()))
            .collect();
        let last_key = keys.last().copied();
        let mut out = Vec::with_capacity(keys.len());
        while !keys.is_empty() {
            let batch: Vec<[u8; 32]> = keys.iter().take(MAX_MANIFEST_KEYS).copied().collect();
            let answer = self
                .inner
                .transport
                .call(
                    member,
                    Request::ManifestsByKey {
                        partition: partition.0,
                        keys: batch.clone(),
                    },
                    self.timeout(),
                )
                .await?;
            let Response::Manifests { handled, manifests } = answer else {
                return Err(RpcError::Unreachable("unexpected answer to a fetch".into()));
            };
            let handled = usize::try_from(handled).unwrap_or(0);
            if handled == 0 || handled > batch.len() {
                return Err(RpcError::Unreachable(format!(
                    "{handled} of {} keys answered",
                    batch.len()
                )));
            }
            keys.drain(..handled);
            out.extend(
                manifests
                    .into_iter()
                    .filter_map(|m| checked(m, partition, self)),
            );
        }
        Ok(ReplicaPage {
            entries: out,
            last_key,
            more,
        })
    }

    /// The bytes of chunk `chunk` of a file in `partition`, verified
    /// against its hash, from the first replica (or other live member)
    /// with a good copy.
    pub async fn chunk(
        &self,
        partition: Partition,
        chunk: ChunkRef,
    ) -> Result<Vec<u8>, FilesError> {
        let placement = self.settled_placement()?;
        if !placement.partitioning().contains(partition) {
            return Err(FilesError::BadRequest(format!(
                "partition {} does not exist",
                partition.0
            )));
        }
        let (sources, fallback) = self.chunk_sources(&placement, &placement.replicas(partition));
        self.fetch_chunk(partition, chunk, &sources, &fallback)
            .await
    }
}

/// A replica's manifest with its name key, if it is well formed and
/// belongs to the partition asked about.
fn checked(m: Manifest, partition: Partition, files: &Files) -> Option<([u8; 32], Manifest)> {
    let ok = m.validate().is_ok()
        && m.partition(&files.placement().partitioning()) == partition
        && m.inline_verified();
    ok.then(|| (crate::manifest::name_key(&m.name).0, m))
}
