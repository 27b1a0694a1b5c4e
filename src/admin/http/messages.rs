//! The HTTP server actor's messages.

use hypha_supervisors::CrashMessage;

/// Requests the HTTP server actor handles.
pub enum HttpMessage {
    /// Chaos: panic inside the handler.
    Crash,
}

impl ractor::Message for HttpMessage {}

impl CrashMessage for HttpMessage {
    fn crash() -> Self {
        HttpMessage::Crash
    }
}
