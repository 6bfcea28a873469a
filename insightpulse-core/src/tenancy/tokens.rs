//! One-time secrets handed to clients: API keys and invitation tokens.
//!
//! Rule: the plaintext exists only in the value returned to the caller. A
//! token looks like `ipk_<lookup>_<secret>`: the 16-character lookup part
//! (80 random bits) finds the row, the 52-character secret (256 random bits)
//! proves possession. Only the lookup prefix and an HMAC-SHA256 of the whole
//! token under a server-side pepper are stored, and the comparison is
//! constant-time. A fast keyed hash is right here (unlike passwords): the
//! secrets are high-entropy, so there is nothing to brute-force, and
//! verification sits on every request's hot path.

use crate::error::{Error, Rejection, Result};
use data_encoding::BASE32_DNSSEC;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::SecretString;
use sha2::Sha256;

const LOOKUP_BYTES: usize = 10;
const SECRET_BYTES: usize = 32;
const LOOKUP_LEN: usize = 16;
const SECRET_LEN: usize = 52;

/// How often an API key's `last_used_at` is written: at most once per this
/// interval per key (the hot path of every request then only reads).
pub const LAST_USED_INTERVAL: chrono::Duration = chrono::Duration::minutes(1);

/// Whether a key last used at `last` should record a use at `now`.
///
/// ```
/// use insightpulse_core::tenancy::tokens::{last_use_due, LAST_USED_INTERVAL};
/// let now = chrono::Utc::now();
/// assert!(last_use_due(None, now));
/// assert!(!last_use_due(Some(now - LAST_USED_INTERVAL + chrono::Duration::seconds(1)), now));
/// assert!(last_use_due(Some(now - LAST_USED_INTERVAL), now));
/// ```
pub fn last_use_due(
    last: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    last.is_none_or(|t| now - t >= LAST_USED_INTERVAL)
}

/// Whether a key whose secret matched may act at `now`: `Revoked` once it
/// is revoked, `Expired` from its expiry on (the rule of every backend).
///
/// ```
/// use insightpulse_core::tenancy::tokens::usable;
/// use insightpulse_core::Rejection;
/// let now = chrono::Utc::now();
/// assert_eq!(usable(None, Some(now), now), Err(Rejection::Expired));
/// assert_eq!(usable(Some(now), None, now), Err(Rejection::Revoked));
/// assert_eq!(usable(None, Some(now + chrono::Duration::seconds(1)), now), Ok(()));
/// ```
pub fn usable(
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> std::result::Result<(), Rejection> {
    if revoked_at.is_some() {
        Err(Rejection::Revoked)
    } else if expires_at.is_some_and(|e| now >= e) {
        Err(Rejection::Expired)
    } else {
        Ok(())
    }
}

/// The kind of token, which fixes its textual prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `ipk_…`
    ApiKey,
    /// `ipinv_…`
    Invitation,
}

impl TokenKind {
    fn tag(self) -> &'static str {
        match self {
            Self::ApiKey => "ipk",
            Self::Invitation => "ipinv",
        }
    }
}

/// Hashes tokens with HMAC-SHA256 under a server-side pepper.
#[derive(Clone)]
pub struct TokenHasher {
    pepper: std::sync::Arc<secrecy::SecretSlice<u8>>,
}

impl std::fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHasher(..)")
    }
}

/// The shortest pepper [`TokenHasher::new`] accepts, in bytes.
pub const MIN_PEPPER_LEN: usize = 32;

impl TokenHasher {
    /// A hasher keyed with `pepper`, a secret of at least
    /// [`MIN_PEPPER_LEN`] bytes from the host's configuration (e.g. 32
    /// random bytes, base64-encoded in an environment variable). Every
    /// process sharing a database must use the same pepper; changing it
    /// invalidates every issued API key and invitation.
    ///
    /// ```
    /// use insightpulse_core::tenancy::tokens::TokenHasher;
    /// assert!(TokenHasher::new(b"0123456789abcdef0123456789abcdef".to_vec()).is_ok());
    /// assert!(TokenHasher::new(b"short".to_vec()).is_err());
    /// ```
    pub fn new(pepper: impl Into<Vec<u8>>) -> Result<Self> {
        let pepper = pepper.into();
        if pepper.len() < MIN_PEPPER_LEN {
            return Err(Error::validation("pepper", "must be at least 32 bytes"));
        }
        Ok(Self::keyed(pepper))
    }

    /// A hasher keyed with a fixed, public pepper. **Development and tests
    /// only**: anyone can compute the hashes it makes.
    pub fn insecure_development() -> Self {
        Self::keyed(b"insightpulse-public-development-pepper-never-use-in-production".to_vec())
    }

    fn keyed(pepper: Vec<u8>) -> Self {
        Self {
            pepper: std::sync::Arc::new(secrecy::SecretSlice::from(pepper)),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        use secrecy::ExposeSecret;
        <Hmac<Sha256> as Mac>::new_from_slice(self.pepper.expose_secret())
            .expect("HMAC takes any key length")
    }

    /// The keyed hash of a whole token.
    pub fn hash(&self, token: &str) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Constant-time comparison of `token` against a stored hash.
    pub fn matches(&self, token: &str, stored: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(token.as_bytes());
        mac.verify_slice(stored).is_ok()
    }
}

/// A freshly issued token.
#[derive(Debug)]
pub struct IssuedToken {
    /// The public lookup prefix, including the kind tag (`ipk_…`).
    pub prefix: String,
    /// The whole plaintext token.
    pub token: SecretString,
    /// Its keyed hash, the only thing to store besides the prefix.
    pub hash: Vec<u8>,
}

/// Issues a new random token of `kind`.
pub fn issue(kind: TokenKind, hasher: &TokenHasher) -> IssuedToken {
    let mut rng = rand::rngs::OsRng;
    let mut lookup = [0u8; LOOKUP_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut lookup);
    rng.fill_bytes(&mut secret);
    let prefix = format!("{}_{}", kind.tag(), BASE32_DNSSEC.encode(&lookup));
    let token = format!("{prefix}_{}", BASE32_DNSSEC.encode(&secret));
    let hash = hasher.hash(&token);
    IssuedToken {
        prefix,
        token: SecretString::from(token),
        hash,
    }
}

/// The lookup prefix of a presented token, or `Malformed`.
///
/// ```
/// use insightpulse_core::tenancy::tokens::{issue, prefix_of, TokenHasher, TokenKind};
/// use insightpulse_core::ExposeSecret;
/// let hasher = TokenHasher::insecure_development();
/// let t = issue(TokenKind::ApiKey, &hasher);
/// assert_eq!(prefix_of(TokenKind::ApiKey, t.token.expose_secret()).unwrap(), t.prefix);
/// assert!(prefix_of(TokenKind::Invitation, t.token.expose_secret()).is_err());
/// assert!(hasher.matches(t.token.expose_secret(), &t.hash));
/// ```
pub fn prefix_of(kind: TokenKind, presented: &str) -> std::result::Result<&str, Rejection> {
    let tag = kind.tag();
    let well_formed = presented.len() == tag.len() + 1 + LOOKUP_LEN + 1 + SECRET_LEN
        && presented.starts_with(tag)
        && presented.as_bytes()[tag.len()] == b'_'
        && presented.as_bytes()[tag.len() + 1 + LOOKUP_LEN] == b'_'
        && presented[tag.len() + 1..]
            .bytes()
            .all(|b| b == b'_' || b.is_ascii_digit() || (b'a'..=b'v').contains(&b));
    if well_formed {
        Ok(&presented[..tag.len() + 1 + LOOKUP_LEN])
    } else {
        Err(Rejection::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn tokens_are_unique_and_only_their_own_hash_matches() {
        let h = TokenHasher::insecure_development();
        let a = issue(TokenKind::ApiKey, &h);
        let b = issue(TokenKind::ApiKey, &h);
        assert_ne!(a.prefix, b.prefix);
        assert!(h.matches(a.token.expose_secret(), &a.hash));
        assert!(!h.matches(b.token.expose_secret(), &a.hash));
        // another pepper gives another hash
        let other = TokenHasher::new([7u8; MIN_PEPPER_LEN].to_vec()).unwrap();
        assert!(!other.matches(a.token.expose_secret(), &a.hash));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let h = TokenHasher::insecure_development();
        let t = issue(TokenKind::ApiKey, &h);
        let s = t.token.expose_secret();
        for bad in [
            "",
            "ipk_",
            &s[..s.len() - 1],
            &s.to_uppercase(),
            &s.replacen("ipk", "ipx", 1),
        ] {
            assert_eq!(
                prefix_of(TokenKind::ApiKey, bad),
                Err(Rejection::Malformed),
                "{bad}"
            );
        }
    }
}
