//! Job kinds: the [`JobHandler`] trait library users implement, the
//! registry that maps a kind name to its handler on a node, and the
//! built-ins — `echo`, `sleep`, `checksum`, `wordcount`, `grep` and the
//! allow-listed `exec` (off unless configured).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use thiserror::Error;

use super::job::{JobId, JobSpec, Payload, MAX_INLINE_BYTES, MAX_LOG_BYTES};
use hypha_dht::files::{Files, PutMeta, ReadConsistency};

/// Why an attempt failed (the job is retried, then dead-lettered).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum JobError {
    /// The input is unusable (a retry will not help, but is cheap).
    #[error("bad input: {0}")]
    BadInput(String),
    /// The stored input could not be read.
    #[error("input file: {0}")]
    Input(String),
    /// The handler failed.
    #[error("{0}")]
    Failed(String),
}

/// What a handler is given.
pub struct JobInput {
    /// Job id.
    pub id: JobId,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The submitted job.
    pub spec: JobSpec,
    files: Option<Files>,
    log: AttemptLog,
}

/// What an attempt leaves in its job's record besides the result (a wasm
/// module's stderr): the last [`MAX_LOG_BYTES`]. Shared between the
/// handler and the worker that reports the attempt.
#[derive(Clone, Default)]
pub struct AttemptLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl AttemptLog {
    /// Keep `bytes` as the log (its tail, when longer than the bound).
    pub fn keep(&self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(MAX_LOG_BYTES)..];
        if let Ok(mut log) = self.0.lock() {
            log.clear();
            log.extend_from_slice(tail);
        }
    }

    /// The log kept so far.
    pub fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

impl JobInput {
    /// Input for a handler; `files` reads stored payloads.
    pub fn new(id: JobId, attempt: u32, spec: JobSpec, files: Option<Files>) -> Self {
        Self {
            id,
            attempt,
            spec,
            files,
            log: AttemptLog::default(),
        }
    }

    /// The attempt's log: what [`AttemptLog::keep`] is given ends up in
    /// the job's record, on success as on failure.
    pub fn log(&self) -> &AttemptLog {
        &self.log
    }

    /// An argument, or a clear error naming it.
    pub fn arg(&self, name: &str) -> Result<&str, JobError> {
        self.spec
            .args
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| JobError::BadInput(format!("missing argument `{name}`")))
    }

    /// The payload as a stream of verified bytes (inline bytes, or the
    /// stored file read through the DHT).
    pub async fn stream(&self) -> Result<BoxStream<'static, Result<Vec<u8>, JobError>>, JobError> {
        match &self.spec.payload {
            Payload::Bytes(b) => {
                let b = b.clone();
                Ok(futures::stream::once(async move { Ok(b) }).boxed())
            }
            Payload::File(name) => self.open(name).await,
        }
    }

    /// The stored file `name` as a stream of verified bytes.
    async fn open(
        &self,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, JobError>>, JobError> {
        let files = self
            .files
            .as_ref()
            .ok_or_else(|| JobError::Input("no file access on this node".into()))?;
        let opened = files
            .open(name, None, ReadConsistency::Available)
            .await
            .map_err(|e| JobError::Input(format!("{name}: {e}")))?;
        Ok(opened
            .body
            .map(|r| r.map_err(|e| JobError::Input(e.to_string())))
            .boxed())
    }

    /// The payload, whole; more than `max_bytes` is refused.
    pub async fn read_payload(&self, max_bytes: usize) -> Result<Vec<u8>, JobError> {
        collect_at_most(self.stream().await?, max_bytes, "the input").await
    }

    /// The stored file `name`, whole; more than `max_bytes` is refused.
    pub async fn read_file(&self, name: &str, max_bytes: usize) -> Result<Vec<u8>, JobError> {
        collect_at_most(self.open(name).await?, max_bytes, name).await
    }

    /// Store `bytes` as the file `name` (acknowledged at W), labelled
    /// with this job's id.
    pub async fn store_file(&self, name: &str, bytes: Vec<u8>) -> Result<(), JobError> {
        let files = self
            .files
            .as_ref()
            .ok_or_else(|| JobError::Failed("no file access on this node".into()))?;
        let meta = PutMeta {
            content_type: "application/octet-stream".into(),
            labels: BTreeMap::from([("job".to_owned(), self.id.to_string())]),
        };
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
        files
            .put(name, meta, body)
            .await
            .map(|_| ())
            .map_err(|e| JobError::Failed(format!("storing the result as {name}: {e}")))
    }
}

/// Gather `stream` into one buffer, refusing more than `max_bytes`.
async fn collect_at_most(
    mut stream: BoxStream<'static, Result<Vec<u8>, JobError>>,
    max_bytes: usize,
    what: &str,
) -> Result<Vec<u8>, JobError> {
    let mut all = Vec::new();
    while let Some(piece) = stream.next().await {
        let piece = piece?;
        if all.len() + piece.len() > max_bytes {
            return Err(JobError::BadInput(format!(
                "{what} is over {max_bytes} bytes"
            )));
        }
        all.extend_from_slice(&piece);
    }
    Ok(all)
}

/// A kind of job. Implement it and register it under a name
/// ([`Registry::register`]); every node that should run the kind needs it.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Run one attempt; the output becomes the job's result (at most
    /// [`MAX_INLINE_BYTES`]). Dropping the future stops the attempt
    /// (timeout, cancel), so hold nothing that must outlive it.
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, JobError>;

    /// Check (and complete) a job at submit, on the node that takes it,
    /// before it is durable: an error refuses the submit (400). `job` has
    /// attempt 0 and may read stored files. By default, nothing to do.
    async fn prepare(&self, job: &mut JobInput) -> Result<(), JobError> {
        let _ = job;
        Ok(())
    }
}

/// Kind name → handler, per node.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl Registry {
    /// The built-ins; `exec` only when `exec` allows at least one command.
    pub fn builtins(exec: &ExecSettings) -> Self {
        let mut r = Self::default();
        r.register("echo", Echo);
        r.register("sleep", Sleep);
        r.register("checksum", Checksum);
        r.register("wordcount", WordCount);
        r.register("grep", Grep);
        if !exec.allow.is_empty() {
            r.register("exec", Exec(exec.clone()));
        }
        r
    }

    /// Add (or replace) a kind.
    pub fn register(&mut self, kind: &str, handler: impl JobHandler) {
        self.handlers.insert(kind.to_owned(), Arc::new(handler));
    }

    /// Add (or replace) a kind whose handler is already shared.
    pub fn register_shared(&mut self, kind: &str, handler: Arc<dyn JobHandler>) {
        self.handlers.insert(kind.to_owned(), handler);
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(kind).cloned()
    }

    /// Registered kinds, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.handlers.keys().cloned().collect();
        k.sort();
        k
    }
}

/// Returns its payload.
struct Echo;

#[async_trait]
impl JobHandler for Echo {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, JobError> {
        collect(input.stream().await?, MAX_INLINE_BYTES).await
    }
}

/// Sleeps `ms` (argument), then returns nothing: a stand-in for work.
struct Sleep;

#[async_trait]
impl JobHandler for Sleep {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, JobError> {
        let ms: u64 = input
            .arg("ms")?
            .parse()
            .map_err(|_| JobError::BadInput("`ms` must be a whole number".into()))?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Vec::new())
    }
}

/// BLAKE3 (hex) of the payload or stored file.
struct Checksum;

#[async_trait]
impl JobHandler for Checksum {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, JobError> {
        let mut stream = input.stream().await?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let out =
            serde_json::json!({"blake3": hasher.finalize().to_hex().to_string(), "bytes": size});
        Ok(out.to_string().into_bytes())
    }
}

/// Lines, words and bytes of the input (as `wc`), as JSON.
struct WordCount;

#[async_trait]
impl JobHandler for WordCount {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, JobError> {
        let mut stream = input.stream().await?;
        let (mut lines, mut words, mut bytes) = (0u64, 0u64, 0u64);
        let mut in_word = false;
        while let Some(chunk) = stream.next().await {
            for &b in &chunk? {
                bytes += 1;
                lines += u64::from(b == b'\n');
                let space = b.is_ascii_whitespace();
                words += u64::from(in_word && space);
                in_word = !space;
            }
        }
        words += u64::from(in_word);
        let out = serde_json::json!({"lines": lines, "words": words, "bytes": bytes});
        Ok(out.to_string().into_bytes())
    }
}

/// Lines containing `pattern` (a literal), prefixed with their line
/// number; the output is cut at [`MAX_INLINE_BYTES`] with a final note.
struct Grep;

#[async_trait]
impl JobHandler for Grep {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, JobError> {
        let pattern = input.arg("pattern")?.as_bytes().to_vec();
        if pattern.is_empty() || pattern.contains(&b'\n') {
            return Err(JobError::BadInput(
                "`pattern` must be one non-empty line".into(),
            ));
        }
        let mut stream = input.stream().await?;
        let mut grep = LineGrep::new(pattern);
        while let Some(chunk) = stream.next().await {
            grep.push(&chunk?);
        }
        Ok(grep.finish())
    }
}

/// Line matching across chunk boundaries, with a bounded output.
struct LineGrep {
    pattern: Vec<u8>,
    line: Vec<u8>,
    number: u64,
    out: Vec<u8>,
    cut: bool,
}

impl LineGrep {
    fn new(pattern: Vec<u8>) -> Self {
        Self {
            pattern,
            line: Vec::new(),
            number: 0,
            out: Vec::new(),
            cut: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if b == b'\n' {
                self.end_line();
            } else if self.line.len() < MAX_INLINE_BYTES {
                self.line.push(b);
            }
        }
    }

    fn end_line(&mut self) {
        self.number += 1;
        let hit = self
            .line
            .windows(self.pattern.len())
            .any(|w| w == self.pattern);
        if hit && !self.cut {
            let entry = format!("{}:{}\n", self.number, String::from_utf8_lossy(&self.line));
            if self.out.len() + entry.len() > MAX_INLINE_BYTES - 64 {
                self.cut = true;
            } else {
                self.out.extend_from_slice(entry.as_bytes());
            }
        }
        self.line.clear();
    }

    fn finish(mut self) -> Vec<u8> {
        if !self.line.is_empty() {
            self.end_line();
        }
        if self.cut {
            self.out
                .extend_from_slice(b"[output cut at the result size limit]\n");
        }
        self.out
    }
}

/// Which external commands the `exec` kind may run, and its limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSettings {
    /// Command name (as jobs give it) → what runs. Empty: the kind is not
    /// registered at all.
    pub allow: BTreeMap<String, ExecCommand>,
    /// Output beyond this fails the attempt.
    pub max_output_bytes: usize,
}

/// One allow-listed command: the program, the arguments it always gets,
/// and what a job may add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand {
    /// Absolute program path.
    pub program: String,
    /// Arguments the operator fixed; always passed first.
    pub fixed_args: Vec<String>,
    /// What a job's own `argv` may contain.
    pub argv: ArgvPolicy,
}

impl ExecCommand {
    /// A command that takes no job arguments.
    pub fn program(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            fixed_args: Vec::new(),
            argv: ArgvPolicy::None,
        }
    }
}

/// What a job's `argv` may hold, per command. Jobs come from any holder
/// of a write token, so the default gives them no say in the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ArgvPolicy {
    /// No job arguments (the default).
    #[default]
    None,
    /// Operands only: no argument may start with `-`, so a job cannot
    /// turn on an option (`--output=…`, `-exec`) the operator did not fix.
    Operands,
    /// Any arguments, within the size limits.
    Free,
}

impl ArgvPolicy {
    /// The policy's name in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ArgvPolicy::None => "none",
            ArgvPolicy::Operands => "operands",
            ArgvPolicy::Free => "free",
        }
    }

    /// A policy by its configuration name.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(ArgvPolicy::None),
            "operands" => Some(ArgvPolicy::Operands),
            "free" => Some(ArgvPolicy::Free),
            _ => None,
        }
    }
}

/// Most job arguments one `exec` attempt takes.
pub const MAX_EXEC_ARGS: usize = 64;
/// Longest job argument, in bytes.
pub const MAX_EXEC_ARG_BYTES: usize = 4_096;

/// Whether `argv` is allowed under `policy`: the reason in words if not.
pub fn check_argv(policy: ArgvPolicy, argv: &[String]) -> Result<(), String> {
    if argv.is_empty() {
        return Ok(());
    }
    if policy == ArgvPolicy::None {
        return Err("this command takes no job arguments (argv policy `none`)".into());
    }
    if argv.len() > MAX_EXEC_ARGS {
        return Err(format!("at most {MAX_EXEC_ARGS} arguments"));
    }
    for arg in argv {
        if arg.len() > MAX_EXEC_ARG_BYTES || arg.contains('\0') {
            return Err(format!(
                "arguments must be at most {MAX_EXEC_ARG_BYTES} bytes, without NUL"
            ));
        }
        if policy == ArgvPolicy::Operands && arg.starts_with('-') {
            return Err(format!(
                "argument {arg:?} is an option; this command takes operands only (argv policy `operands`)"
            ));
        }
    }
    Ok(())
}

/// The environment an `exec` program gets: nothing of the node's own
/// (which holds the cookie and tokens), only a fixed `PATH` and a locale.
pub const EXEC_ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("LANG", "C.UTF-8"),
];

/// Runs an allow-listed program: argument `command` names it, `argv` is a
/// JSON array of arguments (checked against the command's
/// [`ArgvPolicy`]), the payload is its stdin. The process starts with a
/// cleared environment ([`EXEC_ENV`]) and is killed when the attempt is
/// stopped (timeout, cancel).
struct Exec(ExecSettings);

#[async_trait]
impl JobHandler for Exec {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, JobError> {
        let name = input.arg("command")?;
        let command =
            self.0.allow.get(name).ok_or_else(|| {
                JobError::BadInput(format!("command `{name}` is not allow-listed"))
            })?;
        let argv: Vec<String> = match input.spec.args.get("argv") {
            Some(json) => serde_json::from_str(json)
                .map_err(|_| JobError::BadInput("`argv` must be a JSON array of strings".into()))?,
            None => Vec::new(),
        };
        check_argv(command.argv, &argv)
            .map_err(|why| JobError::BadInput(format!("argv refused for `{name}`: {why}")))?;
        let args: Vec<String> = command.fixed_args.iter().cloned().chain(argv).collect();
        let stdin = collect(input.stream().await?, MAX_INLINE_BYTES).await?;
        run_program(&command.program, &args, stdin, self.0.max_output_bytes).await
    }
}

async fn run_program(
    program: &str,
    argv: &[String],
    stdin: Vec<u8>,
    max_output_bytes: usize,
) -> Result<Vec<u8>, JobError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut child = tokio::process::Command::new(program)
        .args(argv)
        .env_clear()
        .envs(EXEC_ENV.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| JobError::Failed(format!("cannot start {program}: {e}")))?;
    if let Some(mut pipe) = child.stdin.take() {
        // A program that does not read its input is not an error.
        let _ = pipe.write_all(&stdin).await;
    }
    let limit = u64::try_from(max_output_bytes).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        stdout
            .take(limit + 1)
            .read_to_end(&mut out)
            .await
            .map_err(|e| JobError::Failed(e.to_string()))?;
    }
    if out.len() > max_output_bytes {
        return Err(JobError::Failed(format!(
            "output exceeds the {max_output_bytes}-byte limit"
        )));
    }
    let mut err = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        let _ = stderr.take(4096).read_to_end(&mut err).await;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| JobError::Failed(e.to_string()))?;
    if !status.success() {
        return Err(JobError::Failed(format!(
            "{program} exited with {status}: {}",
            String::from_utf8_lossy(&err).trim()
        )));
    }
    Ok(out)
}

async fn collect(
    mut stream: BoxStream<'static, Result<Vec<u8>, JobError>>,
    max: usize,
) -> Result<Vec<u8>, JobError> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > max {
            return Err(JobError::BadInput(format!("input exceeds {max} bytes")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Constraints;

    fn input(kind: &str, payload: &[u8], args: &[(&str, &str)]) -> JobInput {
        let spec = JobSpec {
            queue: "q".into(),
            kind: kind.into(),
            payload: Payload::Bytes(payload.to_vec()),
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            idempotency_key: None,
            priority: 0,
            max_attempts: 1,
            timeout_ms: 1_000,
            constraints: Constraints::default(),
            then: Vec::new(),
        };
        JobInput::new(JobId([0; 16]), 1, spec, None)
    }

    #[tokio::test]
    async fn builtins_compute_what_they_say() {
        let r = Registry::builtins(&ExecSettings::default());
        assert_eq!(
            r.kinds(),
            vec!["checksum", "echo", "grep", "sleep", "wordcount"]
        );
        let run = |kind: &str, i| {
            let h = r.get(kind).unwrap();
            async move { h.run(i).await }
        };
        assert_eq!(run("echo", input("echo", b"hi", &[])).await.unwrap(), b"hi");
        let wc = run("wordcount", input("wordcount", b"one two\nthree\n", &[]))
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(wc).unwrap(),
            r#"{"bytes":14,"lines":2,"words":3}"#
        );
        let sum = run("checksum", input("checksum", b"abc", &[]))
            .await
            .unwrap();
        assert!(String::from_utf8(sum)
            .unwrap()
            .contains(&blake3::hash(b"abc").to_hex().to_string()));
        let g = run(
            "grep",
            input("grep", b"a cat\ndog\ncatalog", &[("pattern", "cat")]),
        )
        .await
        .unwrap();
        assert_eq!(g, b"1:a cat\n3:catalog\n");
        let bad = run("sleep", input("sleep", b"", &[("ms", "soon")])).await;
        assert!(matches!(bad, Err(JobError::BadInput(_))));
    }

    #[tokio::test]
    async fn exec_runs_only_allow_listed_commands_within_limits() {
        let settings = ExecSettings {
            allow: [
                ("cat".to_string(), ExecCommand::program("/bin/cat")),
                (
                    "env".to_string(),
                    ExecCommand {
                        program: "/usr/bin/env".into(),
                        fixed_args: Vec::new(),
                        argv: ArgvPolicy::Operands,
                    },
                ),
            ]
            .into(),
            max_output_bytes: 8,
        };
        let r = Registry::builtins(&settings);
        let h = r.get("exec").unwrap();
        let ok = h.run(input("exec", b"hello", &[("command", "cat")])).await;
        assert_eq!(ok.unwrap(), b"hello");
        let big = h
            .run(input("exec", b"more than eight", &[("command", "cat")]))
            .await;
        assert!(matches!(big, Err(JobError::Failed(m)) if m.contains("limit")));
        let denied = h.run(input("exec", b"", &[("command", "sh")])).await;
        assert!(matches!(denied, Err(JobError::BadInput(m)) if m.contains("allow-listed")));
        // `cat` allows no job arguments: a job cannot make it read a file.
        let file = h
            .run(input(
                "exec",
                b"",
                &[("command", "cat"), ("argv", r#"["/etc/passwd"]"#)],
            ))
            .await;
        assert!(matches!(file, Err(JobError::BadInput(m)) if m.contains("argv policy `none`")));
        // `env` takes operands only: no options.
        let option = h
            .run(input(
                "exec",
                b"",
                &[("command", "env"), ("argv", r#"["-i", "/bin/sh"]"#)],
            ))
            .await;
        assert!(matches!(option, Err(JobError::BadInput(m)) if m.contains("operands only")));
    }

    #[test]
    fn argv_policies_bound_what_a_job_adds() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_argv(ArgvPolicy::None, &[]).is_ok());
        assert!(check_argv(ArgvPolicy::None, &args(&["x"])).is_err());
        assert!(check_argv(ArgvPolicy::Operands, &args(&["a.txt", "b"])).is_ok());
        assert!(check_argv(ArgvPolicy::Operands, &args(&["--output=/x"])).is_err());
        assert!(check_argv(ArgvPolicy::Free, &args(&["--output=/x"])).is_ok());
        let many = vec!["a".to_string(); MAX_EXEC_ARGS + 1];
        assert!(check_argv(ArgvPolicy::Free, &many).is_err());
        let long = vec!["a".repeat(MAX_EXEC_ARG_BYTES + 1)];
        assert!(check_argv(ArgvPolicy::Free, &long).is_err());
        assert!(check_argv(ArgvPolicy::Free, &args(&["a\0b"])).is_err());
        for p in [ArgvPolicy::None, ArgvPolicy::Operands, ArgvPolicy::Free] {
            assert_eq!(ArgvPolicy::by_name(p.as_str()), Some(p));
        }
    }

    #[tokio::test]
    async fn exec_programs_see_none_of_the_nodes_environment() {
        // The node's secrets arrive in its environment (`cluster up`).
        std::env::set_var("HYPHA_EXEC_ENV_PROBE", "secret");
        let settings = ExecSettings {
            allow: [("env".to_string(), ExecCommand::program("/usr/bin/env"))].into(),
            max_output_bytes: 64 << 10,
        };
        let h = Registry::builtins(&settings).get("exec").unwrap();
        let out = h.run(input("exec", b"", &[("command", "env")])).await;
        let out = String::from_utf8(out.unwrap()).unwrap();
        assert!(!out.contains("HYPHA_"), "{out}");
        let mut got: Vec<&str> = out.lines().collect();
        got.sort_unstable();
        let mut want: Vec<String> = EXEC_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect();
        want.sort_unstable();
        assert_eq!(got, want);
    }
}
