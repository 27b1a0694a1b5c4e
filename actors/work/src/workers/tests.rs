//! The workers actor driven on a `ManualClock`: the report give-up rule
//! reads the node's clock, so a test moves it by hand instead of waiting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{mpsc, watch};

use super::{WorkerSettings, Workers, WorkersArgs, WorkersMessage};
use crate::client::{WorkClient, WorkHandler};
use crate::handler::{ExecSettings, Registry};
use crate::job::{echo_spec, AttemptEnd, JobId};
use crate::owner_of;
use crate::queues::QueuesMessage;
use crate::wire::{ErrorCode, OfferAnswer, WireError, WorkRequest, WorkResponse};
use hypha_cluster::membership::{ClusterView, MemberKey};
use hypha_core::clock::{ManualClock, SharedClock};
use hypha_dht::files::{Files, FilesConfig};
use hypha_dht::hlc::Hlc;
use hypha_dht::keyspace::Partitioning;
use hypha_dht::placement::{Placement, PlacementRules};
use hypha_dht::transport::{DhtTransport, RpcError};
use hypha_dht::wire::{Request, Response};

const GIVE_UP_MS: u64 = 10_000;

/// No replica answers: the echo jobs here read no stored file.
struct NoReplicas;

impl DhtTransport for NoReplicas {
    fn call(
        &self,
        peer: &MemberKey,
        _request: Request,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<Response, RpcError>> {
        let peer = peer.link_name();
        Box::pin(async move { Err(RpcError::Unreachable(peer)) })
    }
}

/// Stands in for this node's queue owner: every finish report is passed
/// to the test and refused, so the worker keeps it for another try.
struct RefusingOwner;

impl Actor for RefusingOwner {
    type Msg = QueuesMessage;
    type State = mpsc::UnboundedSender<(JobId, AttemptEnd)>;
    type Arguments = mpsc::UnboundedSender<(JobId, AttemptEnd)>;

    async fn pre_start(
        &self,
        _myself: ActorRef<QueuesMessage>,
        reports: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(reports)
    }

    async fn handle(
        &self,
        _myself: ActorRef<QueuesMessage>,
        message: QueuesMessage,
        reports: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let QueuesMessage::Request { request, reply } = message {
            if let WorkRequest::Finished { id, end, .. } = request {
                let _ = reports.send((id, end));
            }
            let refusal = WireError::new(ErrorCode::Unavailable, "not durable yet");
            let _ = reply.send(WorkResponse::Error(refusal));
        }
        Ok(())
    }
}

fn me() -> MemberKey {
    MemberKey::new(hex::encode([7u8; 32]), 1)
}

/// This node alone: it owns every queue.
fn placement() -> Arc<Placement> {
    let rules = PlacementRules {
        partitioning: Partitioning::new(4).expect("4 bits"),
        replicas: 1,
        down_grace_ms: 1_000,
        write_quorum: 2,
        pins: Default::default(),
    };
    let view = ClusterView::default();
    Arc::new(Placement::build(me(), &view, rules, &BTreeMap::new(), 0))
}

/// The next finish report the owner received; `None` if none came
/// within a minute of paused time (the heartbeat timer fires at an hour).
async fn next_report(
    reports: &mut mpsc::UnboundedReceiver<(JobId, AttemptEnd)>,
) -> Option<(JobId, AttemptEnd)> {
    tokio::time::timeout(Duration::from_secs(60), reports.recv())
        .await
        .ok()
        .flatten()
}

/// Let every task run until all are idle: with tokio's time paused, a
/// sleep ends only then (no real time passes).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// A report no owner acknowledged is sent again at every tick until the
/// node's clock says `report_give_up_ms` passed since the attempt ended,
/// and then dropped. Only the `ManualClock` moves; tokio's time is paused,
/// so the actor's own heartbeat timer (an hour) never fires.
#[tokio::test(start_paused = true)]
async fn an_unacknowledged_report_is_given_up_on_the_nodes_clock() {
    let tag = format!("workers-test-{}", rand::random::<u64>());
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let owner_name = format!("{tag}-queues");
    let (owner, owner_handle) = Actor::spawn(Some(owner_name.clone()), RefusingOwner, reports_tx)
        .await
        .expect("owner starts");

    let manual = ManualClock::new(1_000_000);
    let clock = SharedClock::new(manual.clone());
    let placement = placement();
    assert_eq!(owner_of(&placement, "q"), Some(me()), "this node owns q");
    let (_placement_tx, placement_rx) = watch::channel(placement);
    let files = Files::new(
        [7u8; 32],
        Arc::new(NoReplicas),
        placement_rx.clone(),
        Arc::new(Hlc::new(clock.clone())),
        FilesConfig::default(),
        clock.clone(),
    );
    let handler = WorkHandler::new(owner_name, format!("{tag}-workers"), 1_000);
    let args = WorkersArgs {
        me: me(),
        registry: Registry::builtins(&ExecSettings::default()),
        files,
        client: WorkClient::new(me(), handler),
        placement: placement_rx,
        settings: WorkerSettings {
            slots: 1,
            heartbeat_ms: 3_600_000,
            rpc_timeout_ms: 1_000,
            max_unreported: 8,
            report_give_up_ms: GIVE_UP_MS,
        },
        membership: format!("{tag}-membership"),
        clock,
    };
    let (workers, workers_handle) = Actor::spawn(None, Workers, args)
        .await
        .expect("workers start");

    let job = JobId([1; 16]);
    let offer = WorkRequest::Offer {
        owner: me().link_name(),
        id: job,
        spec: echo_spec("q", 3),
        attempt: 1,
        lease_ms: 30_000,
    };
    let answer = workers
        .call(
            |reply| WorkersMessage::Request {
                request: Box::new(offer),
                reply,
            },
            Some(Duration::from_secs(5)),
        )
        .await;
    assert!(matches!(
        answer,
        Ok(ractor::rpc::CallResult::Success(WorkResponse::Offer(
            OfferAnswer::Accepted
        )))
    ));
    // The attempt ends and is reported at once; the owner refuses it.
    assert_eq!(
        next_report(&mut reports).await,
        Some((job, AttemptEnd::Succeeded))
    );

    // Just short of the give-up age: the report goes out again.
    settle().await; // the refusal is in: the report waits for a tick
    manual.advance(Duration::from_millis(GIVE_UP_MS - 1));
    workers.cast(WorkersMessage::Tick).expect("tick");
    assert_eq!(
        next_report(&mut reports).await,
        Some((job, AttemptEnd::Succeeded))
    );

    // Past it: dropped at the next tick, never sent again.
    settle().await;
    manual.advance(Duration::from_millis(1));
    workers.cast(WorkersMessage::Tick).expect("tick");
    workers.cast(WorkersMessage::Tick).expect("tick");
    // Any call a tick started has reached the owner once all is idle.
    settle().await;
    assert!(
        reports.try_recv().is_err(),
        "a report past its give-up age was sent"
    );

    workers.stop(None);
    owner.stop(None);
    let _ = workers_handle.await;
    let _ = owner_handle.await;
}
