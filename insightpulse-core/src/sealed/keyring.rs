//! Key-encryption keys (KEKs) and the key rings that hold them.
//!
//! A [`KeyRing`] has one *current* key, which wraps the data key of every
//! new seal and every rotation, and any number of older keys that still
//! open what they wrapped. Each key has a [`KeyId`], written in the clear in
//! every sealed value, so a ring can find the key a value needs and an
//! operator can find the values still wrapped under a key before retiring it.
//!
//! Two rings come with the SDK: [`EnvKeyRing`] (production: keys from an
//! environment variable) and [`TestKeyRing`] (tests: keys made in code). A
//! host with a KMS implements [`KeyRing`] itself: it unwraps its KEKs at start
//! and hands them over as [`Kek`]s.

use crate::error::{Error, KeyRingFault, Result};
use aes_gcm::{Aes256Gcm, Key, KeyInit};
use rand::RngCore;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;

/// The variable [`EnvKeyRing::from_env`] reads the keys from.
pub const KEK_VAR: &str = "INSIGHTPULSE_KEK";
/// The variable [`EnvKeyRing::from_env`] reads the current key's id from
/// (optional: without it the first key is current).
pub const KEK_CURRENT_VAR: &str = "INSIGHTPULSE_KEK_CURRENT";

/// The longest key id, so it fits the one-byte length of the byte format.
const MAX_KEY_ID_LEN: usize = 64;

/// The id of a key-encryption key: 1 to 64 of `A-Z a-z 0-9 . _ -`.
///
/// Not secret: it is written in the clear in every sealed value.
///
/// ```
/// use insightpulse_core::sealed::KeyId;
/// assert_eq!(KeyId::new("2026-11").unwrap().as_str(), "2026-11");
/// assert!(KeyId::new("no spaces").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyId(Box<str>);

impl KeyId {
    /// Validates a key id; [`KeyRingFault::InvalidKeyId`] otherwise.
    pub fn new(id: &str) -> Result<Self> {
        let ok = (1..=MAX_KEY_ID_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(id.into()))
        } else {
            Err(Error::key_ring(KeyRingFault::InvalidKeyId))
        }
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key-encryption key: an AES-256 key and its id. It wraps and unwraps
/// data keys; its bytes are never handed back.
///
/// It holds the expanded AES key schedule only (the raw key is wiped as soon
/// as the schedule is made), and the schedule is zeroized on drop. Its
/// `Debug` shows the id alone.
pub struct Kek {
    id: KeyId,
    pub(super) cipher: Aes256Gcm,
}

impl Kek {
    /// A key from its 32 bytes (the box is wiped when it drops here).
    pub fn new(id: KeyId, key: SecretBox<[u8; 32]>) -> Self {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.expose_secret()));
        Self { id, cipher }
    }
    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Where sealing finds its key-encryption keys. The host supplies one.
///
/// Holds keys in memory and does no I/O; a KMS-backed ring fetches and
/// unwraps its keys before it is built.
pub trait KeyRing: Send + Sync {
    /// The key new seals and rotations wrap under.
    fn current(&self) -> &Kek;
    /// The key with this id (current or older), if the ring holds it.
    fn get(&self, id: &KeyId) -> Option<&Kek>;
}

/// The keys of a ring and which one is current: what both rings share.
struct Keys {
    keks: Vec<Kek>,
    current: usize,
}

impl Keys {
    /// `keks` in order; `current` names the current key, else the first is.
    fn new(keks: Vec<Kek>, current: Option<&str>) -> Result<Self> {
        if keks.is_empty() {
            return Err(Error::key_ring(KeyRingFault::Missing));
        }
        for (i, k) in keks.iter().enumerate() {
            if keks[..i].iter().any(|o| o.id == k.id) {
                return Err(Error::key_ring(KeyRingFault::DuplicateKeyId));
            }
        }
        let current = match current {
            None => 0,
            Some(id) => {
                let id = KeyId::new(id)?;
                keks.iter()
                    .position(|k| k.id == id)
                    .ok_or(Error::key_ring(KeyRingFault::UnknownCurrent))?
            }
        };
        Ok(Self { keks, current })
    }
    fn current(&self) -> &Kek {
        &self.keks[self.current]
    }
    fn get(&self, id: &KeyId) -> Option<&Kek> {
        self.keks.iter().find(|k| &k.id == id)
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current().id)
            .field("ids", &self.keks.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

/// A key ring configured by environment variables — the production ring.
///
/// Format of `INSIGHTPULSE_KEK` ([`KEK_VAR`]): comma-separated entries
/// `id:base64key`, where the id is 1 to 64 of `A-Z a-z 0-9 . _ -` and the key
/// is 32 random bytes in standard padded base64 (`openssl rand -base64 32`).
/// Whitespace around entries is ignored. The first entry is the current key,
/// unless `INSIGHTPULSE_KEK_CURRENT` ([`KEK_CURRENT_VAR`]) names another
/// (an empty value counts as unset):
///
/// ```text
/// INSIGHTPULSE_KEK="2026-11:q0V5bX...=,2026-05:7hN2c4...="
/// INSIGHTPULSE_KEK_CURRENT=2026-11    # optional
/// ```
///
/// To rotate: add the new key (first, or name it current), run
/// `rotate_kek` over the stored values, then drop the old entry. Each
/// mistake is an [`Error::KeyRing`] with a [`KeyRingFault`]; no message
/// repeats a key.
///
/// ```
/// use insightpulse_core::sealed::{EnvKeyRing, KeyRing};
/// use insightpulse_core::SecretString;
/// let spec = SecretString::from("k2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=, k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
/// let ring = EnvKeyRing::parse(&spec, None).unwrap();
/// assert_eq!(ring.current().id().as_str(), "k2");
/// ```
pub struct EnvKeyRing(Keys);

impl EnvKeyRing {
    /// Reads `INSIGHTPULSE_KEK` and `INSIGHTPULSE_KEK_CURRENT`.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(KEK_VAR, KEK_CURRENT_VAR)
    }

    /// Reads the keys from `keys_var` and the current key's id from
    /// `current_var`, in the format of `INSIGHTPULSE_KEK`.
    pub fn from_vars(keys_var: &str, current_var: &str) -> Result<Self> {
        let spec = match std::env::var(keys_var) {
            Ok(v) => SecretString::from(v),
            Err(std::env::VarError::NotPresent) => {
                return Err(Error::key_ring(KeyRingFault::Missing))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Error::key_ring(KeyRingFault::MalformedEntry))
            }
        };
        let current = match std::env::var(current_var) {
            Ok(id) => Some(id),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Error::key_ring(KeyRingFault::InvalidKeyId))
            }
        };
        Self::parse(&spec, current.as_deref())
    }

    /// Parses the keys' text (the format of `INSIGHTPULSE_KEK`) and the
    /// current key's id (`None` or empty: the first key).
    pub fn parse(spec: &SecretString, current: Option<&str>) -> Result<Self> {
        let spec = spec.expose_secret();
        if spec.trim().is_empty() {
            return Err(Error::key_ring(KeyRingFault::Missing));
        }
        let keks = spec
            .split(',')
            .map(|entry| {
                let (id, b64) = entry
                    .trim()
                    .split_once(':')
                    .ok_or(Error::key_ring(KeyRingFault::MalformedEntry))?;
                Ok(Kek::new(KeyId::new(id)?, decode_key(b64)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self(Keys::new(keks, current.filter(|c| !c.is_empty()))?))
    }
}

/// 32 bytes from standard padded base64; every copy is wiped.
fn decode_key(b64: &str) -> Result<SecretBox<[u8; 32]>> {
    let bytes = Zeroizing::new(
        data_encoding::BASE64
            .decode(b64.as_bytes())
            .map_err(|_| Error::key_ring(KeyRingFault::InvalidBase64))?,
    );
    let mut key = SecretBox::new(Box::new([0u8; 32]));
    if bytes.len() != 32 {
        return Err(Error::key_ring(KeyRingFault::WrongKeyLength));
    }
    key_bytes(&mut key).copy_from_slice(&bytes);
    Ok(key)
}

fn key_bytes(key: &mut SecretBox<[u8; 32]>) -> &mut [u8; 32] {
    secrecy::ExposeSecretMut::expose_secret_mut(key)
}

impl KeyRing for EnvKeyRing {
    fn current(&self) -> &Kek {
        self.0.current()
    }
    fn get(&self, id: &KeyId) -> Option<&Kek> {
        self.0.get(id)
    }
}

impl fmt::Debug for EnvKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A key ring for tests, built in code. **Never use it in production**:
/// its deterministic keys are derivable from their ids by anyone.
///
/// ```
/// use insightpulse_core::sealed::{KeyRing, TestKeyRing};
/// // k2 is current; a value wrapped under k1 still opens.
/// let ring = TestKeyRing::deterministic(&["k2", "k1"]);
/// assert_eq!(ring.current().id().as_str(), "k2");
/// ```
pub struct TestKeyRing(Keys);

impl TestKeyRing {
    /// Keys derived from their ids (SHA-256 of a fixed label and the id), so
    /// two rings naming the same id hold the same key; the first is current.
    ///
    /// # Panics
    /// On an invalid or repeated id, or no id: a test's own mistake.
    pub fn deterministic(ids: &[&str]) -> Self {
        Self::build(ids, |id| {
            let digest = Sha256::new()
                .chain_update(b"insightpulse test kek\0")
                .chain_update(id.as_bytes())
                .finalize();
            let mut key = SecretBox::new(Box::new([0u8; 32]));
            key_bytes(&mut key).copy_from_slice(&digest);
            key
        })
    }

    /// Fresh random keys (from the OS); the first is current.
    ///
    /// # Panics
    /// On an invalid or repeated id, or no id.
    pub fn random(ids: &[&str]) -> Self {
        Self::build(ids, |_| {
            let mut key = SecretBox::new(Box::new([0u8; 32]));
            rand::rngs::OsRng.fill_bytes(key_bytes(&mut key));
            key
        })
    }

    /// The same keys with `id` current.
    ///
    /// # Panics
    /// If the ring does not hold `id`.
    pub fn with_current(mut self, id: &str) -> Self {
        let id = KeyId::new(id).expect("a valid key id");
        self.0.current = self
            .0
            .keks
            .iter()
            .position(|k| k.id == id)
            .expect("the ring holds the key named current");
        self
    }

    fn build(ids: &[&str], key: impl Fn(&str) -> SecretBox<[u8; 32]>) -> Self {
        let keks = ids
            .iter()
            .map(|id| Kek::new(KeyId::new(id).expect("a valid key id"), key(id)))
            .collect();
        Self(Keys::new(keks, None).expect("distinct key ids, at least one"))
    }
}

impl KeyRing for TestKeyRing {
    fn current(&self) -> &Kek {
        self.0.current()
    }
    fn get(&self, id: &KeyId) -> Option<&Kek> {
        self.0.get(id)
    }
}

impl fmt::Debug for TestKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

    fn parse(spec: &str, current: Option<&str>) -> Result<EnvKeyRing> {
        EnvKeyRing::parse(&SecretString::from(spec), current)
    }

    fn fault(r: Result<EnvKeyRing>) -> KeyRingFault {
        match r {
            Err(Error::KeyRing { fault }) => fault,
            other => panic!("expected a key ring fault, got {other:?}"),
        }
    }

    #[test]
    fn first_key_is_current_unless_one_is_named() {
        let ring = parse(&format!(" k1:{K1} ,\n k2:{K2}\n"), None).unwrap();
        assert_eq!(ring.current().id().as_str(), "k1");
        assert!(ring.get(&KeyId::new("k2").unwrap()).is_some());
        assert!(ring.get(&KeyId::new("k3").unwrap()).is_none());
        let ring = parse(&format!("k1:{K1},k2:{K2}"), Some("k2")).unwrap();
        assert_eq!(ring.current().id().as_str(), "k2");
        let ring = parse(&format!("k1:{K1},k2:{K2}"), Some("")).unwrap();
        assert_eq!(ring.current().id().as_str(), "k1", "empty counts as unset");
    }

    #[test]
    fn each_mistake_has_its_fault() {
        use KeyRingFault::*;
        let short = data_encoding::BASE64.encode(&[7u8; 31]);
        let long = data_encoding::BASE64.encode(&[7u8; 33]);
        let cases: Vec<(String, Option<&str>, KeyRingFault)> = vec![
            ("".into(), None, Missing),
            ("  \n".into(), None, Missing),
            (K1.into(), None, MalformedEntry),
            (format!("k1:{K1},"), None, MalformedEntry),
            (format!("k1:{K1},,k2:{K2}"), None, MalformedEntry),
            (format!(":{K1}"), None, InvalidKeyId),
            (format!("k 1:{K1}"), None, InvalidKeyId),
            (format!("{}:{K1}", "k".repeat(65)), None, InvalidKeyId),
            ("k1:not base64!".into(), None, InvalidBase64),
            (
                format!("k1:{}", K1.trim_end_matches('=')),
                None,
                InvalidBase64,
            ),
            (format!("k1:{short}"), None, WrongKeyLength),
            (format!("k1:{long}"), None, WrongKeyLength),
            ("k1:".into(), None, WrongKeyLength),
            (format!("k1:{K1},k1:{K2}"), None, DuplicateKeyId),
            (format!("k1:{K1}"), Some("k2"), UnknownCurrent),
            (format!("k1:{K1}"), Some("bad id"), InvalidKeyId),
        ];
        for (spec, current, want) in cases {
            assert_eq!(fault(parse(&spec, current)), want, "{spec:?} / {current:?}");
        }
        assert_eq!(KeyId::new(&"k".repeat(64)).unwrap().as_str().len(), 64);
    }

    #[test]
    fn errors_and_debug_never_show_a_key() {
        let ring = parse(&format!("k1:{K1},k2:{K2}"), None).unwrap();
        let shown = format!("{ring:?} {:?} {:?}", ring.current(), ring.0.keks[1]);
        assert_eq!(
            format!("{ring:?}"),
            r#"KeyRing { current: "k1", ids: ["k1", "k2"] }"#
        );
        for secret in [K1, K2, &K1[..20], "[1, 1, 1", "1, 1, 1, 1", "2, 2, 2, 2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let test_ring = TestKeyRing::random(&["a", "b"]);
        assert_eq!(
            format!("{test_ring:?}"),
            r#"KeyRing { current: "a", ids: ["a", "b"] }"#
        );
        // A rejected key is never echoed, even when it is the whole entry.
        for spec in [format!("k1:{K1}x"), format!("k1:{}", &K1[..40])] {
            let e = parse(&spec, None).unwrap_err();
            let text = format!("{e} {e:?}");
            assert!(!text.contains(&K1[..20]), "{text}");
        }
    }

    #[test]
    fn reads_its_variables() {
        // Names no other test uses: the environment is shared by the threads.
        let (keys, current) = ("IP_SEALED_TEST_KEK", "IP_SEALED_TEST_KEK_CURRENT");
        assert_eq!(
            fault(EnvKeyRing::from_vars(keys, current)),
            KeyRingFault::Missing
        );
        std::env::set_var(keys, format!("k1:{K1},k2:{K2}"));
        std::env::set_var(current, "k2");
        let ring = EnvKeyRing::from_vars(keys, current).unwrap();
        assert_eq!(ring.current().id().as_str(), "k2");
        std::env::remove_var(keys);
        std::env::remove_var(current);
    }

    #[test]
    fn key_ids_print_as_given() {
        let id = KeyId::new("kek-2025.1").unwrap();
        assert_eq!(
            (id.to_string(), id.as_str()),
            ("kek-2025.1".to_owned(), "kek-2025.1")
        );
    }

    #[test]
    fn test_rings_derive_or_draw_their_keys() {
        let ring = TestKeyRing::deterministic(&["k2", "k1"]).with_current("k1");
        assert_eq!(ring.current().id().as_str(), "k1");
        assert!(std::panic::catch_unwind(|| TestKeyRing::deterministic(&["a", "a"])).is_err());
        assert!(std::panic::catch_unwind(|| TestKeyRing::random(&[])).is_err());
    }

    #[test]
    fn key_schedules_are_wiped_on_drop() {
        fn zeroized_on_drop<T: secrecy::zeroize::ZeroizeOnDrop>() {}
        // The AES-256 key schedule inside every `Aes256Gcm` (the `aes`
        // crate's `zeroize` feature, enabled by this crate).
        zeroized_on_drop::<aes::Aes256>();
        zeroized_on_drop::<SecretBox<[u8; 32]>>();
    }
}
