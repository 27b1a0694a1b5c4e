//! The queues actor: its timers, and each message handed to
//! [`Owner`](super::owner::Owner), which carries out what the pure
//! [`OwnerCore`](super::owner_core::OwnerCore) decides.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;

use super::messages::QueuesMessage;
use super::owner::Owner;
use crate::client::WorkClient;
use crate::log::JobLog;
use crate::placement::PlacementPolicy;
use crate::settings::WorkSettings;
use hypha_cluster::membership::{ClusterView, MemberKey};
use hypha_core::clock::SharedClock;
use hypha_dht::placement::Placement;

/// What each incarnation is given.
#[derive(Clone)]
pub struct QueuesArgs {
    /// This member.
    pub me: MemberKey,
    /// The durable log.
    pub log: JobLog,
    /// Calls to workers.
    pub client: WorkClient,
    /// Live members (ownership, candidates).
    pub placement: watch::Receiver<Arc<Placement>>,
    /// Member states, capacity and load.
    pub view: watch::Receiver<Arc<ClusterView>>,
    /// Where jobs go.
    pub policy: Arc<dyn PlacementPolicy>,
    /// The `[work]` section: lease, tick and scan periods, the queue and
    /// offer caps.
    pub settings: WorkSettings,
    /// Timeout of one call to a worker.
    pub rpc_timeout_ms: u64,
    /// Registered name of the membership actor (queue depth in gossip).
    pub membership: String,
    /// The node's clock.
    pub clock: SharedClock,
}

/// The actor.
pub struct Queues;

impl Actor for Queues {
    type Msg = QueuesMessage;
    type State = Owner;
    type Arguments = QueuesArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<QueuesMessage>,
        args: QueuesArgs,
    ) -> Result<Owner, ActorProcessingErr> {
        let tick = Duration::from_millis(args.settings.tick_ms.max(1));
        let scan = Duration::from_millis(args.settings.scan_ms.max(1));
        let mut owner = Owner::new(args, myself.clone());
        owner
            .timers
            .push(myself.send_interval(tick, || QueuesMessage::Tick));
        owner
            .timers
            .push(myself.send_interval(scan, || QueuesMessage::Scan));
        // Take over at once after a restart, not one scan period later.
        let _ = myself.cast(QueuesMessage::Scan);
        Ok(owner)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<QueuesMessage>,
        state: &mut Owner,
    ) -> Result<(), ActorProcessingErr> {
        for t in state.timers.drain(..) {
            t.abort();
        }
        state.tasks.abort_all();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<QueuesMessage>,
        message: QueuesMessage,
        state: &mut Owner,
    ) -> Result<(), ActorProcessingErr> {
        while state.tasks.try_join_next().is_some() {}
        state.handle(message);
        Ok(())
    }
}
