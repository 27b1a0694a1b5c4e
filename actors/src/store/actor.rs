//! The store actor's shell: runs engine calls on blocking threads, one
//! request at a time, and acknowledges writes only after a flush.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::engine::KvEngine;
use super::error::StoreError;
use super::messages::StoreMessage;

/// The store behaviour.
pub struct Store;

/// What each incarnation is given: the engine opened once by the node.
#[derive(Clone)]
pub struct StoreArgs {
    /// The open database.
    pub engine: Arc<dyn KvEngine>,
}

/// State of one incarnation.
pub struct StoreState {
    engine: Arc<dyn KvEngine>,
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
        Ok(StoreState {
            engine: args.engine,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<StoreMessage>,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
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
                let result = blocking(&state.engine, move |e| e.get(tree, &key)).await;
                let _ = reply.send(result);
            }
            StoreMessage::Scan {
                tree,
                prefix,
                limit,
                reply,
            } => {
                let result =
                    blocking(&state.engine, move |e| e.scan_prefix(tree, &prefix, limit)).await;
                let _ = reply.send(result);
            }
            StoreMessage::Write { batch, reply } => {
                let ops = batch.len() as u64;
                let result = blocking(&state.engine, move |e| {
                    e.apply(&batch)?;
                    e.flush().map(|_| ())
                })
                .await;
                if result.is_ok() {
                    metrics::counter!("hypha_store_writes_total").increment(ops);
                } else {
                    metrics::counter!("hypha_store_write_errors_total").increment(1);
                }
                let _ = reply.send(result);
            }
            StoreMessage::Crash => panic!("chaos: injected panic in store"),
        }
        Ok(())
    }
}
