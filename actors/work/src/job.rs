//! What a job is: its id, its specification (queue, kind, payload,
//! placement constraints), its state and attempt history, and the record
//! that is stored in the DHT under the job id. Pure data and validation.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Version of the stored [`JobRecord`]; bump on incompatible change.
/// Version 1 (before chains and kept logs) still decodes
/// (`log::decode_record`).
pub const RECORD_VERSION: u16 = 2;
/// Longest queue name.
pub const MAX_QUEUE_NAME: usize = 64;
/// Longest kind name.
pub const MAX_KIND_NAME: usize = 64;
/// Largest inline payload or result (bytes).
pub const MAX_INLINE_BYTES: usize = 256 * 1024;
/// Most handler arguments.
pub const MAX_ARGS: usize = 32;
/// Longest argument key or value.
pub const MAX_ARG_BYTES: usize = 4096;
/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Longest timeout a job may ask for (one day).
pub const MAX_TIMEOUT_MS: u64 = 24 * 3_600_000;
/// Attempts kept in a record's history (the oldest are dropped).
pub const MAX_HISTORY: usize = 32;
/// Most follow-up steps a job may name (a chain is at most this + 1 jobs).
pub const MAX_CHAIN_STEPS: usize = 8;
/// Most bytes of all follow-up steps' arguments together, so a record
/// stays well under the log's 1 MiB read bound.
pub const MAX_CHAIN_ARG_BYTES: usize = 64 * 1024;
/// Most bytes of an attempt's log (a wasm module's stderr) kept in the
/// record; the tail is kept.
pub const MAX_LOG_BYTES: usize = 16 * 1024;

/// A job id: 128 bits, shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub [u8; 16]);

impl JobId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// The id a submit with an idempotency key gets: the same key in the
    /// same queue always names the same job.
    pub fn for_key(queue: &str, key: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"hypha.job.v1\0");
        h.update(queue.as_bytes());
        h.update(b"\0");
        h.update(key.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.finalize().as_bytes()[..16]);
        Self(id)
    }

    /// Parse 32 hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

/// A job's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Bytes given with the job.
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A file stored in the DHT, by name.
    File(String),
}

impl Payload {
    /// The stored file this job reads, if any (locality placement).
    pub fn file(&self) -> Option<&str> {
        match self {
            Payload::File(name) => Some(name),
            Payload::Bytes(_) => None,
        }
    }
}

/// Where a job may run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraints {
    /// Node labels that must all match.
    pub labels: BTreeMap<String, String>,
    /// Zone the node must be in.
    pub zone: Option<String>,
    /// Fewest logical CPUs.
    pub min_cores: u32,
    /// Least memory, in bytes.
    pub min_memory_bytes: u64,
    /// Least free disk, in bytes.
    pub min_disk_bytes: u64,
}

/// A follow-up step of a chain: run after the job before it succeeds,
/// with that job's result as its input (docs/jobs.md, "Chains").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Handler name.
    pub kind: String,
    /// Handler arguments.
    pub args: BTreeMap<String, String>,
}

/// What a client submits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Queue name.
    pub queue: String,
    /// Handler name.
    pub kind: String,
    /// Input.
    pub payload: Payload,
    /// Handler arguments (e.g. `pattern` for grep, `ms` for sleep).
    pub args: BTreeMap<String, String>,
    /// Same key, same queue → same job (a repeated submit is answered
    /// with the existing job).
    pub idempotency_key: Option<String>,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts before the job is dead-lettered.
    pub max_attempts: u32,
    /// One attempt is stopped after this.
    pub timeout_ms: u64,
    /// Where it may run.
    pub constraints: Constraints,
    /// Follow-up steps, in order: when this job is done, the first runs
    /// (in the same queue) on its result, carrying the rest.
    pub then: Vec<Step>,
}

/// Why a specification is refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SpecError {
    /// A field is out of bounds.
    #[error("{field}: {message}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why.
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field,
        message: message.into(),
    }
}

/// Queue and kind names: 1–64 of `[A-Za-z0-9._-]`.
pub fn validate_name(field: &'static str, name: &str, max: usize) -> Result<(), SpecError> {
    if name.is_empty() || name.len() > max {
        return Err(invalid(field, format!("must be 1-{max} characters")));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(field, "only letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

impl JobSpec {
    /// Check every bound; a node never stores or runs a spec that fails.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_name("queue", &self.queue, MAX_QUEUE_NAME)?;
        validate_name("kind", &self.kind, MAX_KIND_NAME)?;
        match &self.payload {
            Payload::Bytes(b) if b.len() > MAX_INLINE_BYTES => {
                return Err(invalid(
                    "payload",
                    format!("at most {MAX_INLINE_BYTES} bytes inline; store a file instead"),
                ))
            }
            Payload::File(name) if name.is_empty() || name.len() > 1024 => {
                return Err(invalid("payload", "file name must be 1-1024 bytes"))
            }
            _ => {}
        }
        validate_args(&self.args)?;
        self.validate_chain()?;
        if let Some(key) = &self.idempotency_key {
            if key.is_empty() || key.len() > 256 {
                return Err(invalid("idempotency_key", "must be 1-256 bytes"));
            }
        }
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            return Err(invalid("max_attempts", format!("must be 1-{MAX_ATTEMPTS}")));
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS {
            return Err(invalid("timeout_ms", format!("must be 1-{MAX_TIMEOUT_MS}")));
        }
        Ok(())
    }

    fn validate_chain(&self) -> Result<(), SpecError> {
        if self.then.len() > MAX_CHAIN_STEPS {
            return Err(invalid(
                "then",
                format!("at most {MAX_CHAIN_STEPS} follow-up steps"),
            ));
        }
        let mut arg_bytes = 0;
        for step in &self.then {
            validate_name("then.kind", &step.kind, MAX_KIND_NAME)?;
            validate_args(&step.args)?;
            arg_bytes += step
                .args
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        }
        if arg_bytes > MAX_CHAIN_ARG_BYTES {
            return Err(invalid(
                "then",
                format!("the steps' arguments are over {MAX_CHAIN_ARG_BYTES} bytes together"),
            ));
        }
        Ok(())
    }
}

fn validate_args(args: &BTreeMap<String, String>) -> Result<(), SpecError> {
    if args.len() > MAX_ARGS
        || args
            .iter()
            .any(|(k, v)| k.len() > MAX_ARG_BYTES || v.len() > MAX_ARG_BYTES)
    {
        return Err(invalid(
            "args",
            format!("at most {MAX_ARGS}, each key and value at most {MAX_ARG_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Offered to a worker, not yet accepted.
    Offered,
    /// Leased to a worker.
    Running,
    /// Finished with a result.
    Done,
    /// Out of attempts.
    DeadLetter,
    /// Cancelled by a client.
    Cancelled,
}

impl JobState {
    /// Done, dead-lettered or cancelled: never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::DeadLetter | Self::Cancelled)
    }

    /// Name in the API and in record labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Offered => "offered",
            Self::Running => "running",
            Self::Done => "done",
            Self::DeadLetter => "dead_letter",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parse an API name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Offered,
            Self::Running,
            Self::Done,
            Self::DeadLetter,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptEnd {
    /// Still running (as far as the record knows).
    Running,
    /// The handler returned a result.
    Succeeded,
    /// The handler returned an error.
    Failed(String),
    /// Stopped at the job's timeout.
    TimedOut,
    /// The worker stopped heartbeating.
    LeaseExpired,
    /// The worker's node went Down.
    NodeDown,
    /// Cancelled while running.
    Cancelled,
}

/// One attempt: where and when it ran, how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Attempt number, from 1.
    pub number: u32,
    /// Worker member (`<node id>.<generation>`).
    pub worker: String,
    /// Lease start (Unix ms).
    pub started_ms: u64,
    /// End (Unix ms), once known.
    pub ended_ms: Option<u64>,
    /// How it ended.
    pub end: AttemptEnd,
}

/// A job as stored in the DHT (`.hypha/jobs/<id>`) and shown by status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// [`RECORD_VERSION`].
    pub version: u16,
    /// Id.
    pub id: JobId,
    /// What was submitted.
    pub spec: JobSpec,
    /// State.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    /// The latest attempts, oldest first.
    pub history: Vec<Attempt>,
    /// Acknowledged at (Unix ms).
    pub submitted_ms: u64,
    /// Reached its terminal state at (Unix ms).
    pub finished_ms: Option<u64>,
    /// The handler's output (done jobs).
    #[serde(with = "serde_bytes")]
    pub result: Vec<u8>,
    /// Why it was dead-lettered, or the last failure.
    pub error: Option<String>,
    /// The latest ended attempt's log (a wasm module's stderr), its last
    /// [`MAX_LOG_BYTES`].
    #[serde(with = "serde_bytes")]
    pub log: Vec<u8>,
}

impl JobRecord {
    /// A freshly submitted job.
    pub fn new(id: JobId, spec: JobSpec, now_ms: u64) -> Self {
        Self {
            version: RECORD_VERSION,
            id,
            spec,
            state: JobState::Queued,
            attempts: 0,
            history: Vec::new(),
            submitted_ms: now_ms,
            finished_ms: None,
            result: Vec::new(),
            error: None,
            log: Vec::new(),
        }
    }

    /// Record the start of an attempt on `worker`.
    pub fn start_attempt(&mut self, worker: &str, now_ms: u64) {
        self.note_attempt(worker, self.attempts + 1, now_ms);
    }

    /// Record that attempt `number` runs on `worker`. An owner can hear of
    /// an attempt (a heartbeat, a result) before the worker's answer to its
    /// offer: the attempt goes into the history then, or it would be
    /// missing from it. An entry already closed (a lease given up on) is
    /// reopened, since the worker has shown it still runs.
    pub fn note_attempt(&mut self, worker: &str, number: u32, now_ms: u64) {
        self.attempts = self.attempts.max(number);
        if let Some(a) = self.history.iter_mut().find(|a| a.number == number) {
            if a.end != AttemptEnd::Succeeded {
                a.worker = worker.to_owned();
                a.ended_ms = None;
                a.end = AttemptEnd::Running;
            }
            return;
        }
        let at = self.history.partition_point(|a| a.number < number);
        self.history.insert(
            at,
            Attempt {
                number,
                worker: worker.to_owned(),
                started_ms: now_ms,
                ended_ms: None,
                end: AttemptEnd::Running,
            },
        );
        if self.history.len() > MAX_HISTORY {
            self.history.remove(0);
        }
    }

    /// Close attempt `number` (if still in the history and open).
    pub fn end_attempt(&mut self, number: u32, end: AttemptEnd, now_ms: u64) {
        if let Some(a) = self
            .history
            .iter_mut()
            .rev()
            .find(|a| a.number == number && a.end == AttemptEnd::Running)
        {
            a.ended_ms = Some(now_ms);
            a.end = end;
        }
    }
}

/// Name of the DHT file holding a job's record.
pub fn record_name(id: JobId) -> String {
    format!("{RECORD_PREFIX}{id}")
}

/// Prefix of job records in the DHT.
pub const RECORD_PREFIX: &str = ".hypha/jobs/";
/// Prefix of the queue registry in the DHT (one small file per queue).
pub const QUEUE_PREFIX: &str = ".hypha/queues/";

/// Name of the DHT file that registers a queue.
pub fn queue_name(queue: &str) -> String {
    format!("{QUEUE_PREFIX}{queue}")
}

/// Record labels, so listings filter by queue and state without reading.
pub const LABEL_QUEUE: &str = "queue";
/// See [`LABEL_QUEUE`].
pub const LABEL_STATE: &str = "state";

/// An `echo` job of one payload byte on `queue`, with a 1 s timeout
/// (the fixture of the owner's and the workers' tests).
#[cfg(test)]
pub(crate) fn echo_spec(queue: &str, max_attempts: u32) -> JobSpec {
    JobSpec {
        queue: queue.into(),
        kind: "echo".into(),
        payload: Payload::Bytes(vec![1]),
        args: BTreeMap::new(),
        idempotency_key: None,
        priority: 0,
        max_attempts,
        timeout_ms: 1_000,
        constraints: Constraints::default(),
        then: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_records_live_under_the_reserved_prefix() {
        use hypha_dht::manifest::is_reserved;
        assert!(is_reserved(&record_name(JobId([7; 16]))));
        assert!(is_reserved(&queue_name("q")));
    }

    pub(crate) fn spec(queue: &str) -> JobSpec {
        JobSpec {
            queue: queue.into(),
            kind: "echo".into(),
            payload: Payload::Bytes(b"hi".to_vec()),
            args: BTreeMap::new(),
            idempotency_key: None,
            priority: 0,
            max_attempts: 3,
            timeout_ms: 1_000,
            constraints: Constraints::default(),
            then: Vec::new(),
        }
    }

    #[test]
    fn ids_round_trip_and_keys_are_stable() {
        let id = JobId::random();
        assert_eq!(JobId::parse(&id.to_string()), Some(id));
        assert_eq!(JobId::parse("zz"), None);
        assert_eq!(JobId::for_key("q", "k"), JobId::for_key("q", "k"));
        assert_ne!(JobId::for_key("q", "k"), JobId::for_key("r", "k"));
    }

    #[test]
    fn bounds_are_checked() {
        assert!(spec("q").validate().is_ok());
        let mut s = spec("bad/name");
        assert!(s.validate().is_err());
        s = spec("q");
        s.max_attempts = 0;
        assert!(s.validate().is_err());
        s = spec("q");
        s.payload = Payload::Bytes(vec![0; MAX_INLINE_BYTES + 1]);
        assert!(s.validate().is_err());
        s = spec("q");
        s.timeout_ms = 0;
        assert!(s.validate().is_err());
    }

    #[test]
    fn history_is_bounded_and_attempts_close() {
        let mut r = JobRecord::new(JobId::random(), spec("q"), 0);
        for i in 0..(MAX_HISTORY as u64 + 5) {
            r.start_attempt("w.1", i);
        }
        assert_eq!(r.history.len(), MAX_HISTORY);
        let last = r.attempts;
        r.end_attempt(last, AttemptEnd::TimedOut, 99);
        assert_eq!(
            r.history.last().map(|a| &a.end),
            Some(&AttemptEnd::TimedOut)
        );
    }
}
