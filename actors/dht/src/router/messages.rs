//! The router's messages (local only).

use hypha_supervisors::CrashMessage;

/// Requests the router handles.
pub enum RouterMessage {
    /// Re-read the view and expire grace periods.
    Tick,
    /// Chaos: panic inside the handler.
    Crash,
}

impl ractor::Message for RouterMessage {}

impl CrashMessage for RouterMessage {
    fn crash() -> Self {
        RouterMessage::Crash
    }
}
