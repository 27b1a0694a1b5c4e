//! The sampler actor: on each tick it reads the node's metrics text and
//! appends the interval's [`Sample`] to the node's [`History`]. The
//! arithmetic is the pure [`Recorder`]; the actor only owns the timer.
//! It runs under the node's `admin` supervisor (docs/ARCHITECTURE.md); a
//! restart loses one interval, not the history.

use std::sync::Arc;
use std::time::Duration;

use hypha_core::clock::SharedClock;
use hypha_supervisors::CrashMessage;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use super::exposition::{self, Totals};
use super::sample::{self, Sample};
use super::History;

/// Reads the node's Prometheus text; `None` when there is no recorder
/// (an embedding program installed its own), and then nothing is sampled.
pub type MetricsSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Turns successive readings into samples: remembers the previous one.
#[derive(Debug, Default)]
pub struct Recorder {
    prev: Option<(Totals, Instant)>,
}

impl Recorder {
    /// Take a reading made at `now` (monotonic) / `wall_ms` (wall clock):
    /// the sample of the interval since the previous reading, if any.
    pub fn observe(
        &mut self,
        totals: Totals,
        now: Instant,
        wall_ms: u64,
        seq: u64,
    ) -> Option<Sample> {
        let sample = self.prev.as_ref().and_then(|(prev, at)| {
            let elapsed_ms =
                u64::try_from(now.saturating_duration_since(*at).as_millis()).unwrap_or(u64::MAX);
            sample::between(prev, &totals, elapsed_ms, wall_ms, seq)
        });
        self.prev = Some((totals, now));
        sample
    }
}

/// Messages of the sampler (local only).
pub enum SamplerMessage {
    /// Take a reading.
    Tick,
    /// Chaos: panic inside the handler.
    Crash,
}

impl ractor::Message for SamplerMessage {}

impl CrashMessage for SamplerMessage {
    fn crash() -> Self {
        SamplerMessage::Crash
    }
}

/// The sampler behaviour.
pub struct Sampler;

/// What each incarnation is given.
#[derive(Clone)]
pub struct SamplerArgs {
    /// Where samples go; its interval is the tick.
    pub history: History,
    /// The node's metrics text.
    pub source: MetricsSource,
    /// The node's clock: intervals and timestamps are read from it.
    pub clock: SharedClock,
}

/// State of one incarnation. The tick task is not kept: it ends by
/// itself at its first tick after the actor stopped (ractor checks).
pub struct SamplerState {
    args: SamplerArgs,
    recorder: Recorder,
}

impl SamplerState {
    fn read(&mut self) {
        let Some(text) = (self.args.source)() else {
            return;
        };
        let totals = exposition::totals(&text);
        let clock = &self.args.clock;
        let seq = self.args.history.next_seq();
        if let Some(sample) = self
            .recorder
            .observe(totals, clock.now(), clock.wall_ms(), seq)
        {
            self.args.history.push(sample);
        }
    }
}

impl Actor for Sampler {
    type Msg = SamplerMessage;
    type State = SamplerState;
    type Arguments = SamplerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SamplerMessage>,
        args: SamplerArgs,
    ) -> Result<SamplerState, ActorProcessingErr> {
        let tick = Duration::from_millis(args.history.interval_ms().max(1));
        let mut state = SamplerState {
            args,
            recorder: Recorder::default(),
        };
        // The first reading now, so the first sample comes one tick later.
        state.read();
        myself.send_interval(tick, || SamplerMessage::Tick);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<SamplerMessage>,
        message: SamplerMessage,
        state: &mut SamplerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SamplerMessage::Tick => state.read(),
            SamplerMessage::Crash => panic!("chaos: injected panic in the history sampler"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use hypha_core::clock::ManualClock;

    use super::*;

    #[test]
    fn the_first_reading_only_sets_the_baseline() {
        let start = Instant::now();
        let mut r = Recorder::default();
        let reading = |n: f64| Totals {
            http_requests: n,
            ..Totals::default()
        };
        assert!(r.observe(reading(10.0), start, 1_000, 0).is_none());
        let s = r
            .observe(reading(30.0), start + Duration::from_secs(2), 3_000, 0)
            .unwrap();
        assert_eq!(
            (s.http_requests_per_s, s.interval_ms, s.t_unix_ms),
            (10.0, 2_000, 3_000)
        );
        // A reading at the same instant makes no sample (no rate).
        assert!(r
            .observe(reading(40.0), start + Duration::from_secs(2), 3_000, 1)
            .is_none());
    }

    /// The actor under a manual clock (moved 100 ms per reading, whatever
    /// the real tick): one sample per tick, timed by the injected clock.
    #[tokio::test]
    async fn the_actor_appends_one_sample_per_tick() {
        let manual = ManualClock::new(1_000_000);
        let calls = Arc::new(AtomicU64::new(0));
        let source: MetricsSource = {
            let calls = calls.clone();
            let manual = manual.clone();
            Arc::new(move || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                // Keep the injected clock in step with the ticks.
                if n > 0 {
                    manual.advance(Duration::from_millis(100));
                }
                Some(format!("hypha_http_requests_total {}\n", n * 10))
            })
        };
        let history = History::new(10);
        let args = SamplerArgs {
            history: history.clone(),
            source,
            clock: SharedClock::new(manual.clone()),
        };
        let (actor, handle) = Actor::spawn(None, Sampler, args).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while history.page(0).samples.len() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        actor.stop(None);
        handle.await.unwrap();
        let page = history.page(0);
        assert!(page.samples.len() >= 3, "{page:?}");
        let first = &page.samples[0];
        assert_eq!(first.seq, 0);
        assert_eq!(first.interval_ms, 100);
        assert_eq!(first.http_requests_per_s, 100.0);
        assert_eq!(first.t_unix_ms, 1_000_100);
    }
}
