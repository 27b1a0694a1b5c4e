//! `hypha token key|create`: token keys and signed API tokens
//! (docs/security.md).

use std::path::Path;

use anyhow::bail;

use crate::auth::{Claims, Role};
use crate::secrets;

/// Write a new random token key to `out`; refuses to overwrite one.
pub fn key(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        bail!(
            "{} exists; remove it first to make a new key",
            out.display()
        );
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    super::cert::write_secret(out, secrets::generate().expose())?;
    let key = secrets::load_token_key(out)?;
    println!("token key {} written to {}", key.kid(), out.display());
    Ok(())
}

/// Print a token for `subject` with `role`, valid `ttl_s`, signed with the
/// key in `key_file`.
pub fn create(
    key_file: &Path,
    role: Role,
    subject: &str,
    ttl_s: u64,
    cluster_id: &str,
) -> anyhow::Result<()> {
    if subject.is_empty() || subject.len() > 128 || subject.chars().any(char::is_control) {
        bail!("the subject must be 1-128 characters without control characters");
    }
    let key = secrets::load_token_key(key_file)?;
    let now_s = jsonwebtoken::get_current_timestamp();
    let token = key.sign(&Claims::new(cluster_id, subject, role, now_s, ttl_s))?;
    println!("{token}");
    Ok(())
}
