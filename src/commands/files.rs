//! `hypha put | get | ls | stat | rm`: clients of a node's `/v1/files` API.
//! Uploads and downloads stream in constant memory, draw a progress bar
//! when standard error is a terminal, and `--json` prints the API's own
//! JSON answer so scripts see exactly what the node said.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::cli::{ApiArgs, GetArgs, LsArgs, NameArgs, PutArgs};

/// How long to wait for a connection to the node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest silence on a transfer before giving up (a stalled node).
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Upload read size: large enough to keep the node's chunker fed.
const UPLOAD_READ_BYTES: usize = 256 * 1024;
/// Files asked for per listing page.
const LIST_PAGE: usize = 1_000;
/// Header a node sets when a read was served below its quorum.
const READ_HEADER: &str = "hypha-read";

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Text,
    Json,
}

pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    ca: Option<PathBuf>,
    token: Option<String>,
    pub(crate) output: Output,
}

impl Api {
    pub(crate) fn new(args: &ApiArgs) -> anyhow::Result<Self> {
        let http = super::client_builder(args.ca.as_deref())?
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()?;
        Ok(Self {
            http,
            base: args.url.trim_end_matches('/').to_owned(),
            ca: args.ca.clone(),
            token: args.token.clone(),
            output: if args.json {
                Output::Json
            } else {
                Output::Text
            },
        })
    }

    /// The node's URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .with_context(|| super::unreachable(&self.base, self.ca.as_deref()))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(api_error(response).await)
        }
    }
}

/// Before a mutation: the token must hold the write role and the upload
/// fit the node's limit, or the node would cut the upload short.
pub(crate) async fn preflight(api: &Api, upload_bytes: Option<u64>) -> anyhow::Result<()> {
    let doc: Value = api
        .send(api.request(reqwest::Method::GET, "/v1/auth/whoami"))
        .await?
        .json()
        .await?;
    let role = doc["role"].as_str().unwrap_or("none");
    if role == "read" {
        bail!("403 forbidden: this token has the read role; changing files needs write");
    }
    let limit = doc["max_file_bytes"].as_u64().unwrap_or(u64::MAX);
    if let Some(len) = upload_bytes.filter(|len| *len > limit) {
        bail!("413 too_large: {len} bytes is over the node's limit of {limit} bytes");
    }
    Ok(())
}

/// The node's error as one line: status, code and message (the chaos
/// harness records refusals with it too).
pub async fn api_error(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or("error");
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("no error document");
    anyhow::anyhow!("{status} {code}: {message}")
}

/// Percent-encode a file name for the URL path; `/` stays, so nested
/// names read naturally in logs.
pub(crate) fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn file_path(name: &str) -> String {
    format!("/v1/files/{}", encode_name(name))
}

pub(crate) fn bar(len: Option<u64>, output: Output) -> ProgressBar {
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::no_length(),
    };
    // indicatif hides itself when stderr is not a terminal.
    let target = match output {
        Output::Text => ProgressDrawTarget::stderr(),
        Output::Json => ProgressDrawTarget::hidden(),
    };
    bar.set_draw_target(target);
    let template = match len {
        Some(_) => "{wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        None => "{spinner} {bytes} {bytes_per_sec}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

pub(crate) fn print_json(doc: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(doc)?);
    Ok(())
}

/// The name a local path is stored under when none is given.
fn default_name(path: &Path) -> anyhow::Result<String> {
    match path.file_name().and_then(|n| n.to_str()) {
        Some(name) if path != Path::new("-") => Ok(name.to_owned()),
        _ => bail!("give a NAME for {}", path.display()),
    }
}

async fn open_input(
    path: &Path,
) -> anyhow::Result<(Box<dyn AsyncRead + Send + Unpin>, Option<u64>)> {
    if path == Path::new("-") {
        return Ok((Box::new(tokio::io::stdin()), None));
    }
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().await.ok().map(|m| m.len());
    Ok((Box::new(file), len))
}

/// `hypha put FILE [NAME]`.
pub async fn put(args: PutArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_name(&args.file)?,
    };
    let (input, len) = open_input(&args.file).await?;
    preflight(&api, len).await?;
    let progress = bar(len, api.output);
    let counted = progress.clone();
    let stream = ReaderStream::with_capacity(input, UPLOAD_READ_BYTES).inspect_ok(move |b| {
        counted.inc(b.len() as u64);
    });
    let mut request = api
        .request(reqwest::Method::PUT, &file_path(&name))
        .header(reqwest::header::CONTENT_TYPE, &args.content_type)
        .query(&labels_query(&args.labels)?)
        .body(reqwest::Body::wrap_stream(stream));
    if let Some(len) = len {
        // Lets the node refuse an oversize file before any byte is sent.
        request = request.header(reqwest::header::CONTENT_LENGTH, len);
    }
    let result = api.send(request).await;
    progress.finish_and_clear();
    let doc: Value = result?.json().await.context("the answer is not JSON")?;
    match api.output {
        Output::Json => print_json(&doc),
        Output::Text => {
            println!(
                "stored {} ({} bytes, {} chunks, {} acks) root {}",
                name,
                doc["size"],
                doc["chunks"],
                doc["acks"],
                doc["root"].as_str().unwrap_or("?")
            );
            Ok(())
        }
    }
}

fn labels_query(labels: &[String]) -> anyhow::Result<Vec<(&'static str, String)>> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, _)) if !k.is_empty() => Ok(("label", l.clone())),
            _ => bail!("label {l:?} is not key=value"),
        })
        .collect()
}

/// `FILE.part`, beside FILE so the final rename stays on one file system.
fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

/// `hypha get NAME [-o FILE]`.
pub async fn get(args: GetArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let to_stdout = args.output.as_deref().is_none_or(|p| p == Path::new("-"));
    if to_stdout && api.output == Output::Json {
        bail!("--json prints a summary, so it needs -o FILE for the content");
    }
    let response = api
        .send(api.request(reqwest::Method::GET, &file_path(&args.name)))
        .await?;
    if response.headers().contains_key(READ_HEADER) {
        eprintln!("hypha: warning: fewer replicas than the read quorum answered; this may not be the newest version");
    }
    let progress = bar(response.content_length(), api.output);
    let mut body = response.bytes_stream();
    let mut written: u64 = 0;
    match args.output.as_deref().filter(|_| !to_stdout) {
        None => {
            let mut out = tokio::io::stdout();
            while let Some(piece) = body.next().await {
                let piece = piece.context("the transfer broke off")?;
                out.write_all(&piece).await?;
                written += piece.len() as u64;
            }
            out.flush().await?;
        }
        Some(path) => {
            let part = part_path(path);
            let mut out = tokio::fs::File::create(&part)
                .await
                .with_context(|| format!("cannot create {}", part.display()))?;
            let copied = async {
                while let Some(piece) = body.next().await {
                    let piece = piece.context("the transfer broke off")?;
                    out.write_all(&piece).await?;
                    written += piece.len() as u64;
                    progress.inc(piece.len() as u64);
                }
                out.sync_all().await?;
                tokio::fs::rename(&part, path).await?;
                anyhow::Ok(())
            }
            .await;
            if copied.is_err() {
                let _ = tokio::fs::remove_file(&part).await;
            }
            copied.with_context(|| format!("writing {}", path.display()))?;
        }
    }
    progress.finish_and_clear();
    if api.output == Output::Json {
        let path = args
            .output
            .as_deref()
            .map(Path::display)
            .map(|p| p.to_string());
        print_json(&serde_json::json!({"name": args.name, "bytes": written, "path": path}))?;
    } else if !to_stdout {
        eprintln!("hypha: wrote {written} bytes");
    }
    Ok(())
}

/// Stored files under `prefix` with `labels`, following cursors until
/// done or `want` files; whether some partition did not answer.
pub(crate) async fn list_files(
    api: &Api,
    prefix: &str,
    labels: &[String],
    want: usize,
) -> anyhow::Result<(Vec<Value>, bool, Option<String>)> {
    let mut files: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut incomplete = false;
    loop {
        let page_size = LIST_PAGE.min(want - files.len());
        let mut query = labels_query(labels)?;
        query.push(("prefix", prefix.to_owned()));
        query.push(("limit", page_size.to_string()));
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let request = api.request(reqwest::Method::GET, "/v1/files").query(&query);
        let doc: Value = api.send(request).await?.json().await?;
        incomplete |= doc["incomplete"] == true;
        files.extend(doc["files"].as_array().cloned().unwrap_or_default());
        cursor = doc["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() || files.len() >= want {
            return Ok((files, incomplete, cursor));
        }
    }
}

/// `hypha ls [PREFIX]`: follows cursors until done or `--limit` files.
pub async fn ls(args: LsArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let want = args.limit.unwrap_or(usize::MAX);
    let (files, incomplete, cursor) = list_files(&api, &args.prefix, &args.labels, want).await?;
    match api.output {
        Output::Json => print_json(&serde_json::json!({
            "files": files,
            "incomplete": incomplete,
            "next_cursor": cursor,
        })),
        Output::Text => {
            print!("{}", ls_table(&files));
            if incomplete {
                eprintln!(
                    "hypha: warning: some partitions did not answer; the list may be incomplete"
                );
            }
            Ok(())
        }
    }
}

fn modified(file: &Value) -> String {
    let ms = file["modified_ms"].as_u64().unwrap_or(0);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

fn ls_table(files: &[Value]) -> String {
    let mut out = String::new();
    for f in files {
        out.push_str(&format!(
            "{:>12}  {}  {}\n",
            f["size"],
            modified(f),
            f["name"].as_str().unwrap_or("?")
        ));
    }
    out
}

/// `hypha stat NAME`.
pub async fn stat(args: NameArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let path = format!("/v1/stat/{}", encode_name(&args.name));
    let doc: Value = api
        .send(api.request(reqwest::Method::GET, &path))
        .await?
        .json()
        .await?;
    match api.output {
        Output::Json => print_json(&doc),
        Output::Text => {
            print!("{}", stat_text(&doc));
            Ok(())
        }
    }
}

fn stat_text(doc: &Value) -> String {
    let mut out = String::new();
    for key in ["name", "size", "chunks", "content_type", "root", "version"] {
        let value = match &doc[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("{key:<13} {value}\n"));
    }
    out.push_str(&format!("{:<13} {}\n", "modified", modified(doc)));
    if let Some(labels) = doc["labels"].as_object() {
        for (k, v) in labels {
            out.push_str(&format!(
                "{:<13} {k}={}\n",
                "label",
                v.as_str().unwrap_or("?")
            ));
        }
    }
    out.push_str(&format!("{:<13} {}\n", "partition", doc["partition"]));
    for replica in doc["replicas"].as_array().into_iter().flatten() {
        let id = replica.as_str().unwrap_or("?");
        out.push_str(&format!(
            "{:<13} {}\n",
            "replica",
            id.get(..16).unwrap_or(id)
        ));
    }
    out
}

/// `hypha rm NAME`.
pub async fn rm(args: NameArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    preflight(&api, None).await?;
    api.send(api.request(reqwest::Method::DELETE, &file_path(&args.name)))
        .await?;
    match api.output {
        Output::Json => print_json(&serde_json::json!({"deleted": args.name})),
        Output::Text => {
            println!("deleted {}", args.name);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_for_the_path() {
        assert_eq!(encode_name("a/b c%.txt"), "a/b%20c%25.txt");
        assert_eq!(encode_name("é"), "%C3%A9");
        assert_eq!(encode_name("x?y#z"), "x%3Fy%23z");
    }

    #[test]
    fn default_names_and_part_files() {
        assert_eq!(default_name(Path::new("/tmp/x.bin")).unwrap(), "x.bin");
        assert!(default_name(Path::new("-")).is_err());
        assert_eq!(part_path(Path::new("/a/b.txt")), Path::new("/a/b.txt.part"));
    }

    #[test]
    fn labels_must_be_pairs() {
        assert!(labels_query(&["a=b".into()]).is_ok());
        assert!(labels_query(&["ab".into()]).is_err());
        assert!(labels_query(&["=b".into()]).is_err());
    }

    #[test]
    fn tables_show_size_and_name() {
        let files = vec![serde_json::json!({"name": "a/b", "size": 42, "modified_ms": 0})];
        let text = ls_table(&files);
        assert!(text.contains("42") && text.contains("a/b"), "{text}");
        let stat = serde_json::json!({"name": "a", "size": 1, "partition": 7,
            "labels": {"k": "v"}, "replicas": ["0123456789abcdef0123"]});
        let text = stat_text(&stat);
        assert!(text.contains("label         k=v"), "{text}");
        assert!(text.contains("replica       0123456789abcdef\n"), "{text}");
    }
}
