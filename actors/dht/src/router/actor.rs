//! The router's shell: a tick that rebuilds placement when the view changed
//! or an absent member's grace ran out (Down, or a restarted node's new
//! generation still Joining in the place its node held: see
//! [`crate::placement`]), and that says when this node's view has
//! settled after its start.
//!
//! Settling. A node that has just (re)started knows its peers from gossip
//! before it has linked to them, and placement leaves out members it has
//! not linked to (they are Joining). Its replica sets are then wrong —
//! often just itself, with the copies it held before it went down — and a
//! "quorum" read from them returned stale versions (found by the chaos
//! harness's stale-read checker). So the node serves no file operation
//! until it has seen a peer and no member is still Joining, or until
//! [`Settle::AfterPeers`]'s limit passes (a peer that never links must
//! not keep it out forever). Once settled it stays so: later joins are
//! ordinary membership changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;
use tokio::time::Instant;

use super::messages::RouterMessage;
use super::settle::Settle;
use crate::placement::{Placement, PlacementRules};
use hypha_cluster::membership::{ClusterView, MemberKey, MemberState, MembershipChannels};
use hypha_core::clock::SharedClock;

/// How often the router looks at the view.
const TICK: Duration = Duration::from_millis(100);

/// The router behaviour.
pub struct Router;

/// What each incarnation is given.
#[derive(Clone)]
pub struct RouterArgs {
    /// This member.
    pub me: MemberKey,
    /// Partitioning, R, Down grace.
    pub rules: PlacementRules,
    /// The membership view.
    pub membership: MembershipChannels,
    /// Where placement is published (created once per node).
    pub placement: Arc<watch::Sender<Arc<Placement>>>,
    /// When the view counts as settled.
    pub settle: Settle,
    /// When the node started (a restarted router keeps counting from it),
    /// on `clock`.
    pub started: Instant,
    /// The node's clock.
    pub clock: SharedClock,
}

/// State of one incarnation.
pub struct RouterState {
    args: RouterArgs,
    last_view: Option<Arc<ClusterView>>,
    absent_since_ms: BTreeMap<MemberKey, u64>,
    next_expiry_ms: Option<u64>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl RouterState {
    fn refresh(&mut self) {
        let view = self.args.membership.view();
        let now = self.args.clock.wall_ms();
        let changed = !self
            .last_view
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, &view));
        let expired = self.next_expiry_ms.is_some_and(|t| now >= t);
        // Settled once, settled for good: the flag lives in the published
        // placement, which outlives a restarted router.
        let was_settled = self.args.placement.borrow().settled();
        let waited = self
            .args
            .clock
            .now()
            .saturating_duration_since(self.args.started);
        let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        let settled = was_settled || self.args.settle.reached(&view, waited_ms);
        if !changed && !expired && settled == was_settled {
            return;
        }
        self.track_absent(&view, now);
        // The previous placement carries the memory of which partitions
        // were near this node (write admission); it outlives a restarted
        // router like the settled flag.
        let previous = self.args.placement.borrow().clone();
        let placement = Placement::build(
            self.args.me.clone(),
            &view,
            self.args.rules.clone(),
            &self.absent_since_ms,
            now,
        )
        .with_settled(settled)
        .with_history(&previous, now);
        metrics::gauge!("hypha_dht_owners").set(placement.live().len() as f64);
        self.args.placement.send_replace(Arc::new(placement));
        self.last_view = Some(view);
    }

    /// Track absent members: Down ones, and Joining ones that hold their
    /// node's place (some generation of it owns partitions in the current
    /// placement, or it was already tracked).
    fn track_absent(&mut self, view: &ClusterView, now: u64) {
        let previous = self.args.placement.borrow().clone();
        let absent: Vec<&MemberKey> = view
            .members
            .iter()
            .filter(|m| match m.state {
                MemberState::Down => true,
                MemberState::Joining => {
                    !m.is_self
                        && (self.absent_since_ms.contains_key(&m.key)
                            || previous.owns_node(&m.key.node_id))
                }
                _ => false,
            })
            .map(|m| &m.key)
            .collect();
        self.absent_since_ms.retain(|k, _| absent.contains(&k));
        for key in absent {
            self.absent_since_ms.entry(key.clone()).or_insert(now);
        }
        let grace = self.args.rules.down_grace_ms;
        self.next_expiry_ms = self
            .absent_since_ms
            .values()
            .map(|since| since.saturating_add(grace))
            .filter(|t| *t > now)
            .min();
    }
}

impl Actor for Router {
    type Msg = RouterMessage;
    type State = RouterState;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RouterMessage>,
        args: RouterArgs,
    ) -> Result<RouterState, ActorProcessingErr> {
        let mut state = RouterState {
            args,
            last_view: None,
            absent_since_ms: BTreeMap::new(),
            next_expiry_ms: None,
            ticker: None,
        };
        state.refresh();
        state.ticker = Some(myself.send_interval(TICK, || RouterMessage::Tick));
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RouterMessage>,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<RouterMessage>,
        message: RouterMessage,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RouterMessage::Tick => state.refresh(),
            RouterMessage::Crash => panic!("chaos: injected panic in router"),
        }
        Ok(())
    }
}
