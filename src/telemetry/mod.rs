//! Logging (tracing, text or JSON) and the Prometheus recorder.
//!
//! Both are process-wide by nature (one subscriber, one `metrics` recorder).
//! Several nodes in one process (tests) therefore share one registry; a
//! production process runs one node. Every metric is listed in [`catalog`].
//! [`history`] keeps each node's own recent samples of a few of them for
//! the console's charts.

pub mod catalog;
pub mod history;

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Histogram buckets for `_seconds` metrics: 100 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Placing one job costs microseconds: the general buckets would put every
/// sample in the first one and hide the p99 the work benchmark reads.
const PLACEMENT_BUCKETS: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.01,
];

/// Write batches per group commit, powers of two (the writer flushes at
/// most 512 at once; above 256 only `+Inf` counts them).
const GROUP_COMMIT_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// Install the tracing subscriber (`RUST_LOG` filters; default `info`).
/// A second call (tests) leaves the first subscriber in place.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The process's Prometheus handle, installing the recorder on first use.
/// `None` if another recorder was installed first (embedding programs).
pub fn prometheus() -> Option<PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?
                // A full-name matcher takes precedence over the suffix.
                .set_buckets_for_metric(
                    Matcher::Full("hypha_jobs_placement_seconds".into()),
                    PLACEMENT_BUCKETS,
                )
                .ok()?
                // Without buckets it would be exported as a summary.
                .set_buckets_for_metric(
                    Matcher::Full("hypha_store_group_commit_batches".into()),
                    GROUP_COMMIT_BUCKETS,
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            // Includes the supervisors' two metrics, with the same HELP
            // text as `hypha_supervisors::metrics::describe`.
            catalog::install();
            let collector = PROCESS.get_or_init(metrics_process::Collector::default);
            collector.describe();
            Some(handle)
        })
        .clone()
}

/// Render the exposition text, refreshing process metrics first.
pub fn render(handle: &PrometheusHandle) -> String {
    if let Some(collector) = PROCESS.get() {
        collector.collect();
    }
    handle.run_upkeep();
    handle.render()
}
