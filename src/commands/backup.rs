//! `hypha backup create | verify | restore | ls`: clients of a node's
//! `/v1/backup` reads and `/v1/files` writes that keep a backup directory
//! ([`crate::backup::dir`]). A snapshot is taken by the library
//! ([`crate::backup::create`], which a node's scheduled backups run too)
//! with the admin API as its [`BackupSource`]; the decisions (which
//! chunks are new, what is wrong with a snapshot, whether a file needs
//! uploading) are the pure [`crate::backup::plan`]; this module moves the
//! restore's bytes, draws progress bars on a terminal and prints a
//! summary (`--json`: one JSON document).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Instant, UNIX_EPOCH};

use anyhow::{bail, Context};
use async_trait::async_trait;
use futures::{stream, StreamExt};
use hypha_core::clock::SharedClock;
use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::Value;

use super::files::{bar, encode_name, preflight, print_json, Api, Output};
use crate::backup::create::{Phase, Progress};
use crate::backup::dir::BackupDir;
use crate::backup::index::{ChunkEntry, FileEntry, Hash32};
use crate::backup::plan::{self, ChunkState, RestoreStep};
use crate::backup::source::{BackupSource, Page, SourceError};
use crate::backup::BackupError;
use crate::cli::{
    BackupCommand, BackupCreateArgs, BackupLsArgs, BackupRestoreArgs, BackupVerifyArgs,
};

/// Run one `hypha backup` subcommand.
pub async fn run(cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::Create(args) => create(args).await,
        BackupCommand::Verify(args) => verify(args),
        BackupCommand::Restore(args) => restore(args).await,
        BackupCommand::Ls(args) => ls(args),
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A node's admin API as the source of a backup.
#[async_trait]
impl BackupSource for Api {
    fn describe(&self) -> String {
        self.base().to_owned()
    }

    async fn partitions(&self) -> Result<u32, SourceError> {
        let request = self.request(reqwest::Method::GET, "/v1/backup/partitions");
        let doc = self.backup_json(request).await?;
        doc["partitions"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| SourceError::Malformed("no partition count".into()))
    }

    async fn page(&self, p: u32, after: Option<Hash32>) -> Result<Page, SourceError> {
        let mut request = self.request(reqwest::Method::GET, &format!("/v1/backup/partitions/{p}"));
        if let Some(a) = after {
            request = request.query(&[("after", a.to_hex())]);
        }
        let doc = self.backup_json(request).await?;
        let files = serde_json::from_value(doc["files"].clone())
            .map_err(|e| SourceError::Malformed(format!("partition {p}: the page: {e}")))?;
        let next = match doc["next_cursor"].as_str() {
            None => None,
            Some(text) => Some(Hash32::parse(text).ok_or_else(|| {
                SourceError::Malformed(format!("partition {p}: cursor {text:?}"))
            })?),
        };
        Ok(Page { files, next })
    }

    async fn chunk(&self, chunk: ChunkEntry, partition: u16) -> Result<Vec<u8>, SourceError> {
        let request = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/backup/chunks/{}", chunk.hash),
            )
            .query(&[
                ("partition", partition.to_string()),
                ("len", chunk.len.to_string()),
            ]);
        let bytes = self
            .backup_read(request)
            .await?
            .bytes()
            .await
            .map_err(malformed)?;
        Ok(bytes.to_vec())
    }
}

impl Api {
    /// Send one of a backup's reads; a refusal or an unreachable node as
    /// a source error, with its context.
    async fn backup_read(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SourceError> {
        self.send(request)
            .await
            .map_err(|e| SourceError::Remote(format!("{e:#}")))
    }

    /// One of a backup's reads that answers JSON.
    async fn backup_json(&self, request: reqwest::RequestBuilder) -> Result<Value, SourceError> {
        self.backup_read(request)
            .await?
            .json()
            .await
            .map_err(malformed)
    }
}

/// A body that could not be read or decoded.
fn malformed(e: reqwest::Error) -> SourceError {
    SourceError::Malformed(e.to_string())
}

/// Progress bars on a terminal: one per phase.
struct Bars {
    output: Output,
    current: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, _phase: Phase, total: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(done) = current.replace(bar(Some(total), self.output)) {
            done.finish_and_clear();
        }
    }

    fn advance(&self, n: u64) {
        if let Some(b) = &*self.current.lock().unwrap_or_else(PoisonError::into_inner) {
            b.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(done) = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            done.finish_and_clear();
        }
    }
}

/// `hypha backup create --to DIR`.
async fn create(args: BackupCreateArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let bars = Bars {
        output: api.output,
        current: Mutex::new(None),
    };
    let summary = crate::backup::create::create(
        &api,
        &args.to,
        args.concurrency,
        &SharedClock::system(),
        &bars,
    )
    .await?;
    match api.output {
        Output::Json => print_json(&serde_json::to_value(&summary)?),
        Output::Text => {
            println!(
                "snapshot {} root {}: {} files, {} bytes; {} of {} chunks written ({} bytes with the index) in {} ms",
                summary.snapshot,
                summary.root,
                summary.files,
                summary.bytes,
                summary.chunks_written,
                summary.chunks,
                summary.bytes_written,
                summary.duration_ms
            );
            Ok(())
        }
    }
}

/// One snapshot's verification, as reported.
#[derive(Debug, Serialize)]
struct Verified {
    snapshot: String,
    root: Hash32,
    files: usize,
    chunks: usize,
    problems: Vec<String>,
}

/// `hypha backup verify DIR`.
fn verify(args: BackupVerifyArgs) -> anyhow::Result<()> {
    let dir = BackupDir::open(&args.dir)?;
    let ids = match &args.snapshot {
        Some(id) => vec![id.clone()],
        None => dir.snapshot_ids()?,
    };
    if ids.is_empty() {
        return Err(BackupError::Empty.into());
    }
    // Chunks shared by snapshots are hashed once.
    let mut states: BTreeMap<Hash32, ChunkState> = BTreeMap::new();
    let mut report = Vec::new();
    for id in &ids {
        let problems = match dir.snapshot(id) {
            Ok(snapshot) => {
                let found = plan::problems(&snapshot, |c| {
                    *states
                        .entry(c.hash)
                        .or_insert_with(|| match dir.read_chunk(&c.hash, c.len) {
                            Ok(Some(_)) => ChunkState::Good,
                            Ok(None) => ChunkState::Missing,
                            Err(_) => ChunkState::Corrupt,
                        })
                });
                report.push(Verified {
                    snapshot: id.clone(),
                    root: snapshot.root,
                    files: snapshot.files.len(),
                    chunks: snapshot.chunk_set().len(),
                    problems: found.iter().map(ToString::to_string).collect(),
                });
                continue;
            }
            Err(e) => vec![e.to_string()],
        };
        report.push(Verified {
            snapshot: id.clone(),
            root: Hash32::default(),
            files: 0,
            chunks: 0,
            problems,
        });
    }
    let bad: usize = report.iter().map(|r| r.problems.len()).sum();
    if args.json {
        print_json(&serde_json::json!({"ok": bad == 0, "snapshots": report}))?;
    } else {
        for r in &report {
            if r.problems.is_empty() {
                println!(
                    "snapshot {} ok: root {}, {} files, {} chunks verified",
                    r.snapshot, r.root, r.files, r.chunks
                );
            }
            for p in &r.problems {
                println!("snapshot {}: {p}", r.snapshot);
            }
        }
    }
    if bad > 0 {
        bail!("{bad} problem(s) found in {}", args.dir.display());
    }
    Ok(())
}

/// What `hypha backup restore` did.
#[derive(Debug, Serialize)]
struct RestoreSummary {
    snapshot: String,
    root: Hash32,
    files: usize,
    uploaded: usize,
    skipped: usize,
    failed: Vec<String>,
    bytes_uploaded: u64,
    duration_ms: u64,
}

/// The root of the cluster's live file `name`, if any.
async fn root_in_cluster(api: &Api, name: &str) -> anyhow::Result<Option<Hash32>> {
    let path = format!("/v1/stat/{}", encode_name(name));
    let response = api
        .request(reqwest::Method::GET, &path)
        .send()
        .await
        .context("cannot reach the node")?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !response.status().is_success() {
        return Err(super::files::api_error(response).await);
    }
    let doc: Value = response.json().await?;
    Ok(doc["root"].as_str().and_then(Hash32::parse))
}

/// Upload `file` with its chunks read from `dir`, each verified as read
/// (a bad chunk aborts the upload: the node then makes nothing visible).
async fn upload(api: &Api, dir: &BackupDir, file: &FileEntry) -> anyhow::Result<u64> {
    let chunks = stream::iter(file.chunks.clone()).map({
        let dir = dir.clone();
        move |c| match dir.read_chunk(&c.hash, c.len) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(std::io::Error::other(format!("chunk {} missing", c.hash))),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    });
    let labels: Vec<(&str, String)> = file
        .labels
        .iter()
        .map(|(k, v)| ("label", format!("{k}={v}")))
        .collect();
    let request = api
        .request(
            reqwest::Method::PUT,
            &format!("/v1/files/{}", encode_name(&file.name)),
        )
        .header(reqwest::header::CONTENT_TYPE, &file.content_type)
        .header(reqwest::header::CONTENT_LENGTH, file.size)
        .query(&labels)
        .body(reqwest::Body::wrap_stream(chunks));
    api.send(request).await?;
    Ok(file.size)
}

/// Restore one file: skipped if the cluster holds the same content;
/// `Some(bytes)` if uploaded.
async fn restore_one(api: &Api, dir: &BackupDir, file: &FileEntry) -> anyhow::Result<Option<u64>> {
    let held = root_in_cluster(api, &file.name).await?;
    match plan::restore_step(file, held) {
        RestoreStep::Skip => Ok(None),
        RestoreStep::Upload => upload(api, dir, file).await.map(Some),
    }
}

/// `hypha backup restore --from DIR`.
async fn restore(args: BackupRestoreArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let api = Api::new(&args.api)?;
    let dir = BackupDir::open(&args.from)?;
    let snapshot = dir.snapshot_or_latest(args.snapshot.as_deref())?;
    preflight(&api, None).await?;
    let files: Vec<&FileEntry> = plan::under_prefix(&snapshot.files, &args.prefix).collect();
    let progress = bar(Some(files.iter().map(|f| f.size).sum()), api.output);
    let outcomes: Vec<(String, anyhow::Result<Option<u64>>)> = stream::iter(files.iter().copied())
        .map(|f| {
            let (api, dir, progress) = (&api, &dir, &progress);
            async move {
                let outcome = restore_one(api, dir, f).await;
                progress.inc(f.size);
                (f.name.clone(), outcome)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    progress.finish_and_clear();
    let mut summary = RestoreSummary {
        snapshot: snapshot.id.clone(),
        root: snapshot.root,
        files: files.len(),
        uploaded: 0,
        skipped: 0,
        failed: Vec::new(),
        bytes_uploaded: 0,
        duration_ms: elapsed_ms(started),
    };
    for (name, outcome) in outcomes {
        match outcome {
            Ok(Some(bytes)) => {
                summary.uploaded += 1;
                summary.bytes_uploaded += bytes;
            }
            Ok(None) => summary.skipped += 1,
            Err(e) => summary.failed.push(format!("{name}: {e:#}")),
        }
    }
    summary.failed.sort();
    match api.output {
        Output::Json => print_json(&serde_json::to_value(&summary)?)?,
        Output::Text => {
            println!(
                "restored snapshot {} ({} files): {} uploaded ({} bytes), {} already there, {} failed, in {} ms",
                summary.snapshot,
                summary.files,
                summary.uploaded,
                summary.bytes_uploaded,
                summary.skipped,
                summary.failed.len(),
                summary.duration_ms
            );
            for f in &summary.failed {
                eprintln!("hypha: failed: {f}");
            }
        }
    }
    if !summary.failed.is_empty() {
        bail!(
            "{} file(s) not restored; rerun the same command to finish",
            summary.failed.len()
        );
    }
    Ok(())
}

/// `hypha backup ls DIR`.
fn ls(args: BackupLsArgs) -> anyhow::Result<()> {
    let dir = BackupDir::open(&args.dir)?;
    let mut rows = Vec::new();
    for id in dir.snapshot_ids()? {
        let s = dir.snapshot(&id)?;
        rows.push(serde_json::json!({
            "snapshot": s.id,
            "started_ms": s.started_ms,
            "files": s.files.len(),
            "bytes": s.bytes(),
            "chunks": s.chunk_set().len(),
            "root": s.root,
            "source": s.source,
        }));
    }
    if args.json {
        return print_json(&serde_json::json!({"snapshots": rows}));
    }
    for r in &rows {
        let at =
            UNIX_EPOCH + std::time::Duration::from_millis(r["started_ms"].as_u64().unwrap_or(0));
        println!(
            "{}  {}  {:>6} files  {:>12} bytes  root {}",
            r["snapshot"].as_str().unwrap_or("?"),
            httpdate::fmt_http_date(at),
            r["files"],
            r["bytes"],
            r["root"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
