//! The work service's network messages, version 2 (chains: a job spec's
//! follow-up steps, an attempt's kept log): separate from every
//! local actor message; [`WorkWire`] makes them an instance of the shared
//! [`rpc`] layer (a 2-byte version, then [`hypha_core::codec`]), validated
//! on decode with the bounds checked here. Variants are only ever appended.

use serde::{Deserialize, Serialize};

use super::job::{
    AttemptEnd, JobId, JobRecord, JobSpec, JobState, MAX_INLINE_BYTES, MAX_LOG_BYTES,
};
use hypha_core::codec::CodecError;
use hypha_core::rpc::{self, frame, Protocol};

/// Version of this protocol.
pub const WORK_WIRE_VERSION: u16 = 2;
/// Most (job, attempt) pairs in one heartbeat.
pub const MAX_HEARTBEAT_JOBS: usize = 1024;
/// Most jobs in one list answer.
pub const MAX_LIST_JOBS: u32 = 1000;

/// Kinds of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request did not decode or is out of range.
    BadRequest,
    /// The wire version is not spoken here.
    Version,
    /// This node does not own the queue (membership moved; ask again).
    NotOwner,
    /// No such job.
    NotFound,
    /// The job is in a state that does not allow this.
    Conflict,
    /// Overloaded, restarting, or the DHT refused the write.
    Unavailable,
}

/// A refused request, as carried on the wire.
pub type WireError = rpc::WireError<ErrorCode>;

impl rpc::Code for ErrorCode {
    const BAD_REQUEST: Self = Self::BadRequest;
    const VERSION: Self = Self::Version;
    const UNAVAILABLE: Self = Self::Unavailable;
}

/// One queue's figures, as its owner sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueFigures {
    /// Queue name.
    pub queue: String,
    /// Owner member (`<node id>.<generation>`).
    pub owner: String,
    /// Waiting for a worker.
    pub depth: u64,
    /// Offered or leased.
    pub in_flight: u64,
    /// Dead-lettered jobs whose records the owner counted at load and since.
    pub dead_letters: u64,
    /// Age of the oldest queued job (ms).
    pub oldest_queued_ms: u64,
    /// Whether the owner has finished loading the queue's log.
    pub loaded: bool,
}

/// A request to a node's work service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkRequest {
    /// To a queue's owner: make the job durable, then answer.
    Submit {
        /// Id (random, or derived from the idempotency key).
        id: JobId,
        /// The job.
        spec: JobSpec,
    },
    /// To a queue's owner: the live record of a job it holds.
    Status {
        /// Queue.
        queue: String,
        /// Job.
        id: JobId,
    },
    /// To a queue's owner: jobs it holds (not yet terminal).
    List {
        /// Queue.
        queue: String,
        /// Only this state.
        state: Option<JobState>,
        /// At most this many.
        limit: u32,
    },
    /// To a queue's owner: cancel a job.
    Cancel {
        /// Queue.
        queue: String,
        /// Job.
        id: JobId,
    },
    /// To a node: figures of every queue it owns.
    Queues,
    /// To a worker: run this attempt if a slot is free.
    Offer {
        /// Owner (where heartbeats go first).
        owner: String,
        /// Job.
        id: JobId,
        /// The job.
        spec: JobSpec,
        /// The attempt number the lease will carry.
        attempt: u32,
        /// Lease between heartbeats (ms).
        lease_ms: u64,
    },
    /// To a queue's owner: the worker still runs these attempts.
    Heartbeat {
        /// Worker member.
        worker: String,
        /// Queue.
        queue: String,
        /// (job, attempt) pairs.
        jobs: Vec<(JobId, u32)>,
    },
    /// To a queue's owner: an attempt ended.
    Finished {
        /// Worker member.
        worker: String,
        /// Job.
        id: JobId,
        /// The job (so an owner that never loaded it can still record it).
        spec: JobSpec,
        /// Attempt.
        attempt: u32,
        /// How it ended.
        end: AttemptEnd,
        /// Output (done jobs).
        #[serde(with = "serde_bytes")]
        result: Vec<u8>,
        /// The attempt's log (a wasm module's stderr), its tail.
        #[serde(with = "serde_bytes")]
        log: Vec<u8>,
    },
    /// To a worker: stop this job (cancelled).
    Abort {
        /// Job.
        id: JobId,
    },
}

/// Whether a worker took an offered job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OfferAnswer {
    /// Running; the lease starts.
    Accepted,
    /// No free slot.
    Busy,
    /// Already running it.
    Duplicate,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkResponse {
    /// Submitted (`existing`: the idempotency key named a job already there).
    Submitted {
        /// Its record.
        record: JobRecord,
        /// Whether it already existed.
        existing: bool,
    },
    /// A record, or none held here.
    Record(Option<JobRecord>),
    /// Records.
    Records(Vec<JobRecord>),
    /// Queue figures.
    Queues(Vec<QueueFigures>),
    /// Offer answer.
    Offer(OfferAnswer),
    /// Heartbeat answer: the jobs to stop.
    Abort(Vec<JobId>),
    /// Done.
    Ok,
    /// Refused or failed.
    Error(WireError),
}

fn bad(message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::BadRequest, message)
}

/// The work protocol, one instance of the shared [`rpc`] layer.
pub struct WorkWire;

impl Protocol for WorkWire {
    type Request = WorkRequest;
    type Response = WorkResponse;
    type Code = ErrorCode;
    const VERSION: u16 = WORK_WIRE_VERSION;
    const FORMAT: &'static str = "work wire";
    const GROUP: &'static str = "hypha.work";
    const BAD_REQUESTS_METRIC: &'static str = "hypha_jobs_bad_requests_total";
    const ENCODE_FAILED: ErrorCode = ErrorCode::Unavailable;

    fn validate(request: &WorkRequest) -> Result<(), WireError> {
        validate(request)
    }

    fn refusal(err: WireError) -> WorkResponse {
        WorkResponse::Error(err)
    }

    fn into_result(response: WorkResponse) -> Result<WorkResponse, WireError> {
        match response {
            WorkResponse::Error(err) => Err(err),
            other => Ok(other),
        }
    }
}

/// Encode a request.
pub fn encode_request(request: &WorkRequest) -> Result<Vec<u8>, CodecError> {
    frame::encode_request::<WorkWire>(request)
}

/// Encode a response.
pub fn encode_response(response: &WorkResponse) -> Result<Vec<u8>, CodecError> {
    frame::encode_response::<WorkWire>(response)
}

/// Encode a response; one that does not encode becomes an encoded error.
pub fn encode_or_error(response: &WorkResponse) -> Vec<u8> {
    rpc::encode_or_error::<WorkWire>(response)
}

/// Decode and validate a request.
pub fn decode_request(bytes: &[u8]) -> Result<WorkRequest, WireError> {
    frame::decode_request::<WorkWire>(bytes)
}

/// Decode a response.
pub fn decode_response(bytes: &[u8]) -> Result<WorkResponse, WireError> {
    frame::decode_response::<WorkWire>(bytes)
}

fn validate(request: &WorkRequest) -> Result<(), WireError> {
    match request {
        WorkRequest::Submit { spec, .. }
        | WorkRequest::Offer { spec, .. }
        | WorkRequest::Finished { spec, .. } => spec.validate().map_err(|e| bad(e.to_string()))?,
        _ => {}
    }
    match request {
        WorkRequest::Heartbeat { jobs, .. } if jobs.len() > MAX_HEARTBEAT_JOBS => Err(bad(
            format!("at most {MAX_HEARTBEAT_JOBS} jobs per heartbeat"),
        )),
        WorkRequest::List { limit, .. } if *limit == 0 || *limit > MAX_LIST_JOBS => {
            Err(bad(format!("limit must be 1-{MAX_LIST_JOBS}")))
        }
        WorkRequest::Finished { result, .. } if result.len() > MAX_INLINE_BYTES => {
            Err(bad(format!("result over {MAX_INLINE_BYTES} bytes")))
        }
        WorkRequest::Finished { log, .. } if log.len() > MAX_LOG_BYTES => {
            Err(bad(format!("log over {MAX_LOG_BYTES} bytes")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_other_versions_are_refused() {
        assert!(decode_request(&[]).is_err());
        assert!(decode_request(&[0, 1, 0xff, 0xff, 0xff]).is_err());
        let mut frame = encode_request(&WorkRequest::Queues).unwrap();
        assert_eq!(decode_request(&frame), Ok(WorkRequest::Queues));
        frame[1] = 9;
        assert_eq!(decode_request(&frame).unwrap_err().code, ErrorCode::Version);
        let big = WorkRequest::Heartbeat {
            worker: "w".into(),
            queue: "q".into(),
            jobs: vec![(JobId([0; 16]), 1); MAX_HEARTBEAT_JOBS + 1],
        };
        let frame = encode_request(&big).unwrap();
        assert_eq!(
            decode_request(&frame).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }
}
