//! Bearer credentials of the admin and data API, and the roles they grant.
//!
//! Two kinds of credential are accepted:
//! - **Signed tokens** (JWT, HS256): minted by `hypha token create` with a
//!   token key the nodes also hold. They carry a role, a subject, an
//!   expiry and an id, and name the cluster as their audience. A node can
//!   hold several keys (by `kid`) so that a new key can be rolled out
//!   before the old one is retired.
//! - **Static tokens** (`HYPHA_ADMIN_TOKEN`, `HYPHA_READ_TOKEN`): bootstrap
//!   and break-glass secrets. They never expire, so they belong in a vault,
//!   not in scripts.
//!
//! Static tokens are held as BLAKE3 hashes and compared with `blake3::Hash`'s
//! constant-time equality, every entry every time, so neither the table nor
//! the timing of a check reveals one. Signatures are checked by aws-lc's
//! constant-time HMAC verification. Roles are ordered: admin ⊇ write ⊇ read.

use std::str::FromStr;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Issuer written into and required of every signed token.
pub const TOKEN_ISSUER: &str = "hypha";
/// Shortest token key accepted, in bytes: HS256 is as strong as its key.
pub const MIN_TOKEN_KEY_BYTES: usize = 32;
/// Clock skew tolerated on a token's expiry, in seconds.
pub const EXPIRY_LEEWAY_S: u64 = 30;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only routes.
    Read,
    /// Data mutations.
    Write,
    /// Node administration and chaos.
    Admin,
}

/// Why a request was not authorised.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// The token is not known, or its signature or claims do not verify.
    #[error("invalid bearer token")]
    Invalid,
    /// A correctly signed token whose expiry has passed.
    #[error("the bearer token has expired")]
    Expired,
    /// The token is valid but its role is too low.
    #[error("this route needs the {} role", .0.as_str())]
    Forbidden(Role),
}

/// A token key that cannot be used, or a token that cannot be made.
#[derive(Debug, Error)]
pub enum TokenKeyError {
    /// The key is shorter than [`MIN_TOKEN_KEY_BYTES`].
    #[error("a token key must be at least {MIN_TOKEN_KEY_BYTES} bytes, this one has {0}")]
    TooShort(usize),
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// A key that signs and verifies tokens (HMAC-SHA-256).
#[derive(Clone)]
pub struct TokenKey {
    kid: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({})", self.kid)
    }
}

impl TokenKey {
    /// A key from its secret bytes.
    pub fn new(secret: &[u8]) -> Result<Self, TokenKeyError> {
        if secret.len() < MIN_TOKEN_KEY_BYTES {
            return Err(TokenKeyError::TooShort(secret.len()));
        }
        // The id names the key without revealing it: a derived hash.
        let kid = blake3::derive_key("hypha 2026 token key id v1", secret);
        Ok(Self {
            kid: hex::encode(&kid[..8]),
            secret: secret.to_vec(),
        })
    }

    /// The key's public id (the JWT `kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Sign `claims` into a token.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenKeyError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_secret(&self.secret),
        )?)
    }
}

/// The claims of a signed token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Always [`TOKEN_ISSUER`].
    pub iss: String,
    /// The cluster id the token is good for.
    pub aud: String,
    /// Who the token was issued to (free text, for logs and rate limits).
    pub sub: String,
    /// The role it grants.
    pub role: Role,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Token id, unique per token: rate limits are kept per token.
    pub jti: String,
}

impl Claims {
    /// Claims for a new token for `cluster_id`, valid `ttl_s` from `now_s`.
    pub fn new(cluster_id: &str, subject: &str, role: Role, now_s: u64, ttl_s: u64) -> Self {
        let mut jti = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut jti);
        Self {
            iss: TOKEN_ISSUER.to_owned(),
            aud: cluster_id.to_owned(),
            sub: subject.to_owned(),
            role,
            iat: now_s,
            exp: now_s.saturating_add(ttl_s),
            jti: hex::encode(jti),
        }
    }
}

/// Who made a request, once authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The role the credential grants.
    pub role: Role,
    /// A stable, bounded name of the credential: rate limits are kept per
    /// principal. Never the token itself.
    pub key: String,
}

impl Principal {
    fn anonymous() -> Self {
        Self {
            role: Role::Read,
            key: "anonymous".to_owned(),
        }
    }
}

/// Accepted credentials: static token hashes and token keys.
#[derive(Clone)]
pub struct TokenTable {
    statics: Vec<(blake3::Hash, Role)>,
    keys: Vec<(String, DecodingKey)>,
    validation: Validation,
    open_reads: bool,
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenTable")
            .field("statics", &self.statics.len())
            .field(
                "keys",
                &self.keys.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("open_reads", &self.open_reads)
            .finish()
    }
}

impl TokenTable {
    /// Whether read routes answer without a token.
    pub fn open_reads(&self) -> bool {
        self.open_reads
    }

    /// An empty table for `cluster_id`; `open_reads` lets read-only routes
    /// skip the check.
    pub fn new(cluster_id: &str, open_reads: bool) -> Self {
        // One algorithm only: a token cannot pick a weaker one (or `none`).
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[cluster_id]);
        validation.set_issuer(&[TOKEN_ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = EXPIRY_LEEWAY_S;
        Self {
            statics: Vec::new(),
            keys: Vec::new(),
            validation,
            open_reads,
        }
    }

    /// Accept the static `token` with `role`.
    pub fn add(&mut self, token: &str, role: Role) {
        self.statics.push((blake3::hash(token.as_bytes()), role));
    }

    /// Accept tokens signed with `key`.
    pub fn add_key(&mut self, key: &TokenKey) {
        self.keys
            .push((key.kid.clone(), DecodingKey::from_secret(&key.secret)));
    }

    /// Check an `Authorization` header value against the role `needed`.
    pub fn authorize(&self, header: Option<&str>, needed: Role) -> Result<Principal, AuthError> {
        let principal = match self.identify(header) {
            Err(AuthError::Missing) if needed == Role::Read && self.open_reads => {
                return Ok(Principal::anonymous())
            }
            other => other?,
        };
        if principal.role >= needed {
            Ok(principal)
        } else {
            Err(AuthError::Forbidden(needed))
        }
    }

    /// The highest role an `Authorization` header value grants.
    pub fn role_of(&self, header: Option<&str>) -> Result<Role, AuthError> {
        self.authorize(header, Role::Read).map(|p| p.role)
    }

    fn identify(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let token = bearer_token(header).ok_or(AuthError::Missing)?;
        let presented = blake3::hash(token.as_bytes());
        // Check every entry so the time taken does not depend on which matched.
        let mut role = None;
        for (hash, r) in &self.statics {
            if *hash == presented {
                role = Some(*r);
            }
        }
        match role {
            Some(role) => Ok(Principal {
                role,
                key: format!("static:{}", &presented.to_hex()[..16]),
            }),
            None => self.verify_signed(token),
        }
    }

    fn verify_signed(&self, token: &str) -> Result<Principal, AuthError> {
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Invalid)?
            .kid
            .ok_or(AuthError::Invalid)?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| *k == kid)
            .ok_or(AuthError::Invalid)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    _ => AuthError::Invalid,
                }
            })?;
        Ok(Principal {
            role: data.claims.role,
            key: format!("token:{}", data.claims.jti),
        })
    }
}

impl Role {
    /// The role's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}: read, write or admin")),
        }
    }
}

/// The token of an `Authorization: Bearer …` header value, if it has one.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;

    const CLUSTER: &str = "test-cluster";

    fn now_s() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn key(byte: u8) -> TokenKey {
        TokenKey::new(&[byte; 32]).unwrap()
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn static_roles_are_ordered_and_checked() {
        let mut t = TokenTable::new(CLUSTER, false);
        t.add("admin-token-0123456789", Role::Admin);
        t.add("read-token-0123456789", Role::Read);
        let admin = Some("Bearer admin-token-0123456789");
        let read = Some("Bearer read-token-0123456789");
        assert_eq!(t.authorize(admin, Role::Admin).unwrap().role, Role::Admin);
        assert_eq!(t.authorize(admin, Role::Read).unwrap().role, Role::Admin);
        assert_eq!(t.authorize(read, Role::Read).unwrap().role, Role::Read);
        assert_eq!(
            t.authorize(read, Role::Admin),
            Err(AuthError::Forbidden(Role::Admin))
        );
        assert_eq!(t.authorize(None, Role::Read), Err(AuthError::Missing));
        assert_eq!(
            t.authorize(Some("Basic x"), Role::Read),
            Err(AuthError::Missing)
        );
        assert_eq!(
            t.authorize(Some("Bearer nope"), Role::Read),
            Err(AuthError::Invalid)
        );
        assert_eq!(t.role_of(admin), Ok(Role::Admin));
        assert_eq!(t.role_of(read), Ok(Role::Read));
        assert_eq!(t.role_of(None), Err(AuthError::Missing));
        assert_eq!(t.role_of(Some("Bearer nope")), Err(AuthError::Invalid));
        let open = TokenTable::new(CLUSTER, true);
        assert_eq!(open.role_of(None), Ok(Role::Read));
        assert_eq!(open.authorize(None, Role::Admin), Err(AuthError::Missing));
        // A bad token is refused even where reads are open.
        assert_eq!(open.role_of(Some("Bearer nope")), Err(AuthError::Invalid));
    }

    #[test]
    fn signed_tokens_carry_their_role_until_they_expire() {
        let k = key(7);
        let mut t = TokenTable::new(CLUSTER, false);
        t.add_key(&k);
        let write = k
            .sign(&Claims::new(CLUSTER, "ci", Role::Write, now_s(), 600))
            .unwrap();
        let p = t.authorize(Some(&bearer(&write)), Role::Write).unwrap();
        assert_eq!(p.role, Role::Write);
        assert!(p.key.starts_with("token:") && !p.key.contains(&write));
        assert_eq!(
            t.authorize(Some(&bearer(&write)), Role::Admin),
            Err(AuthError::Forbidden(Role::Admin))
        );
        let old = now_s() - 3_600;
        let expired = k
            .sign(&Claims::new(CLUSTER, "ci", Role::Admin, old, 60))
            .unwrap();
        assert_eq!(
            t.authorize(Some(&bearer(&expired)), Role::Read),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn forged_foreign_and_unsigned_tokens_are_refused() {
        let mut t = TokenTable::new(CLUSTER, false);
        t.add_key(&key(7));
        let claims = Claims::new(CLUSTER, "x", Role::Admin, now_s(), 600);
        // Signed with another key under the trusted key's id.
        let mut forged = key(8);
        forged.kid = key(7).kid;
        let forged = forged.sign(&claims).unwrap();
        // For another cluster.
        let foreign = key(7)
            .sign(&Claims::new("other", "x", Role::Admin, now_s(), 600))
            .unwrap();
        // `alg: none` with the trusted key id.
        let header = format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, key(7).kid);
        let body = serde_json::to_string(&claims).unwrap();
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s.as_bytes());
        let unsigned = format!("{}.{}.", b64(&header), b64(&body));
        // A trusted token with its role edited.
        let good = key(7).sign(&claims).unwrap();
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut edited = claims.clone();
        edited.role = Role::Admin;
        edited.sub = "y".into();
        parts[1] = b64(&serde_json::to_string(&edited).unwrap());
        let tampered = parts.join(".");
        for bad in [forged, foreign, unsigned, tampered, "a.b.c".into()] {
            assert_eq!(
                t.authorize(Some(&bearer(&bad)), Role::Read),
                Err(AuthError::Invalid),
                "{bad}"
            );
        }
        assert!(t.authorize(Some(&bearer(&good)), Role::Admin).is_ok());
    }

    #[test]
    fn short_keys_are_refused_and_key_ids_differ() {
        assert!(matches!(
            TokenKey::new(b"short"),
            Err(TokenKeyError::TooShort(5))
        ));
        assert_ne!(key(1).kid(), key(2).kid());
        assert!(!format!("{:?}", key(1)).contains("0101"));
    }
}
