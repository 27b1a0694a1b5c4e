//! Work wire version 2: samples and their pinned bytes.

use std::collections::BTreeMap;

use hypha_work::job::{
    Attempt, AttemptEnd, Constraints, JobId, JobRecord, JobSpec, JobState, Payload, Step,
};
use hypha_work::wire::{
    ErrorCode, OfferAnswer, QueueFigures, WireError, WorkRequest, WorkResponse,
};

fn spec() -> JobSpec {
    JobSpec {
        queue: "q1".into(),
        kind: "grep".into(),
        payload: Payload::Bytes(vec![1, 2, 3]),
        args: BTreeMap::from([("pattern".to_string(), "x".to_string())]),
        idempotency_key: Some("k".into()),
        priority: -2,
        max_attempts: 3,
        timeout_ms: 60_000,
        constraints: Constraints {
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            zone: Some("a".into()),
            min_cores: 2,
            ..Constraints::default()
        },
        then: vec![Step {
            kind: "wasm".into(),
            args: BTreeMap::from([("module".to_string(), "apps/b.wasm".to_string())]),
        }],
    }
}

fn file_spec() -> JobSpec {
    JobSpec {
        payload: Payload::File("dir/in.txt".into()),
        idempotency_key: None,
        ..spec()
    }
}

fn record() -> JobRecord {
    let mut record = JobRecord::new(JobId([1; 16]), spec(), 1_000);
    record.state = JobState::Done;
    record.attempts = 1;
    record.history = vec![Attempt {
        number: 1,
        worker: "ab.2".into(),
        started_ms: 1_100,
        ended_ms: Some(1_200),
        end: AttemptEnd::Failed("boom".into()),
    }];
    record.finished_ms = Some(1_300);
    record.result = vec![4, 5];
    record.error = Some("boom".into());
    record.log = b"warn".to_vec();
    record
}

pub fn requests() -> Vec<(&'static str, WorkRequest)> {
    let id = JobId([2; 16]);
    let mut out = vec![
        ("submit", WorkRequest::Submit { id, spec: spec() }),
        (
            "submit_file",
            WorkRequest::Submit {
                id,
                spec: file_spec(),
            },
        ),
        (
            "status",
            WorkRequest::Status {
                queue: "q1".into(),
                id,
            },
        ),
        (
            "list",
            WorkRequest::List {
                queue: "q1".into(),
                state: Some(JobState::Running),
                limit: 50,
            },
        ),
        (
            "list_all",
            WorkRequest::List {
                queue: "q1".into(),
                state: None,
                limit: 1,
            },
        ),
        (
            "cancel",
            WorkRequest::Cancel {
                queue: "q1".into(),
                id,
            },
        ),
        ("queues", WorkRequest::Queues),
        (
            "offer",
            WorkRequest::Offer {
                owner: "ab.2".into(),
                id,
                spec: spec(),
                attempt: 2,
                lease_ms: 5_000,
            },
        ),
        (
            "heartbeat",
            WorkRequest::Heartbeat {
                worker: "cd.4".into(),
                queue: "q1".into(),
                jobs: vec![(id, 1), (JobId([3; 16]), 2)],
            },
        ),
        ("abort", WorkRequest::Abort { id }),
    ];
    let ends = [
        ("finished_running", AttemptEnd::Running),
        ("finished_succeeded", AttemptEnd::Succeeded),
        ("finished_failed", AttemptEnd::Failed("bad".into())),
        ("finished_timed_out", AttemptEnd::TimedOut),
        ("finished_lease_expired", AttemptEnd::LeaseExpired),
        ("finished_node_down", AttemptEnd::NodeDown),
        ("finished_cancelled", AttemptEnd::Cancelled),
    ];
    for (name, end) in ends {
        out.push((
            name,
            WorkRequest::Finished {
                worker: "cd.4".into(),
                id,
                spec: spec(),
                attempt: 1,
                end,
                result: vec![9],
                log: b"stderr".to_vec(),
            },
        ));
    }
    out
}

pub fn responses() -> Vec<(&'static str, WorkResponse)> {
    let mut out = vec![
        (
            "submitted",
            WorkResponse::Submitted {
                record: record(),
                existing: true,
            },
        ),
        ("record", WorkResponse::Record(Some(record()))),
        ("no_record", WorkResponse::Record(None)),
        ("records", WorkResponse::Records(vec![record()])),
        (
            "queues",
            WorkResponse::Queues(vec![QueueFigures {
                queue: "q1".into(),
                owner: "ab.2".into(),
                depth: 3,
                in_flight: 1,
                dead_letters: 2,
                oldest_queued_ms: 400,
                loaded: true,
            }]),
        ),
        ("offer_accepted", WorkResponse::Offer(OfferAnswer::Accepted)),
        ("offer_busy", WorkResponse::Offer(OfferAnswer::Busy)),
        (
            "offer_duplicate",
            WorkResponse::Offer(OfferAnswer::Duplicate),
        ),
        ("abort", WorkResponse::Abort(vec![JobId([2; 16])])),
        ("ok", WorkResponse::Ok),
    ];
    let codes = [
        ("error_bad_request", ErrorCode::BadRequest),
        ("error_version", ErrorCode::Version),
        ("error_not_owner", ErrorCode::NotOwner),
        ("error_not_found", ErrorCode::NotFound),
        ("error_conflict", ErrorCode::Conflict),
        ("error_unavailable", ErrorCode::Unavailable),
    ];
    for (name, code) in codes {
        out.push((name, WorkResponse::Error(WireError::new(code, "why"))));
    }
    out
}

/// A request a service takes, and one out of range it refuses.
pub fn valid_and_out_of_range() -> (WorkRequest, WorkRequest) {
    let out_of_range = WorkRequest::List {
        queue: "q1".into(),
        state: None,
        limit: 0,
    };
    (WorkRequest::Queues, out_of_range)
}

pub const VECTORS: &[(&str, &str)] = &[
    ("request_submit", "000200020202020202020202020202020202020271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d"),
    ("request_submit_file", "000200020202020202020202020202020202020271310467726570010a6469722f696e2e74787401077061747465726e0178000303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d"),
    ("request_status", "00020102713102020202020202020202020202020202"),
    ("request_list", "000202027131010232"),
    ("request_list_all", "0002020271310001"),
    ("request_cancel", "00020302713102020202020202020202020202020202"),
    ("request_queues", "000204"),
    ("request_offer", "0002050461622e32020202020202020202020202020202020271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d02fb8813"),
    ("request_heartbeat", "0002060463642e340271310202020202020202020202020202020202010303030303030303030303030303030302"),
    ("request_abort", "00020802020202020202020202020202020202"),
    ("request_finished_running", "0002070463642e34020202020202020202020202020202020271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d0100010906737464657272"),
    ("request_finished_succeeded", "0002070463642e34020202020202020202020202020202020271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d0101010906737464657272"),
    ("request_finished_failed", "0002070463642e34020202020202020202020202020202020271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d010203626164010906737464657272"),
    ("request_finished_timed_out", "0002070463642e34020202020202020202020202020202020271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d0103010906737464657272"),
    ("request_finished_lease_expired", "0002070463642e34020202020202020202020202020202020271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d0104010906737464657272"),
    ("request_finished_node_down", "0002070463642e34020202020202020202020202020202020271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d0105010906737464657272"),
    ("request_finished_cancelled", "0002070463642e34020202020202020202020202020202020271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d0106010906737464657272"),
    ("response_submitted", "00020002010101010101010101010101010101010271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d030101010461622e32fb4c0401fbb0040204626f6f6dfbe80301fb14050204050104626f6f6d047761726e01"),
    ("response_record", "0002010102010101010101010101010101010101010271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d030101010461622e32fb4c0401fbb0040204626f6f6dfbe80301fb14050204050104626f6f6d047761726e"),
    ("response_no_record", "00020100"),
    ("response_records", "0002020102010101010101010101010101010101010271310467726570000301020301077061747465726e017801016b0303fb60ea01047a6f6e65016101016102000001047761736d01066d6f64756c650b617070732f622e7761736d030101010461622e32fb4c0401fbb0040204626f6f6dfbe80301fb14050204050104626f6f6d047761726e"),
    ("response_queues", "000203010271310461622e32030102fb900101"),
    ("response_offer_accepted", "00020400"),
    ("response_offer_busy", "00020401"),
    ("response_offer_duplicate", "00020402"),
    ("response_abort", "0002050102020202020202020202020202020202"),
    ("response_ok", "000206"),
    ("response_error_bad_request", "0002070003776879"),
    ("response_error_version", "0002070103776879"),
    ("response_error_not_owner", "0002070203776879"),
    ("response_error_not_found", "0002070303776879"),
    ("response_error_conflict", "0002070403776879"),
    ("response_error_unavailable", "0002070503776879"),
    ("reply_refuse_short", "000207001f6d6573736167652073686f72746572207468616e2069747320686561646572"),
    ("reply_refuse_other_version", "0002070127776f726b20776972652076657273696f6e20393b2074686973206e6f646520737065616b732032"),
    ("reply_refuse_invalid", "00020700146c696d6974206d75737420626520312d31303030"),
];
