//! Reading the node's own Prometheus text: the few series the history
//! keeps, summed over their labels ([`Totals`]). Pure: text in, numbers
//! out, so the sampler needs no instrumentation of its own.

/// The admin API's request counter (labels: route, method, status).
pub const HTTP_REQUESTS: &str = "hypha_http_requests_total";
/// The admin API's latency histogram (labels: route, method).
pub const HTTP_DURATION: &str = "hypha_http_request_duration_seconds";
/// File bytes written by PUTs this node coordinated.
pub const FILES_WRITTEN: &str = "hypha_files_written_bytes_total";
/// File bytes served to GETs.
pub const FILES_READ: &str = "hypha_files_read_bytes_total";
/// Children restarted by their supervisors.
pub const RESTARTS: &str = hypha_supervisors::metrics::RESTARTS_TOTAL;
/// Public state changes of other members.
pub const MEMBERSHIP: &str = "hypha_membership_transitions_total";
/// Entries anti-entropy copied to or from this node.
pub const AE_REPAIRED: &str = "hypha_ae_entries_repaired_total";
/// Chunk reads the edge cache served.
pub const CACHE_HITS: &str = "hypha_cache_hits_total";
/// Chunk reads the edge cache did not hold.
pub const CACHE_MISSES: &str = "hypha_cache_misses_total";
/// Jobs waiting in the queues this node owns.
pub const JOBS_QUEUED: &str = "hypha_jobs_queued";
/// Jobs offered or running in the queues this node owns.
pub const JOBS_IN_FLIGHT: &str = "hypha_jobs_in_flight";

/// Most histogram buckets kept: the exporter's buckets for `_seconds` are
/// 16 plus `+Inf`; anything beyond a bound like this is not ours.
const MAX_BUCKETS: usize = 64;

/// The series the history needs, each summed over every label set, at
/// one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// [`HTTP_REQUESTS`].
    pub http_requests: f64,
    /// [`HTTP_DURATION`]'s cumulative buckets, `(le seconds, count)`,
    /// sorted by bound; the last bound is `+Inf` when the exporter sent it.
    pub http_latency_buckets: Vec<(f64, f64)>,
    /// [`FILES_WRITTEN`].
    pub files_written_bytes: f64,
    /// [`FILES_READ`].
    pub files_read_bytes: f64,
    /// [`RESTARTS`].
    pub restarts: f64,
    /// [`MEMBERSHIP`].
    pub membership_transitions: f64,
    /// [`AE_REPAIRED`].
    pub ae_entries_repaired: f64,
    /// [`CACHE_HITS`].
    pub cache_hits: f64,
    /// [`CACHE_MISSES`].
    pub cache_misses: f64,
    /// [`JOBS_QUEUED`].
    pub jobs_queued: f64,
    /// [`JOBS_IN_FLIGHT`].
    pub jobs_in_flight: f64,
}

/// Sum the series of [`Totals`] out of exposition text. Lines that do not
/// parse, and values that are not finite numbers, are skipped: a scrape
/// never fails, it only misses what it cannot read.
pub fn totals(text: &str) -> Totals {
    let mut t = Totals::default();
    let bucket = format!("{HTTP_DURATION}_bucket");
    for line in text.lines() {
        let Some((name, labels, value)) = parse_line(line) else {
            continue;
        };
        let slot = match name {
            HTTP_REQUESTS => &mut t.http_requests,
            FILES_WRITTEN => &mut t.files_written_bytes,
            FILES_READ => &mut t.files_read_bytes,
            RESTARTS => &mut t.restarts,
            MEMBERSHIP => &mut t.membership_transitions,
            AE_REPAIRED => &mut t.ae_entries_repaired,
            CACHE_HITS => &mut t.cache_hits,
            CACHE_MISSES => &mut t.cache_misses,
            JOBS_QUEUED => &mut t.jobs_queued,
            JOBS_IN_FLIGHT => &mut t.jobs_in_flight,
            n if n == bucket => {
                if let Some(le) = label(labels, "le").and_then(parse_value) {
                    add_bucket(&mut t.http_latency_buckets, le, value);
                }
                continue;
            }
            _ => continue,
        };
        *slot += value;
    }
    t.http_latency_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    t
}

fn add_bucket(buckets: &mut Vec<(f64, f64)>, le: f64, count: f64) {
    if let Some((_, c)) = buckets.iter_mut().find(|(b, _)| *b == le) {
        *c += count;
    } else if buckets.len() < MAX_BUCKETS {
        buckets.push((le, count));
    }
}

/// `name{labels} value [timestamp]` → name, the text between the braces
/// (empty without), and the value. Comments and blank lines: `None`.
fn parse_line(line: &str) -> Option<(&str, &str, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' ', '\t'])?;
    let name = &line[..name_end];
    let rest = &line[name_end..];
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => {
            let close = closing_brace(inner)?;
            (&inner[..close], &inner[close + 1..])
        }
        None => ("", rest),
    };
    let value = parse_value(rest.split_whitespace().next()?)?;
    value.is_finite().then_some((name, labels, value))
}

/// Where the label set ends: the first `}` outside a quoted value (route
/// labels such as `/v1/files/{*name}` hold braces).
fn closing_brace(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The value of label `key` in `a="x",b="y"` (escapes left as written:
/// the labels read here are plain numbers).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = labels;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        let after = rest[eq + 1..].strip_prefix('"')?;
        let end = closing_quote(after)?;
        if name == key {
            return Some(&after[..end]);
        }
        rest = &after[end + 1..];
    }
}

fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP hypha_http_requests_total Admin HTTP requests.
# TYPE hypha_http_requests_total counter
hypha_http_requests_total{route="/v1/files/{*name}",method="GET",status="200"} 7
hypha_http_requests_total{route="/v1/node",method="GET",status="200"} 3
hypha_http_request_duration_seconds_bucket{route="/v1/node",method="GET",le="0.001"} 2
hypha_http_request_duration_seconds_bucket{route="/v1/node",method="GET",le="+Inf"} 3
hypha_http_request_duration_seconds_bucket{route="/a\"}",method="GET",le="0.001"} 1
hypha_http_request_duration_seconds_bucket{route="/a\"}",method="GET",le="+Inf"} 7
hypha_http_request_duration_seconds_sum{route="/v1/node",method="GET"} 0.5
hypha_http_request_duration_seconds_count{route="/v1/node",method="GET"} 3
hypha_supervisor_restarts_total{supervisor="node/work",child="workers"} 2
hypha_supervisor_restarts_total{supervisor="node",child="dht"} 1
hypha_membership_transitions_total{to="up"} 4
hypha_ae_entries_repaired_total{direction="pull"} 5
hypha_ae_entries_repaired_total{direction="push"} 6
hypha_jobs_queued 9
hypha_jobs_in_flight 1 1700000000000
hypha_files_written_bytes_total 1024
hypha_files_read_bytes_total NaN
hypha_files_read_bytes_total garbage
broken{route="unclosed 1
"#;

    #[test]
    fn sums_each_series_over_its_labels() {
        let t = totals(TEXT);
        assert_eq!(t.http_requests, 10.0);
        assert_eq!(
            t.http_latency_buckets,
            vec![(0.001, 3.0), (f64::INFINITY, 10.0)]
        );
        assert_eq!(t.restarts, 3.0);
        assert_eq!(t.membership_transitions, 4.0);
        assert_eq!(t.ae_entries_repaired, 11.0);
        assert_eq!(t.jobs_queued, 9.0);
        assert_eq!(t.jobs_in_flight, 1.0, "a timestamp is not the value");
        assert_eq!(t.files_written_bytes, 1024.0);
        assert_eq!(t.files_read_bytes, 0.0, "NaN and garbage are skipped");
    }

    #[test]
    fn empty_text_reads_as_zeros() {
        assert_eq!(totals(""), Totals::default());
    }

    #[test]
    fn labels_are_found_by_name() {
        assert_eq!(label(r#"a="x",le="0.5""#, "le"), Some("0.5"));
        assert_eq!(label(r#"a="x\",le=\"1",le="2""#, "le"), Some("2"));
        assert_eq!(label(r#"a="x""#, "le"), None);
        assert_eq!(label(r#"a="unclosed"#, "le"), None);
    }

    proptest::proptest! {
        /// Whatever the text, reading it neither panics nor yields a
        /// non-finite total, and the buckets stay bounded.
        #[test]
        fn any_text_reads_to_finite_bounded_totals(text in "(hypha_[a-z_]{0,40}(\\{[a-z]{1,3}=\"[^\"]{0,8}\"\\})? [-+0-9.eIinfNa]{0,8}\n){0,50}") {
            let t = totals(&text);
            proptest::prop_assert!(t.http_requests.is_finite());
            proptest::prop_assert!(t.http_latency_buckets.len() <= MAX_BUCKETS);
        }
    }
}
