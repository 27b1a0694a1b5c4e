//! A chitchat transport wrapper that counts gossip bytes into the
//! `hypha_gossip_bytes_{sent,received}_total` counters (chitchat keeps its
//! UDP socket private, so the wrapper is the only place bytes are seen).

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::ChitchatEnvelope;

/// Counts bytes on every socket the inner transport opens.
pub struct CountingTransport {
    inner: Arc<dyn Transport>,
}

impl CountingTransport {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn Transport>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl Transport for CountingTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let inner = self.inner.open(listen_addr).await?;
        Ok(Box::new(CountingSocket { inner }))
    }
}

struct CountingSocket {
    inner: Box<dyn Socket>,
}

#[async_trait]
impl Socket for CountingSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.inner.local_addr()
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let outcome = self.inner.send(to, envelope).await?;
        metrics::counter!("hypha_gossip_sent_bytes_total").increment(outcome.num_bytes_sent as u64);
        Ok(outcome)
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        let outcome = self.inner.recv().await?;
        metrics::counter!("hypha_gossip_received_bytes_total")
            .increment(outcome.num_bytes_received as u64);
        Ok(outcome)
    }
}
