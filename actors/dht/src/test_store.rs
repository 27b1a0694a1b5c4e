//! A DHT store on a temporary sled database with its store actor, for the
//! DHT's unit tests (one per test node; names are unique per process).

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};

use super::keyspace::Partitioning;
use super::storage::DhtStore;
use hypha_store::{DiskReserve, SledEngine, Store, StoreArgs, StoreClient, StoreMessage};

/// A store and what keeps it alive; stop the actor when done.
pub struct TestStore {
    /// The DHT's view of it.
    pub store: DhtStore,
    /// The store actor.
    pub actor: ActorRef<StoreMessage>,
    _dir: tempfile::TempDir,
}

/// Open a fresh store; `label` goes into the actor's name.
pub async fn open(label: &str, partitioning: Partitioning) -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Arc::new(SledEngine::open(dir.path()).expect("open"));
    let name = format!("{label}-{}", rand::random::<u32>());
    let args = StoreArgs {
        engine,
        reserve: DiskReserve {
            path: None,
            min_free_bytes: 0,
        },
    };
    let (actor, _) = Actor::spawn(
        Some(hypha_core::actor_name(&name, hypha_store::ROLE)),
        Store,
        args,
    )
    .await
    .expect("store starts");
    TestStore {
        store: DhtStore::new(
            StoreClient::new(&name, Duration::from_secs(5)),
            partitioning,
        ),
        actor,
        _dir: dir,
    }
}
