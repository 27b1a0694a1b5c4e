//! [`SealedTransport`]: chitchat's UDP transport with every datagram
//! sealed ([`super::envelope`]), as a chitchat `Transport`.
//!
//! chitchat 0.13 keeps its wire (de)serialisation crate-private: a
//! `Transport` receives and returns parsed envelopes, never bytes. So the
//! sealed socket keeps chitchat's own `UdpSocket` inside, bound to an
//! ephemeral loopback port, and moves bytes through loopback:
//!
//! - send: the inner socket serialises the envelope to the `capture`
//!   socket; its bytes are sealed and sent from the public socket. chitchat
//!   awaits each send inline (never in a `select!`), so capture reads
//!   back exactly the datagram just written.
//! - recv: a datagram on the public socket is opened and bounds-checked
//!   ([`super::bounds`]); only then is its plaintext written to the inner
//!   socket, from one of [`TAPS`] tap sockets, and the tap's address maps
//!   the parsed envelope back to the real sender. chitchat's `recv` is
//!   cancelled by its own `select!` every tick, so the map (not the order
//!   of calls) carries the attribution; a plaintext chitchat refuses to
//!   parse just leaves its tap's entry to be overwritten.
//!
//! Datagrams reaching the inner or capture socket from anywhere else
//! (another local process) are dropped and counted. The two loopback hops
//! cost two extra syscalls a datagram, a few microseconds, at a few
//! datagrams a second (docs/benchmarks.md has the measured cost).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpTransport};
use chitchat::ChitchatEnvelope;
use serde::Deserialize;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::bounds;
use super::envelope::{Opener, Reject, Sealer};
use super::keyring::Keyring;
use super::rate::SenderRate;
use hypha_core::clock::SharedClock;

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
/// Tap sockets injecting opened plaintext into chitchat's socket.
pub const TAPS: usize = 16;
/// How long a send waits for chitchat's serialised bytes on loopback.
const CAPTURE_TIMEOUT_MS: u64 = 1_000;

/// The label of datagrams that reached an internal loopback socket from
/// elsewhere, beside the [`Reject`] reasons.
pub const UNEXPECTED_SOURCE: &str = "unexpected_source";

/// Limits of the sealed transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SealSettings {
    /// How far a sender's clock may be from this node's, either way. The
    /// chaos harness skews clocks by up to 60 s; NTP-synced hosts are
    /// within a second.
    pub max_clock_skew_ms: u64,
    /// What one datagram's chitchat blocks may decode to.
    pub max_decoded_bytes: u64,
    /// Sender epochs whose replay windows are kept.
    pub max_epochs: usize,
    /// Authentic datagrams a second one sender address may send.
    pub max_datagrams_per_sec: u32,
    /// ... and at once.
    pub datagram_burst: u32,
}

impl Default for SealSettings {
    fn default() -> Self {
        Self {
            max_clock_skew_ms: 120_000,
            max_decoded_bytes: 4 << 20,
            max_epochs: 4_096,
            max_datagrams_per_sec: 100,
            datagram_burst: 200,
        }
    }
}

/// Opens sealed gossip sockets.
pub struct SealedTransport {
    keys: watch::Receiver<Arc<Keyring>>,
    settings: SealSettings,
    clock: SharedClock,
}

impl SealedTransport {
    /// Sockets sealing with the ring currently in `keys` (a reload is a
    /// `send` on the other side; the next datagram uses it).
    pub fn new(
        keys: watch::Receiver<Arc<Keyring>>,
        settings: SealSettings,
        clock: SharedClock,
    ) -> Self {
        Self {
            keys,
            settings,
            clock,
        }
    }
}

#[async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let public = UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("failed to bind to {listen_addr}/UDP for gossip"))?;
        let loopback: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
        let inner = UdpTransport.open(loopback).await?;
        let inner_addr = inner.local_addr()?;
        let capture = UdpSocket::bind(loopback).await?;
        let capture_addr = capture.local_addr()?;
        let mut taps = Vec::with_capacity(TAPS);
        for _ in 0..TAPS {
            let tap = UdpSocket::bind(loopback).await?;
            let addr = tap.local_addr()?;
            taps.push((tap, addr));
        }
        Ok(Box::new(SealedSocket {
            public,
            inner,
            inner_addr,
            capture,
            capture_addr,
            taps,
            next_tap: 0,
            senders: HashMap::with_capacity(TAPS),
            sealer: Sealer::new(rand::random()),
            opener: Opener::new(self.settings.max_epochs, self.settings.max_clock_skew_ms),
            rate: SenderRate::new(
                self.settings.max_datagrams_per_sec,
                self.settings.datagram_burst,
                self.settings.max_epochs,
            ),
            keys: self.keys.clone(),
            settings: self.settings,
            clock: self.clock.clone(),
            buf: vec![0u8; MAX_DATAGRAM + 1].into_boxed_slice(),
            sealed: Vec::with_capacity(MAX_DATAGRAM),
        }))
    }
}

struct SealedSocket {
    public: UdpSocket,
    inner: Box<dyn Socket>,
    inner_addr: SocketAddr,
    capture: UdpSocket,
    capture_addr: SocketAddr,
    taps: Vec<(UdpSocket, SocketAddr)>,
    next_tap: usize,
    /// Tap address → the real sender and sealed size of the datagram it
    /// last injected.
    senders: HashMap<SocketAddr, (SocketAddr, usize)>,
    sealer: Sealer,
    opener: Opener,
    rate: SenderRate,
    keys: watch::Receiver<Arc<Keyring>>,
    settings: SealSettings,
    clock: SharedClock,
    buf: Box<[u8]>,
    sealed: Vec<u8>,
}

fn count_rejected(reason: &'static str) {
    metrics::counter!("hypha_gossip_rejected_total", "reason" => reason).increment(1);
}

/// Errors after which the socket still works (chitchat's own list).
fn is_transient(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::OutOfMemory
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
    )
}

impl SealedSocket {
    /// Read back what the inner socket just serialised.
    async fn capture(&mut self) -> anyhow::Result<usize> {
        let deadline = Duration::from_millis(CAPTURE_TIMEOUT_MS);
        loop {
            let (n, from) = tokio::time::timeout(deadline, self.capture.recv_from(&mut self.buf))
                .await
                .context("chitchat's serialised datagram did not arrive on loopback")??;
            if from == self.inner_addr {
                return Ok(n);
            }
            count_rejected(UNEXPECTED_SOURCE);
        }
    }

    /// Open a datagram from the public socket and hand its plaintext to
    /// chitchat. Synchronous, so a cancelled `recv` never leaves half of it.
    fn admit(&mut self, len: usize, from: SocketAddr) {
        let now_unix_ms = self.clock.wall_ms();
        let keys = self.keys.borrow().clone();
        let datagram = &mut self.buf[..len];
        let range = match self.opener.open(&keys, now_unix_ms, datagram) {
            Ok(range) => range,
            Err(reason) => {
                count_rejected(reason.label());
                tracing::debug!(%from, %reason, "gossip datagram dropped");
                return;
            }
        };
        if !self.rate.admit(from, now_unix_ms) {
            count_rejected(Reject::RateLimited.label());
            return;
        }
        let plaintext = &self.buf[range];
        if let Err(err) = bounds::check(plaintext, self.settings.max_decoded_bytes) {
            count_rejected(Reject::OutOfBounds.label());
            tracing::warn!(%from, %err, "authentic gossip datagram out of bounds, dropped");
            return;
        }
        let (tap, tap_addr) = &self.taps[self.next_tap];
        self.next_tap = (self.next_tap + 1) % self.taps.len();
        match tap.try_send_to(plaintext, self.inner_addr) {
            Ok(_) => {
                self.senders.insert(*tap_addr, (from, len));
            }
            Err(err) => {
                tracing::debug!(%err, "loopback hand-off to chitchat failed; datagram dropped")
            }
        }
    }
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.public
            .local_addr()
            .context("failed to get UDP socket address")
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let capture_addr = self.capture_addr;
        self.inner.send(capture_addr, envelope).await?;
        let len = self.capture().await?;
        let keys = self.keys.borrow().clone();
        let now_unix_ms = self.clock.wall_ms();
        self.sealer
            .seal(&keys, now_unix_ms, &self.buf[..len], &mut self.sealed);
        if self.sealed.len() > MAX_DATAGRAM {
            // chitchat fills deltas up to the UDP limit, which leaves no
            // room for the seal: such a delta is for clusters far above the
            // supported size (docs/membership.md).
            metrics::counter!("hypha_gossip_oversize_total").increment(1);
            tracing::warn!(len, %to, "gossip datagram too large to seal, dropped");
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        let num_bytes_sent = self
            .public
            .send_to(&self.sealed, to)
            .await
            .context("failed to send gossip datagram")?;
        Ok(SendOutcome { num_bytes_sent })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            tokio::select! {
                biased;
                parsed = self.inner.recv() => {
                    let parsed = parsed?;
                    match self.senders.remove(&parsed.from_addr) {
                        Some((from_addr, num_bytes_received)) => {
                            return Ok(RecvOutcome {
                                from_addr,
                                envelope: parsed.envelope,
                                num_bytes_received,
                            });
                        }
                        None => count_rejected(UNEXPECTED_SOURCE),
                    }
                }
                got = self.public.recv_from(&mut self.buf) => match got {
                    // One byte more than the largest datagram: a longer
                    // one was cut, so it cannot verify; let open() say so.
                    Ok((len, from)) => self.admit(len, from),
                    Err(err) if is_transient(&err) => {
                        tracing::debug!(%err, "transient gossip recv error");
                    }
                    Err(err) => return Err(err).context("fatal gossip recv error"),
                },
            }
        }
    }
}
