//! The gossip keyring: which keys seal this node's gossip and which it
//! accepts.
//!
//! A key is derived with BLAKE3's key-derivation mode from a secret and
//! the cluster id, so one cookie used by two clusters still gives two
//! keys. By default the only secret is the cluster cookie. Rotation, as
//! with memberlist's keyring: the operator lists secrets in the gossip
//! keys file (`cluster.gossip_keys_file`); the first seals, every one is
//! accepted. Rolling a new secret in is three reloads on every node
//! (SIGHUP): add it second, move it first, drop the old one (see
//! docs/security.md). No datagram is refused at any step because every
//! node accepts both keys before any node seals with the new one.

use std::fmt;

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{Key, XChaCha20Poly1305};

/// Shortest secret accepted (the same bound as the cookie's).
pub const MIN_SECRET_LEN: usize = 32;

/// Most keys a ring holds: rotation needs two; a few more allow overlap.
pub const MAX_KEYS: usize = 4;

const KEY_CONTEXT: &str = "hypha 2026-12-06 gossip seal v1 key";
const ID_CONTEXT: &str = "hypha 2026-12-06 gossip seal v1 key id";

/// The public name of a key, carried in every datagram so the receiver
/// knows which key to try. Derived separately, so it says nothing of the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// One sealing key.
#[derive(Clone)]
pub struct GossipKey {
    id: KeyId,
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GossipKey").field("id", &self.id).finish()
    }
}

impl GossipKey {
    /// The key of `secret` in cluster `cluster_id`.
    pub fn derive(cluster_id: &str, secret: &[u8]) -> Self {
        let mut material = Vec::with_capacity(8 + cluster_id.len() + secret.len());
        material.extend_from_slice(&(cluster_id.len() as u64).to_le_bytes());
        material.extend_from_slice(cluster_id.as_bytes());
        material.extend_from_slice(secret);
        let key = blake3::derive_key(KEY_CONTEXT, &material);
        let id_hash = blake3::derive_key(ID_CONTEXT, &key);
        let mut id = [0u8; 8];
        id.copy_from_slice(&id_hash[..8]);
        Self {
            id: KeyId(id),
            cipher: XChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// The key's public name.
    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(super) fn cipher(&self) -> &XChaCha20Poly1305 {
        &self.cipher
    }
}

/// Why a keyring cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    /// No secret at all.
    #[error("the gossip keyring is empty: give at least one secret")]
    Empty,
    /// A secret shorter than [`MIN_SECRET_LEN`].
    #[error("gossip secret {index} is {len} bytes; at least {MIN_SECRET_LEN} are needed")]
    ShortSecret {
        /// Position in the list (0 = the sealing one).
        index: usize,
        /// Its length.
        len: usize,
    },
    /// More than [`MAX_KEYS`] secrets.
    #[error("{count} gossip secrets given; at most {MAX_KEYS} are kept")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// The same secret twice.
    #[error("gossip secret {index} repeats an earlier one")]
    Repeated {
        /// Position of the repeat.
        index: usize,
    },
}

/// The sealing key and every key accepted.
#[derive(Debug, Clone)]
pub struct Keyring {
    /// `keys[0]` seals; all are accepted.
    keys: Vec<GossipKey>,
}

impl Keyring {
    /// A ring from secrets, the first sealing.
    pub fn from_secrets<S: AsRef<[u8]>>(
        cluster_id: &str,
        secrets: &[S],
    ) -> Result<Self, KeyringError> {
        if secrets.is_empty() {
            return Err(KeyringError::Empty);
        }
        if secrets.len() > MAX_KEYS {
            return Err(KeyringError::TooMany {
                count: secrets.len(),
            });
        }
        let mut keys: Vec<GossipKey> = Vec::with_capacity(secrets.len());
        for (index, secret) in secrets.iter().enumerate() {
            let secret = secret.as_ref();
            if secret.len() < MIN_SECRET_LEN {
                return Err(KeyringError::ShortSecret {
                    index,
                    len: secret.len(),
                });
            }
            let key = GossipKey::derive(cluster_id, secret);
            if keys.iter().any(|k| k.id == key.id) {
                return Err(KeyringError::Repeated { index });
            }
            keys.push(key);
        }
        Ok(Self { keys })
    }

    /// Parse a gossip keys file: one secret a line, the first sealing;
    /// blank lines and lines starting with `#` are skipped.
    pub fn parse_file(cluster_id: &str, text: &str) -> Result<Self, KeyringError> {
        let secrets: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        Self::from_secrets(cluster_id, &secrets)
    }

    /// The key that seals.
    pub fn sealing(&self) -> &GossipKey {
        &self.keys[0]
    }

    /// The accepted key named `id`.
    pub fn find(&self, id: KeyId) -> Option<&GossipKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Every key's id, the sealing one first.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a-secret-of-at-least-thirty-two-bytes-aaaa";
    const B: &str = "a-secret-of-at-least-thirty-two-bytes-bbbb";

    #[test]
    fn keys_depend_on_secret_and_cluster() {
        let a = GossipKey::derive("c1", A.as_bytes()).id();
        assert_eq!(a, GossipKey::derive("c1", A.as_bytes()).id());
        assert_ne!(a, GossipKey::derive("c2", A.as_bytes()).id());
        assert_ne!(a, GossipKey::derive("c1", B.as_bytes()).id());
        // The length prefix keeps ("ab", "c…") and ("a", "bc…") apart.
        assert_ne!(
            GossipKey::derive("ab", b"c-secret").id(),
            GossipKey::derive("a", b"bc-secret").id()
        );
    }

    #[test]
    fn the_first_secret_seals_and_all_are_accepted() {
        let ring = Keyring::from_secrets("c", &[A, B]).unwrap();
        let a = GossipKey::derive("c", A.as_bytes()).id();
        let b = GossipKey::derive("c", B.as_bytes()).id();
        assert_eq!(ring.sealing().id(), a);
        assert!(ring.find(a).is_some() && ring.find(b).is_some());
        assert_eq!(ring.ids(), vec![a, b]);
    }

    #[test]
    fn bad_rings_are_refused() {
        let none: [&str; 0] = [];
        assert_eq!(
            Keyring::from_secrets("c", &none).unwrap_err(),
            KeyringError::Empty
        );
        assert!(matches!(
            Keyring::from_secrets("c", &[A, "short"]).unwrap_err(),
            KeyringError::ShortSecret { index: 1, len: 5 }
        ));
        assert_eq!(
            Keyring::from_secrets("c", &[A, B, A]).unwrap_err(),
            KeyringError::Repeated { index: 2 }
        );
        assert!(matches!(
            Keyring::from_secrets("c", &[A; 5]).unwrap_err(),
            KeyringError::TooMany { count: 5 }
        ));
    }

    #[test]
    fn the_file_skips_comments_and_blank_lines() {
        let text = format!("# rotation step 1\n\n{B}\n  {A}  \n");
        let ring = Keyring::parse_file("c", &text).unwrap();
        assert_eq!(
            ring.ids(),
            vec![
                GossipKey::derive("c", B.as_bytes()).id(),
                GossipKey::derive("c", A.as_bytes()).id()
            ]
        );
    }
}
