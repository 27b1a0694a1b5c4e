//! The collector actor: walks the partitions one per tick and removes
//! chunks no live manifest on this node refers to (after a grace that
//! covers uploads in flight, which write chunks before their manifest) and
//! tombstones past their grace that anti-entropy confirmed every replica
//! holds. State lives in
//! the store; a restart just starts the walk over.

use std::time::Duration;

use hypha_supervisors::CrashMessage;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::anti_entropy::confirmed::Confirmed;
use crate::keyspace::Partition;
use crate::settings::DhtSettings;
use crate::storage::DhtStore;
use hypha_core::clock::SharedClock;

/// Messages of the collector (local only).
pub enum CollectorMessage {
    /// Sweep the next partition.
    Tick,
    /// Chaos: panic inside the handler.
    Crash,
}

impl ractor::Message for CollectorMessage {}

impl CrashMessage for CollectorMessage {
    fn crash() -> Self {
        CollectorMessage::Crash
    }
}

/// The collector behaviour.
pub struct Collector;

/// What each incarnation is given.
#[derive(Clone)]
pub struct CollectorArgs {
    /// The node's DHT store.
    pub store: DhtStore,
    /// The `[dht]` section: `gc_tick_ms` (one partition is swept per
    /// tick), `chunk_grace_ms` and `tombstone_grace_ms` (younger
    /// unreferenced chunks and tombstones are kept).
    pub settings: DhtSettings,
    /// When anti-entropy last confirmed each partition equal on every
    /// replica: tombstones written before it may go.
    pub confirmed: Confirmed,
    /// The node's clock: ages are measured against its wall time.
    pub clock: SharedClock,
}

/// State of one incarnation.
pub struct CollectorState {
    args: CollectorArgs,
    next: u32,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Actor for Collector {
    type Msg = CollectorMessage;
    type State = CollectorState;
    type Arguments = CollectorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CollectorMessage>,
        args: CollectorArgs,
    ) -> Result<CollectorState, ActorProcessingErr> {
        let tick = Duration::from_millis(args.settings.gc_tick_ms.max(1));
        let ticker = myself.send_interval(tick, || CollectorMessage::Tick);
        Ok(CollectorState {
            args,
            next: 0,
            ticker: Some(ticker),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CollectorMessage>,
        state: &mut CollectorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<CollectorMessage>,
        message: CollectorMessage,
        state: &mut CollectorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CollectorMessage::Tick => sweep_next(state).await,
            CollectorMessage::Crash => panic!("chaos: injected panic in collector"),
        }
        Ok(())
    }
}

async fn sweep_next(state: &mut CollectorState) {
    let count = state.args.store.partitioning().count();
    let partition = Partition(u16::try_from(state.next % count).unwrap_or(0));
    state.next = (state.next + 1) % count;
    let gc = state.args.settings;
    match state
        .args
        .store
        .sweep(
            partition,
            state.args.clock.wall_ms(),
            gc.chunk_grace_ms,
            gc.tombstone_grace_ms,
            state.args.confirmed.get(partition.0),
        )
        .await
    {
        Ok(sweep) => {
            metrics::counter!("hypha_dht_gc_chunks_total").increment(sweep.chunks as u64);
            metrics::counter!("hypha_dht_gc_tombstones_total").increment(sweep.tombstones as u64);
        }
        // The store is restarting or the disk failed: the next tick retries.
        Err(err) => tracing::warn!(partition = partition.0, "collection failed: {err}"),
    }
}
