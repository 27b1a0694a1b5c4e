//! Registering the catalog with the `metrics` recorder: the description
//! (help text and unit) of every metric, and a series at zero for every
//! known label combination of the metrics that want one.

use super::{Kind, Labels, MetricDef, CATALOG};

/// Describe every metric and register the known series at zero.
pub fn install() {
    for def in CATALOG {
        describe(def);
        if def.zero {
            register_zero(def);
        }
    }
}

/// The unit the name ends in, before `_total` for a counter.
fn unit(name: &str) -> Option<metrics::Unit> {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_seconds") {
        Some(metrics::Unit::Seconds)
    } else if base.ends_with("_bytes") {
        Some(metrics::Unit::Bytes)
    } else {
        None
    }
}

fn describe(def: &MetricDef) {
    match (def.kind, unit(def.name)) {
        (Kind::Counter, Some(u)) => metrics::describe_counter!(def.name, u, def.help),
        (Kind::Counter, None) => metrics::describe_counter!(def.name, def.help),
        (Kind::Gauge, Some(u)) => metrics::describe_gauge!(def.name, u, def.help),
        (Kind::Gauge, None) => metrics::describe_gauge!(def.name, def.help),
        (Kind::Histogram, Some(u)) => metrics::describe_histogram!(def.name, u, def.help),
        (Kind::Histogram, None) => metrics::describe_histogram!(def.name, def.help),
    }
}

fn register_zero(def: &MetricDef) {
    for labels in label_sets(def.labels) {
        match def.kind {
            Kind::Counter => metrics::counter!(def.name, labels).increment(0),
            // Adds 0: a value the code already set is kept.
            Kind::Gauge => metrics::gauge!(def.name, labels).increment(0.0),
            // Registered, not recorded: buckets and count at 0.
            Kind::Histogram => {
                // The registry keeps the series; the handle is not needed.
                let _ = metrics::histogram!(def.name, labels);
            }
        }
    }
}

/// Every combination of the known label values; one empty set when there
/// are no labels.
fn label_sets(labels: Labels) -> Vec<Vec<metrics::Label>> {
    let mut sets: Vec<Vec<metrics::Label>> = vec![Vec::new()];
    for &(key, values) in labels {
        let mut next_sets = Vec::with_capacity(sets.len() * values.len());
        for set in &sets {
            for &value in values {
                let mut next = set.clone();
                next.push(metrics::Label::from_static_parts(key, value));
                next_sets.push(next);
            }
        }
        sets = next_sets;
    }
    sets
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn label_sets_are_the_cartesian_product() {
        const TWO_BY_THREE: Labels = &[("a", &["1", "2"]), ("b", &["x", "y", "z"])];
        assert_eq!(label_sets(&[]).len(), 1);
        let sets = label_sets(TWO_BY_THREE);
        assert_eq!(sets.len(), 6);
        assert!(sets.iter().all(|set| set.len() == 2));
        let distinct: HashSet<Vec<(String, String)>> = sets
            .iter()
            .map(|set| {
                set.iter()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect()
            })
            .collect();
        assert_eq!(distinct.len(), 6);
    }
}
