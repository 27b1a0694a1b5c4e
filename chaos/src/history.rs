//! The history of a run: every client operation with its invocation and
//! completion time, its outcome (ok / fail / unknown) and the BLAKE3 of
//! the value it wrote or read, plus the faults as they were applied.
//! Saved as JSON lines (`history.jsonl`), one invoke and one completion
//! event per operation, in time order.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// PUT a file.
    Write,
    /// GET a file.
    Read,
    /// DELETE a file.
    Delete,
    /// POST a job.
    Submit,
}

impl OpKind {
    /// Name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Read => "read",
            Self::Delete => "delete",
            Self::Submit => "submit",
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged (2xx; a DELETE's 404 too: the file is absent).
    Ok,
    /// Refused before any effect: the request never reached a node, or
    /// a 4xx.
    Fail,
    /// May or may not have taken effect: a timeout, a lost connection
    /// after sending, a 5xx.
    Unknown,
}

/// One operation, invocation to completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique in the run, in invocation order per client.
    pub id: u64,
    /// The client that ran it.
    pub client: u32,
    /// What it was.
    pub kind: OpKind,
    /// File name, or job idempotency key.
    pub key: String,
    /// BLAKE3 (hex) of the value written, or read (`None`: absent).
    pub value: Option<String>,
    /// The node it was sent to.
    pub node: usize,
    /// Milliseconds since the run started.
    pub invoke_ms: u64,
    /// See `invoke_ms`.
    pub complete_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Status or error text; the job id for an acknowledged submit.
    pub detail: String,
}

/// A fault as applied (or refused) by the nemesis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// The fault, as scheduled.
    pub fault: crate::scenario::Fault,
    /// `ok`, or why it could not be applied.
    pub result: String,
    /// What an applied fault whose effect varies did (bit rot: whether
    /// the node started or its store was damaged and quarantined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Invoke {
        at_ms: u64,
        id: u64,
        client: u32,
        kind: OpKind,
        key: &'a str,
        node: usize,
        value: Option<&'a str>,
    },
    Complete {
        at_ms: u64,
        id: u64,
        outcome: Outcome,
        value: Option<&'a str>,
        detail: &'a str,
    },
    Fault(&'a FaultEvent),
}

/// The run's history, shared by the clients and the nemesis.
pub struct History {
    started: Instant,
    ops: Mutex<Vec<Op>>,
    faults: Mutex<Vec<FaultEvent>>,
}

impl History {
    /// An empty history whose clock starts now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            ops: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
        }
    }

    /// Milliseconds since the run started.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Record a completed operation.
    pub fn push(&self, op: Op) {
        if let Ok(mut ops) = self.ops.lock() {
            ops.push(op);
        }
    }

    /// Record a fault.
    pub fn fault(&self, event: FaultEvent) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.push(event);
        }
    }

    /// Every operation so far, by invocation time.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = self.ops.lock().map(|o| o.clone()).unwrap_or_default();
        ops.sort_by_key(|o| (o.invoke_ms, o.id));
        ops
    }

    /// Every fault so far.
    pub fn faults(&self) -> Vec<FaultEvent> {
        self.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Write the history as JSON lines, in time order.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let (ops, faults) = (self.ops(), self.faults());
        let mut lines: Vec<(u64, u8, String)> = Vec::new();
        for op in &ops {
            let invoke = Line::Invoke {
                at_ms: op.invoke_ms,
                id: op.id,
                client: op.client,
                kind: op.kind,
                key: &op.key,
                node: op.node,
                value: match op.kind {
                    OpKind::Write => op.value.as_deref(),
                    _ => None,
                },
            };
            let complete = Line::Complete {
                at_ms: op.complete_ms,
                id: op.id,
                outcome: op.outcome,
                value: op.value.as_deref(),
                detail: &op.detail,
            };
            lines.push((op.invoke_ms, 0, serde_json::to_string(&invoke)?));
            lines.push((op.complete_ms, 2, serde_json::to_string(&complete)?));
        }
        for f in &faults {
            lines.push((f.at_ms, 1, serde_json::to_string(&Line::Fault(f))?));
        }
        lines.sort_by_key(|l| (l.0, l.1));
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for (_, _, line) in lines {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        Ok(())
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}
