//! The one list of every metric a node exports (the `hypha_*` ones; the
//! `process_*` ones come from `metrics-process`).
//!
//! The code records metrics where they happen, through the `metrics` facade.
//! This catalog is what a scraper learns before anything happened:
//!
//! - the `# HELP` line (and type) of every metric, from [`MetricDef::help`];
//! - a series at zero for every label combination known in advance, from the
//!   first scrape on, so that dashboards, absent-series alerts and `rate()`
//!   see a series that was 0 rather than no data until the first event;
//! - the list the docs are checked against: a test below asserts that
//!   `docs/metrics.md` names exactly these metrics.
//!
//! A new metric is added here, with the same name and labels as its
//! `counter!`, `gauge!` or `histogram!` call, and to `docs/metrics.md`.

mod register;

pub use register::install;

/// What kind of series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic count; the name ends in `_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Samples in buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The exported name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The `# HELP` text: one line, what is counted and when.
    pub help: &'static str,
    /// Labels whose every value is known in advance: the cartesian product
    /// of these is registered at zero at start (when [`MetricDef::zero`] is
    /// set). Labels with values only known at run time (a supervisor path,
    /// a route) are not listed here; such a metric is only described.
    pub labels: &'static [(&'static str, &'static [&'static str])],
    /// Whether [`install`] registers the series of [`MetricDef::labels`] at
    /// zero (a histogram: with no observations, nothing recorded). Not for
    /// metrics with run-time labels (a label-less series would be one
    /// no code writes), nor for metrics their own code registers
    /// (supervisors), nor where 0 would be a false reading (free bytes).
    pub zero: bool,
}

type Labels = &'static [(&'static str, &'static [&'static str])];

const fn counter(name: &'static str, labels: Labels, help: &'static str) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Counter,
        help,
        labels,
        zero: true,
    }
}

const fn gauge(name: &'static str, labels: Labels, help: &'static str) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Gauge,
        help,
        labels,
        zero: true,
    }
}

const fn histogram(name: &'static str, labels: Labels, help: &'static str) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Histogram,
        help,
        labels,
        zero: true,
    }
}

impl MetricDef {
    /// Described, but left for its own code to create.
    const fn described_only(self) -> Self {
        Self {
            zero: false,
            ..self
        }
    }
}

/// The S3 operations the endpoint implements, and `other` (answered
/// `NotImplemented`); `hypha_s3::store::op_label` maps onto these.
const S3_OPERATIONS: &[&str] = &hypha_s3::store::OPERATION_LABELS;

/// Why a wasm attempt failed (`hypha_wasm::Failure::code`, beyond the
/// two refused at submit).
const WASM_FAILURES: &[&str] = &[
    "cpu_limit",
    "time_limit",
    "memory_limit",
    "output_limit",
    "trap",
    "exit",
    "link_error",
    "cancelled",
    "host_error",
];

/// Public member states (`MemberState::as_str`).
const MEMBER_STATES: &[&str] = &["joining", "up", "suspect", "down", "left"];
/// Replica RPC kinds (`dht::transport::kind`).
const RPC_KINDS: &[&str] = &[
    "find_node",
    "store_chunk",
    "get_chunk",
    "has_chunks",
    "put_manifest",
    "get_manifest",
    "list_names",
    "list_partition",
    "exchange",
    "manifests_by_key",
    "read_manifest",
];

/// Every `hypha_*` metric, one entry each.
pub const CATALOG: &[MetricDef] = &[
    // Node.
    gauge(
        "hypha_node_info",
        &[],
        "Always 1, labelled with the node's name and id; set once the supervision tree has started.",
    )
    .described_only(),
    // Supervision (registered at zero by hypha_supervisors when each child starts).
    counter(
        "hypha_supervisor_restarts_total",
        &[],
        "Children restarted by their supervisor.",
    )
    .described_only(),
    counter(
        "hypha_supervisor_escalations_total",
        &[],
        "Supervisors that exceeded their restart intensity and escalated to their parent.",
    )
    .described_only(),
    // Membership, gossip, node links and TLS.
    gauge(
        "hypha_members",
        &[("state", MEMBER_STATES)],
        "Members in each state in this node's view, itself included; refreshed every membership tick.",
    ),
    counter(
        "hypha_membership_transitions_total",
        &[("to", MEMBER_STATES)],
        "Public state changes of other members seen by this node, by new state.",
    ),
    gauge(
        "hypha_membership_ignored_members",
        &[],
        "Members gossip tells of that the view left out in the last tick because it holds its maximum (512).",
    ),
    gauge(
        "hypha_membership_contested_members",
        &[],
        "Members that two or more gossip states claimed in the last tick (a holder of the gossip key forging a state); their gossiped facts are not taken.",
    ),
    histogram(
        "hypha_membership_detection_seconds",
        &[],
        "Time from the last heartbeat heard of a member to this node's Down verdict about it.",
    ),
    counter(
        "hypha_gossip_sent_bytes_total",
        &[],
        "Bytes of gossip (chitchat UDP) datagrams sent.",
    ),
    counter(
        "hypha_gossip_received_bytes_total",
        &[],
        "Bytes of gossip (chitchat UDP) datagrams received.",
    ),
    counter(
        "hypha_gossip_rejected_total",
        &[(
            "reason",
            &[
                "malformed",
                "unsupported_format",
                "unknown_key",
                "forged",
                "stale",
                "replayed",
                "out_of_bounds",
                "rate_limited",
                "unexpected_source",
            ],
        )],
        "Gossip datagrams dropped before chitchat parsed them, by reason (docs/security.md, sealed gossip).",
    ),
    counter(
        "hypha_gossip_oversize_total",
        &[],
        "Gossip datagrams not sent because the seal would take them over the UDP size limit.",
    ),
    counter(
        "hypha_gossip_key_reloads_total",
        &[("result", &["ok", "error"])],
        "Reloads of the gossip keyring, by SIGHUP or POST /v1/node/gossip/keys/reload.",
    ),
    gauge(
        "hypha_cluster_majority_lease",
        &[],
        "1 while this node holds its majority lease (a majority of the cluster answered its pings within cluster.lease_ms), else 0: at 0 it acknowledges no write.",
    ),
    gauge(
        "hypha_cluster_links",
        &[],
        "Ready (authenticated) node-to-node links; updated when a link becomes ready or disconnects.",
    ),
    counter(
        "hypha_cluster_links_closed_total",
        &[("reason", &["down", "superseded", "hung"])],
        "Node links this node closed: the peer was declared Down, restarted, or missed its pings.",
    ),
    counter(
        "hypha_cluster_handshakes_refused_total",
        &[("reason", &["cookie", "tls", "certificate", "identity"])],
        "Node links refused: an incoming link closed before it authenticated, a TLS handshake (in or out) failed, a peer's certificate was refused, or a peer was not the node its certificate names or we dialled.",
    ),
    counter(
        "hypha_cluster_preauth_refused_total",
        &[(
            "reason",
            &["per_source", "total", "deadline", "unsolicited", "busy"],
        )],
        "Unauthenticated node links closed: over the per-address or pool cap at accept, past the handshake deadline, not admitted by the link port, or more accepts queued than the peers actor has taken.",
    ),
    counter(
        "hypha_tls_reloads_total",
        &[("result", &["ok", "error"])],
        "Reloads of the node-link TLS material, by SIGHUP or POST /v1/node/tls/reload.",
    ),
    // Store.
    counter(
        "hypha_store_writes_total",
        &[],
        "Key-value operations made durable by a group commit.",
    ),
    counter(
        "hypha_store_write_errors_total",
        &[("reason", &["disk_full", "condition", "io"])],
        "Write batches that failed: refused by the disk reserve, a failed condition, or an I/O error.",
    ),
    histogram(
        "hypha_store_group_commit_batches",
        &[],
        "Write batches flushed together per group commit.",
    ),
    histogram(
        "hypha_store_sync_seconds",
        &[],
        "Time a group commit spent in the fsyncs that make it power-safe (after sled's flush).",
    ),
    counter(
        "hypha_store_synced_blobs_total",
        &[],
        "Blob files (values over ~128 KiB, sled's own files) fsynced by group commits.",
    ),
    gauge(
        "hypha_store_free_bytes",
        &[],
        "Free bytes on the data directory's filesystem, read at each group commit when min_free_bytes > 0.",
    )
    .described_only(),
    // DHT and files.
    counter(
        "hypha_files_written_bytes_total",
        &[],
        "File bytes written by successful PUTs, counted by the coordinating node.",
    ),
    counter(
        "hypha_files_downloads_cut_total",
        &[],
        "Downloads ended short of their Content-Length because a later chunk could not be read.",
    ),
    counter(
        "hypha_files_read_bytes_total",
        &[],
        "File bytes served to GET responses.",
    ),
    counter(
        "hypha_cache_hits_total",
        &[],
        "Chunk reads of files this node does not replicate served from the edge cache.",
    ),
    counter(
        "hypha_cache_misses_total",
        &[],
        "Chunk reads of files this node does not replicate that the edge cache did not hold.",
    ),
    counter(
        "hypha_cache_evictions_total",
        &[],
        "Chunks the edge cache evicted for room.",
    ),
    gauge(
        "hypha_cache_bytes",
        &[],
        "Bytes of chunks the edge cache holds.",
    ),
    gauge(
        "hypha_cache_entries",
        &[],
        "Chunks the edge cache holds.",
    ),
    histogram(
        "hypha_dht_rpc_duration_seconds",
        &[("kind", RPC_KINDS)],
        "Duration of one replica RPC made by this node (calls to itself included), by kind.",
    ),
    counter(
        "hypha_dht_rpc_errors_total",
        &[("kind", RPC_KINDS)],
        "Replica RPCs that failed (timeout, unreachable, codec error or error answer), by kind.",
    ),
    counter(
        "hypha_dht_sent_bytes_total",
        &[],
        "Request bytes sent to other nodes by replica RPCs (node link or bulk link).",
    ),
    counter(
        "hypha_dht_received_bytes_total",
        &[],
        "Response bytes received from other nodes by replica RPCs.",
    ),
    counter(
        "hypha_dht_chunks_stored_total",
        &[],
        "Chunks this node stored for a store_chunk request, local or remote.",
    ),
    counter(
        "hypha_dht_quorum_failures_total",
        &[("op", &["read", "write", "not_settled", "no_majority"])],
        "File operations that missed their quorum, were refused while the view settles after start, or were refused without the majority lease.",
    ),
    counter(
        "hypha_dht_writes_refused_total",
        &[("kind", &["chunk", "manifest"])],
        "Chunk and manifest writes this node refused: for a partition it does not hold (not_replica), or without its majority lease (unavailable).",
    ),
    counter(
        "hypha_dht_read_repairs_total",
        &[("what", &["manifest", "chunk"])],
        "Stale or missing replicas rewritten by a read.",
    ),
    counter(
        "hypha_dht_verification_failures_total",
        &[(
            "where",
            &["local_store", "remote", "incoming", "manifest", "anti_entropy"],
        )],
        "Content that failed its BLAKE3 hash or decoding, by where it was found.",
    ),
    counter(
        "hypha_dht_bad_requests_total",
        &[],
        "DHT requests from peers that could not be decoded, on the node link or the bulk link.",
    ),
    gauge(
        "hypha_dht_owners",
        &[],
        "Live members in this node's placement, i.e. the nodes partitions are placed on.",
    ),
    gauge(
        "hypha_dht_write_tails",
        &[],
        "Write-quorum calls still finishing in the background after W replicas answered.",
    ),
    counter(
        "hypha_dht_write_tail_failures_total",
        &[],
        "Background replica writes (past the write quorum) that failed.",
    ),
    counter(
        "hypha_dht_gc_chunks_total",
        &[],
        "Unreferenced chunks deleted by the collector.",
    ),
    counter(
        "hypha_dht_gc_tombstones_total",
        &[],
        "Tombstones older than their grace deleted by the collector.",
    ),
    // DHT bulk links.
    counter(
        "hypha_dht_bulk_dials_total",
        &[],
        "Bulk connections this node opened and authenticated.",
    ),
    gauge(
        "hypha_dht_bulk_connections",
        &[],
        "Bulk connections this node serves now.",
    ),
    counter(
        "hypha_dht_bulk_refused_total",
        &[(
            "reason",
            &["connections", "handshake", "per_source", "total", "deadline"],
        )],
        "Incoming bulk connections refused: serving limit reached, failed handshake, pre-auth caps at accept, or handshake deadline.",
    ),
    // Anti-entropy.
    counter(
        "hypha_ae_exchanges_total",
        &[("result", &["equal", "repaired", "failed"])],
        "Anti-entropy exchanges of one partition with one co-replica, by result.",
    ),
    counter(
        "hypha_ae_round_trips_total",
        &[],
        "Protocol requests of successful anti-entropy exchanges.",
    ),
    counter(
        "hypha_ae_bytes_total",
        &[("kind", &["protocol", "repair"])],
        "Bytes moved by anti-entropy exchanges: digests (protocol) or manifests and chunks copied (repair).",
    ),
    counter(
        "hypha_ae_entries_repaired_total",
        &[("direction", &["pull", "push"])],
        "Entries copied to this node (pull) or from it (push), hand-off pushes included.",
    ),
    counter(
        "hypha_ae_entries_skipped_total",
        &[],
        "Repairs left for the next exchange because max_entries was reached.",
    ),
    gauge(
        "hypha_ae_under_replicated_partitions",
        &[],
        "Partitions this node leads with fewer than R live replicas confirmed equal.",
    ),
    gauge(
        "hypha_ae_partitions_caught_up",
        &[],
        "Partitions this node replicates and has pulled from every live co-replica since it became a replica.",
    ),
    histogram(
        "hypha_ae_convergence_seconds",
        &[],
        "Time from a replica-set change or found divergence until every replica was confirmed equal.",
    ),
    gauge(
        "hypha_ae_handoff_partitions",
        &[],
        "Partitions being handed off by this node.",
    ),
    counter(
        "hypha_ae_handoff_dropped_total",
        &[],
        "Entries dropped locally after their hand-off was confirmed.",
    ),
    counter(
        "hypha_ae_rebuilds_total",
        &[],
        "Digest rebuilds: one partition checked against its manifests.",
    ),
    counter(
        "hypha_ae_digest_repairs_total",
        &[],
        "Digest entries and rows that rebuilds found drifted and fixed.",
    ),
    // Jobs: queue owners.
    counter(
        "hypha_jobs_submitted_total",
        &[],
        "New jobs made durable by the owner of their queue.",
    ),
    counter(
        "hypha_jobs_chained_total",
        &[],
        "Next steps of chains that the owner of their queue created and queued.",
    ),
    counter(
        "hypha_jobs_completed_total",
        &[],
        "Jobs that reached done, counted by the owner of their queue.",
    ),
    counter(
        "hypha_jobs_retried_total",
        &[],
        "Failed attempts after which the job was queued again.",
    ),
    counter(
        "hypha_jobs_dead_lettered_total",
        &[],
        "Jobs dead-lettered after their last attempt.",
    ),
    counter(
        "hypha_jobs_failed_attempts_total",
        &[],
        "Failed attempts not followed by a retry (the last attempt of a dead-lettered job).",
    ),
    counter(
        "hypha_jobs_cancelled_total",
        &[],
        "Jobs cancelled by a client.",
    ),
    counter(
        "hypha_jobs_lease_expiries_total",
        &[],
        "Job leases that expired without a heartbeat.",
    ),
    gauge(
        "hypha_jobs_queued",
        &[],
        "Jobs waiting for a worker in the queues this node owns.",
    ),
    gauge(
        "hypha_jobs_in_flight",
        &[],
        "Jobs offered or running in the queues this node owns.",
    ),
    gauge(
        "hypha_jobs_dead_letters",
        &[],
        "Dead-lettered jobs in the queues this node owns.",
    ),
    gauge("hypha_jobs_owned_queues", &[], "Queues this node owns."),
    histogram(
        "hypha_jobs_latency_seconds",
        &[],
        "Time from submit to done, recorded by the owner when the done record is durable.",
    ),
    histogram(
        "hypha_jobs_placement_seconds",
        &[],
        "Placement decision time per offered job.",
    ),
    counter(
        "hypha_jobs_submit_failures_total",
        &[],
        "Job submits whose record could not be written (answered 503).",
    ),
    counter(
        "hypha_jobs_write_failures_total",
        &[],
        "Job-record updates whose write failed (retried on the next tick).",
    ),
    counter(
        "hypha_jobs_takeover_loaded_total",
        &[],
        "Unfinished jobs loaded from a queue's log when this node took the queue over.",
    ),
    counter(
        "hypha_jobs_bad_requests_total",
        &[],
        "Work requests from peers that could not be decoded.",
    ),
    // Jobs: workers.
    gauge(
        "hypha_jobs_running",
        &[],
        "Attempts this node's worker pool is running.",
    ),
    gauge(
        "hypha_jobs_unreported",
        &[],
        "Finished attempts whose result the owner has not yet acknowledged.",
    ),
    counter(
        "hypha_jobs_attempts_started_total",
        &[],
        "Offers this node's workers accepted and started.",
    ),
    counter(
        "hypha_jobs_attempts_aborted_total",
        &[],
        "Running attempts aborted at the owner's request (cancel, or the lease moved).",
    ),
    counter(
        "hypha_jobs_reports_dropped_total",
        &[],
        "Attempt results dropped unreported: the buffer was full or report_give_up_ms passed.",
    ),
    // The wasm job kind's sandbox (actors/wasm).
    counter(
        "hypha_wasm_compile_cache_total",
        &[("result", &["hit", "miss"])],
        "Lookups of a wasm job's module in this node's compile cache.",
    ),
    histogram(
        "hypha_wasm_compile_seconds",
        &[],
        "Compiling a wasm module (a cache miss).",
    ),
    histogram(
        "hypha_wasm_instantiate_seconds",
        &[],
        "Instantiating a compiled wasm module for one attempt.",
    ),
    histogram(
        "hypha_wasm_run_seconds",
        &[],
        "One wasm attempt in the sandbox, instantiate to end.",
    ),
    counter(
        "hypha_wasm_fuel_used_total",
        &[],
        "Fuel burned by wasm attempts (about one per WebAssembly instruction).",
    ),
    counter(
        "hypha_wasm_failures_total",
        &[("reason", WASM_FAILURES)],
        "Failed wasm attempts, by reason.",
    ),
    // Scheduled backups (docs/backup.md).
    counter(
        "hypha_backup_runs_total",
        &[("result", &["ok", "failed"])],
        "Scheduled backups that ended, by result (a failed one is logged with its reason and retried).",
    ),
    gauge(
        "hypha_backup_last_success_unix_ms",
        &[],
        "End of the newest successful scheduled backup (Unix ms; from the backup directory after a restart). Absent until there is one.",
    )
    .described_only(),
    counter(
        "hypha_backup_written_bytes_total",
        &[],
        "Bytes scheduled backups wrote into the backup directory (new chunks and indexes).",
    ),
    // S3 endpoint.
    counter(
        "hypha_s3_requests_total",
        &[("op", S3_OPERATIONS)],
        "Signed S3 requests by operation, counted when their key was checked.",
    ),
    counter(
        "hypha_s3_responses_total",
        &[("status", &["2xx", "3xx", "4xx", "5xx"])],
        "S3 responses by status class.",
    ),
    histogram(
        "hypha_s3_request_seconds",
        &[],
        "One S3 request, received to answered (the body streamed after).",
    ),
    // Admin HTTP API.
    counter(
        "hypha_http_requests_total",
        &[],
        "Admin HTTP requests answered on a known route, by route, method and status.",
    )
    .described_only(),
    histogram(
        "hypha_http_request_duration_seconds",
        &[],
        "Admin HTTP time until the handler returned the response head, by route and method.",
    )
    .described_only(),
    counter(
        "hypha_http_auth_refusals_total",
        &[("reason", &["missing", "invalid", "expired", "forbidden"])],
        "Admin HTTP requests refused by the role check, by reason.",
    ),
    counter(
        "hypha_http_rate_limited_total",
        &[],
        "Admin HTTP requests answered 429 by the per-credential rate limit.",
    ),
    counter(
        "hypha_http_auth_throttled_total",
        &[],
        "Admin HTTP requests answered 429 because their source failed authentication too often.",
    ),
    counter(
        "hypha_http_host_refused_total",
        &[],
        "Admin HTTP requests answered 421 because their Host is not on the allow-list.",
    ),
    counter(
        "hypha_http_tls_refused_total",
        &[(
            "reason",
            &["per_source", "total", "deadline", "handshake"],
        )],
        "Admin HTTPS connections closed before HTTP: over the per-address or pool cap of unfinished handshakes, past the handshake deadline, or a failed handshake (not TLS, a client that does not trust the certificate).",
    ),
    counter(
        "hypha_http_tls_reloads_total",
        &[("result", &["ok", "error"])],
        "Reloads of the admin HTTPS certificate, by SIGHUP or POST /v1/node/tls/reload.",
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"));

    #[test]
    fn names_are_unique() {
        let mut seen = HashSet::new();
        for def in CATALOG {
            assert!(seen.insert(def.name), "{} is listed twice", def.name);
        }
    }

    #[test]
    fn names_are_prefixed() {
        for def in CATALOG {
            assert!(def.name.starts_with("hypha_"), "{}", def.name);
            assert!(
                def.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                def.name
            );
        }
    }

    #[test]
    fn counters_and_only_counters_end_in_total() {
        for def in CATALOG {
            assert_eq!(
                def.name.ends_with("_total"),
                def.kind == Kind::Counter,
                "{}",
                def.name
            );
        }
    }

    #[test]
    fn the_unit_is_the_last_word() {
        for def in CATALOG {
            let base = if def.kind == Kind::Counter {
                def.name.strip_suffix("_total").unwrap_or(def.name)
            } else {
                def.name
            };
            let words: Vec<&str> = base.split('_').collect();
            for unit in ["seconds", "bytes"] {
                if words.contains(&unit) {
                    assert_eq!(words.last(), Some(&unit), "{}", def.name);
                }
            }
        }
    }

    #[test]
    fn labels_are_well_formed() {
        for def in CATALOG {
            let mut keys = HashSet::new();
            for &(key, values) in def.labels {
                assert!(keys.insert(key), "{}: label {key} twice", def.name);
                assert!(
                    !values.is_empty(),
                    "{}: label {key} has no values",
                    def.name
                );
                let distinct: HashSet<_> = values.iter().collect();
                assert_eq!(distinct.len(), values.len(), "{}: {key}", def.name);
            }
        }
    }

    #[test]
    fn supervisor_metrics_are_listed_and_left_to_the_supervisors() {
        for name in [
            hypha_supervisors::metrics::RESTARTS_TOTAL,
            hypha_supervisors::metrics::ESCALATIONS_TOTAL,
        ] {
            let def = CATALOG.iter().find(|d| d.name == name);
            assert!(def.is_some_and(|d| !d.zero), "{name}");
        }
    }

    /// `hypha_*` names in the doc's table rows, `_bucket`, `_sum` and
    /// `_count` stripped from histogram series.
    fn names_in_doc_tables() -> HashSet<String> {
        let known: HashSet<&str> = CATALOG.iter().map(|d| d.name).collect();
        let mut names = HashSet::new();
        for line in DOC.lines().filter(|l| l.trim_start().starts_with('|')) {
            let mut rest = line;
            while let Some(at) = rest.find("hypha_") {
                let before = rest[..at].chars().next_back();
                let tail = &rest[at..];
                let len = tail
                    .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..len];
                rest = &tail[len..];
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                let name = if known.contains(name) {
                    name
                } else {
                    ["_bucket", "_sum", "_count"]
                        .into_iter()
                        .find_map(|suffix| name.strip_suffix(suffix))
                        .unwrap_or(name)
                };
                names.insert(name.to_owned());
            }
        }
        names
    }

    #[test]
    fn the_docs_list_every_metric() {
        for def in CATALOG {
            assert!(
                DOC.contains(&format!("`{}`", def.name)),
                "{} is missing from docs/metrics.md",
                def.name
            );
        }
    }

    #[test]
    fn the_docs_list_no_other_metric() {
        let known: HashSet<&str> = CATALOG.iter().map(|d| d.name).collect();
        let names = names_in_doc_tables();
        assert!(names.len() >= CATALOG.len());
        for name in names {
            assert!(
                known.contains(name.as_str()),
                "docs/metrics.md lists {name}, which is not in the catalog"
            );
        }
    }
}
