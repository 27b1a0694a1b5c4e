//! S3 access keys: made by the node, kept in the cluster's files, each
//! mapped to a role of the token model. Signature V4 needs the secret
//! itself on the server (it is an HMAC key), so it cannot be stored
//! hashed: it is **sealed** (ChaCha20-Poly1305) under a key derived from
//! the cluster's cookie, which every node has and no file holds. The
//! record names the access key and role in clear; the secret is never
//! logged or shown again after it is made. Pure: making, sealing and
//! opening records; reading and writing them is `store.rs`'s.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};

/// Version of a stored [`KeyRecord`].
pub const KEY_RECORD_VERSION: u16 = 1;
const SEAL_CONTEXT: &str = "hypha 2026-12 s3 access key seal v1";
const ACCESS_KEY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// What a key may do (the token model's roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// List and read.
    Read,
    /// Read, write and delete objects and buckets.
    Write,
    /// As write (S3 has nothing more).
    Admin,
}

impl KeyRole {
    /// Parse an API name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// An access key as stored (`.hypha/s3/keys/<access key>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// [`KEY_RECORD_VERSION`].
    pub version: u16,
    /// The access key id.
    pub access_key: String,
    /// Its role.
    pub role: KeyRole,
    /// Who or what it is for.
    pub description: String,
    /// Made at (Unix ms).
    pub created_ms: u64,
    /// The secret, sealed: a 12-byte nonce, then the ciphertext and tag.
    pub sealed_secret: Vec<u8>,
}

/// Why a record cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The seal does not open (another cluster's cookie, or tampered).
    #[error("the access key's secret does not unseal (another cluster's cookie, or tampered)")]
    Unseal,
    /// The record does not decode.
    #[error("access key record: {0}")]
    Corrupt(String),
}

/// The sealing key of a cluster: derived from its cookie.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl SealKey {
    /// The key for the cluster whose cookie is `cookie`.
    pub fn from_cookie(cookie: &[u8]) -> Self {
        Self(blake3::derive_key(SEAL_CONTEXT, cookie))
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.0))
    }

    /// Seal `secret` for the record of `access_key` (bound to it: a
    /// sealed secret moved to another key's record does not open).
    pub fn seal(&self, access_key: &str, secret: &str, nonce: [u8; 12]) -> Vec<u8> {
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: access_key.as_bytes(),
        };
        let mut out = nonce.to_vec();
        // Encryption with a valid key and nonce does not fail.
        out.extend(
            self.cipher()
                .encrypt(Nonce::from_slice(&nonce), payload)
                .unwrap_or_default(),
        );
        out
    }

    /// The secret of `record`.
    pub fn open(&self, record: &KeyRecord) -> Result<String, KeyError> {
        if record.sealed_secret.len() < 12 + 16 {
            return Err(KeyError::Unseal);
        }
        let (nonce, sealed) = record.sealed_secret.split_at(12);
        let payload = Payload {
            msg: sealed,
            aad: record.access_key.as_bytes(),
        };
        let plain = self
            .cipher()
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| KeyError::Unseal)?;
        String::from_utf8(plain).map_err(|_| KeyError::Unseal)
    }
}

/// A new access key id (20 characters, as AWS's) and secret (40).
pub fn generate(rng: &mut impl rand::Rng) -> (String, String) {
    let pick = |rng: &mut dyn rand::RngCore, set: &[u8], n: usize| -> String {
        (0..n)
            .map(|_| set[(rng.next_u32() as usize) % set.len()] as char)
            .collect()
    };
    let access = format!("HY{}", pick(rng, ACCESS_KEY_CHARS, 18));
    let secret = pick(rng, SECRET_CHARS, 40);
    (access, secret)
}

/// Whether `text` can be an access key id (before any lookup).
pub fn plausible_access_key(text: &str) -> bool {
    text.len() == 20
        && text.starts_with("HY")
        && text.bytes().all(|b| ACCESS_KEY_CHARS.contains(&b))
}

/// Encode a record with its version.
pub fn encode(record: &KeyRecord) -> Result<Vec<u8>, KeyError> {
    hypha_core::codec::encode_versioned(KEY_RECORD_VERSION, record)
        .map_err(|e| KeyError::Corrupt(e.to_string()))
}

/// Decode a stored record.
pub fn decode(bytes: &[u8]) -> Result<KeyRecord, KeyError> {
    let (version, body) = hypha_core::codec::split_version(bytes)
        .ok_or_else(|| KeyError::Corrupt("shorter than its header".into()))?;
    if version != KEY_RECORD_VERSION {
        return Err(KeyError::Corrupt(format!("version {version}")));
    }
    hypha_core::codec::decode(body).map_err(|e| KeyError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seal: &SealKey, access: &str, secret: &str) -> KeyRecord {
        KeyRecord {
            version: KEY_RECORD_VERSION,
            access_key: access.into(),
            role: KeyRole::Write,
            description: "ci".into(),
            created_ms: 1,
            sealed_secret: seal.seal(access, secret, [7; 12]),
        }
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_cookie_and_its_key() {
        let mut rng = rand::rng();
        let (access, secret) = generate(&mut rng);
        assert!(plausible_access_key(&access), "{access}");
        assert_eq!(secret.len(), 40);
        let seal = SealKey::from_cookie(b"cookie-a");
        let r = record(&seal, &access, &secret);
        assert!(!r
            .sealed_secret
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()));
        assert_eq!(seal.open(&r).as_deref(), Ok(secret.as_str()));
        let other = SealKey::from_cookie(b"cookie-b");
        assert_eq!(other.open(&r), Err(KeyError::Unseal));
        let mut moved = r.clone();
        moved.access_key = "HYAAAAAAAAAAAAAAAAAA".into();
        assert_eq!(seal.open(&moved), Err(KeyError::Unseal));
        let mut cut = r.clone();
        cut.sealed_secret.truncate(10);
        assert_eq!(seal.open(&cut), Err(KeyError::Unseal));
        assert_eq!(decode(&encode(&r).expect("encodes")), Ok(r));
        assert!(decode(&[0, 9, 1]).is_err());
    }

    #[test]
    fn roles_parse() {
        for role in [KeyRole::Read, KeyRole::Write, KeyRole::Admin] {
            assert_eq!(KeyRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(KeyRole::parse("root"), None);
    }
}
