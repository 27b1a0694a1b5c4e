//! Waiting for a condition with a deadline: the one poll loop of the tests,
//! the benchmarks and the chaos harness. The test forms panic with what was
//! awaited; the chaos harness takes the [`TimedOut`] error.

use std::future::Future;
use std::time::{Duration, Instant};

/// A condition did not hold within its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    /// How long it was given.
    pub limit: Duration,
}

/// Call `check` every `every` until it yields a value, for at most `limit`
/// of real time; the value.
pub async fn poll<T, F, Fut>(limit: Duration, every: Duration, mut check: F) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    // Tokio's clock: real time, except under a paused test runtime.
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TimedOut { limit });
        }
        tokio::time::sleep(every).await;
    }
}

/// [`poll`] for a synchronous caller: blocks the thread between checks.
pub fn poll_blocking<T>(
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(TimedOut { limit });
        }
        std::thread::sleep(every);
    }
}

/// Poll `cond` (every 5 ms) until it holds, for at most `limit` of real
/// time; panics naming `what` if it never does.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let every = Duration::from_millis(5);
    let held = poll(limit, every, || {
        let fut = cond();
        async move { fut.await.then_some(()) }
    })
    .await;
    if held.is_err() {
        panic!("not reached within {limit:?}: {what}");
    }
}

/// Poll `cond` (every 50 ms) until it holds, for at most `limit`; how long
/// it took. Panics naming `what` if it never does.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    match poll_blocking(limit, Duration::from_millis(50), || cond().then_some(())) {
        Ok(()) => started.elapsed(),
        Err(_) => panic!("not within {limit:?}: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_blocking_returns_the_first_value_and_times_out_at_its_limit() {
        let mut calls = 0;
        let got = poll_blocking(Duration::from_secs(5), Duration::ZERO, || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, Ok(3));
        let never = poll_blocking(Duration::ZERO, Duration::ZERO, || None::<()>);
        assert_eq!(
            never,
            Err(TimedOut {
                limit: Duration::ZERO
            })
        );
    }

    #[tokio::test]
    async fn poll_returns_the_first_value_or_times_out_at_its_limit() {
        let mut calls = 0u32;
        let got = poll(Duration::from_secs(5), Duration::ZERO, || {
            calls += 1;
            let value = (calls == 2).then_some(calls);
            async move { value }
        })
        .await;
        assert_eq!(got, Ok(2));
        let never = poll(Duration::ZERO, Duration::ZERO, || async { None::<()> }).await;
        assert_eq!(
            never,
            Err(TimedOut {
                limit: Duration::ZERO
            })
        );
    }
}
