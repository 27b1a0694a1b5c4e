//! Sending one request to every replica and waiting for a quorum: the call
//! returns as soon as `need` replicas succeeded and the rest answered, or
//! a straggler grace (default 0) after the quorum. Calls still running then
//! are handed back as [`Gathered::pending`]: a write gives them to
//! [`Tails`] so that every replica still gets it, in the background; a read
//! drops them. A slow or frozen replica so costs a write nothing once W
//! replicas answered.
//!
//! This is the shell of a quorum call: whom to ask and when, and when the
//! call is over, is decided by the pure [`QuorumCall`]; here its calls
//! are sent, answers and wake-ups awaited and fed back, with the time
//! read from the node's clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::decide::call::{Answer, Effect, Pace, QuorumCall};
use super::decide::verdict::write_answer;
use crate::transport::{DhtTransport, RpcError};
use crate::wire::{Request, Response};
use hypha_cluster::membership::MemberKey;
use hypha_core::clock::SharedClock;

/// A replica call still running.
pub type PendingCall = BoxFuture<'static, (MemberKey, Result<Response, RpcError>)>;

/// Answers gathered from replicas.
#[derive(Default)]
pub struct Gathered {
    /// Successful answers.
    pub ok: Vec<(MemberKey, Response)>,
    /// Failures.
    pub failed: Vec<(MemberKey, RpcError)>,
    /// Calls still running when the quorum was reached.
    pub pending: FuturesUnordered<PendingCall>,
}

impl Gathered {
    /// Short text of the failures, for errors.
    pub fn detail(&self) -> String {
        if self.failed.is_empty() {
            return "no replica available".into();
        }
        self.failed
            .iter()
            .map(|(m, e)| format!("{}: {e}", short(m)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether every failure was a full disk.
    pub fn all_disk_full(&self) -> bool {
        !self.failed.is_empty()
            && self.failed.iter().all(|(_, e)| {
                matches!(e, RpcError::Remote(w) if w.code == crate::wire::ErrorCode::DiskFull)
            })
    }
}

fn short(m: &MemberKey) -> String {
    m.node_id.chars().take(8).collect()
}

/// What a quorum call's effects are carried out with: the transport,
/// each call's timeout, and the clock the call reads the time from.
pub struct Caller<'a> {
    /// Sends the calls.
    pub transport: &'a Arc<dyn DhtTransport>,
    /// Timeout of one replica call.
    pub timeout: Duration,
    /// The node's clock.
    pub clock: &'a SharedClock,
}

/// Send `request` to every target; see the module doc for when it returns.
pub async fn gather(
    caller: &Caller<'_>,
    targets: &[MemberKey],
    request: &Request,
    need: usize,
    straggler: Duration,
) -> Gathered {
    let pace = Pace::AllAtOnce { straggler };
    caller
        .drive(targets, request, need, pace, write_answer)
        .await
}

/// A read's quorum call: ask only the first `need` of `targets` (in the
/// caller's order of preference, the local replica first) and the next
/// one for each that fails or whose answer does not `count`; if the
/// quorum is not in after `hedge`, ask all the rest. With healthy
/// replicas a read so costs `need` RPCs, not R, and a frozen replica
/// costs it `hedge`, not an RPC timeout. Returns at the quorum — `need`
/// answers that count (the calls still running are dropped: a read needs
/// no tail) — or when every asked replica answered.
pub async fn gather_hedged(
    caller: &Caller<'_>,
    targets: &[MemberKey],
    request: &Request,
    need: usize,
    hedge: Duration,
    count: impl Fn(&Response) -> bool,
) -> Gathered {
    let classify = |result: &Result<Response, RpcError>| match result {
        Ok(response) if count(response) => Answer::Counts,
        Ok(_) => Answer::Uncounted,
        Err(_) => Answer::Failed,
    };
    let pace = Pace::Hedged { hedge };
    let mut gathered = caller.drive(targets, request, need, pace, classify).await;
    gathered.pending = FuturesUnordered::new();
    gathered
}

impl Caller<'_> {
    /// Run a [`QuorumCall`]: send the calls it asks for, wait for the next
    /// answer or its wake-up, feed either back, until it is over.
    async fn drive(
        &self,
        targets: &[MemberKey],
        request: &Request,
        need: usize,
        pace: Pace,
        classify: impl Fn(&Result<Response, RpcError>) -> Answer,
    ) -> Gathered {
        let (mut call, mut effects) =
            QuorumCall::start(targets.to_vec(), need, pace, self.clock.now());
        let mut pending: FuturesUnordered<PendingCall> = FuturesUnordered::new();
        let mut out = Gathered::default();
        loop {
            pending.extend(effects.drain(..).filter_map(|effect| match effect {
                Effect::Call(member) => Some(self.call(member, request)),
                Effect::WakeAt(_) | Effect::Finish => None,
            }));
            if call.is_finished() {
                break;
            }
            let next = match call.wake_at() {
                None => pending.next().await,
                Some(at) => match tokio::time::timeout_at(at, pending.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        effects = call.on_wake();
                        continue;
                    }
                },
            };
            let Some((member, result)) = next else { break };
            effects = call.on_answer(&member, classify(&result), self.clock.now());
            match result {
                Ok(response) => out.ok.push((member, response)),
                Err(err) => out.failed.push((member, err)),
            }
        }
        out.pending = pending;
        out
    }

    fn call(&self, member: MemberKey, request: &Request) -> PendingCall {
        let call = self.transport.call(&member, request.clone(), self.timeout);
        Box::pin(async move { (member, call.await) })
    }
}

/// How long a replica that failed a background write is avoided by new
/// uploads (membership decides about it meanwhile).
const TROUBLE_MS: u64 = 10_000;

/// The background ends of write quorum calls: every replica still gets the
/// write after the client was answered at W. Bounded: when `capacity`
/// calls sets are running, the writer waits for its own (backpressure
/// instead of unbounded memory). Dropping `Tails` (the node stopping)
/// aborts them. Replicas whose background write failed are remembered as
/// troubled for a while, so uploads stop sending them chunks.
pub struct Tails {
    set: Mutex<JoinSet<()>>,
    capacity: usize,
    troubled: Arc<Mutex<HashMap<MemberKey, Instant>>>,
    clock: SharedClock,
}

impl Tails {
    /// At most `capacity` unfinished quorum calls in the background.
    pub fn new(capacity: usize, clock: SharedClock) -> Self {
        Self {
            set: Mutex::new(JoinSet::new()),
            capacity: capacity.max(1),
            troubled: Arc::new(Mutex::new(HashMap::new())),
            clock,
        }
    }

    /// Let `pending` finish in the background (or here, if full).
    pub async fn adopt(&self, pending: FuturesUnordered<PendingCall>) {
        if pending.is_empty() {
            return;
        }
        let finish = finish(pending, self.troubled.clone(), self.clock.clone());
        let overflow = {
            let mut set = self.set.lock().unwrap_or_else(|p| p.into_inner());
            while set.try_join_next().is_some() {}
            metrics::gauge!("hypha_dht_write_tails").set(set.len() as f64);
            if set.len() < self.capacity {
                set.spawn(finish);
                None
            } else {
                Some(finish)
            }
        };
        if let Some(finish) = overflow {
            finish.await;
        }
    }

    /// Whether a background write to `member` failed recently.
    pub fn troubled(&self, member: &MemberKey) -> bool {
        let mut troubled = self.troubled.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.now();
        troubled.retain(|_, since| {
            now.saturating_duration_since(*since) < Duration::from_millis(TROUBLE_MS)
        });
        troubled.contains_key(member)
    }
}

async fn finish(
    mut pending: FuturesUnordered<PendingCall>,
    troubled: Arc<Mutex<HashMap<MemberKey, Instant>>>,
    clock: SharedClock,
) {
    while let Some((member, result)) = pending.next().await {
        if let Err(err) = result {
            metrics::counter!("hypha_dht_write_tail_failures_total").increment(1);
            tracing::debug!(member = %member.link_name(), "background replica write failed: {err}");
            troubled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(member, clock.now());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::transport::DhtTransport;

    /// Replica i answers after `delays_ms[i]`; replica `failing` refuses.
    struct Fake {
        delays_ms: Vec<u64>,
        failing: Option<usize>,
        delivered: Arc<AtomicUsize>,
    }

    fn member(i: usize) -> MemberKey {
        MemberKey::new(format!("m{i}"), 1)
    }

    impl DhtTransport for Fake {
        fn call(
            &self,
            peer: &MemberKey,
            _request: Request,
            _timeout: Duration,
        ) -> BoxFuture<'static, Result<Response, RpcError>> {
            let i: usize = peer.node_id[1..].parse().unwrap_or(0);
            let delay = Duration::from_millis(self.delays_ms[i]);
            let fail = self.failing == Some(i);
            let delivered = self.delivered.clone();
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                if fail {
                    return Err(RpcError::Unreachable("down".into()));
                }
                delivered.fetch_add(1, Ordering::SeqCst);
                Ok(Response::ChunkStored)
            })
        }
    }

    fn setup(
        delays_ms: Vec<u64>,
        failing: Option<usize>,
    ) -> (Arc<dyn DhtTransport>, Arc<AtomicUsize>) {
        let delivered = Arc::new(AtomicUsize::new(0));
        let fake = Fake {
            delays_ms,
            failing,
            delivered: delivered.clone(),
        };
        (Arc::new(fake), delivered)
    }

    /// A quorum call of `need` over replicas 0..3, without straggler grace.
    async fn call(transport: &Arc<dyn DhtTransport>, need: usize, timeout: Duration) -> Gathered {
        let targets: Vec<MemberKey> = (0..3).map(member).collect();
        let clock = SharedClock::system();
        let caller = caller(transport, timeout, &clock);
        gather(&caller, &targets, &request(), need, Duration::ZERO).await
    }

    fn caller<'a>(
        transport: &'a Arc<dyn DhtTransport>,
        timeout: Duration,
        clock: &'a SharedClock,
    ) -> Caller<'a> {
        Caller {
            transport,
            timeout,
            clock,
        }
    }

    fn request() -> Request {
        Request::GetChunk {
            partition: 0,
            hash: [0; 32],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_returns_at_quorum_and_the_slow_replica_still_gets_it() {
        let (transport, delivered) = setup(vec![1, 2, 5_000], None);
        let started = tokio::time::Instant::now();
        let gathered = call(&transport, 2, Duration::from_secs(10)).await;
        assert_eq!(gathered.ok.len(), 2);
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(gathered.pending.len(), 1);
        let tails = Tails::new(4, SharedClock::system());
        tails.adopt(gathered.pending).await;
        assert_eq!(delivered.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(delivered.load(Ordering::SeqCst), 3, "the tail finished");
        assert!(!tails.troubled(&member(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_background_write_marks_the_replica_troubled() {
        let (transport, _) = setup(vec![1, 2, 50], Some(2));
        let gathered = call(&transport, 2, Duration::from_secs(1)).await;
        let tails = Tails::new(4, SharedClock::system());
        tails.adopt(gathered.pending).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(tails.troubled(&member(2)));
        tokio::time::sleep(Duration::from_millis(TROUBLE_MS)).await;
        assert!(!tails.troubled(&member(2)), "trouble is forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_tail_set_makes_the_writer_wait() {
        let (transport, delivered) = setup(vec![1, 1, 1_000], None);
        let tails = Tails::new(1, SharedClock::system());
        for round in 1..=2 {
            let gathered = call(&transport, 2, Duration::from_secs(5)).await;
            tails.adopt(gathered.pending).await;
            // Round 1 goes to the background; round 2 finds the set full
            // and finishes inline, so its slow replica has answered.
            let expect = if round == 1 { 2 } else { 5 };
            assert!(delivered.load(Ordering::SeqCst) >= expect, "round {round}");
        }
    }

    async fn hedged(transport: &Arc<dyn DhtTransport>, need: usize) -> Gathered {
        let targets: Vec<MemberKey> = (0..3).map(member).collect();
        let timeout = Duration::from_secs(5);
        let hedge = Duration::from_millis(20);
        let clock = SharedClock::system();
        let caller = caller(transport, timeout, &clock);
        gather_hedged(&caller, &targets, &request(), need, hedge, |_| true).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_hedged_read_asks_only_the_quorum() {
        let (transport, delivered) = setup(vec![1, 2, 3], None);
        let gathered = hedged(&transport, 2).await;
        assert_eq!(gathered.ok.len(), 2);
        let asked: Vec<&str> = gathered
            .ok
            .iter()
            .map(|(m, _)| m.node_id.as_str())
            .collect();
        assert_eq!(asked, ["m0", "m1"], "the preferred replicas, in order");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            delivered.load(Ordering::SeqCst),
            2,
            "the third was never asked"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_replica_is_replaced_by_the_next_at_once() {
        let (transport, _) = setup(vec![1, 2, 3], Some(0));
        let started = tokio::time::Instant::now();
        let gathered = hedged(&transport, 2).await;
        assert_eq!((gathered.ok.len(), gathered.failed.len()), (2, 1));
        assert!(
            started.elapsed() < Duration::from_millis(20),
            "no hedge wait"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_does_not_count_brings_in_the_next_replica_at_once() {
        let (transport, delivered) = setup(vec![1, 2, 3], None);
        let targets: Vec<MemberKey> = (0..3).map(member).collect();
        let seen = AtomicUsize::new(0);
        // The first answer (replica 0, say a replica still catching up)
        // is data but not a quorum member.
        let count = |_: &Response| seen.fetch_add(1, Ordering::SeqCst) > 0;
        let started = tokio::time::Instant::now();
        let timeout = Duration::from_secs(5);
        let hedge = Duration::from_millis(20);
        let clock = SharedClock::system();
        let caller = caller(&transport, timeout, &clock);
        let gathered = gather_hedged(&caller, &targets, &request(), 2, hedge, count).await;
        assert_eq!(gathered.ok.len(), 3, "all three answers are kept");
        assert_eq!(delivered.load(Ordering::SeqCst), 3);
        assert!(
            started.elapsed() < Duration::from_millis(20),
            "no hedge wait"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_frozen_replica_costs_the_hedge_not_the_timeout() {
        let (transport, _) = setup(vec![1, 60_000, 3], None);
        let started = tokio::time::Instant::now();
        let gathered = hedged(&transport, 2).await;
        assert_eq!(gathered.ok.len(), 2);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(20) && waited < Duration::from_millis(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hedged_read_without_enough_replicas_returns_what_it_has() {
        let (transport, _) = setup(vec![1, 2, 3], Some(1));
        let targets: Vec<MemberKey> = (0..2).map(member).collect();
        let timeout = Duration::from_secs(5);
        let hedge = Duration::from_millis(20);
        let clock = SharedClock::system();
        let caller = caller(&transport, timeout, &clock);
        let gathered = gather_hedged(&caller, &targets, &request(), 2, hedge, |_| true).await;
        assert_eq!((gathered.ok.len(), gathered.failed.len()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quorum_that_cannot_be_reached_waits_for_every_answer() {
        let (transport, _) = setup(vec![1, 2, 3], Some(1));
        let gathered = call(&transport, 3, Duration::from_secs(1)).await;
        assert_eq!((gathered.ok.len(), gathered.failed.len()), (2, 1));
        assert!(gathered.pending.is_empty());
    }
}
