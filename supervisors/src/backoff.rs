//! Optional restart backoff (beyond OTP): delay a restart by a bounded
//! exponential in the number of restarts already inside the intensity window.
//!
//! OTP restarts at once and relies on intensity alone. A child whose failure
//! is caused by something outside (a peer, a disk) can benefit from a short
//! pause so that the burst of restarts does not spend the whole intensity
//! budget within microseconds.

use serde::Serialize;

/// Exponential backoff settings for restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backoff {
    /// Delay before the first restart in a window.
    pub initial_ms: u64,
    /// Upper bound of any delay.
    pub max_ms: u64,
}

impl Backoff {
    /// Delay for a restart when `restarts_in_window` restarts (including this
    /// one) are inside the intensity window: `initial · 2^(n-1)`, capped.
    pub fn delay_ms(&self, restarts_in_window: usize) -> u64 {
        let exponent = restarts_in_window.saturating_sub(1).min(32) as u32;
        self.initial_ms
            .saturating_mul(1u64 << exponent)
            .min(self.max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let b = Backoff {
            initial_ms: 10,
            max_ms: 50,
        };
        assert_eq!(b.delay_ms(0), 10);
        assert_eq!(b.delay_ms(1), 10);
        assert_eq!(b.delay_ms(2), 20);
        assert_eq!(b.delay_ms(3), 40);
        assert_eq!(b.delay_ms(4), 50);
        assert_eq!(b.delay_ms(10_000), 50);
    }
}
