//! Records written before chains and kept logs (version 1): decoded into
//! today's [`JobRecord`] with no follow-up steps and an empty log, so a
//! node that is upgraded still reads the jobs its queues hold.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::job::{Attempt, Constraints, JobId, JobRecord, JobSpec, JobState, Payload};

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct SpecV1 {
    queue: String,
    kind: String,
    payload: Payload,
    args: BTreeMap<String, String>,
    idempotency_key: Option<String>,
    priority: i32,
    max_attempts: u32,
    timeout_ms: u64,
    constraints: Constraints,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct RecordV1 {
    version: u16,
    id: JobId,
    spec: SpecV1,
    state: JobState,
    attempts: u32,
    history: Vec<Attempt>,
    submitted_ms: u64,
    finished_ms: Option<u64>,
    #[serde(with = "serde_bytes")]
    result: Vec<u8>,
    error: Option<String>,
}

/// Decode a version 1 record body.
pub(super) fn decode_v1(body: &[u8]) -> Result<JobRecord, String> {
    let r: RecordV1 = hypha_core::codec::decode(body).map_err(|e| e.to_string())?;
    let s = r.spec;
    Ok(JobRecord {
        version: r.version,
        id: r.id,
        spec: JobSpec {
            queue: s.queue,
            kind: s.kind,
            payload: s.payload,
            args: s.args,
            idempotency_key: s.idempotency_key,
            priority: s.priority,
            max_attempts: s.max_attempts,
            timeout_ms: s.timeout_ms,
            constraints: s.constraints,
            then: Vec::new(),
        },
        state: r.state,
        attempts: r.attempts,
        history: r.history,
        submitted_ms: r.submitted_ms,
        finished_ms: r.finished_ms,
        result: r.result,
        error: r.error,
        log: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::decode_record;

    #[test]
    fn a_version_one_record_still_reads() {
        let v1 = RecordV1 {
            version: 1,
            id: JobId([3; 16]),
            spec: SpecV1 {
                queue: "q".into(),
                kind: "echo".into(),
                payload: Payload::Bytes(b"hi".to_vec()),
                args: BTreeMap::from([("a".to_string(), "b".to_string())]),
                idempotency_key: Some("k".into()),
                priority: 2,
                max_attempts: 3,
                timeout_ms: 1_000,
                constraints: Constraints::default(),
            },
            state: JobState::Queued,
            attempts: 1,
            history: Vec::new(),
            submitted_ms: 7,
            finished_ms: None,
            result: b"r".to_vec(),
            error: Some("e".into()),
        };
        let bytes = hypha_core::codec::encode_versioned(1, &v1).expect("encodes");
        let r = decode_record(&bytes).expect("a version 1 record decodes");
        assert_eq!(r.id, JobId([3; 16]));
        assert_eq!(r.spec.queue, "q");
        assert_eq!(r.spec.args["a"], "b");
        assert_eq!(r.spec.priority, 2);
        assert!(r.spec.then.is_empty());
        assert_eq!(r.result, b"r");
        assert!(r.log.is_empty());
        assert!(
            decode_record(&[0, 9, 1, 2]).is_err(),
            "an unknown version is refused"
        );
    }
}
