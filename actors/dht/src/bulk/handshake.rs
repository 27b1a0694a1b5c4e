//! The bulk link's challenge and response. Both sides prove they hold the
//! cluster cookie without sending it:
//!
//! ```text
//! dialer → listener   HELLO      magic "HYBK", version, nonce_d (32 bytes)
//! listener → dialer   CHALLENGE  magic, version, nonce_l, mac("listener", nonce_d, nonce_l)
//! dialer → listener   PROOF      mac("dialer", nonce_d, nonce_l)
//! listener → dialer   ACCEPT     one byte
//! ```
//! `mac` is BLAKE3 keyed by a key derived from the cookie; the role in each
//! MAC stops a reflected answer, the two fresh nonces stop replay, and MACs
//! are compared in constant time. Without TLS this authenticates the peer
//! at connection time only (as the node link's cookie does): integrity and
//! secrecy of the bytes that follow need the TLS directory.

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MAGIC: &[u8; 4] = b"HYBK";
/// Bulk protocol version; a peer speaking another version is refused.
pub const BULK_VERSION: u16 = 1;
const KEY_CONTEXT: &str = "hypha 2026-11 bulk link cookie key v1";
const ACCEPT: u8 = 1;

/// Why a handshake failed.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// The peer does not speak this protocol or version.
    #[error("not a hypha bulk peer (bad magic or version {0})")]
    Protocol(u16),
    /// The peer could not prove it holds the cookie.
    #[error("the peer's cookie proof is wrong")]
    BadCookie,
    /// Not finished in time.
    #[error("handshake not finished within {0} ms")]
    Timeout(u64),
    /// The connection failed.
    #[error("handshake i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The key both sides derive from the cluster cookie.
#[derive(Clone)]
pub struct BulkKey([u8; 32]);

impl std::fmt::Debug for BulkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BulkKey(..)")
    }
}

impl BulkKey {
    /// Derive from the (cluster-scoped) link cookie.
    pub fn from_cookie(cookie: &str) -> Self {
        Self(blake3::derive_key(KEY_CONTEXT, cookie.as_bytes()))
    }

    fn mac(&self, role: &[u8], dialer: &[u8; 32], listener: &[u8; 32]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(role).update(dialer).update(listener);
        h.finalize()
    }
}

fn nonce() -> [u8; 32] {
    rand::random()
}

fn timeout_ms(limit: Duration) -> u64 {
    u64::try_from(limit.as_millis()).unwrap_or(u64::MAX)
}

async fn read_hello<R: AsyncRead + Unpin>(r: &mut R) -> Result<[u8; 32], HandshakeError> {
    let mut head = [0u8; 6];
    r.read_exact(&mut head).await?;
    let version = u16::from_be_bytes([head[4], head[5]]);
    if &head[..4] != MAGIC || version != BULK_VERSION {
        return Err(HandshakeError::Protocol(version));
    }
    let mut nonce = [0u8; 32];
    r.read_exact(&mut nonce).await?;
    Ok(nonce)
}

fn hello(nonce: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(38);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&BULK_VERSION.to_be_bytes());
    out.extend_from_slice(nonce);
    out
}

/// The dialing side.
pub async fn dial<S>(io: &mut S, key: &BulkKey, limit: Duration) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let run = async {
        let mine = nonce();
        io.write_all(&hello(&mine)).await?;
        io.flush().await?;
        let theirs = read_hello(io).await?;
        let mut mac = [0u8; 32];
        io.read_exact(&mut mac).await?;
        if blake3::Hash::from(mac) != key.mac(b"listener", &mine, &theirs) {
            return Err(HandshakeError::BadCookie);
        }
        io.write_all(key.mac(b"dialer", &mine, &theirs).as_bytes())
            .await?;
        io.flush().await?;
        let mut accept = [0u8; 1];
        io.read_exact(&mut accept)
            .await
            .map_err(|_| HandshakeError::BadCookie)?;
        if accept[0] != ACCEPT {
            return Err(HandshakeError::BadCookie);
        }
        Ok(())
    };
    tokio::time::timeout(limit, run)
        .await
        .map_err(|_| HandshakeError::Timeout(timeout_ms(limit)))?
}

/// The listening side.
pub async fn accept<S>(io: &mut S, key: &BulkKey, limit: Duration) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let run = async {
        let theirs = read_hello(io).await?;
        let mine = nonce();
        let mut challenge = hello(&mine);
        challenge.extend_from_slice(key.mac(b"listener", &theirs, &mine).as_bytes());
        io.write_all(&challenge).await?;
        io.flush().await?;
        let mut proof = [0u8; 32];
        io.read_exact(&mut proof).await?;
        if blake3::Hash::from(proof) != key.mac(b"dialer", &theirs, &mine) {
            return Err(HandshakeError::BadCookie);
        }
        io.write_all(&[ACCEPT]).await?;
        io.flush().await?;
        Ok(())
    };
    tokio::time::timeout(limit, run)
        .await
        .map_err(|_| HandshakeError::Timeout(timeout_ms(limit)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    async fn pair(dialer: &str, listener: &str) -> (Result<(), String>, Result<(), String>) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let (kd, kl) = (BulkKey::from_cookie(dialer), BulkKey::from_cookie(listener));
        let (d, l) = tokio::join!(async move { dial(&mut a, &kd, LIMIT).await }, async move {
            accept(&mut b, &kl, LIMIT).await
        });
        (d.map_err(|e| e.to_string()), l.map_err(|e| e.to_string()))
    }

    #[tokio::test]
    async fn same_cookie_is_accepted() {
        let (d, l) = pair("cookie-a", "cookie-a").await;
        assert!(d.is_ok() && l.is_ok(), "{d:?} {l:?}");
    }

    #[tokio::test]
    async fn a_wrong_cookie_is_refused_by_both_sides() {
        let (d, _) = pair("cookie-a", "cookie-b").await;
        assert!(d.unwrap_err().contains("cookie"));
    }

    #[tokio::test]
    async fn a_dialer_without_the_cookie_is_refused() {
        // A dialer that skips the MAC check and sends a forged proof.
        let (mut a, mut b) = tokio::io::duplex(4096);
        let key = BulkKey::from_cookie("right");
        let listener = tokio::spawn(async move { accept(&mut b, &key, LIMIT).await });
        a.write_all(&hello(&[7; 32])).await.unwrap();
        let mut challenge = [0u8; 70];
        a.read_exact(&mut challenge).await.unwrap();
        a.write_all(&[0u8; 32]).await.unwrap();
        let refused = listener.await.unwrap();
        assert!(matches!(refused, Err(HandshakeError::BadCookie)));
    }

    #[tokio::test]
    async fn other_protocols_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let key = BulkKey::from_cookie("c");
        a.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(matches!(
            accept(&mut b, &key, LIMIT).await,
            Err(HandshakeError::Protocol(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out() {
        let (_a, mut b) = tokio::io::duplex(4096);
        let key = BulkKey::from_cookie("c");
        assert!(matches!(
            accept(&mut b, &key, LIMIT).await,
            Err(HandshakeError::Timeout(5000))
        ));
    }
}
