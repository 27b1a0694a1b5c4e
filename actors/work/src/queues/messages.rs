//! Messages of the queues actor (local only; peers reach it through the
//! work service's versioned wire types).

use hypha_supervisors::CrashMessage;
use ractor::RpcReplyPort;

use crate::job::{JobId, JobRecord};
use crate::wire::{OfferAnswer, WorkRequest, WorkResponse};

/// What the queues actor handles.
pub enum QueuesMessage {
    /// A request from a client or a worker (through the work service).
    Request {
        /// The request.
        request: WorkRequest,
        /// Its answer.
        reply: RpcReplyPort<WorkResponse>,
    },
    /// Timer: expire leases, requeue jobs of Down workers, place jobs.
    Tick,
    /// Timer: read the queue registry, take over or let go of queues.
    Scan,
    /// The registry was read.
    Scanned(Option<Vec<String>>),
    /// A queue's log was read.
    Loaded {
        /// Queue.
        queue: String,
        /// Its queued records.
        records: Vec<JobRecord>,
        /// Dead-lettered records counted.
        dead_letters: u64,
        /// Every member answered the listing.
        complete: bool,
    },
    /// A submit's record is durable (or failed to be).
    Submitted {
        /// The record.
        record: JobRecord,
        /// The idempotency key named an existing job (this is its record).
        existing: bool,
        /// The write's outcome.
        result: Result<(), String>,
        /// The client's answer.
        reply: RpcReplyPort<WorkResponse>,
    },
    /// A transition's record is durable (or failed to be).
    Persisted {
        /// The record written.
        record: JobRecord,
        /// Whether it was written.
        ok: bool,
        /// The next step of its chain as the log holds it, once durable.
        next: Option<Box<JobRecord>>,
    },
    /// A worker answered an offer.
    OfferAnswered {
        /// Queue.
        queue: String,
        /// Job.
        id: JobId,
        /// Worker.
        worker: String,
        /// Its answer, or why there was none.
        answer: Result<OfferAnswer, String>,
    },
    /// Chaos: panic in the handler.
    Crash,
}

impl ractor::Message for QueuesMessage {}

impl CrashMessage for QueuesMessage {
    fn crash() -> Self {
        QueuesMessage::Crash
    }
}
