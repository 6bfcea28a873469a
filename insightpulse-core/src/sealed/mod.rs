//! Sealed values: the one envelope encryption every module stores its
//! secrets through (integration secrets, webhook signing secrets, OAuth
//! tokens, provider API keys, TLS private keys).
//!
//! Each value is encrypted with AES-256-GCM under its own random 256-bit
//! data key (DEK) and a random 96-bit nonce; the DEK is wrapped (AES-256-GCM
//! again, its own random nonce) under the current key-encryption key (KEK) of
//! a [`KeyRing`] the host supplies, and the [`Sealed`] value names that KEK
//! by id, so KEKs rotate: [`rotate_kek`] re-wraps the DEK under the ring's
//! current key and leaves the payload's ciphertext untouched.
//!
//! Rules guarded here:
//! - **A ciphertext opens only where it was sealed.** Payload and wrapped
//!   DEK authenticate a [`SealContext`] — tenant, table, row, version —
//!   as associated data, so a value copied to another tenant, table, row or
//!   version fails to open ([`SealRejection::Unopenable`]).
//! - **Failures do not tell why beyond what an operator needs.** Wrong key
//!   material, altered bytes and another row's context are one rejection,
//!   `Unopenable`; a KEK id the ring does not hold is `UnknownKey` (the id is
//!   written in the clear anyway); bytes that are not a sealed value are
//!   `Malformed`. No error text holds key, plaintext or ciphertext.
//! - **Plaintext and keys live in `secrecy` types**, wiped on drop, with a
//!   redacting `Debug`: opened values are [`SecretBox<[u8]>`](SecretBox) or
//!   [`SecretString`], DEKs and KEK bytes are `SecretBox<[u8; 32]>`, and the
//!   AES key schedules made from them are zeroized on drop.
//! - Pure: no I/O (the env ring reads its variable once, when built). The
//!   stored form is [`Sealed::to_bytes`] (`bytea`) or serde (`jsonb`).
//!
//! ```
//! use insightpulse_core::sealed::{self, SealContext, TestKeyRing};
//! use insightpulse_core::{ExposeSecret, TenantId};
//! use uuid::Uuid;
//!
//! let ring = TestKeyRing::random(&["k1"]);
//! let ctx = SealContext::new(TenantId::new(), "webhook_endpoints", Uuid::new_v4(), 1);
//! let stored = sealed::seal(&ring, &ctx, b"whsec_abc")?.to_bytes();
//!
//! let value = sealed::Sealed::from_bytes(&stored)?;
//! assert_eq!(sealed::open(&ring, &ctx, &value)?.expose_secret(), b"whsec_abc");
//! let elsewhere = SealContext { version: 2, ..ctx };
//! assert!(sealed::open(&ring, &elsewhere, &value).is_err());
//! # Ok::<(), insightpulse_core::Error>(())
//! ```
//!
//! An opened value cannot reach an audit diff, a log line or a tracing
//! field by accident: none of its types is `Serialize` or `Display`, and
//! their `Debug` (what `?field` records) prints `[REDACTED]` (a test
//! checks every type's output). An audit diff takes only what serializes:
//!
//! ```
//! # let ring = insightpulse_core::sealed::TestKeyRing::random(&["k1"]);
//! # let ctx = insightpulse_core::sealed::SealContext::new(insightpulse_core::TenantId::new(), "t", uuid::Uuid::new_v4(), 1);
//! # let value = insightpulse_core::sealed::seal(&ring, &ctx, b"whsec_abc").unwrap();
//! let opened = insightpulse_core::sealed::open_string(&ring, &ctx, &value).unwrap();
//! let diff = insightpulse_core::audit::Diff::new().set("rotated", true);
//! # let _ = (opened, diff);
//! ```
//!
//! ```compile_fail
//! # let ring = insightpulse_core::sealed::TestKeyRing::random(&["k1"]);
//! # let ctx = insightpulse_core::sealed::SealContext::new(insightpulse_core::TenantId::new(), "t", uuid::Uuid::new_v4(), 1);
//! # let value = insightpulse_core::sealed::seal(&ring, &ctx, b"whsec_abc").unwrap();
//! let opened = insightpulse_core::sealed::open_string(&ring, &ctx, &value).unwrap();
//! let diff = insightpulse_core::audit::Diff::new().set("secret", opened); // no Serialize
//! ```

mod context;
mod envelope;
mod keyring;

pub use crate::error::{KeyRingFault, SealRejection};
pub use context::SealContext;
pub use envelope::{Sealed, FORMAT_VERSION};
pub use keyring::{EnvKeyRing, Kek, KeyId, KeyRing, TestKeyRing, KEK_CURRENT_VAR, KEK_VAR};

use crate::error::{Error, Result};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce, Tag};
use context::Purpose;
use envelope::{DEK_LEN, NONCE_LEN, TAG_LEN, WRAPPED_DEK_LEN};
use rand::RngCore;
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};

/// A data key: one per sealed value.
type Dek = SecretBox<[u8; DEK_LEN]>;

/// Seals `plaintext` for the row `ctx` under the ring's current key.
///
/// Pass a secret's bytes straight from its `secrecy` box
/// (`secret.expose_secret().as_bytes()`); the only copy made is encrypted in
/// place. Fails only for a plaintext over AES-GCM's limit (64 GiB).
pub fn seal<R: KeyRing + ?Sized>(
    ring: &R,
    ctx: &SealContext<'_>,
    plaintext: &[u8],
) -> Result<Sealed> {
    let kek = ring.current();
    // One draw from the OS for the data key and both nonces, not three:
    // each draw is a system call (~0.4 µs, `benches/sealed.rs`).
    let mut random = SecretBox::new(Box::new([0u8; DEK_LEN + 2 * NONCE_LEN]));
    rand::rngs::OsRng.fill_bytes(random.expose_secret_mut());
    let random = random.expose_secret();
    let (mut nonce, mut wrap_nonce) = ([0; NONCE_LEN], [0; NONCE_LEN]);
    nonce.copy_from_slice(&random[DEK_LEN..DEK_LEN + NONCE_LEN]);
    wrap_nonce.copy_from_slice(&random[DEK_LEN + NONCE_LEN..]);
    let mut dek = Dek::new(Box::new([0; DEK_LEN]));
    dek.expose_secret_mut().copy_from_slice(&random[..DEK_LEN]);
    let mut ciphertext = Vec::with_capacity(plaintext.len() + TAG_LEN);
    ciphertext.extend_from_slice(plaintext);
    let tag = dek_cipher(&dek)
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &ctx.associated_data(Purpose::Payload, None),
            &mut ciphertext,
        )
        .map_err(|_| {
            ciphertext.zeroize();
            Error::validation("plaintext", "is too long to seal")
        })?;
    ciphertext.extend_from_slice(&tag);
    Ok(Sealed {
        kek_id: kek.id().clone(),
        wrapped_dek: wrap(kek, ctx, &dek, wrap_nonce)?,
        nonce,
        ciphertext,
    })
}

/// Opens a value sealed for the row `ctx`.
///
/// [`SealRejection::UnknownKey`] when the ring lacks the value's KEK;
/// [`SealRejection::Unopenable`] when the key is wrong, the bytes were
/// altered or the value belongs to another tenant, table, row or version.
pub fn open<R: KeyRing + ?Sized>(
    ring: &R,
    ctx: &SealContext<'_>,
    sealed: &Sealed,
) -> Result<SecretBox<[u8]>> {
    // `open_vec`'s buffer has no spare capacity: boxing it does not move
    // (and so does not leave behind) the plaintext.
    Ok(SecretBox::new(
        open_vec(ring, ctx, sealed)?.into_boxed_slice(),
    ))
}

/// [`open`] for a value sealed from text; [`SealRejection::Malformed`] if
/// the plaintext is not UTF-8.
pub fn open_string<R: KeyRing + ?Sized>(
    ring: &R,
    ctx: &SealContext<'_>,
    sealed: &Sealed,
) -> Result<SecretString> {
    match String::from_utf8(open_vec(ring, ctx, sealed)?) {
        Ok(text) => Ok(SecretString::from(text)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err(Error::sealed(SealRejection::Malformed))
        }
    }
}

/// Re-wraps the value's data key under the ring's current KEK. The payload's
/// nonce and ciphertext are kept byte for byte (nothing is re-encrypted), so
/// rotating a large value costs as much as rotating a small one.
///
/// The old KEK must still be in the ring ([`SealRejection::UnknownKey`]
/// otherwise) and the value must belong to `ctx` (the wrapped key is bound
/// to it too: [`SealRejection::Unopenable`]). Store the result in place of
/// the old value; [`Sealed::needs_rotation`] tells which values to visit.
pub fn rotate_kek<R: KeyRing + ?Sized>(
    ring: &R,
    ctx: &SealContext<'_>,
    sealed: &Sealed,
) -> Result<Sealed> {
    let dek = unwrap(ring, ctx, sealed)?;
    let current = ring.current();
    Ok(Sealed {
        kek_id: current.id().clone(),
        wrapped_dek: wrap(current, ctx, &dek, random_nonce())?,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext.clone(),
    })
}

impl Sealed {
    /// Whether its data key is wrapped under a key other than the ring's
    /// current one (so [`rotate_kek`] would change it).
    pub fn needs_rotation<R: KeyRing + ?Sized>(&self, ring: &R) -> bool {
        &self.kek_id != ring.current().id()
    }
}

fn unopenable() -> Error {
    Error::sealed(SealRejection::Unopenable)
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// The payload cipher of a data key (its key schedule is wiped on drop).
fn dek_cipher(dek: &Dek) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(dek.expose_secret()))
}

/// `nonce ‖ AES-GCM(kek, dek) ‖ tag`, bound to the row and the KEK's id.
fn wrap(
    kek: &Kek,
    ctx: &SealContext<'_>,
    dek: &Dek,
    nonce: [u8; NONCE_LEN],
) -> Result<[u8; WRAPPED_DEK_LEN]> {
    let mut out = [0u8; WRAPPED_DEK_LEN];
    out[..NONCE_LEN].copy_from_slice(&nonce);
    let body = &mut out[NONCE_LEN..NONCE_LEN + DEK_LEN];
    body.copy_from_slice(dek.expose_secret());
    let aad = ctx.associated_data(Purpose::DataKey, Some(kek.id()));
    match kek
        .cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, body)
    {
        Ok(tag) => {
            out[NONCE_LEN + DEK_LEN..].copy_from_slice(&tag);
            Ok(out)
        }
        // Unreachable for 32 bytes; never leave the key behind regardless.
        Err(_) => {
            out.zeroize();
            Err(unopenable())
        }
    }
}

/// The value's data key, from the KEK its id names.
fn unwrap<R: KeyRing + ?Sized>(ring: &R, ctx: &SealContext<'_>, sealed: &Sealed) -> Result<Dek> {
    let kek = ring
        .get(&sealed.kek_id)
        .ok_or(Error::sealed(SealRejection::UnknownKey))?;
    let w = &sealed.wrapped_dek;
    let mut dek = Dek::new(Box::new([0; DEK_LEN]));
    dek.expose_secret_mut()
        .copy_from_slice(&w[NONCE_LEN..NONCE_LEN + DEK_LEN]);
    kek.cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&w[..NONCE_LEN]),
            &ctx.associated_data(Purpose::DataKey, Some(kek.id())),
            dek.expose_secret_mut(),
            Tag::from_slice(&w[NONCE_LEN + DEK_LEN..]),
        )
        .map_err(|_| unopenable())?;
    Ok(dek)
}

/// The plaintext in a buffer of exactly its length.
fn open_vec<R: KeyRing + ?Sized>(
    ring: &R,
    ctx: &SealContext<'_>,
    sealed: &Sealed,
) -> Result<Vec<u8>> {
    let dek = unwrap(ring, ctx, sealed)?;
    // `Sealed` guarantees at least a tag's worth of ciphertext.
    let (body, tag) = sealed
        .ciphertext
        .split_at(sealed.ciphertext.len() - TAG_LEN);
    let mut plaintext = body.to_vec();
    // AES-GCM checks the tag before it decrypts: on failure the buffer still
    // holds ciphertext, nothing to wipe.
    dek_cipher(&dek)
        .decrypt_in_place_detached(
            Nonce::from_slice(&sealed.nonce),
            &ctx.associated_data(Purpose::Payload, None),
            &mut plaintext,
            Tag::from_slice(tag),
        )
        .map_err(|_| unopenable())?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;
    use uuid::Uuid;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn ctx() -> SealContext<'static> {
        SealContext::new(
            TenantId(Uuid::from_u128(1)),
            "webhook_endpoints",
            Uuid::from_u128(2),
            1,
        )
    }

    fn rejection<T: std::fmt::Debug>(r: Result<T>) -> SealRejection {
        match r {
            Err(Error::Sealed { reason }) => reason,
            other => panic!("expected a sealed-value rejection, got {other:?}"),
        }
    }

    #[test]
    fn opens_what_it_sealed_and_only_there() {
        let ring = TestKeyRing::random(&["k1"]);
        for plaintext in [&b""[..], b"x", &[0xa5; 1024][..], SECRET.as_bytes()] {
            let sealed = seal(&ring, &ctx(), plaintext).unwrap();
            assert_eq!(sealed.ciphertext().len(), plaintext.len() + TAG_LEN);
            assert_eq!(sealed.kek_id().as_str(), "k1");
            let back = Sealed::from_bytes(&sealed.to_bytes()).unwrap();
            assert_eq!(
                open(&ring, &ctx(), &back).unwrap().expose_secret(),
                plaintext
            );
        }
        let sealed = seal(&ring, &ctx(), SECRET.as_bytes()).unwrap();
        let text = open_string(&ring, &ctx(), &sealed).unwrap();
        assert_eq!(text.expose_secret(), SECRET);
        let binary = seal(&ring, &ctx(), &[0xff, 0xfe]).unwrap();
        assert_eq!(
            rejection(open_string(&ring, &ctx(), &binary)),
            SealRejection::Malformed
        );
    }

    #[test]
    fn each_seal_draws_its_own_key_and_nonce() {
        let ring = TestKeyRing::random(&["k1"]);
        let a = seal(&ring, &ctx(), SECRET.as_bytes()).unwrap();
        let b = seal(&ring, &ctx(), SECRET.as_bytes()).unwrap();
        assert_ne!(a.nonce(), b.nonce());
        assert_ne!(a.wrapped_dek()[..NONCE_LEN], b.wrapped_dek()[..NONCE_LEN]);
        assert_ne!(a.ciphertext(), b.ciphertext());
        assert!(!a
            .to_bytes()
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()));
        // Another value's data key does not open this one's payload.
        let swapped = Sealed {
            wrapped_dek: b.wrapped_dek,
            ..a
        };
        assert_eq!(
            rejection(open(&ring, &ctx(), &swapped)),
            SealRejection::Unopenable
        );
    }

    #[test]
    fn a_value_copied_to_another_tenant_table_row_or_version_does_not_open() {
        let ring = TestKeyRing::random(&["k1"]);
        let home = ctx();
        let sealed = seal(&ring, &home, SECRET.as_bytes()).unwrap();
        let elsewhere = [
            (
                "tenant",
                SealContext {
                    tenant: Some(TenantId(Uuid::from_u128(9))),
                    ..home
                },
            ),
            (
                "no tenant",
                SealContext {
                    tenant: None,
                    ..home
                },
            ),
            (
                "table",
                SealContext {
                    table: "integrations",
                    ..home
                },
            ),
            (
                "row",
                SealContext {
                    row: Uuid::from_u128(3),
                    ..home
                },
            ),
            ("version", SealContext { version: 2, ..home }),
        ];
        for (what, other) in elsewhere {
            assert_eq!(
                rejection(open(&ring, &other, &sealed)),
                SealRejection::Unopenable,
                "{what}"
            );
            // Rotation checks the binding too: it cannot launder a copy.
            assert_eq!(
                rejection(rotate_kek(&ring, &other, &sealed)),
                SealRejection::Unopenable,
                "{what}"
            );
        }
        // And a platform-wide value does not open as a tenant's.
        let global = SealContext::global("providers", Uuid::from_u128(2), 1);
        let g = seal(&ring, &global, b"sk-live").unwrap();
        assert!(open(&ring, &global, &g).is_ok());
        let as_tenant = SealContext {
            tenant: Some(TenantId(Uuid::nil())),
            ..global
        };
        assert_eq!(
            rejection(open(&ring, &as_tenant, &g)),
            SealRejection::Unopenable
        );
    }

    #[test]
    fn any_altered_bit_is_refused() {
        let ring = TestKeyRing::deterministic(&["k1"]);
        let bytes = seal(&ring, &ctx(), b"0123456789").unwrap().to_bytes();
        let id_end = 2 + 2;
        for i in 0..bytes.len() {
            for bit in [0x01, 0x80] {
                let mut altered = bytes.clone();
                altered[i] ^= bit;
                let outcome = Sealed::from_bytes(&altered).and_then(|s| open(&ring, &ctx(), &s));
                let reason = rejection(outcome);
                if i >= id_end {
                    // Key, nonce, ciphertext or tag: one and the same answer.
                    assert_eq!(reason, SealRejection::Unopenable, "byte {i}");
                }
            }
        }
    }

    #[test]
    fn wrong_key_and_tampering_look_the_same() {
        let sealed = seal(&TestKeyRing::deterministic(&["k1"]), &ctx(), b"x").unwrap();
        let impostor = TestKeyRing::random(&["k1"]);
        let wrong_key = open(&impostor, &ctx(), &sealed).unwrap_err();
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        let altered = open(&TestKeyRing::deterministic(&["k1"]), &ctx(), &tampered).unwrap_err();
        assert_eq!(wrong_key.to_string(), altered.to_string());
        assert_eq!(format!("{wrong_key:?}"), format!("{altered:?}"));
        assert_eq!(wrong_key.code(), "sealed_value_rejected");
    }

    #[test]
    fn rotation_rewraps_the_key_and_keeps_the_payload() {
        let old = TestKeyRing::deterministic(&["k1"]);
        let sealed = seal(&old, &ctx(), &[0x42; 1024]).unwrap();
        let both = TestKeyRing::deterministic(&["k2", "k1"]);
        assert!(sealed.needs_rotation(&both));
        assert!(!sealed.needs_rotation(&old));

        let rotated = rotate_kek(&both, &ctx(), &sealed).unwrap();
        assert_eq!(rotated.kek_id().as_str(), "k2");
        assert!(!rotated.needs_rotation(&both));
        assert_eq!(
            rotated.ciphertext(),
            sealed.ciphertext(),
            "payload untouched"
        );
        assert_eq!(rotated.nonce(), sealed.nonce());
        assert_ne!(rotated.wrapped_dek(), sealed.wrapped_dek());
        assert_eq!(
            open(&both, &ctx(), &rotated).unwrap().expose_secret(),
            &[0x42; 1024][..]
        );

        // Once k1 is retired, the rotated value still opens; the old one
        // fails with a typed error, to open and to rotate alike.
        let retired = TestKeyRing::deterministic(&["k2"]);
        assert_eq!(
            open(&retired, &ctx(), &rotated).unwrap().expose_secret(),
            &[0x42; 1024][..]
        );
        assert_eq!(
            rejection(open(&retired, &ctx(), &sealed)),
            SealRejection::UnknownKey
        );
        assert_eq!(
            rejection(rotate_kek(&retired, &ctx(), &sealed)),
            SealRejection::UnknownKey
        );
        // Rotating a current value re-wraps it again, under a fresh nonce.
        let again = rotate_kek(&both, &ctx(), &rotated).unwrap();
        assert_ne!(again.wrapped_dek(), rotated.wrapped_dek());
        assert_eq!(again.ciphertext(), sealed.ciphertext());
    }

    #[test]
    fn the_kek_id_is_bound_to_the_wrapped_key() {
        // Two ids holding the same key material: only the id differs, and
        // relabelling a value with the other id must not open it.
        let key = data_encoding::BASE64.encode(&[3u8; 32]);
        let spec = SecretString::from(format!("a:{key},b:{key}"));
        let ring = EnvKeyRing::parse(&spec, None).unwrap();
        let sealed = seal(&ring, &ctx(), b"x").unwrap();
        assert_eq!(sealed.kek_id().as_str(), "a");
        let relabelled = Sealed {
            kek_id: KeyId::new("b").unwrap(),
            ..sealed.clone()
        };
        assert_eq!(
            rejection(open(&ring, &ctx(), &relabelled)),
            SealRejection::Unopenable
        );
        assert_eq!(open(&ring, &ctx(), &sealed).unwrap().expose_secret(), b"x");
    }

    #[test]
    fn no_debug_output_shows_a_secret_or_a_key() {
        let ring = TestKeyRing::deterministic(&["k1"]);
        let sealed = seal(&ring, &ctx(), SECRET.as_bytes()).unwrap();
        let opened = open(&ring, &ctx(), &sealed).unwrap();
        let text = open_string(&ring, &ctx(), &sealed).unwrap();
        let dek = unwrap(&ring, &ctx(), &sealed).unwrap();
        let dek_bytes = *dek.expose_secret();
        let kek_bytes: [u8; 32] = {
            use sha2::Digest;
            sha2::Sha256::new()
                .chain_update(b"insightpulse test kek\0")
                .chain_update(b"k1")
                .finalize()
                .into()
        };
        let shown = [
            format!("{opened:?}"),
            format!("{text:?}"),
            format!("{dek:?}"),
            format!("{ring:?}"),
            format!("{:?}", ring.current()),
            format!("{sealed:?}"),
            format!(
                "{:?}",
                open(
                    &ring,
                    &SealContext {
                        version: 9,
                        ..ctx()
                    },
                    &sealed
                )
            ),
        ];
        let b64 = |b: &[u8]| data_encoding::BASE64.encode(b);
        let hex = |b: &[u8]| data_encoding::HEXLOWER.encode(b);
        let leaks = [
            SECRET.to_owned(),
            SECRET[6..20].to_owned(),
            format!("{:?}", SECRET.as_bytes()),
            format!("{:?}", &dek_bytes[..])
                .trim_end_matches(']')
                .to_owned(),
            format!("{:?}", &kek_bytes[..])
                .trim_end_matches(']')
                .to_owned(),
            b64(&dek_bytes),
            b64(&kek_bytes),
            hex(&dek_bytes),
            hex(&kek_bytes),
            format!("{:?}", &sealed.ciphertext()[..8])
                .trim_end_matches(']')
                .to_owned(),
        ];
        for s in &shown {
            for leak in &leaks {
                assert!(!s.contains(leak.as_str()), "{s} shows {leak}");
            }
        }
        assert_eq!(shown[0], "SecretBox<[u8]>([REDACTED])");
        assert_eq!(shown[2], "SecretBox<[u8; 32]>([REDACTED])");
        assert_eq!(shown[4], r#"Kek { id: "k1", .. }"#);
        assert_eq!(
            shown[5],
            r#"Sealed { version: 1, kek_id: "k1", ciphertext_len: 54, .. }"#
        );
    }

    #[test]
    fn errors_name_the_reason_and_nothing_else() {
        let cases = [
            (
                Error::sealed(SealRejection::Malformed),
                "sealed value is malformed",
            ),
            (
                Error::sealed(SealRejection::UnknownKey),
                "sealed value was wrapped under a key the key ring does not hold",
            ),
            (
                Error::sealed(SealRejection::Unopenable),
                "sealed value cannot be opened (wrong key, altered, or bound to another row)",
            ),
            (
                Error::key_ring(KeyRingFault::WrongKeyLength),
                "key ring configuration has a key that is not 32 bytes",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
        assert_eq!(
            Error::key_ring(KeyRingFault::Missing).code(),
            "key_ring_misconfigured"
        );
        assert_eq!(SealRejection::UnknownKey.as_str(), "unknown_key");
        assert_eq!(KeyRingFault::DuplicateKeyId.as_str(), "duplicate_key_id");
    }
}
