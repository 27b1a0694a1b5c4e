//! The error every subsystem's settings `validate()` returns: which key
//! (as the config file spells it) is wrong, and why. The node's config
//! layer shows it to the operator unchanged.

use thiserror::Error;

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid setting {key}: {message}")]
pub struct SettingsError {
    /// The key, dotted from its section (`dht.replicas`).
    pub key: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

impl SettingsError {
    /// `key` is wrong because of `message`.
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }
}

/// `Err(SettingsError)` naming `key` unless `ok`: validations read as a
/// list of rules.
pub fn check(ok: bool, key: &'static str, message: &str) -> Result<(), SettingsError> {
    if ok {
        Ok(())
    } else {
        Err(SettingsError::new(key, message))
    }
}
