//! Probing a suspect: directly, then through up to k helpers (SWIM's
//! ping-req). The transport is a trait so that the same rules run over
//! node links in production and over an in-memory network in tests.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use thiserror::Error;

use super::swim::ProbeOutcome;
use super::view::MemberKey;

/// Why a probe failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ProbeError {
    /// No answer within the timeout.
    #[error("probe timed out")]
    Timeout,
    /// No link to the member (or the relay) to probe over.
    #[error("no link to {0}")]
    NoLink(String),
    /// The relay answered that its own probe failed.
    #[error("relay could not reach the target")]
    RelayFailed,
    /// The link failed while probing.
    #[error("link error: {0}")]
    Link(String),
}

/// How probes travel.
pub trait ProbeTransport: Send + Sync + 'static {
    /// Ask `target` for an answer within `timeout`.
    fn ping(
        &self,
        target: &MemberKey,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), ProbeError>>;

    /// Ask `via` to ping `target` and report, all within `timeout`.
    fn ping_req(
        &self,
        via: &MemberKey,
        target: &MemberKey,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), ProbeError>>;
}

/// Timeouts of one probe round.
#[derive(Debug, Clone, Copy)]
pub struct ProbePlan {
    /// Direct ping timeout.
    pub direct_timeout: Duration,
    /// Timeout of each indirect probe (relay's own ping included).
    pub indirect_timeout: Duration,
    /// How many helpers relay a probe.
    pub indirect_probes: usize,
}

/// Probe `target` directly; if that fails, through up to
/// `plan.indirect_probes` of `helpers` at once. Acked if any answer came.
pub async fn run_probe(
    transport: Arc<dyn ProbeTransport>,
    target: MemberKey,
    helpers: Vec<MemberKey>,
    plan: ProbePlan,
) -> ProbeOutcome {
    let direct = tokio::time::timeout(
        plan.direct_timeout,
        transport.ping(&target, plan.direct_timeout),
    )
    .await;
    if matches!(direct, Ok(Ok(()))) {
        return ProbeOutcome::Acked;
    }
    let mut relays: FuturesUnordered<_> = helpers
        .iter()
        .take(plan.indirect_probes)
        .map(|via| {
            let probe = transport.ping_req(via, &target, plan.indirect_timeout);
            tokio::time::timeout(plan.indirect_timeout, probe)
        })
        .collect();
    while let Some(result) = relays.next().await {
        if matches!(result, Ok(Ok(()))) {
            return ProbeOutcome::Acked;
        }
    }
    ProbeOutcome::Failed
}

#[derive(Default)]
struct NetState {
    down: HashSet<String>,
    cuts: BTreeSet<(String, String)>,
}

/// An in-memory probe network for simulations: members answer unless
/// marked down, and links can be cut in both directions. Cut the same
/// links in chitchat's `ChannelTransport` to model a partition.
#[derive(Clone, Default)]
pub struct MemoryProbeNet {
    state: Arc<Mutex<NetState>>,
}

impl MemoryProbeNet {
    /// A network where everyone answers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The transport as seen from node `from`.
    pub fn transport(&self, from: &str) -> Arc<dyn ProbeTransport> {
        Arc::new(MemoryProbe {
            net: self.clone(),
            from: from.to_owned(),
        })
    }

    /// Node `id` stops answering (crashed).
    pub fn set_down(&self, id: &str) {
        self.with(|s| {
            s.down.insert(id.to_owned());
        });
    }

    /// Cut the link between `a` and `b` both ways.
    pub fn cut(&self, a: &str, b: &str) {
        self.with(|s| {
            s.cuts.insert(ordered(a, b));
        });
    }

    /// Heal the link between `a` and `b`.
    pub fn heal(&self, a: &str, b: &str) {
        self.with(|s| {
            s.cuts.remove(&ordered(a, b));
        });
    }

    fn reachable(&self, a: &str, b: &str) -> bool {
        self.with(|s| {
            !s.down.contains(b) && !s.down.contains(a) && !s.cuts.contains(&ordered(a, b))
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut NetState) -> T) -> T {
        // A poisoned lock only means a test thread panicked mid-update;
        // the sets are still consistent.
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

fn ordered(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

struct MemoryProbe {
    net: MemoryProbeNet,
    from: String,
}

impl ProbeTransport for MemoryProbe {
    fn ping(
        &self,
        target: &MemberKey,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<(), ProbeError>> {
        let ok = self.net.reachable(&self.from, &target.node_id);
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                // An unreachable peer is silent: the caller's timeout ends it.
                std::future::pending().await
            }
        })
    }

    fn ping_req(
        &self,
        via: &MemberKey,
        target: &MemberKey,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<(), ProbeError>> {
        let ok = self.net.reachable(&self.from, &via.node_id)
            && self.net.reachable(&via.node_id, &target.node_id);
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                std::future::pending().await
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ProbePlan {
        ProbePlan {
            direct_timeout: Duration::from_millis(100),
            indirect_timeout: Duration::from_millis(200),
            indirect_probes: 3,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn indirect_probe_saves_a_member_behind_a_cut_link() {
        let net = MemoryProbeNet::new();
        net.cut("a", "b");
        let outcome = run_probe(
            net.transport("a"),
            MemberKey::new("b", 1),
            vec![MemberKey::new("c", 1)],
            plan(),
        )
        .await;
        assert_eq!(outcome, ProbeOutcome::Acked);
        let outcome = run_probe(net.transport("a"), MemberKey::new("b", 1), vec![], plan()).await;
        assert_eq!(outcome, ProbeOutcome::Failed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_member_fails_every_probe_in_bounded_time() {
        let net = MemoryProbeNet::new();
        net.set_down("b");
        let started = tokio::time::Instant::now();
        let helpers = vec![MemberKey::new("c", 1), MemberKey::new("d", 1)];
        let outcome = run_probe(net.transport("a"), MemberKey::new("b", 1), helpers, plan()).await;
        assert_eq!(outcome, ProbeOutcome::Failed);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        net.heal("a", "b");
    }
}
