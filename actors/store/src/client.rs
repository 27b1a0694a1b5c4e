//! How other actors and the HTTP layer reach a node's store: by registry
//! name on every call (never a cached ref: a restarted store is a new
//! actor), always with a timeout.

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};

use super::batch::{Tree, WriteBatch};
use super::error::StoreError;
use super::messages::{Entries, StoreMessage};

/// A handle on a node's store, valid across store restarts.
#[derive(Clone, Debug)]
pub struct StoreClient {
    name: String,
    timeout: Duration,
}

impl StoreClient {
    /// The store of `node`; calls give up after `timeout`.
    pub fn new(node: &str, timeout: Duration) -> Self {
        Self {
            name: hypha_core::actor_name(node, super::ROLE),
            timeout,
        }
    }

    fn resolve(&self) -> Result<ActorRef<StoreMessage>, StoreError> {
        let cell = ractor::registry::where_is(self.name.clone())
            .ok_or_else(|| StoreError::Unavailable("store is restarting".into()))?;
        if cell.is_message_type_of::<StoreMessage>() != Some(true) {
            return Err(StoreError::Unavailable(format!(
                "{} is not a store actor",
                self.name
            )));
        }
        Ok(cell.into())
    }

    async fn call<T, F>(&self, build: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(RpcReplyPort<Result<T, StoreError>>) -> StoreMessage,
    {
        let store = self.resolve()?;
        match store.call(build, Some(self.timeout)).await {
            Ok(CallResult::Success(result)) => result,
            Ok(CallResult::Timeout) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
            Ok(CallResult::SenderError) => Err(StoreError::Unavailable(
                "store stopped while handling the request".into(),
            )),
            Err(err) => Err(StoreError::Unavailable(err.to_string())),
        }
    }

    /// Read one key.
    pub async fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_vec();
        self.call(|reply| StoreMessage::Get { tree, key, reply })
            .await
    }

    /// Keys with `prefix`, at most `limit`.
    pub async fn scan(
        &self,
        tree: Tree,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let prefix = prefix.to_vec();
        self.call(|reply| StoreMessage::Scan {
            tree,
            prefix,
            limit,
            reply,
        })
        .await
    }

    /// Keys with `prefix` strictly after `after`, at most `limit`.
    pub async fn scan_after(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: &[u8],
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let prefix = prefix.to_vec();
        let after = after.to_vec();
        self.call(|reply| StoreMessage::ScanAfter {
            tree,
            prefix,
            after,
            limit,
            reply,
        })
        .await
    }

    /// Apply `batch`; `Ok` means durable.
    pub async fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.call(|reply| StoreMessage::Write { batch, reply })
            .await
    }
}
