//! Restart strategies as pure plans: which siblings to stop (in stop order)
//! and which children to start again (in start order) when one child must be
//! restarted. No I/O, so every strategy is testable without actors.

use serde::Serialize;

/// Which children are restarted together (OTP `strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Only the failed child.
    OneForOne,
    /// Every child: the others are stopped (in reverse order) first.
    OneForAll,
    /// The failed child and every child started after it.
    RestForOne,
}

/// What a restart does, as positions in the children list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPlan {
    /// Siblings to stop, in the order to stop them (reverse start order).
    pub stop: Vec<usize>,
    /// Children to start, in start order (includes the failed one).
    pub start: Vec<usize>,
}

/// Plan the restart of child `failed` among `len` children.
pub fn restart_plan(strategy: Strategy, len: usize, failed: usize) -> RestartPlan {
    match strategy {
        Strategy::OneForOne => RestartPlan {
            stop: Vec::new(),
            start: vec![failed],
        },
        Strategy::OneForAll => RestartPlan {
            stop: (0..len).rev().filter(|&i| i != failed).collect(),
            start: (0..len).collect(),
        },
        Strategy::RestForOne => RestartPlan {
            stop: (failed + 1..len).rev().collect(),
            start: (failed..len).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        assert_eq!(
            restart_plan(Strategy::OneForOne, 4, 1),
            RestartPlan {
                stop: vec![],
                start: vec![1]
            }
        );
        assert_eq!(
            restart_plan(Strategy::OneForAll, 4, 1),
            RestartPlan {
                stop: vec![3, 2, 0],
                start: vec![0, 1, 2, 3]
            }
        );
        assert_eq!(
            restart_plan(Strategy::RestForOne, 4, 1),
            RestartPlan {
                stop: vec![3, 2],
                start: vec![1, 2, 3]
            }
        );
        assert_eq!(
            restart_plan(Strategy::RestForOne, 4, 3),
            RestartPlan {
                stop: vec![],
                start: vec![3]
            }
        );
    }
}
