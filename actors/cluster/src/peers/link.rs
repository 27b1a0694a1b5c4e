//! The link service: the one remotable actor of a node. Peers reach it over
//! ractor_cluster through the process group `hypha.link.<link name>`; it
//! answers application pings (hung-peer detection, SWIM probes) and relays
//! ping-reqs. Its message type is a wire format: variants travel by name
//! and must never be renamed; add new variants instead (version 1).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use tokio::task::JoinSet;

use crate::membership::probe::{ProbeError, ProbeTransport};
use crate::membership::MemberKey;

/// Relayed probes a node runs at once for its peers; more are refused.
const MAX_RELAYS: usize = 64;
/// Longest relay timeout a peer may ask for.
const MAX_RELAY_TIMEOUT_MS: u64 = 5_000;

/// Wire messages of the link service (version 1).
#[derive(RactorClusterMessage)]
pub enum LinkMessage {
    /// Answer with the same nonce (8 bytes, big-endian: the encoding of a
    /// `u64`, which ractor would decode with a panic on fewer bytes).
    #[rpc]
    Ping(Vec<u8>, RpcReplyPort<u64>),
    /// Ping the member with this link name (UTF-8) within the timeout
    /// (ms, 8 bytes big-endian); answer whether it replied. Both travel as
    /// bytes, not `String` and `u64`, because ractor decodes those with
    /// `unwrap()` and slice indexing: a peer sending bad UTF-8 or a short
    /// number would panic the decoder (found by the `node_envelope` fuzz
    /// target). The encoding is the same, so version 1 peers interoperate.
    #[rpc]
    PingReq(Vec<u8>, Vec<u8>, RpcReplyPort<bool>),
}

/// The process group of a member's link service.
pub fn link_group(member: &MemberKey) -> String {
    format!("hypha.link.{}", member.link_name())
}

/// Find a peer's (remote) link service.
pub fn remote_link(member: &MemberKey) -> Option<ActorRef<LinkMessage>> {
    ractor::pg::get_members(&link_group(member))
        .into_iter()
        .find(|cell| !cell.get_id().is_local())
        .map(ActorRef::from)
}

/// Probes over node links.
#[derive(Clone, Default)]
pub struct LinkProbe;

impl ProbeTransport for LinkProbe {
    fn ping(
        &self,
        target: &MemberKey,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), ProbeError>> {
        let link = remote_link(target);
        let name = target.link_name();
        Box::pin(async move {
            let link = link.ok_or(ProbeError::NoLink(name))?;
            ping(&link, timeout).await
        })
    }

    fn ping_req(
        &self,
        via: &MemberKey,
        target: &MemberKey,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), ProbeError>> {
        let link = remote_link(via);
        let via_name = via.link_name();
        let target_name = target.link_name();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        Box::pin(async move {
            let link = link.ok_or(ProbeError::NoLink(via_name))?;
            // The relay gets most of the budget; the rest covers the hop back.
            let relay_ms = timeout_ms.saturating_mul(4) / 5;
            let answer = link
                .call(
                    |reply| {
                        LinkMessage::PingReq(
                            target_name.into_bytes(),
                            relay_ms.to_be_bytes().to_vec(),
                            reply,
                        )
                    },
                    Some(timeout),
                )
                .await;
            match answer {
                Ok(ractor::rpc::CallResult::Success(true)) => Ok(()),
                Ok(ractor::rpc::CallResult::Success(false)) => Err(ProbeError::RelayFailed),
                Ok(_) => Err(ProbeError::Timeout),
                Err(err) => Err(ProbeError::Link(err.to_string())),
            }
        })
    }
}

/// One application ping over a link.
pub async fn ping(link: &ActorRef<LinkMessage>, timeout: Duration) -> Result<(), ProbeError> {
    let nonce: u64 = rand::random();
    match link
        .call(
            |reply| LinkMessage::Ping(nonce.to_be_bytes().to_vec(), reply),
            Some(timeout),
        )
        .await
    {
        Ok(ractor::rpc::CallResult::Success(echo)) if echo == nonce => Ok(()),
        Ok(ractor::rpc::CallResult::Success(_)) => Err(ProbeError::Link("wrong nonce".into())),
        Ok(_) => Err(ProbeError::Timeout),
        // A frozen peer surfaces as a timeout or a send error at random.
        Err(err) => Err(ProbeError::Link(err.to_string())),
    }
}

/// The link service behaviour.
pub struct LinkService;

/// What each incarnation is given.
#[derive(Clone)]
pub struct LinkArgs {
    /// This member (its group name).
    pub me: MemberKey,
    /// How relayed probes travel (node links in production).
    pub probes: Arc<dyn ProbeTransport>,
}

/// State of one incarnation.
pub struct LinkState {
    probes: Arc<dyn ProbeTransport>,
    relays: JoinSet<()>,
}

impl Actor for LinkService {
    type Msg = LinkMessage;
    type State = LinkState;
    type Arguments = LinkArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<LinkMessage>,
        args: LinkArgs,
    ) -> Result<LinkState, ActorProcessingErr> {
        ractor::pg::join(link_group(&args.me), vec![myself.get_cell()]);
        Ok(LinkState {
            probes: args.probes,
            relays: JoinSet::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<LinkMessage>,
        message: LinkMessage,
        state: &mut LinkState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LinkMessage::Ping(nonce, reply) => {
                // A malformed nonce gets no answer: the peer's ping times out.
                if let Ok(nonce) = <[u8; 8]>::try_from(nonce.as_slice()) {
                    let _ = reply.send(u64::from_be_bytes(nonce));
                }
            }
            LinkMessage::PingReq(target, timeout_ms, reply) => {
                match <[u8; 8]>::try_from(timeout_ms.as_slice()) {
                    Ok(ms) => relay(state, &target, u64::from_be_bytes(ms), reply),
                    Err(_) => {
                        let _ = reply.send(false);
                    }
                }
            }
        }
        Ok(())
    }
}

fn relay(state: &mut LinkState, target: &[u8], timeout_ms: u64, reply: RpcReplyPort<bool>) {
    while state.relays.try_join_next().is_some() {}
    let target = std::str::from_utf8(target)
        .ok()
        .and_then(MemberKey::from_link_name);
    let Some(target) = target else {
        let _ = reply.send(false);
        return;
    };
    if state.relays.len() >= MAX_RELAYS {
        let _ = reply.send(false);
        return;
    }
    let timeout = Duration::from_millis(timeout_ms.min(MAX_RELAY_TIMEOUT_MS));
    let probe = state.probes.ping(&target, timeout);
    state.relays.spawn(async move {
        let ok = matches!(tokio::time::timeout(timeout, probe).await, Ok(Ok(())));
        let _ = reply.send(ok);
    });
}
