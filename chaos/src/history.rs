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

impl Op {
    /// The HTTP status the node answered, if one answered (an
    /// acknowledged submit's detail is its job id, not a status).
    pub fn status(&self) -> Option<u16> {
        if self.kind == OpKind::Submit && self.outcome == Outcome::Ok {
            return None;
        }
        let code: u16 = self.detail.split(' ').next()?.parse().ok()?;
        (100..600).contains(&code).then_some(code)
    }
}

/// The spans (ms since the run started, start inclusive, end exclusive)
/// during which at least one applied fault was in force: from a fault
/// that lasts ([`crate::scenario::Fault::closed_by`]) to the fault that
/// closes it, or to `end_ms` if nothing did. Overlapping spans merge.
/// Faults that could not be applied open nothing.
pub fn fault_spans(faults: &[FaultEvent], end_ms: u64) -> Vec<(u64, u64)> {
    let mut open: Vec<(crate::scenario::Fault, u64)> = Vec::new();
    let mut spans = Vec::new();
    for event in faults {
        if let Some(closer) = event.fault.closed_by() {
            if event.result == "ok" {
                open.push((closer, event.at_ms));
            }
            continue;
        }
        open.retain(|(closer, start)| {
            let closes = *closer == event.fault;
            if closes {
                spans.push((*start, event.at_ms.max(*start)));
            }
            !closes
        });
    }
    spans.extend(
        open.into_iter()
            .map(|(_, start)| (start, end_ms.max(start))),
    );
    merge(spans)
}

fn merge(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (start, end) in spans {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Fault;

    fn event(at_ms: u64, fault: Fault, result: &str) -> FaultEvent {
        FaultEvent {
            at_ms,
            fault,
            result: result.into(),
            outcome: None,
        }
    }

    #[test]
    fn a_fault_is_in_force_from_its_start_to_what_closes_it() {
        let faults = [
            event(100, Fault::Kill { node: 1 }, "ok"),
            event(150, Fault::Freeze { node: 2 }, "ok"),
            event(300, Fault::Start { node: 1 }, "ok"),
            event(400, Fault::Thaw { node: 2 }, "ok"),
            event(
                1_000,
                Fault::Ring {
                    order: vec![0, 1, 2, 3],
                },
                "ok",
            ),
            event(2_000, Fault::Heal, "ok"),
            event(2_500, Fault::Restart { node: 0 }, "ok"),
            event(3_000, Fault::Isolate { node: 0 }, "ok"),
        ];
        assert_eq!(
            fault_spans(&faults, 5_000),
            [(100, 400), (1_000, 2_000), (3_000, 5_000)]
        );
    }

    #[test]
    fn a_fault_that_was_not_applied_is_not_in_force() {
        let faults = [
            event(100, Fault::Isolate { node: 0 }, "partitions need …"),
            event(200, Fault::Heal, "partitions need …"),
        ];
        assert!(fault_spans(&faults, 5_000).is_empty());
    }

    #[test]
    fn only_answers_have_a_status() {
        let mut op = Op {
            id: 1,
            client: 0,
            kind: OpKind::Write,
            key: "k".into(),
            value: None,
            node: 0,
            invoke_ms: 0,
            complete_ms: 1,
            outcome: Outcome::Unknown,
            detail: "503 Service Unavailable".into(),
        };
        assert_eq!(op.status(), Some(503));
        op.detail = "error sending request for url (http://127.77.1.1:17070/)".into();
        assert_eq!(op.status(), None);
        op.detail = "404".into();
        assert_eq!(op.status(), Some(404));
        (op.kind, op.outcome, op.detail) = (OpKind::Submit, Outcome::Ok, "200".into());
        assert_eq!(op.status(), None, "a job id is not a status");
    }
}
