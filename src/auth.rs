//! Bearer-token roles for the admin API.
//!
//! Tokens are kept as BLAKE3 hashes and compared with `blake3::Hash`'s
//! constant-time equality, so neither the table nor the timing of a check
//! reveals a token. Roles are ordered: admin ⊇ write ⊇ read.

use thiserror::Error;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    /// The token is not known.
    #[error("invalid bearer token")]
    Invalid,
    /// The token is known but its role is too low.
    #[error("this route needs the {0:?} role")]
    Forbidden(Role),
}

/// Known tokens (as hashes) and their roles.
#[derive(Debug, Clone)]
pub struct TokenTable {
    entries: Vec<(blake3::Hash, Role)>,
    open_reads: bool,
}

impl TokenTable {
    /// An empty table; `open_reads` lets read-only routes skip the check.
    pub fn new(open_reads: bool) -> Self {
        Self {
            entries: Vec::new(),
            open_reads,
        }
    }

    /// Accept `token` with `role`.
    pub fn add(&mut self, token: &str, role: Role) {
        self.entries.push((blake3::hash(token.as_bytes()), role));
    }

    /// Check an `Authorization` header value against the role `needed`.
    pub fn authorize(&self, header: Option<&str>, needed: Role) -> Result<(), AuthError> {
        if needed == Role::Read && self.open_reads {
            return Ok(());
        }
        let token = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let presented = blake3::hash(token.as_bytes());
        // Check every entry so the time taken does not depend on which matched.
        let mut role = None;
        for (hash, r) in &self.entries {
            if *hash == presented {
                role = Some(*r);
            }
        }
        match role {
            None => Err(AuthError::Invalid),
            Some(r) if r >= needed => Ok(()),
            Some(_) => Err(AuthError::Forbidden(needed)),
        }
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

impl TokenTable {
    /// The highest role an `Authorization` header value grants.
    pub fn role_of(&self, header: Option<&str>) -> Result<Role, AuthError> {
        for role in [Role::Admin, Role::Write] {
            match self.authorize(header, role) {
                Ok(()) => return Ok(role),
                Err(AuthError::Forbidden(_)) => {}
                Err(err) if !self.open_reads => return Err(err),
                Err(_) => {}
            }
        }
        self.authorize(header, Role::Read).map(|()| Role::Read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_checked() {
        let mut t = TokenTable::new(false);
        t.add("admin-token-0123456789", Role::Admin);
        t.add("read-token-0123456789", Role::Read);
        let admin = Some("Bearer admin-token-0123456789");
        let read = Some("Bearer read-token-0123456789");
        assert_eq!(t.authorize(admin, Role::Admin), Ok(()));
        assert_eq!(t.authorize(admin, Role::Read), Ok(()));
        assert_eq!(t.authorize(read, Role::Read), Ok(()));
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
        let open = TokenTable::new(true);
        assert_eq!(open.role_of(None), Ok(Role::Read));
        assert_eq!(open.authorize(None, Role::Read), Ok(()));
        assert_eq!(open.authorize(None, Role::Admin), Err(AuthError::Missing));
    }
}
