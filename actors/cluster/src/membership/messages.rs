//! Messages of the membership actor (local only; nothing here crosses the
//! network — gossip is chitchat's, probes are the link service's).

use ractor::RpcReplyPort;

use super::swim::ProbeOutcome;
use super::view::MemberKey;

/// What the membership actor handles.
#[derive(Debug)]
pub enum MembershipMessage {
    /// Fold gossip into the view (sent by the actor's own timer).
    Tick,
    /// A probe round finished.
    ProbeDone {
        /// The suspect.
        target: MemberKey,
        /// What the probes said.
        outcome: ProbeOutcome,
    },
    /// The gossip server stopped by itself: crash so the supervisor restarts us.
    GossipStopped(String),
    /// Publish the leaving flag (graceful leave); answers once it is set.
    Leave {
        /// Answer.
        reply: RpcReplyPort<()>,
    },
    /// Publish a new job-queue depth in the node's load.
    SetJobQueueDepth(u64),
    /// Publish the worker pool's use in the node's load.
    SetJobSlots {
        /// Attempts running.
        running: u32,
        /// Pool size.
        slots: u32,
    },
    /// Chaos: panic in the handler.
    Crash,
}

// Local only: the default (non-serialising) implementation.
impl ractor::Message for MembershipMessage {}

impl hypha_supervisors::CrashMessage for MembershipMessage {
    fn crash() -> Self {
        MembershipMessage::Crash
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crash_message_is_local() {
        // The message is never serialised: ractor's Message impl is local.
        fn assert_message<M: ractor::Message>() {}
        assert_message::<super::MembershipMessage>();
    }
}
