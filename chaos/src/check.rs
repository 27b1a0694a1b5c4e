//! The invariant checkers over a history and what the healed cluster
//! answers afterwards. Pure.
//!
//! Files: each key belongs to one client, whose operations on it are
//! sequential, but an operation with an unknown outcome may take effect at
//! any time after it was invoked (a frozen coordinator can apply it after
//! the client gave up). So the final content of a key may be what its
//! last acknowledged operation left, or what any unknown operation on it
//! would have left — nothing else. Anything else is an acknowledged write
//! lost, or a deleted file come back.
//!
//! Reads during the run are held to the same rule at their own time: a
//! quorum read (the workload asks for `consistency=quorum`) must see the
//! key's last acknowledged write or delete before it, or what an unknown
//! operation invoked before it completed would leave (R + W > N,
//! docs/dht.md). Anything older is a stale read.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::history::{Op, OpKind, Outcome};

/// What a read of a key after heal returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalRead {
    /// 404.
    Absent,
    /// Content with this BLAKE3 (hex).
    Value(String),
    /// The read itself failed.
    Error(String),
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which rule.
    pub rule: &'static str,
    /// Key, job id, node or partition concerned.
    pub subject: String,
    /// What was seen against what was allowed.
    pub detail: String,
}

/// The state a file operation leaves, if it takes effect.
fn effect(op: &Op) -> Option<Option<String>> {
    match op.kind {
        OpKind::Write => Some(op.value.clone()),
        OpKind::Delete => Some(None),
        OpKind::Read | OpKind::Submit => None,
    }
}

/// Final states a key may be in.
fn allowed(ops: &[&Op]) -> (BTreeSet<Option<String>>, Option<&'static str>) {
    let mut last_ok: (Option<String>, Option<&'static str>) = (None, None);
    let mut maybe = BTreeSet::new();
    for op in ops {
        let Some(state) = effect(op) else { continue };
        match op.outcome {
            Outcome::Ok => last_ok = (state, Some(op.kind.as_str())),
            Outcome::Unknown => {
                maybe.insert(state);
            }
            Outcome::Fail => {}
        }
    }
    maybe.insert(last_ok.0);
    (maybe, last_ok.1)
}

/// Check every key's final read against its history, and every read
/// during the run against the values ever written.
pub fn check_files(ops: &[Op], finals: &BTreeMap<String, FinalRead>) -> Vec<Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.kind != OpKind::Submit) {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut out = Vec::new();
    for (key, ops) in by_key.iter_mut() {
        ops.sort_by_key(|o| (o.invoke_ms, o.id));
        out.extend(phantom_reads(key, ops));
        out.extend(stale_reads(key, ops));
        let (ok_states, last) = allowed(ops);
        match finals.get(*key) {
            None => out.push(violation("final_read_missing", key, "no read after heal")),
            Some(FinalRead::Error(e)) => out.push(violation("final_read_failed", key, e)),
            Some(read) => {
                let seen = match read {
                    FinalRead::Value(h) => Some(h.clone()),
                    _ => None,
                };
                if !ok_states.contains(&seen) {
                    let rule = match (last, &seen) {
                        (Some("delete"), Some(_)) => "deleted_file_resurrected",
                        _ => "acknowledged_write_lost",
                    };
                    let detail = format!("read {} but allowed {}", show(&seen), shows(&ok_states));
                    out.push(violation(rule, key, &detail));
                }
            }
        }
    }
    out
}

/// An acknowledged read may return a value any write of the key invoked
/// before the read completed, or absence — never anything else.
fn phantom_reads(key: &str, ops: &[&Op]) -> Vec<Violation> {
    ops.iter()
        .filter(|o| o.kind == OpKind::Read && o.outcome == Outcome::Ok)
        .filter_map(|read| {
            let value = read.value.as_ref()?;
            let written = ops.iter().any(|w| {
                w.kind == OpKind::Write
                    && w.invoke_ms <= read.complete_ms
                    && w.value.as_ref() == Some(value)
            });
            (!written).then(|| {
                violation(
                    "phantom_read",
                    key,
                    &format!("op {} read {value}, never written", read.id),
                )
            })
        })
        .collect()
}

/// Every acknowledged read must return what the last acknowledged write
/// or delete before it left, or an unknown operation's effect (see the
/// module doc). `ops` are one key's, in invocation order; values never
/// written are left to [`phantom_reads`].
fn stale_reads(key: &str, ops: &[&Op]) -> Vec<Violation> {
    let mut last_ok: Option<String> = None;
    let mut out = Vec::new();
    for read in ops {
        if let (Some(state), Outcome::Ok) = (effect(read), read.outcome) {
            last_ok = state;
            continue;
        }
        if read.kind != OpKind::Read || read.outcome != Outcome::Ok {
            continue;
        }
        let mut allowed: BTreeSet<Option<String>> = ops
            .iter()
            .filter(|u| u.outcome == Outcome::Unknown && u.invoke_ms <= read.complete_ms)
            .filter_map(|u| effect(u))
            .collect();
        allowed.insert(last_ok.clone());
        let written = read.value.is_none()
            || ops
                .iter()
                .any(|w| w.kind == OpKind::Write && w.value == read.value);
        if written && !allowed.contains(&read.value) {
            let detail = format!(
                "op {} read {} but allowed {}",
                read.id,
                show(&read.value),
                shows(&allowed)
            );
            out.push(violation("stale_read", key, &detail));
        }
    }
    out
}

/// Every acknowledged submit's job must be done. `states` maps job id to
/// the state the cluster reports after heal.
pub fn check_jobs(ops: &[Op], states: &BTreeMap<String, String>) -> Vec<Violation> {
    ops.iter()
        .filter(|o| o.kind == OpKind::Submit && o.outcome == Outcome::Ok)
        .filter_map(|o| {
            let state = states.get(&o.detail).map_or("unknown", String::as_str);
            (state != "done").then(|| {
                violation(
                    "acknowledged_job_not_done",
                    &o.detail,
                    &format!("{} is {state}", o.key),
                )
            })
        })
        .collect()
}

/// Acknowledged file operations whose effect was lost.
pub fn lost_count(violations: &[Violation]) -> usize {
    violations
        .iter()
        .filter(|v| {
            matches!(
                v.rule,
                "acknowledged_write_lost"
                    | "deleted_file_resurrected"
                    | "acknowledged_job_not_done"
            )
        })
        .count()
}

/// Build a violation.
pub fn violation(rule: &'static str, subject: &str, detail: &str) -> Violation {
    Violation {
        rule,
        subject: subject.to_owned(),
        detail: detail.to_owned(),
    }
}

fn show(state: &Option<String>) -> String {
    state
        .as_ref()
        .map_or_else(|| "absent".to_owned(), |h| h.chars().take(12).collect())
}

fn shows(states: &BTreeSet<Option<String>>) -> String {
    let all: Vec<String> = states.iter().map(show).collect();
    format!("{{{}}}", all.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, kind: OpKind, value: Option<&str>, outcome: Outcome) -> Op {
        Op {
            id,
            client: 0,
            kind,
            key: "k".into(),
            value: value.map(str::to_owned),
            node: 0,
            invoke_ms: id * 10,
            complete_ms: id * 10 + 5,
            outcome,
            detail: String::new(),
        }
    }

    fn finals(read: FinalRead) -> BTreeMap<String, FinalRead> {
        BTreeMap::from([("k".to_owned(), read)])
    }

    fn rules(v: &[Violation]) -> Vec<&'static str> {
        v.iter().map(|v| v.rule).collect()
    }

    #[test]
    fn the_last_acknowledged_write_must_survive() {
        let ops = [
            op(1, OpKind::Write, Some("a"), Outcome::Ok),
            op(2, OpKind::Write, Some("b"), Outcome::Ok),
        ];
        assert!(check_files(&ops, &finals(FinalRead::Value("b".into()))).is_empty());
        let v = check_files(&ops, &finals(FinalRead::Value("a".into())));
        assert_eq!(rules(&v), ["acknowledged_write_lost"]);
        let v = check_files(&ops, &finals(FinalRead::Absent));
        assert_eq!(rules(&v), ["acknowledged_write_lost"]);
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_landed_even_late() {
        let ops = [
            op(1, OpKind::Write, Some("a"), Outcome::Unknown),
            op(2, OpKind::Write, Some("b"), Outcome::Ok),
            op(3, OpKind::Write, Some("c"), Outcome::Fail),
        ];
        for seen in ["a", "b"] {
            let v = check_files(&ops, &finals(FinalRead::Value(seen.into())));
            assert!(v.is_empty(), "{seen}: {v:?}");
        }
        let v = check_files(&ops, &finals(FinalRead::Value("c".into())));
        assert_eq!(
            rules(&v),
            ["acknowledged_write_lost"],
            "a refused write landed"
        );
    }

    #[test]
    fn a_deleted_file_must_not_come_back() {
        let ops = [
            op(1, OpKind::Write, Some("a"), Outcome::Ok),
            op(2, OpKind::Delete, None, Outcome::Ok),
        ];
        assert!(check_files(&ops, &finals(FinalRead::Absent)).is_empty());
        let v = check_files(&ops, &finals(FinalRead::Value("a".into())));
        assert_eq!(rules(&v), ["deleted_file_resurrected"]);
    }

    #[test]
    fn reads_return_only_written_values() {
        let ops = [
            op(1, OpKind::Write, Some("a"), Outcome::Unknown),
            op(2, OpKind::Read, Some("a"), Outcome::Ok),
            op(3, OpKind::Read, Some("z"), Outcome::Ok),
            op(4, OpKind::Read, None, Outcome::Ok),
        ];
        let v = check_files(&ops, &finals(FinalRead::Value("a".into())));
        assert_eq!(rules(&v), ["phantom_read"]);
    }

    #[test]
    fn a_read_must_see_the_last_acknowledged_write_before_it() {
        let ops = [
            op(1, OpKind::Write, Some("a"), Outcome::Ok),
            op(2, OpKind::Write, Some("b"), Outcome::Ok),
            op(3, OpKind::Read, Some("b"), Outcome::Ok),
            op(4, OpKind::Read, Some("a"), Outcome::Ok),
            op(5, OpKind::Delete, None, Outcome::Ok),
            op(6, OpKind::Read, Some("b"), Outcome::Ok),
            op(7, OpKind::Read, None, Outcome::Ok),
        ];
        let v = check_files(&ops, &finals(FinalRead::Absent));
        assert_eq!(rules(&v), ["stale_read", "stale_read"]);
        assert!(v[0].detail.starts_with("op 4 "), "{v:?}");
        assert!(v[1].detail.starts_with("op 6 "), "{v:?}");
    }

    #[test]
    fn a_read_may_see_an_unknown_write_or_miss_it() {
        let ops = [
            op(1, OpKind::Write, Some("a"), Outcome::Ok),
            op(2, OpKind::Write, Some("b"), Outcome::Unknown),
            op(3, OpKind::Read, Some("a"), Outcome::Ok),
            op(4, OpKind::Read, Some("b"), Outcome::Ok),
            op(5, OpKind::Read, Some("a"), Outcome::Ok),
            op(6, OpKind::Write, Some("c"), Outcome::Fail),
            op(7, OpKind::Read, Some("a"), Outcome::Ok),
        ];
        let v = check_files(&ops, &finals(FinalRead::Value("b".into())));
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn a_failed_final_read_is_reported_not_excused() {
        let ops = [op(1, OpKind::Write, Some("a"), Outcome::Ok)];
        let v = check_files(&ops, &finals(FinalRead::Error("503".into())));
        assert_eq!(rules(&v), ["final_read_failed"]);
        let v = check_files(&ops, &BTreeMap::new());
        assert_eq!(rules(&v), ["final_read_missing"]);
    }

    #[test]
    fn every_acknowledged_job_must_be_done() {
        let mut ok = op(1, OpKind::Submit, None, Outcome::Ok);
        ok.detail = "j1".into();
        let mut unknown = op(2, OpKind::Submit, None, Outcome::Unknown);
        unknown.detail = "timeout".into();
        let ops = [ok, unknown];
        let done = BTreeMap::from([("j1".to_owned(), "done".to_owned())]);
        assert!(check_jobs(&ops, &done).is_empty());
        let queued = BTreeMap::from([("j1".to_owned(), "queued".to_owned())]);
        let v = check_jobs(&ops, &queued);
        assert_eq!(rules(&v), ["acknowledged_job_not_done"]);
        assert_eq!(lost_count(&v), 1);
    }
}
