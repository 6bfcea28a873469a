//! Password hashing: argon2id with a random salt, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$…`), so parameters can be raised later
//! without breaking existing hashes: verification reads them from the
//! stored string.
//!
//! Rule: a sign-in with an unknown email costs as much as one with a wrong
//! password ([`verify`] hashes a dummy), so timing does not tell which
//! emails have accounts.

use crate::error::{Error, Result};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in bytes (bounds the hashing work).
pub const MAX_LEN: usize = 1024;

/// How expensive new hashes are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PasswordCost {
    /// OWASP's argon2id parameters (19 MiB, 2 iterations, 1 lane): what a
    /// production backend uses.
    #[default]
    Standard,
    /// The smallest argon2id parameters (8 KiB, 1 iteration): hashes in
    /// microseconds. **Tests only**, the in-memory backend's default; a
    /// hash made this way is trivial to brute-force.
    InsecureFastForTests,
}

impl PasswordCost {
    fn argon2(self) -> Argon2<'static> {
        let params = match self {
            Self::Standard => Params::default(),
            Self::InsecureFastForTests => {
                Params::new(Params::MIN_M_COST, Params::MIN_T_COST, 1, None)
                    .expect("argon2's minimum parameters are valid")
            }
        };
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

/// Checks a new password's length.
pub fn validate(password: &SecretString) -> Result<()> {
    let pw = password.expose_secret();
    if pw.chars().count() < MIN_LEN || pw.len() > MAX_LEN {
        return Err(Error::validation(
            "password",
            "must be 8 to 1024 characters",
        ));
    }
    Ok(())
}

/// Validates and hashes a password into a PHC string.
///
/// ```
/// use insightpulse_core::tenancy::passwords::{hash, verify, PasswordCost};
/// use insightpulse_core::SecretString;
/// let cost = PasswordCost::InsecureFastForTests;
/// let phc = hash(&SecretString::from("correct horse"), cost).unwrap();
/// assert!(phc.starts_with("$argon2id$"));
/// assert!(verify(&SecretString::from("correct horse"), Some(&phc), cost));
/// assert!(!verify(&SecretString::from("wrong horse"), Some(&phc), cost));
/// assert!(!verify(&SecretString::from("correct horse"), None, cost));
/// ```
pub fn hash(password: &SecretString, cost: PasswordCost) -> Result<String> {
    validate(password)?;
    let salt = SaltString::generate(&mut OsRng);
    cost.argon2()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| Error::validation("password", "cannot be hashed"))
}

/// Whether `password` matches the stored PHC string (false for a malformed
/// one). Without a stored hash (no such account, or no password set) it
/// hashes the password once at `cost` anyway and says no, so the answer
/// takes as long as a real check.
pub fn verify(password: &SecretString, stored: Option<&str>, cost: PasswordCost) -> bool {
    let pw = password.expose_secret().as_bytes();
    match stored.map(PasswordHash::new) {
        Some(Ok(h)) => Argon2::default().verify_password(pw, &h).is_ok(),
        Some(Err(_)) => false,
        None => {
            let salt = SaltString::generate(&mut OsRng);
            let _ = cost.argon2().hash_password(pw, &salt);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn lengths_are_bounded_at_both_ends() {
        let fast = PasswordCost::InsecureFastForTests;
        assert!(hash(&pw("1234567"), fast).is_err());
        assert!(hash(&pw("12345678"), fast).is_ok());
        assert!(hash(&pw(&"x".repeat(MAX_LEN)), fast).is_ok());
        assert!(hash(&pw(&"x".repeat(MAX_LEN + 1)), fast).is_err());
        // Characters, not bytes, count towards the minimum.
        assert!(hash(&pw("ééééééé"), fast).is_err());
    }

    #[test]
    fn each_cost_hashes_with_its_own_parameters() {
        let fast = hash(&pw("correct horse"), PasswordCost::InsecureFastForTests).unwrap();
        let standard = hash(&pw("correct horse"), PasswordCost::Standard).unwrap();
        assert!(fast.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{fast}");
        assert!(
            standard.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{standard}"
        );
        // Verification reads the parameters from the stored string.
        assert!(verify(
            &pw("correct horse"),
            Some(&fast),
            PasswordCost::Standard
        ));
        assert!(verify(
            &pw("correct horse"),
            Some(&standard),
            PasswordCost::InsecureFastForTests
        ));
        assert!(!verify(
            &pw("correct horse"),
            Some("not a phc string"),
            PasswordCost::Standard
        ));
    }
}
