//! What the coordinator concludes from replicas' answers, as pure
//! functions: whether a write reached W, what a read found (newest
//! version, degraded or not, which replicas to repair) or why it must
//! fail (503, never 404, when the quorum answers are missing), and the
//! versions a write or delete gives the manifest. The rules are those of
//! docs/dht.md, "Files"; the coordinator only gathers the answers and
//! carries the verdict out.

use std::collections::BTreeMap;

use hypha_cluster::membership::MemberKey;

use super::super::error::FilesError;
use super::super::quorum::Gathered;
use super::call::Answer;
use crate::hlc::Timestamp;
use crate::manifest::{newest, ChunkRef, FileState, Manifest, MANIFEST_FORMAT};
use crate::transport::RpcError;
use crate::wire::{PutOutcome, Response, Standing};

/// What a read insists on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Fail (503) unless a read quorum of replicas answered.
    Quorum,
    /// Answer from fewer replicas when the quorum is unreachable, saying
    /// so (`degraded`); the bytes are still verified.
    Available,
    /// A write reading the version it replaces ([`READ_BEFORE_WRITE`]):
    /// fail (503) unless a read quorum of nodes that replicate the
    /// partition in their own view answered, caught up or still catching
    /// up. Never fewer: a sub-quorum "absent" may be the one replica that
    /// missed the file. Catching-up answers count here (not for `Quorum`)
    /// so that a cluster just started, whose replicas have not finished
    /// their first round of exchanges, takes writes at once; the write
    /// itself still needs W acknowledgements.
    BeforeWrite,
}

/// How a write call counts a replica's answer: any success is an
/// acknowledgement; a refusal (`NotReplica`, `DiskFull`) is a failure.
pub fn write_answer(result: &Result<Response, RpcError>) -> Answer {
    match result {
        Ok(_) => Answer::Counts,
        Err(_) => Answer::Failed,
    }
}

/// Whether a replica's answer to a quorum read counts toward the quorum:
/// only a `Serving` replica's manifest does; other answers are data.
pub fn counts_toward_quorum(response: &Response) -> bool {
    matches!(
        response,
        Response::ReplicaManifest {
            standing: Standing::Serving,
            ..
        }
    )
}

/// A write the replicas acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteAck {
    /// Replicas that made it durable.
    pub acks: usize,
    /// Some replica already held a newer version.
    pub superseded: bool,
}

/// A write call's verdict: acknowledged at `w` successes, else 503
/// (or 507 when every failure was a full disk).
pub fn write_verdict(w: usize, gathered: &Gathered) -> Result<WriteAck, FilesError> {
    if gathered.ok.len() < w {
        return Err(quorum_error(w, gathered));
    }
    let superseded = gathered
        .ok
        .iter()
        .any(|(_, r)| *r == Response::ManifestPut(PutOutcome::Superseded));
    Ok(WriteAck {
        acks: gathered.ok.len(),
        superseded,
    })
}

/// Before any byte moves: at least `w` of the replicas must be up, or the
/// write fails at once and leaves nothing behind.
pub fn enough_live(w: usize, replicas: usize, live: usize) -> Result<(), FilesError> {
    if live >= w {
        return Ok(());
    }
    Err(FilesError::Quorum {
        needed: w,
        got: live,
        detail: format!("{live} of the partition's {replicas} replicas are up"),
    })
}

/// How a write reads the version it replaces (a PUT for `created` and
/// its stamp, a DELETE for the version it buries): a quorum of replicas,
/// or a 503. A sub-quorum answer may be the one replica that missed the
/// newest version: a DELETE answered 404 for a file that existed (found
/// by partition tests; docs/dht.md), and a PUT could stamp its version
/// before one already acknowledged.
pub const READ_BEFORE_WRITE: ReadConsistency = ReadConsistency::BeforeWrite;

/// A quorum call that missed: 507 when every failure was a full disk,
/// else 503 with what the replicas said.
pub fn quorum_error(needed: usize, gathered: &Gathered) -> FilesError {
    if gathered.all_disk_full() {
        return FilesError::DiskFull(gathered.detail());
    }
    FilesError::Quorum {
        needed,
        got: gathered.ok.len(),
        detail: gathered.detail(),
    }
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

/// What a manifest read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFound {
    /// The newest version among every answer (none: no replica holds one).
    pub newest: Option<Manifest>,
    /// Fewer than the quorum counted: the version may be stale.
    pub degraded: bool,
    /// Replicas that answered (counted or not).
    pub answered: usize,
    /// Replicas to give the newest version (read repair): those that
    /// answered with an older one or none, never a `NotReplica` node.
    pub repair: Vec<MemberKey>,
}

/// A manifest read's verdict, and how many answers failed verification
/// (counted as absent, so that read repair replaces them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadVerdict {
    /// Answers whose inline content failed verification.
    pub unverified: usize,
    /// What the read found, or why it fails.
    pub outcome: Result<ReadFound, FilesError>,
}

/// Judge a manifest read for a quorum of `q`.
pub fn read_verdict(q: usize, consistency: ReadConsistency, gathered: &Gathered) -> ReadVerdict {
    let mut unverified = 0;
    let mut verify = |found: &Option<Manifest>| match found {
        Some(m) if !m.inline_verified() => {
            unverified += 1;
            None
        }
        other => other.clone(),
    };
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
            } => outsiders.extend(verify(manifest)),
            Response::ReplicaManifest { manifest, .. } => {
                answers.push((member.clone(), verify(manifest)));
            }
            _ => {}
        }
    }
    let outcome = judge_answers(q, consistency, gathered, answers, outsiders);
    ReadVerdict {
        unverified,
        outcome,
    }
}

fn judge_answers(
    q: usize,
    consistency: ReadConsistency,
    gathered: &Gathered,
    answers: Vec<(MemberKey, Option<Manifest>)>,
    outsiders: Vec<Manifest>,
) -> Result<ReadFound, FilesError> {
    let counted = gathered
        .ok
        .iter()
        .filter(|(_, r)| counts_toward_quorum(r))
        .count();
    let degraded = counted < q;
    let answered = answers.len() + outsiders.len();
    let (refused, got) = match consistency {
        ReadConsistency::Quorum => (degraded, counted),
        ReadConsistency::BeforeWrite => (answers.len() < q, answers.len()),
        ReadConsistency::Available => (answered == 0, counted),
    };
    if refused {
        return Err(read_quorum_error(q, got, gathered));
    }
    let held = answers.iter().filter_map(|(_, m)| m.as_ref());
    let newest = newest(held.chain(outsiders.iter())).cloned();
    let repair = match &newest {
        Some(n) => stale(n, &answers),
        None => Vec::new(),
    };
    Ok(ReadFound {
        newest,
        degraded,
        answered,
        repair,
    })
}

/// Replicas that answered with an older version than `newest`, or none.
fn stale(newest: &Manifest, answers: &[(MemberKey, Option<Manifest>)]) -> Vec<MemberKey> {
    answers
        .iter()
        .filter(|(_, m)| m.as_ref().is_none_or(|m| m.version() < newest.version()))
        .map(|(member, _)| member.clone())
        .collect()
}

/// The live file a read found, or 404: no version, or a tombstone.
pub fn live_or_not_found(name: &str, newest: Option<Manifest>) -> Result<Manifest, FilesError> {
    match newest {
        Some(m) if m.is_live() => Ok(m),
        _ => Err(FilesError::NotFound(name.to_owned())),
    }
}

/// `created` of a new version: kept from the live version it replaces,
/// else the new version's own time.
pub fn created_of(existing: Option<&Manifest>, modified: Timestamp) -> Timestamp {
    match existing {
        Some(old) if old.is_live() => old.created,
        _ => modified,
    }
}

/// What an upload stored, for its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Chunks, in order (empty for an inline file).
    pub chunks: Vec<ChunkRef>,
    /// The bytes of a small file, kept in the manifest.
    pub inline: Vec<u8>,
    /// Bytes in the file.
    pub size: u64,
    /// BLAKE3 of the whole content.
    pub root: [u8; 32],
}

/// Who writes a version, and when (by the HLC, after observing the
/// version it replaces, so that it orders after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The version's HLC.
    pub modified: Timestamp,
    /// The writing node.
    pub writer: [u8; 32],
}

/// The manifest of a new live version of `name`.
pub fn live_manifest(
    name: &str,
    content_type: String,
    labels: BTreeMap<String, String>,
    stored: Stored,
    existing: Option<&Manifest>,
    stamp: Stamp,
) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        name: name.to_owned(),
        size: stored.size,
        chunks: stored.chunks,
        root: stored.root,
        created: created_of(existing, stamp.modified),
        modified: stamp.modified,
        writer: stamp.writer,
        content_type,
        labels,
        state: FileState::Live,
        inline: stored.inline,
    }
}

/// The tombstone that deletes the live version `old`.
pub fn tombstone(old: &Manifest, stamp: Stamp) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        name: old.name.clone(),
        size: 0,
        chunks: Vec::new(),
        root: [0; 32],
        created: old.created,
        modified: stamp.modified,
        writer: stamp.writer,
        content_type: String::new(),
        labels: BTreeMap::new(),
        state: FileState::Tombstone,
        inline: Vec::new(),
    }
}

/// Where a chunk was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// One of the file's replicas: a missing or bad copy there is repaired.
    Replica,
    /// Another live member, tried when no replica has a good copy: never
    /// repaired (it has no business holding the chunk).
    Fallback,
}

/// What a source had of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkCopy {
    /// No usable answer (unreachable, timed out, refused).
    NoAnswer,
    /// It answered that it has no copy.
    Missing,
    /// Bytes with this hash and length.
    Bytes {
        /// BLAKE3 of the bytes.
        hash: [u8; 32],
        /// Their length.
        len: usize,
    },
}

/// What to do with one source's answer to a chunk fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkStep {
    /// The bytes verify: send them (and repair the replicas noted so far).
    Serve,
    /// Try the next source; `repair` this one once a good copy is found.
    Next {
        /// Whether this source gets the good copy.
        repair: Repair,
    },
    /// The bytes fail verification: never sent; try the next source.
    Corrupt {
        /// Whether this source gets the good copy.
        repair: Repair,
    },
}

/// Whether a source is repaired with the good copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// Give it the good copy.
    Yes,
    /// Leave it.
    No,
}

/// Judge one source's copy of `expected`: every chunk is verified against
/// its hash and length before a byte of it is sent; a replica with a
/// missing or bad copy is repaired, a fallback member is not.
pub fn judge_chunk(copy: ChunkCopy, expected: ChunkRef, source: Source) -> ChunkStep {
    let repair = match source {
        Source::Replica => Repair::Yes,
        Source::Fallback => Repair::No,
    };
    match copy {
        ChunkCopy::NoAnswer => ChunkStep::Next { repair: Repair::No },
        ChunkCopy::Missing => ChunkStep::Next { repair },
        ChunkCopy::Bytes { hash, len } if hash == expected.hash && len == expected.len as usize => {
            ChunkStep::Serve
        }
        ChunkCopy::Bytes { .. } => ChunkStep::Corrupt { repair },
    }
}

/// An upload must finish within half the chunk grace (its chunks are
/// unreferenced until the manifest lands, and collected after the grace).
pub fn upload_in_time(elapsed_ms: u64, chunk_grace_ms: u64) -> Result<(), FilesError> {
    if elapsed_ms > chunk_grace_ms / 2 {
        return Err(FilesError::TooSlow(chunk_grace_ms / 2));
    }
    Ok(())
}

/// The targets of the next chunk: without replicas whose background
/// writes failed recently, as long as `w` remain.
pub fn healthy_targets(
    targets: &[MemberKey],
    troubled: impl Fn(&MemberKey) -> bool,
    w: usize,
) -> Vec<MemberKey> {
    let healthy: Vec<MemberKey> = targets.iter().filter(|m| !troubled(m)).cloned().collect();
    if healthy.len() >= w {
        healthy
    } else {
        targets.to_vec()
    }
}

/// A replica that failed a chunk is skipped for the rest of the upload
/// (anti-entropy fills it in), as long as `w` remain: a frozen replica
/// then costs one straggler wait, not one per chunk.
pub fn drop_failed(targets: &mut Vec<MemberKey>, failed: &[MemberKey], w: usize) {
    let remaining = targets.iter().filter(|m| !failed.contains(m)).count();
    if remaining >= w {
        targets.retain(|m| !failed.contains(m));
    }
}
