//! Password hashing: argon2id with a random salt, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$…`), so parameters can be raised later
//! without breaking existing hashes.

use crate::error::{Error, Result};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use secrecy::{ExposeSecret, SecretString};

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in bytes (bounds the hashing work).
pub const MAX_LEN: usize = 1024;

/// Validates and hashes a password into a PHC string.
///
/// ```
/// use insightpulse_core::tenancy::passwords::{hash, verify};
/// use insightpulse_core::SecretString;
/// let phc = hash(&SecretString::from("correct horse")).unwrap();
/// assert!(phc.starts_with("$argon2id$"));
/// assert!(verify(&SecretString::from("correct horse"), &phc));
/// assert!(!verify(&SecretString::from("wrong horse"), &phc));
/// ```
pub fn hash(password: &SecretString) -> Result<String> {
    let pw = password.expose_secret();
    if pw.chars().count() < MIN_LEN || pw.len() > MAX_LEN {
        return Err(Error::validation(
            "password",
            "must be 8 to 1024 characters",
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::validation("password", e.to_string()))
}

/// Whether `password` matches a stored PHC string (false for a malformed one).
pub fn verify(password: &SecretString, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}
