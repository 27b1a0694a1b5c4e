//! The decisions of a rolling restart, without I/O: given what the runner
//! observed of the cluster at `now_ms`, which node to restart next, when
//! to wait, when the restarted node counts as back, and when to give up
//! (docs/operations.md, "Rolling restart"). The runner ([`super`])
//! observes, carries the steps out and reports them.
//!
//! One node at a time: the cluster must be healthy — every node that was
//! a member at the start Up in the observer's view, reachable, and caught
//! up on every partition it replicates — before a node is asked to
//! restart, and the restarted node must be back (a newer generation, Up)
//! and the cluster healthy again before the next. A step that does not
//! get there within `step_timeout_ms` stops the whole restart with the
//! problems seen last: nothing more is restarted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A member as the observer's view shows it (newest generation per id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Node id (hex).
    pub id: String,
    /// Node name.
    pub name: String,
    /// Generation (boot count).
    pub generation: u64,
    /// Whether it is Up.
    pub up: bool,
}

/// What the runner saw at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The members, by id.
    pub members: BTreeMap<String, Member>,
    /// Per node id: partitions it replicates and has not caught up on;
    /// `None` when its admin API did not answer.
    pub lagging: BTreeMap<String, Option<usize>>,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ask this node to restart.
    Restart(Member),
    /// Observe again shortly.
    Wait,
    /// The node restarted is back and the cluster healthy (after `took_ms`).
    Back {
        /// The node, as it is now.
        node: Member,
        /// From the restart request to healthy again.
        took_ms: u64,
    },
    /// Every node was restarted.
    Done {
        /// Nodes restarted.
        restarted: usize,
    },
    /// Stop: the cluster did not get healthy within the bound.
    Abort(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for health before the next restart.
    Healthy {
        since_ms: u64,
    },
    /// `node` was asked to restart from `generation`.
    Back {
        node: Member,
        since_ms: u64,
    },
    Finished,
}

/// A rolling restart in progress.
#[derive(Debug, Clone)]
pub struct Rolling {
    expected: BTreeSet<String>,
    queue: VecDeque<String>,
    phase: Phase,
    step_timeout_ms: u64,
    restarted: usize,
}

impl Rolling {
    /// Restart every member of `first` (the view at the start) in order of
    /// name, `last` (the node coordinating, which would cut its own
    /// answer short) at the end.
    pub fn new(first: &Observation, last: Option<&str>, step_timeout_ms: u64, now_ms: u64) -> Self {
        let mut order: Vec<&Member> = first.members.values().collect();
        order.sort_by_key(|m| (Some(m.id.as_str()) == last, m.name.clone(), m.id.clone()));
        Self {
            expected: first.members.keys().cloned().collect(),
            queue: order.into_iter().map(|m| m.id.clone()).collect(),
            phase: Phase::Healthy { since_ms: now_ms },
            step_timeout_ms,
            restarted: 0,
        }
    }

    /// Ids of the nodes still to restart, in the order they will be.
    pub fn queue(&self) -> impl Iterator<Item = &str> {
        self.queue.iter().map(String::as_str)
    }

    /// What `obs` is short of a healthy cluster, one line each.
    pub fn problems(&self, obs: &Observation) -> Vec<String> {
        let mut out = Vec::new();
        for id in &self.expected {
            let short = &id[..id.len().min(8)];
            match obs.members.get(id) {
                None => out.push(format!("{short}: not in the view")),
                Some(m) if !m.up => out.push(format!("{} ({short}): not Up", m.name)),
                Some(m) => match obs.lagging.get(id) {
                    Some(Some(0)) => {}
                    Some(Some(n)) => {
                        out.push(format!("{}: {n} partition(s) not caught up", m.name))
                    }
                    _ => out.push(format!("{}: admin API did not answer", m.name)),
                },
            }
        }
        out
    }

    /// The next step at `now_ms`, given `obs`.
    pub fn next(&mut self, obs: &Observation, now_ms: u64) -> Step {
        let problems = self.problems(obs);
        match self.phase.clone() {
            Phase::Finished => Step::Done {
                restarted: self.restarted,
            },
            Phase::Healthy { since_ms } => {
                if !problems.is_empty() {
                    return self.overdue(since_ms, now_ms, "the cluster is not healthy", &problems);
                }
                let Some(id) = self.queue.pop_front() else {
                    self.phase = Phase::Finished;
                    return Step::Done {
                        restarted: self.restarted,
                    };
                };
                match obs.members.get(&id) {
                    Some(node) => {
                        self.phase = Phase::Back {
                            node: node.clone(),
                            since_ms: now_ms,
                        };
                        Step::Restart(node.clone())
                    }
                    None => Step::Abort(format!("{id}: left the view before its turn")),
                }
            }
            Phase::Back { node, since_ms } => {
                let back = obs
                    .members
                    .get(&node.id)
                    .filter(|m| m.generation > node.generation && m.up);
                match back {
                    Some(now) if problems.is_empty() => {
                        self.restarted += 1;
                        self.phase = Phase::Healthy { since_ms: now_ms };
                        Step::Back {
                            node: now.clone(),
                            took_ms: now_ms.saturating_sub(since_ms),
                        }
                    }
                    _ => {
                        let what = format!("{} is not back and caught up", node.name);
                        self.overdue(since_ms, now_ms, &what, &problems)
                    }
                }
            }
        }
    }

    fn overdue(&mut self, since_ms: u64, now_ms: u64, what: &str, problems: &[String]) -> Step {
        if now_ms.saturating_sub(since_ms) < self.step_timeout_ms {
            return Step::Wait;
        }
        self.phase = Phase::Finished;
        let seen = if problems.is_empty() {
            "(no problem seen, but it did not come back)".to_owned()
        } else {
            problems.join("; ")
        };
        Step::Abort(format!(
            "{what} after {} ms; stopped with {} node(s) restarted and {} left: {seen}",
            self.step_timeout_ms,
            self.restarted,
            self.queue.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn obs(nodes: &[(&str, u64, bool, Option<usize>)]) -> Observation {
        let mut o = Observation::default();
        for (name, generation, up, lag) in nodes {
            let id = format!("id-{name}");
            o.members.insert(
                id.clone(),
                Member {
                    id: id.clone(),
                    name: (*name).into(),
                    generation: *generation,
                    up: *up,
                },
            );
            o.lagging.insert(id, *lag);
        }
        o
    }

    #[test]
    fn restarts_one_at_a_time_in_name_order_with_the_coordinator_last() {
        let healthy = obs(&[
            ("b", 1, true, Some(0)),
            ("a", 1, true, Some(0)),
            ("c", 1, true, Some(0)),
        ]);
        let mut r = Rolling::new(&healthy, Some("id-a"), 1_000, 0);
        let Step::Restart(first) = r.next(&healthy, 0) else {
            panic!()
        };
        assert_eq!(first.name, "b");
        // Still the old generation: wait, never a second restart.
        assert_eq!(r.next(&healthy, 10), Step::Wait);
        // Back, but catching up: wait.
        let catching = obs(&[
            ("b", 2, true, Some(3)),
            ("a", 1, true, Some(0)),
            ("c", 1, true, Some(0)),
        ]);
        assert_eq!(r.next(&catching, 20), Step::Wait);
        let back = obs(&[
            ("b", 2, true, Some(0)),
            ("a", 1, true, Some(0)),
            ("c", 1, true, Some(0)),
        ]);
        assert!(matches!(r.next(&back, 30), Step::Back { took_ms: 30, .. }));
        let Step::Restart(second) = r.next(&back, 31) else {
            panic!()
        };
        assert_eq!(second.name, "c");
        let back = obs(&[
            ("b", 2, true, Some(0)),
            ("a", 1, true, Some(0)),
            ("c", 2, true, Some(0)),
        ]);
        assert!(matches!(r.next(&back, 40), Step::Back { .. }));
        let Step::Restart(last) = r.next(&back, 41) else {
            panic!()
        };
        assert_eq!(last.name, "a", "the coordinator goes last");
        let all = obs(&[
            ("b", 2, true, Some(0)),
            ("a", 2, true, Some(0)),
            ("c", 2, true, Some(0)),
        ]);
        assert!(matches!(r.next(&all, 50), Step::Back { .. }));
        assert_eq!(r.next(&all, 51), Step::Done { restarted: 3 });
        assert_eq!(r.next(&all, 52), Step::Done { restarted: 3 });
    }

    #[test]
    fn an_unhealthy_cluster_stops_the_restart_with_the_problems() {
        let healthy = obs(&[("a", 1, true, Some(0)), ("b", 1, true, Some(0))]);
        let mut r = Rolling::new(&healthy, None, 1_000, 0);
        let sick = obs(&[("a", 1, true, Some(0)), ("b", 1, false, None)]);
        assert_eq!(r.next(&sick, 500), Step::Wait);
        let Step::Abort(why) = r.next(&sick, 1_000) else {
            panic!()
        };
        assert!(
            why.contains("b (id-b): not Up") && why.contains("0 node(s) restarted"),
            "{why}"
        );
        // Nothing is restarted after an abort.
        assert_eq!(r.next(&healthy, 2_000), Step::Done { restarted: 0 });
        // A node that never comes back stops it too.
        let mut r = Rolling::new(&healthy, None, 1_000, 0);
        assert!(matches!(r.next(&healthy, 0), Step::Restart(_)));
        let gone = obs(&[("b", 1, true, Some(0))]);
        let Step::Abort(why) = r.next(&gone, 1_000) else {
            panic!()
        };
        assert!(
            why.contains("a is not back") && why.contains("not in the view"),
            "{why}"
        );
    }

    proptest! {
        /// Whatever the observations, a node is asked to restart only
        /// when the cluster looked healthy, never while another restart is
        /// unfinished, and each node at most once.
        #[test]
        fn restarts_only_from_health_and_never_overlap(
            seq in proptest::collection::vec((0usize..3, any::<bool>(), 0usize..2, 0u64..3), 1..60),
        ) {
            let names = ["a", "b", "c"];
            let mut gens = [1u64; 3];
            let start = obs(&[("a", 1, true, Some(0)), ("b", 1, true, Some(0)), ("c", 1, true, Some(0))]);
            let mut r = Rolling::new(&start, None, 5, 0);
            let mut pending: Option<String> = None;
            let mut restarted = BTreeSet::new();
            for (t, (node, up, lag, bump)) in seq.into_iter().enumerate() {
                gens[node] += bump;
                let nodes: Vec<(&str, u64, bool, Option<usize>)> = (0..3)
                    .map(|i| (names[i], gens[i], if i == node { up } else { true }, Some(if i == node { lag } else { 0 })))
                    .collect();
                let o = obs(&nodes);
                let healthy = r.problems(&o).is_empty();
                match r.next(&o, t as u64) {
                    Step::Restart(m) => {
                        prop_assert!(healthy);
                        prop_assert!(pending.is_none());
                        prop_assert!(restarted.insert(m.id.clone()));
                        pending = Some(m.id);
                    }
                    Step::Back { node, .. } => {
                        prop_assert!(healthy);
                        prop_assert_eq!(pending.take(), Some(node.id));
                    }
                    Step::Abort(_) | Step::Done { .. } => break,
                    Step::Wait => {}
                }
            }
        }
    }
}
