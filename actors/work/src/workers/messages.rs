//! Messages of the workers actor (local only).

use hypha_supervisors::CrashMessage;
use ractor::RpcReplyPort;

use crate::job::{AttemptEnd, JobId};
use crate::wire::{WorkRequest, WorkResponse};

/// What the workers actor handles.
pub enum WorkersMessage {
    /// An offer or abort from an owner (through the work service).
    Request {
        /// The request.
        request: Box<WorkRequest>,
        /// Its answer.
        reply: RpcReplyPort<WorkResponse>,
    },
    /// An attempt ended here.
    Ended {
        /// Job.
        id: JobId,
        /// Attempt.
        attempt: u32,
        /// How.
        end: AttemptEnd,
        /// Output.
        result: Vec<u8>,
        /// The attempt's kept log.
        log: Vec<u8>,
    },
    /// Timer: heartbeats, unacknowledged reports, published load.
    Tick,
    /// An owner acknowledged a report (durable).
    Reported(JobId),
    /// A report was not acknowledged; send it again later.
    ReportFailed(JobId),
    /// An owner's heartbeat answer: stop these.
    Abort(Vec<JobId>),
    /// Chaos: panic in the handler.
    Crash,
}

impl ractor::Message for WorkersMessage {}

impl CrashMessage for WorkersMessage {
    fn crash() -> Self {
        WorkersMessage::Crash
    }
}
