//! Bearer tokens and the caller they identify. No I/O beyond the operating system's random source.
//!
//! A token is `iarct_` followed by 64 hex digits (256 random bits from the operating system). It
//! is shown once, at creation; the database keeps only its SHA-256, so a leaked database does not
//! leak usable tokens. A SHA-256 (not a slow password hash) is the right tool here because the
//! secret has full entropy: there is nothing to brute-force.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::{FylkeCode, Role};

/// The prefix every token carries, so a leaked token is recognisable in logs and secret scanners.
pub const TOKEN_PREFIX: &str = "iarct_";

/// A freshly generated token: the secret (to print once) and its hash (to store). Its `Debug`
/// shows the hash only, so the secret cannot end up in a log by accident.
pub struct GeneratedToken {
    /// The bearer secret, `iarct_` + 64 hex digits.
    pub secret: String,
    /// `sha256(secret)` as lowercase hex: what the database stores.
    pub hash: String,
}

impl std::fmt::Debug for GeneratedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedToken")
            .field("secret", &"<redacted>")
            .field("hash", &self.hash)
            .finish()
    }
}

/// The operating system's random source failed; no token can be made safely.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct EntropyError(String);

/// Generates a new token from 256 bits of operating-system randomness.
///
/// # Errors
/// Fails only if the operating system cannot provide randomness.
pub fn generate_token() -> Result<GeneratedToken, EntropyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| EntropyError(e.to_string()))?;
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash_token(&secret);
    Ok(GeneratedToken { secret, hash })
}

/// SHA-256 of a presented token, lowercase hex.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a presented string has the shape of a token (cheap check before any database lookup).
pub fn looks_like_token(secret: &str) -> bool {
    secret
        .strip_prefix(TOKEN_PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The authenticated caller of a request: a token's identity and permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Caller {
    /// The token's id.
    pub token_id: i64,
    /// The token's name (e.g. "NAV Vestland").
    pub name: String,
    /// The token's role.
    pub role: Role,
    /// For the `fylke` role: the fylke the token is bound to.
    #[schema(value_type = Option<String>, example = "46")]
    pub fylke: Option<FylkeCode>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_distinct_well_formed_and_hashed() {
        let a = generate_token().expect("entropy");
        let b = generate_token().expect("entropy");
        assert_ne!(a.secret, b.secret);
        assert!(looks_like_token(&a.secret));
        assert_eq!(a.hash, hash_token(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.secret[TOKEN_PREFIX.len()..]));
    }

    #[test]
    fn hash_is_sha256_of_the_whole_token() {
        // sha256("iarct_" + "0"*64), computed with coreutils: printf 'iarct_%064d' 0 | sha256sum
        let secret = format!("{TOKEN_PREFIX}{}", "0".repeat(64));
        assert_eq!(
            hash_token(&secret),
            "2e382ed67caac986ab2b1ea1c3b99fd20c70208ad79e6e58a251d834205d3d21"
        );
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        for bad in [
            "",
            "iarct_",
            "iarct_xyz",
            "Bearer iarct_00",
            &"a".repeat(70),
        ] {
            assert!(!looks_like_token(bad), "{bad}");
        }
    }
}

/// Longest token name, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 200;

/// A validated request for a token: name, role and the fylke binding the role requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// Trimmed, 1-[`MAX_TOKEN_NAME_CHARS`] characters, no control or format characters
    /// ([`crate::domain::check_line`]).
    pub name: String,
    /// The role.
    pub role: Role,
    /// Set for, and only for, `fylke` tokens.
    pub fylke: Option<FylkeCode>,
}

/// Why a token request is invalid; each names the field to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenSpecError {
    /// The name is empty.
    #[error("name must not be empty; give the token a name of 1-200 characters")]
    EmptyName,
    /// The name is too long or holds a control or format character ([`crate::domain::check_line`]).
    #[error("name {0}")]
    BadName(crate::domain::TextError),
    /// A `fylke` token without a fylke code.
    #[error("a fylke token must be bound to a fylke: give its 2-digit code (e.g. 46)")]
    MissingFylke,
    /// A fylke code on a role that is not bound to one.
    #[error("only fylke tokens are bound to a fylke; remove the fylke code for role {0}")]
    UnexpectedFylke(Role),
}

impl TokenSpecError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            TokenSpecError::EmptyName | TokenSpecError::BadName(_) => "name",
            TokenSpecError::MissingFylke | TokenSpecError::UnexpectedFylke(_) => "fylke",
        }
    }
}

impl TokenSpec {
    /// Validates a token request.
    ///
    /// # Errors
    /// A [`TokenSpecError`] naming the field at fault.
    pub fn new(name: &str, role: Role, fylke: Option<FylkeCode>) -> Result<Self, TokenSpecError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(TokenSpecError::EmptyName);
        }
        crate::domain::check_line(name, MAX_TOKEN_NAME_CHARS).map_err(TokenSpecError::BadName)?;
        match (role, fylke) {
            (Role::Fylke, None) => Err(TokenSpecError::MissingFylke),
            (Role::Direktorat | Role::Forsker, Some(_)) => {
                Err(TokenSpecError::UnexpectedFylke(role))
            }
            _ => Ok(TokenSpec {
                name: name.to_owned(),
                role,
                fylke,
            }),
        }
    }
}
