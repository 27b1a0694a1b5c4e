//! The sealed gossip datagram (format 1): authenticated encryption of one
//! chitchat datagram with the cluster's gossip key.
//!
//! ```text
//!  0..2   magic "HG"
//!  2      format (1)
//!  3      flags (0; others refused)
//!  4..12  key id           which key of the ring sealed it
//! 12..28  sender epoch     16 random bytes drawn when the socket opened
//! 28..36  counter          u64 LE, +1 per datagram of the epoch
//! 36..44  sent_unix_ms     u64 LE, the sender's wall clock
//! 44..    ciphertext       the chitchat datagram, XChaCha20-Poly1305
//! last 16 tag
//! ```
//!
//! The nonce is epoch ‖ counter (24 bytes): unique per key as long as two
//! sockets never draw the same 128-bit epoch. The header is the associated
//! data, so none of it can be changed without failing the tag. The checks
//! run cheapest first, and nothing a sender without the key controls gets
//! past [`Reject::Forged`]: the freshness and replay checks only ever see
//! authentic datagrams, so their counts are about real peers (a skewed
//! clock, a replay by someone on the path), never about forgeries.
//!
//! Pure: the clock is a parameter; no I/O.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Tag, XNonce};

use super::keyring::{KeyId, Keyring};
use super::replay::{ReplayGuard, ReplayVerdict};

/// First bytes of every sealed datagram.
pub const MAGIC: [u8; 2] = *b"HG";
/// The only format this code writes and reads.
pub const FORMAT: u8 = 1;
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = 44;
/// The Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// What sealing adds to a datagram.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Why a datagram was dropped. The label is the `reason` of
/// `hypha_gossip_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    /// Too short, or not a sealed datagram at all (e.g. plain chitchat).
    #[error("not a sealed gossip datagram")]
    Malformed,
    /// A format or flags this build does not know.
    #[error("unknown sealed-gossip format")]
    UnsupportedFormat,
    /// Sealed with a key this node does not hold.
    #[error("sealed with an unknown key")]
    UnknownKey,
    /// The tag does not verify: forged or damaged.
    #[error("authentication failed")]
    Forged,
    /// Authentic, but sent too long ago or too far in the future.
    #[error("sent outside the accepted clock window")]
    Stale,
    /// Authentic, but already accepted (or below the replay window).
    #[error("replayed")]
    Replayed,
    /// Authentic, but its chitchat content is out of bounds (see `bounds`).
    #[error("content out of bounds")]
    OutOfBounds,
    /// Authentic, but its sender is over its rate (see `rate`).
    #[error("sender over its rate")]
    RateLimited,
}

impl Reject {
    /// Every reason, for exporting the metric at zero.
    pub const ALL: [Reject; 8] = [
        Reject::Malformed,
        Reject::UnsupportedFormat,
        Reject::UnknownKey,
        Reject::Forged,
        Reject::Stale,
        Reject::Replayed,
        Reject::OutOfBounds,
        Reject::RateLimited,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::UnsupportedFormat => "unsupported_format",
            Reject::UnknownKey => "unknown_key",
            Reject::Forged => "forged",
            Reject::Stale => "stale",
            Reject::Replayed => "replayed",
            Reject::OutOfBounds => "out_of_bounds",
            Reject::RateLimited => "rate_limited",
        }
    }
}

/// The parsed header of a sealed datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Which key sealed it.
    pub key_id: KeyId,
    /// The sending socket's epoch.
    pub epoch: [u8; 16],
    /// The datagram's number in its epoch.
    pub counter: u64,
    /// The sender's wall clock at sealing.
    pub sent_unix_ms: u64,
}

impl Header {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT);
        out.push(0);
        out.extend_from_slice(&self.key_id.0);
        out.extend_from_slice(&self.epoch);
        out.extend_from_slice(&self.counter.to_le_bytes());
        out.extend_from_slice(&self.sent_unix_ms.to_le_bytes());
    }

    /// Parse the header of `datagram` (which must hold a tag after it).
    pub fn parse(datagram: &[u8]) -> Result<Self, Reject> {
        if datagram.len() < OVERHEAD || datagram[..2] != MAGIC {
            return Err(Reject::Malformed);
        }
        if datagram[2] != FORMAT || datagram[3] != 0 {
            return Err(Reject::UnsupportedFormat);
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&datagram[4..12]);
        let mut epoch = [0u8; 16];
        epoch.copy_from_slice(&datagram[12..28]);
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&datagram[28..36]);
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&datagram[36..44]);
        Ok(Self {
            key_id: KeyId(key_id),
            epoch,
            counter: u64::from_le_bytes(counter),
            sent_unix_ms: u64::from_le_bytes(sent),
        })
    }

    fn nonce(&self) -> XNonce {
        let mut nonce = [0u8; 24];
        nonce[..16].copy_from_slice(&self.epoch);
        nonce[16..].copy_from_slice(&self.counter.to_le_bytes());
        XNonce::from(nonce)
    }
}

/// The sending side of one socket: its epoch and counter.
#[derive(Debug)]
pub struct Sealer {
    epoch: [u8; 16],
    next_counter: u64,
}

impl Sealer {
    /// A sealer for a socket that drew `epoch` (random) when it opened.
    pub fn new(epoch: [u8; 16]) -> Self {
        Self {
            epoch,
            next_counter: 0,
        }
    }

    /// Seal `plaintext` with the ring's sealing key into `out` (cleared).
    pub fn seal(&mut self, ring: &Keyring, sent_unix_ms: u64, plaintext: &[u8], out: &mut Vec<u8>) {
        let key = ring.sealing();
        let header = Header {
            key_id: key.id(),
            epoch: self.epoch,
            counter: self.next_counter,
            sent_unix_ms,
        };
        // 2^64 datagrams per socket cannot be reached; wrapping would
        // reuse a nonce, so the counter saturates and the replay guard of
        // every receiver refuses the repeats instead.
        self.next_counter = self.next_counter.saturating_add(1);
        out.clear();
        out.reserve(OVERHEAD + plaintext.len());
        header.write(out);
        out.extend_from_slice(plaintext);
        let (aad, body) = out.split_at_mut(HEADER_LEN);
        let tag = key
            .cipher()
            .encrypt_in_place_detached(&header.nonce(), aad, body);
        match tag {
            Ok(tag) => out.extend_from_slice(&tag),
            // Only a plaintext over ~256 GiB fails: out of a datagram's reach.
            Err(_) => out.clear(),
        }
    }
}

/// The receiving side's settings and replay state.
pub struct Opener {
    replay: ReplayGuard,
    /// How far a sender's clock may be from ours, either way.
    pub max_clock_skew_ms: u64,
}

impl Opener {
    /// An opener remembering `max_epochs` senders' replay windows.
    pub fn new(max_epochs: usize, max_clock_skew_ms: u64) -> Self {
        Self {
            replay: ReplayGuard::new(max_epochs),
            max_clock_skew_ms,
        }
    }

    /// Verify and decrypt `datagram` in place; on success the plaintext
    /// is `datagram[HEADER_LEN..len - TAG_LEN]`, returned as a range.
    pub fn open(
        &mut self,
        ring: &Keyring,
        now_unix_ms: u64,
        datagram: &mut [u8],
    ) -> Result<std::ops::Range<usize>, Reject> {
        let header = Header::parse(datagram)?;
        let key = ring.find(header.key_id).ok_or(Reject::UnknownKey)?;
        let body_end = datagram.len() - TAG_LEN;
        let tag = Tag::clone_from_slice(&datagram[body_end..]);
        let (aad, rest) = datagram.split_at_mut(HEADER_LEN);
        let body = &mut rest[..body_end - HEADER_LEN];
        key.cipher()
            .decrypt_in_place_detached(&header.nonce(), aad, body, &tag)
            .map_err(|_| Reject::Forged)?;
        if now_unix_ms.abs_diff(header.sent_unix_ms) > self.max_clock_skew_ms {
            return Err(Reject::Stale);
        }
        match self.replay.check_and_record(header.epoch, header.counter) {
            ReplayVerdict::Fresh => Ok(HEADER_LEN..body_end),
            ReplayVerdict::Duplicate | ReplayVerdict::BelowWindow => Err(Reject::Replayed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "a-secret-of-at-least-thirty-two-bytes-aaaa";
    const B: &str = "a-secret-of-at-least-thirty-two-bytes-bbbb";
    const NOW: u64 = 1_780_000_000_000;

    fn ring(secrets: &[&str]) -> Keyring {
        Keyring::from_secrets("c", secrets).unwrap()
    }

    fn sealed(sealer: &mut Sealer, ring: &Keyring, at: u64, msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        sealer.seal(ring, at, msg, &mut out);
        out
    }

    fn open(opener: &mut Opener, ring: &Keyring, mut d: Vec<u8>) -> Result<Vec<u8>, Reject> {
        let range = opener.open(ring, NOW, &mut d)?;
        Ok(d[range].to_vec())
    }

    #[test]
    fn a_sealed_datagram_opens_once_to_its_plaintext() {
        let r = ring(&[A]);
        let mut s = Sealer::new([1; 16]);
        let mut o = Opener::new(16, 60_000);
        let d = sealed(&mut s, &r, NOW, b"chitchat bytes");
        assert_eq!(d.len(), b"chitchat bytes".len() + OVERHEAD);
        assert_eq!(open(&mut o, &r, d.clone()).unwrap(), b"chitchat bytes");
        assert_eq!(open(&mut o, &r, d), Err(Reject::Replayed));
        let next = sealed(&mut s, &r, NOW, b"");
        assert_eq!(open(&mut o, &r, next).unwrap(), b"");
    }

    #[test]
    fn plain_chitchat_and_short_input_are_malformed() {
        let r = ring(&[A]);
        let mut o = Opener::new(16, 60_000);
        // chitchat's own header: magic 45139 LE, version, type.
        let plain = vec![0x53, 0xb0, 1, 0, 0, 0, 0, 0];
        assert_eq!(open(&mut o, &r, plain), Err(Reject::Malformed));
        assert_eq!(open(&mut o, &r, b"HG".to_vec()), Err(Reject::Malformed));
        let mut d = sealed(&mut Sealer::new([1; 16]), &r, NOW, b"x");
        d[2] = 2;
        assert_eq!(open(&mut o, &r, d), Err(Reject::UnsupportedFormat));
    }

    #[test]
    fn another_key_is_unknown_and_a_changed_byte_is_forged() {
        let (ra, rb) = (ring(&[A]), ring(&[B]));
        let mut o = Opener::new(16, 60_000);
        let d = sealed(&mut Sealer::new([1; 16]), &rb, NOW, b"hello");
        assert_eq!(open(&mut o, &ra, d.clone()), Err(Reject::UnknownKey));
        for i in (HEADER_LEN - 20)..d.len() {
            if (4..12).contains(&i) {
                continue; // the key id: UnknownKey, above
            }
            let mut bad = d.clone();
            bad[i] ^= 0x40;
            assert_eq!(open(&mut o, &rb, bad), Err(Reject::Forged), "byte {i}");
        }
        // A forged key id of the right key: still the tag decides.
        let mut bad = sealed(&mut Sealer::new([2; 16]), &rb, NOW, b"x");
        let len = bad.len();
        bad[len - 1] ^= 1;
        assert_eq!(open(&mut o, &rb, bad), Err(Reject::Forged));
    }

    #[test]
    fn the_clock_window_holds_both_ways() {
        let r = ring(&[A]);
        let mut s = Sealer::new([1; 16]);
        let mut o = Opener::new(16, 60_000);
        for (at, ok) in [
            (NOW - 60_000, true),
            (NOW + 60_000, true),
            (NOW - 60_001, false),
            (NOW + 60_001, false),
        ] {
            let got = open(&mut o, &r, sealed(&mut s, &r, at, b"x"));
            assert_eq!(got.is_ok(), ok, "sent at now{:+}", at as i64 - NOW as i64);
            if !ok {
                assert_eq!(got, Err(Reject::Stale));
            }
        }
    }

    #[test]
    fn rotation_accepts_both_keys_and_seals_with_the_first() {
        let old = ring(&[A]);
        let both = ring(&[A, B]);
        let new_first = ring(&[B, A]);
        let new = ring(&[B]);
        let mut o = Opener::new(16, 60_000);
        let mut s = Sealer::new([1; 16]);
        // Step 1: some nodes accept B, all still seal with A.
        assert!(open(&mut o, &both, sealed(&mut s, &old, NOW, b"1")).is_ok());
        assert!(open(&mut o, &old, sealed(&mut s, &both, NOW, b"2")).is_ok());
        // Step 2: some seal with B; everyone accepts it already.
        assert!(open(&mut o, &both, sealed(&mut s, &new_first, NOW, b"3")).is_ok());
        assert!(open(&mut o, &new_first, sealed(&mut s, &both, NOW, b"4")).is_ok());
        // Step 3: A retired.
        assert!(open(&mut o, &new, sealed(&mut s, &new_first, NOW, b"5")).is_ok());
        assert_eq!(
            open(&mut o, &new, sealed(&mut s, &old, NOW, b"6")),
            Err(Reject::UnknownKey)
        );
    }

    proptest! {
        /// Random bytes never open, whatever they start with.
        #[test]
        fn random_bytes_never_open(mut d in proptest::collection::vec(any::<u8>(), 0..200), magic in any::<bool>()) {
            if magic && d.len() >= 4 {
                d[..4].copy_from_slice(&[b'H', b'G', FORMAT, 0]);
            }
            let r = ring(&[A]);
            let mut o = Opener::new(4, u64::MAX);
            prop_assert!(o.open(&r, NOW, &mut d).is_err());
        }

        /// Every sealed plaintext opens to itself.
        #[test]
        fn sealed_plaintext_round_trips(msg in proptest::collection::vec(any::<u8>(), 0..2_000)) {
            let r = ring(&[A]);
            let mut s = Sealer::new([9; 16]);
            let mut o = Opener::new(4, 1_000);
            prop_assert_eq!(open(&mut o, &r, sealed(&mut s, &r, NOW, &msg)).unwrap(), msg);
        }
    }
}
