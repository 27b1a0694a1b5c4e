//! Metrics the supervisors emit (through the `metrics` facade; the node
//! installs the Prometheus recorder).
//!
//! Label values are bounded: supervisor paths and child ids come from code,
//! and dynamic children use their template name as the label.

/// Counter: restarts of a child, by supervisor path and child.
pub const RESTARTS_TOTAL: &str = "hypha_supervisor_restarts_total";
/// Counter: supervisors that exceeded their intensity, by supervisor path.
pub const ESCALATIONS_TOTAL: &str = "hypha_supervisor_escalations_total";

/// Describe the metrics once, for the exporter's HELP lines.
pub fn describe() {
    metrics::describe_counter!(RESTARTS_TOTAL, "Children restarted by their supervisor.");
    metrics::describe_counter!(
        ESCALATIONS_TOTAL,
        "Supervisors that exceeded their restart intensity and escalated to their parent."
    );
}

pub(crate) fn restarted(supervisor: &str, child: &str) {
    metrics::counter!(RESTARTS_TOTAL, "supervisor" => supervisor.to_owned(), "child" => child.to_owned())
        .increment(1);
}

pub(crate) fn register(supervisor: &str, child: &str) {
    metrics::counter!(RESTARTS_TOTAL, "supervisor" => supervisor.to_owned(), "child" => child.to_owned())
        .increment(0);
    metrics::counter!(ESCALATIONS_TOTAL, "supervisor" => supervisor.to_owned()).increment(0);
}

pub(crate) fn escalated(supervisor: &str) {
    metrics::counter!(ESCALATIONS_TOTAL, "supervisor" => supervisor.to_owned()).increment(1);
}
