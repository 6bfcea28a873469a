//! The stored form of a sealed value: what a `bytea` or `jsonb` column holds.
//!
//! Bytes, format version 1 (all lengths fixed but the key id's and the
//! ciphertext's, which runs to the end):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version (`1`) |
//! | 1 | 1 | key id length `n` (1–64) |
//! | 2 | `n` | key id (ASCII) of the KEK that wrapped the data key |
//! | 2+`n` | 60 | wrapped data key: nonce (12) ‖ encrypted key (32) ‖ tag (16) |
//! | 62+`n` | 12 | payload nonce |
//! | 74+`n` | ≥ 16 | payload ciphertext ‖ tag (16) |
//!
//! JSON (serde), the same fields in standard padded base64:
//! `{"v":1,"kid":"k1","dek":"…","nonce":"…","ct":"…"}` — so SQL can find the
//! values still under a key (`WHERE secret->>'kid' = 'k1'`, or on `bytea`
//! `substring(secret from 3 for get_byte(secret, 1))`).
//!
//! Reading either form checks every field's size and gives
//! [`SealRejection::Malformed`] (or `UnsupportedVersion`), never a panic.

use super::keyring::KeyId;
use crate::error::{Error, Result, SealRejection};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of an AES-GCM nonce (96 bits).
pub(super) const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM tag.
pub(super) const TAG_LEN: usize = 16;
/// Bytes of a data key (AES-256).
pub(super) const DEK_LEN: usize = 32;
/// Bytes of a wrapped data key: its nonce, the encrypted key, its tag.
pub(super) const WRAPPED_DEK_LEN: usize = NONCE_LEN + DEK_LEN + TAG_LEN;

/// A sealed value: a payload encrypted under its own data key, and that data
/// key wrapped under a key-encryption key of the ring, named by id.
///
/// Holds no plaintext and no usable key, so it may be stored, copied and
/// logged; its `Debug` shows the key id and sizes only. Made by
/// [`seal`](super::seal), opened by [`open`](super::open).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SealedJson", into = "SealedJson")]
pub struct Sealed {
    pub(super) kek_id: KeyId,
    pub(super) wrapped_dek: [u8; WRAPPED_DEK_LEN],
    pub(super) nonce: [u8; NONCE_LEN],
    /// The payload's ciphertext followed by its tag.
    pub(super) ciphertext: Vec<u8>,
}

impl Sealed {
    /// The id of the key-encryption key that wrapped the data key.
    pub fn kek_id(&self) -> &KeyId {
        &self.kek_id
    }
    /// The wrapped data key (nonce ‖ encrypted key ‖ tag).
    pub fn wrapped_dek(&self) -> &[u8] {
        &self.wrapped_dek
    }
    /// The payload's nonce.
    pub fn nonce(&self) -> &[u8] {
        &self.nonce
    }
    /// The payload's ciphertext and tag (16 bytes longer than the plaintext).
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The byte form (format version 1), for a `bytea` column.
    pub fn to_bytes(&self) -> Vec<u8> {
        let id = self.kek_id.as_str().as_bytes();
        let mut out =
            Vec::with_capacity(2 + id.len() + WRAPPED_DEK_LEN + NONCE_LEN + self.ciphertext.len());
        out.push(FORMAT_VERSION);
        out.push(id.len() as u8); // ≤ 64, KeyId guarantees it
        out.extend_from_slice(id);
        out.extend_from_slice(&self.wrapped_dek);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Reads the byte form; [`SealRejection::Malformed`] for anything that
    /// is not one, [`SealRejection::UnsupportedVersion`] for another version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (&version, rest) = bytes.split_first().ok_or(malformed())?;
        if version != FORMAT_VERSION {
            return Err(Error::sealed(SealRejection::UnsupportedVersion));
        }
        let (&id_len, rest) = rest.split_first().ok_or(malformed())?;
        let (id, rest) = split(rest, id_len as usize)?;
        let id = std::str::from_utf8(id).map_err(|_| malformed())?;
        let (wrapped_dek, rest) = split(rest, WRAPPED_DEK_LEN)?;
        let (nonce, ciphertext) = split(rest, NONCE_LEN)?;
        Self::from_parts(id, wrapped_dek, nonce, ciphertext)
    }

    /// Checks each part's size.
    fn from_parts(
        kek_id: &str,
        wrapped_dek: &[u8],
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Self> {
        if ciphertext.len() < TAG_LEN {
            return Err(malformed());
        }
        Ok(Self {
            kek_id: KeyId::new(kek_id).map_err(|_| malformed())?,
            wrapped_dek: wrapped_dek.try_into().map_err(|_| malformed())?,
            nonce: nonce.try_into().map_err(|_| malformed())?,
            ciphertext: ciphertext.to_vec(),
        })
    }
}

fn malformed() -> Error {
    Error::sealed(SealRejection::Malformed)
}

/// The first `n` bytes and the rest, or `Malformed` when there are fewer.
fn split(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8])> {
    if bytes.len() < n {
        return Err(malformed());
    }
    Ok(bytes.split_at(n))
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("version", &FORMAT_VERSION)
            .field("kek_id", &self.kek_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// The JSON form's fields.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedJson {
    v: u8,
    kid: String,
    dek: String,
    nonce: String,
    ct: String,
}

impl From<Sealed> for SealedJson {
    fn from(s: Sealed) -> Self {
        let b64 = |b: &[u8]| data_encoding::BASE64.encode(b);
        Self {
            v: FORMAT_VERSION,
            kid: s.kek_id.as_str().to_owned(),
            dek: b64(&s.wrapped_dek),
            nonce: b64(&s.nonce),
            ct: b64(&s.ciphertext),
        }
    }
}

impl TryFrom<SealedJson> for Sealed {
    type Error = Error;
    fn try_from(j: SealedJson) -> Result<Self> {
        if j.v != FORMAT_VERSION {
            return Err(Error::sealed(SealRejection::UnsupportedVersion));
        }
        let b64 = |s: &str| {
            data_encoding::BASE64
                .decode(s.as_bytes())
                .map_err(|_| malformed())
        };
        Self::from_parts(&j.kid, &b64(&j.dek)?, &b64(&j.nonce)?, &b64(&j.ct)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_takes_exactly_what_is_there() {
        assert_eq!(split(b"abc", 3).unwrap(), (&b"abc"[..], &b""[..]));
        assert_eq!(split(b"abc", 1).unwrap(), (&b"a"[..], &b"bc"[..]));
        assert!(split(b"abc", 4).is_err());
    }

    fn sample() -> Sealed {
        Sealed {
            kek_id: KeyId::new("k1").unwrap(),
            wrapped_dek: [7; WRAPPED_DEK_LEN],
            nonce: [9; NONCE_LEN],
            ciphertext: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17],
        }
    }

    fn rejection(r: Result<Sealed>) -> SealRejection {
        match r {
            Err(Error::Sealed { reason }) => reason,
            other => panic!("expected a sealed-value rejection, got {other:?}"),
        }
    }

    #[test]
    fn bytes_round_trip_in_the_documented_layout() {
        let s = sample();
        let bytes = s.to_bytes();
        assert_eq!(bytes.len(), 2 + 2 + 60 + 12 + 17);
        assert_eq!(&bytes[..4], &[1, 2, b'k', b'1']);
        assert_eq!(&bytes[4..64], &[7; 60]);
        assert_eq!(&bytes[64..76], &[9; 12]);
        assert_eq!(&bytes[76..], s.ciphertext());
        assert_eq!(Sealed::from_bytes(&bytes).unwrap(), s);
    }

    #[test]
    fn json_round_trips_with_named_fields() {
        let s = sample();
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["kid"], "k1");
        assert_eq!(json["nonce"], data_encoding::BASE64.encode(&[9; 12]));
        let back: Sealed = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn every_truncation_and_garbage_is_a_typed_rejection() {
        let bytes = sample().to_bytes();
        // Every prefix shorter than the smallest sealed value (empty payload).
        let smallest = 2 + 2 + WRAPPED_DEK_LEN + NONCE_LEN + TAG_LEN;
        for n in 0..smallest {
            assert_eq!(
                rejection(Sealed::from_bytes(&bytes[..n])),
                SealRejection::Malformed,
                "{n}"
            );
        }
        assert!(Sealed::from_bytes(&bytes[..smallest]).is_ok());
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert_eq!(
            rejection(Sealed::from_bytes(&other_version)),
            SealRejection::UnsupportedVersion
        );
        let mut bad_id = bytes.clone();
        bad_id[2] = b' ';
        assert_eq!(
            rejection(Sealed::from_bytes(&bad_id)),
            SealRejection::Malformed
        );
        let mut no_id = bytes.clone();
        no_id[1] = 0;
        assert_eq!(
            rejection(Sealed::from_bytes(&no_id)),
            SealRejection::Malformed
        );
        let mut long_id = bytes;
        long_id[1] = 255;
        assert_eq!(
            rejection(Sealed::from_bytes(&long_id)),
            SealRejection::Malformed
        );
        // Pseudo-random garbage of every length up to 300: never a panic.
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..300 {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = Sealed::from_bytes(&garbage);
            let mut versioned = garbage.clone();
            if let Some(b) = versioned.first_mut() {
                *b = FORMAT_VERSION;
            }
            let _ = Sealed::from_bytes(&versioned);
        }
    }

    #[test]
    fn malformed_json_is_refused() {
        let good = serde_json::to_value(sample()).unwrap();
        let bad = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v = good.clone();
            edit(&mut v);
            serde_json::from_value::<Sealed>(v).unwrap_err().to_string()
        };
        assert!(bad(&|v| v["v"] = 2.into()).contains("format version"));
        assert!(bad(&|v| v["nonce"] = "AAAA".into()).contains("malformed"));
        assert!(bad(&|v| v["dek"] = "not base64".into()).contains("malformed"));
        assert!(bad(&|v| v["ct"] = "".into()).contains("malformed"));
        assert!(bad(&|v| v["kid"] = "".into()).contains("malformed"));
        assert!(bad(&|v| v["extra"] = 1.into()).contains("unknown field"));
        assert!(bad(&|v| {
            v.as_object_mut().unwrap().remove("ct");
        })
        .contains("missing field"));
        assert!(serde_json::from_str::<Sealed>("[1,2]").is_err());
    }
}
