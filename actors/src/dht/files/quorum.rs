//! Sending one request to every replica and waiting for a quorum: the call
//! returns as soon as `need` replicas succeeded and the rest answered, or a
//! short straggler grace after the quorum, so a frozen replica costs a
//! write a bounded delay rather than the full RPC timeout.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::dht::transport::{DhtTransport, RpcError};
use crate::dht::wire::{Request, Response};
use crate::membership::MemberKey;

/// Answers gathered from replicas.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Successful answers.
    pub ok: Vec<(MemberKey, Response)>,
    /// Failures (and replicas still silent when the call returned).
    pub failed: Vec<(MemberKey, RpcError)>,
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
                matches!(e, RpcError::Remote(w) if w.code == crate::dht::wire::ErrorCode::DiskFull)
            })
    }
}

fn short(m: &MemberKey) -> String {
    m.node_id.chars().take(8).collect()
}

/// Send `request` to every target; see the module doc for when it returns.
pub async fn gather(
    transport: &Arc<dyn DhtTransport>,
    targets: &[MemberKey],
    request: &Request,
    need: usize,
    timeout: Duration,
    straggler: Duration,
) -> Gathered {
    let mut pending: FuturesUnordered<_> = targets
        .iter()
        .map(|member| {
            let call = transport.call(member, request.clone(), timeout);
            let member = member.clone();
            async move { (member, call.await) }
        })
        .collect();
    let mut out = Gathered::default();
    let mut waiting: Vec<MemberKey> = targets.to_vec();
    let mut deadline = None;
    loop {
        let next = match deadline {
            None => pending.next().await,
            Some(at) => match tokio::time::timeout_at(at, pending.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some((member, result)) = next else { break };
        waiting.retain(|m| m != &member);
        match result {
            Ok(response) => out.ok.push((member, response)),
            Err(err) => out.failed.push((member, err)),
        }
        if deadline.is_none() && out.ok.len() >= need {
            deadline = Some(tokio::time::Instant::now() + straggler);
        }
    }
    let straggler_ms = u64::try_from(straggler.as_millis()).unwrap_or(u64::MAX);
    out.failed.extend(
        waiting
            .into_iter()
            .map(|m| (m, RpcError::Timeout(straggler_ms))),
    );
    out
}
