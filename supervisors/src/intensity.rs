//! The restart-intensity window: OTP's `add_restart/1`, as a pure value.
//!
//! A supervisor may restart children at most `max_restarts` times within any
//! `period_ms` window. The window keeps the timestamps of recent restarts;
//! adding one drops those older than `now - period` and then compares the
//! count against the limit. The comparison is inclusive at both edges exactly
//! as in `supervisor.erl`: a restart exactly `period_ms` after an earlier one
//! still sees it (`R >= Now - Period`), so with the default 1 restart in 5 s a
//! second failure at exactly +5 000 ms escalates and one at +5 001 ms does not.
//! OTP counts in whole seconds; Hypha counts in milliseconds.

use std::collections::VecDeque;

/// What the window says about one more restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartVerdict {
    /// Within the limit: go ahead and restart.
    Allowed,
    /// The limit is exceeded: the supervisor must give up and escalate.
    Exceeded,
}

/// Sliding window of restart times (milliseconds on a monotonic clock).
#[derive(Debug, Clone)]
pub struct RestartWindow {
    max_restarts: u32,
    period_ms: u64,
    restarts_ms: VecDeque<u64>,
}

impl RestartWindow {
    /// A window allowing `max_restarts` within `period_ms`.
    pub fn new(max_restarts: u32, period_ms: u64) -> Self {
        Self {
            max_restarts,
            period_ms,
            restarts_ms: VecDeque::new(),
        }
    }

    /// Record a restart at `now_ms` and say whether it is allowed.
    ///
    /// `now_ms` must not go backwards (it comes from a monotonic clock).
    pub fn add_restart(&mut self, now_ms: u64) -> RestartVerdict {
        let threshold_ms = now_ms.saturating_sub(self.period_ms);
        while self
            .restarts_ms
            .front()
            .is_some_and(|&then_ms| then_ms < threshold_ms)
        {
            self.restarts_ms.pop_front();
        }
        self.restarts_ms.push_back(now_ms);
        // Bounded: once the count exceeds the limit the supervisor escalates
        // and this window is dropped with it.
        if self.restarts_ms.len() as u64 > u64::from(self.max_restarts) {
            RestartVerdict::Exceeded
        } else {
            RestartVerdict::Allowed
        }
    }

    /// Restarts currently inside the window (as of the last `add_restart`).
    pub fn len(&self) -> usize {
        self.restarts_ms.len()
    }

    /// True when no restart is remembered.
    pub fn is_empty(&self) -> bool {
        self.restarts_ms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_otp_edges() {
        let mut w = RestartWindow::new(1, 5_000);
        assert_eq!(w.add_restart(0), RestartVerdict::Allowed);
        assert_eq!(w.add_restart(5_000), RestartVerdict::Exceeded);

        let mut w = RestartWindow::new(1, 5_000);
        assert_eq!(w.add_restart(0), RestartVerdict::Allowed);
        assert_eq!(w.add_restart(5_001), RestartVerdict::Allowed);
    }

    #[test]
    fn zero_intensity_never_restarts() {
        let mut w = RestartWindow::new(0, 5_000);
        assert_eq!(w.add_restart(10), RestartVerdict::Exceeded);
    }

    #[test]
    fn burst_up_to_limit_is_allowed() {
        let mut w = RestartWindow::new(3, 1_000);
        for t in [0, 1, 2] {
            assert_eq!(w.add_restart(t), RestartVerdict::Allowed);
        }
        assert_eq!(w.add_restart(3), RestartVerdict::Exceeded);
    }

    /// Reference model: a restart at `now` is allowed iff the number of
    /// restarts (including this one) in `[now - period, now]` is at most
    /// `max`. Restarts after an `Exceeded` are not fed in (the supervisor
    /// is gone by then).
    fn reference(max: u32, period: u64, times: &[u64]) -> Vec<RestartVerdict> {
        let mut out = Vec::new();
        for (i, &now) in times.iter().enumerate() {
            let threshold = now.saturating_sub(period);
            let in_window = times[..=i].iter().filter(|&&t| t >= threshold).count();
            let verdict = if in_window as u64 > u64::from(max) {
                RestartVerdict::Exceeded
            } else {
                RestartVerdict::Allowed
            };
            out.push(verdict);
            if verdict == RestartVerdict::Exceeded {
                break;
            }
        }
        out
    }

    proptest! {
        #[test]
        fn window_matches_reference_model(
            max in 0u32..6,
            period in 0u64..2_000,
            gaps in proptest::collection::vec(0u64..800, 1..40),
        ) {
            let mut now = 0u64;
            let times: Vec<u64> = gaps.iter().map(|g| { now += g; now }).collect();
            let expected = reference(max, period, &times);
            let mut w = RestartWindow::new(max, period);
            let got: Vec<RestartVerdict> = times
                .iter()
                .take(expected.len())
                .map(|&t| w.add_restart(t))
                .collect();
            prop_assert_eq!(got, expected);
        }
    }
}
