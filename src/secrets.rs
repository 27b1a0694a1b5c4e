//! Secrets: the cluster cookie, the static admin/read bearer tokens and the
//! keys that verify signed tokens. Read from files or the environment; in
//! `--dev` mode, a missing cookie and admin token are generated and
//! announced. Outside dev mode a node refuses to start without a cookie.

use std::path::Path;

use rand::RngCore;
use thiserror::Error;

use crate::auth::{Role, TokenKey, TokenKeyError, TokenTable};
use crate::config::{Mode, SecretSources};

/// Shortest cookie accepted: the handshake is only as strong as the cookie.
pub const MIN_COOKIE_CHARS: usize = 16;
/// Shortest bearer token accepted.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A secret that is missing or unusable.
#[derive(Debug, Error)]
pub enum SecretError {
    /// No cookie was given outside dev mode.
    #[error(
        "no cluster cookie: set HYPHA_COOKIE, pass --cookie-file, or use --dev for a throwaway one"
    )]
    MissingCookie,
    /// A secret is too short.
    #[error("{what} must be at least {min} characters")]
    TooShort {
        /// Which secret.
        what: &'static str,
        /// The minimum.
        min: usize,
    },
    /// A token key is unusable.
    #[error("token key {path}: {reason}")]
    TokenKey {
        /// The file (or the variable) it came from.
        path: String,
        /// Why.
        reason: TokenKeyError,
    },
    /// A secret file could not be read.
    #[error("cannot read {what} from {path}: {source}")]
    Read {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A secret string that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Secrets resolved for one node.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// The cluster cookie.
    pub cookie: Secret,
    /// Bearer tokens and their roles.
    pub tokens: TokenTable,
    /// Secrets generated because `--dev` was given, to be announced.
    pub generated: Vec<(&'static str, Secret)>,
}

/// 32 random bytes as 64 hex digits.
pub fn generate() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret(hex::encode(bytes))
}

fn from_file_or_env(
    what: &'static str,
    file: Option<&Path>,
    env: &str,
    min: usize,
) -> Result<Option<Secret>, SecretError> {
    let text = match file {
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|source| SecretError::Read {
                what,
                path: path.display().to_string(),
                source,
            })?,
        ),
        None => std::env::var(env).ok(),
    };
    match text.map(|t| t.trim().to_owned()) {
        None => Ok(None),
        Some(t) if t.chars().count() < min => Err(SecretError::TooShort { what, min }),
        Some(t) => Ok(Some(Secret(t))),
    }
}

fn token_key(what: String, text: &str) -> Result<TokenKey, SecretError> {
    TokenKey::new(text.trim().as_bytes())
        .map_err(|reason| SecretError::TokenKey { path: what, reason })
}

/// Load the token key in `path` (its trimmed text is the key).
pub fn load_token_key(path: &Path) -> Result<TokenKey, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        what: "token key",
        path: path.display().to_string(),
        source,
    })?;
    token_key(path.display().to_string(), &text)
}

/// The keys that verify signed tokens: every file given, else `HYPHA_TOKEN_KEY`.
fn token_keys(sources: &SecretSources) -> Result<Vec<TokenKey>, SecretError> {
    if sources.token_key_files.is_empty() {
        return match std::env::var("HYPHA_TOKEN_KEY") {
            Ok(text) => Ok(vec![token_key("HYPHA_TOKEN_KEY".into(), &text)?]),
            Err(_) => Ok(Vec::new()),
        };
    }
    sources
        .token_key_files
        .iter()
        .map(|p| load_token_key(p))
        .collect()
}

/// Resolve the cookie and tokens for `mode` in cluster `cluster_id`.
pub fn resolve(
    sources: &SecretSources,
    mode: Mode,
    cluster_id: &str,
) -> Result<Secrets, SecretError> {
    let mut generated = Vec::new();
    let cookie = from_file_or_env(
        "cluster cookie",
        sources.cookie_file.as_deref(),
        "HYPHA_COOKIE",
        MIN_COOKIE_CHARS,
    )?;
    let cookie = match (cookie, mode) {
        (Some(c), _) => c,
        (None, Mode::Production) => return Err(SecretError::MissingCookie),
        (None, Mode::Dev) => {
            let c = generate();
            generated.push(("cluster cookie", c.clone()));
            c
        }
    };
    let admin = from_file_or_env(
        "admin token",
        sources.admin_token_file.as_deref(),
        "HYPHA_ADMIN_TOKEN",
        MIN_TOKEN_CHARS,
    )?;
    let admin = match (admin, mode) {
        (Some(t), _) => Some(t),
        (None, Mode::Production) => None,
        (None, Mode::Dev) => {
            let t = generate();
            generated.push(("admin token", t.clone()));
            Some(t)
        }
    };
    let read = from_file_or_env(
        "read token",
        sources.read_token_file.as_deref(),
        "HYPHA_READ_TOKEN",
        MIN_TOKEN_CHARS,
    )?;
    let mut tokens = TokenTable::new(cluster_id, sources.open_reads);
    for key in token_keys(sources)? {
        tokens.add_key(&key);
    }
    if let Some(t) = &admin {
        tokens.add(t.expose(), Role::Admin);
    }
    if let Some(t) = &read {
        tokens.add(t.expose(), Role::Read);
    }
    Ok(Secrets {
        cookie,
        tokens,
        generated,
    })
}
