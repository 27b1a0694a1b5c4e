//! The store actor's shell: reads go to the reader threads (a small pool
//! on one bounded queue; sled is thread-safe), and writes go to the
//! group-commit writer thread, which acknowledges each only after a flush
//! covering it.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::engine::KvEngine;
use super::error::StoreError;
use super::messages::StoreMessage;
use super::reader::Readers;
use super::writer::{DiskReserve, WriteJob, Writer};

/// The store behaviour.
pub struct Store;

/// What each incarnation is given: the engine opened once by the node.
#[derive(Clone)]
pub struct StoreArgs {
    /// The open database.
    pub engine: Arc<dyn KvEngine>,
    /// Free space kept in reserve.
    pub reserve: DiskReserve,
}

/// State of one incarnation.
pub struct StoreState {
    engine: Arc<dyn KvEngine>,
    writer: Writer,
    readers: Readers,
}

/// Run `f` against the engine on a blocking thread.
async fn blocking<T, F>(engine: &Arc<dyn KvEngine>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&dyn KvEngine) -> Result<T, StoreError> + Send + 'static,
{
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || f(engine.as_ref()))
        .await
        .map_err(|err| StoreError::Io(format!("storage task failed: {err}")))?
}

impl StoreState {
    /// Start a read that answers `reply` by itself.
    async fn read<T, F>(&mut self, reply: RpcReplyPort<Result<T, StoreError>>, f: F)
    where
        T: Send + 'static,
        F: FnOnce(&dyn KvEngine) -> Result<T, StoreError> + Send + 'static,
    {
        self.readers
            .submit(Box::new(move |engine: &dyn KvEngine| {
                let _ = reply.send(f(engine));
            }))
            .await;
    }
}

impl Actor for Store {
    type Msg = StoreMessage;
    type State = StoreState;
    type Arguments = StoreArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<StoreMessage>,
        args: StoreArgs,
    ) -> Result<StoreState, ActorProcessingErr> {
        // Rebuild from disk: refuse a data directory from a newer format.
        let version = blocking(&args.engine, |e| e.check_format()).await?;
        tracing::debug!(format_version = version, "store ready");
        let writer = Writer::start(args.engine.clone(), args.reserve)?;
        let readers = Readers::start(args.engine.clone())?;
        Ok(StoreState {
            engine: args.engine,
            writer,
            readers,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<StoreMessage>,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        let mut readers = std::mem::replace(&mut state.readers, Readers::stopped());
        let mut writer = std::mem::replace(&mut state.writer, Writer::stopped());
        tokio::task::spawn_blocking(move || {
            readers.stop();
            writer.stop();
        })
        .await?;
        blocking(&state.engine, |e| e.flush()).await?;
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<StoreMessage>,
        message: StoreMessage,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StoreMessage::Get { tree, key, reply } => {
                state.read(reply, move |e| e.get(tree, &key)).await;
            }
            StoreMessage::Scan {
                tree,
                prefix,
                limit,
                reply,
            } => {
                state
                    .read(reply, move |e| e.scan_prefix(tree, &prefix, limit))
                    .await;
            }
            StoreMessage::ScanAfter {
                tree,
                prefix,
                after,
                limit,
                reply,
            } => {
                state
                    .read(reply, move |e| e.scan_after(tree, &prefix, &after, limit))
                    .await;
            }
            StoreMessage::Write { batch, reply } => {
                state.writer.submit(WriteJob { batch, reply }).await;
            }
            StoreMessage::Crash => panic!("chaos: injected panic in store"),
        }
        Ok(())
    }
}
