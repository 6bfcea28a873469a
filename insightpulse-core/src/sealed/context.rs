//! What a sealed value is bound to, and its encoding as associated data.

use super::keyring::KeyId;
use crate::ids::TenantId;
use uuid::Uuid;

/// The row a sealed value belongs to: its tenant (none for a platform-wide
/// secret), table, row and version. Sealing authenticates it as associated
/// data, so a ciphertext copied to another tenant, table, row or version
/// does not open.
///
/// ```
/// use insightpulse_core::sealed::SealContext;
/// use insightpulse_core::TenantId;
/// use uuid::Uuid;
/// let ctx = SealContext::new(TenantId::new(), "webhook_endpoints", Uuid::new_v4(), 1);
/// assert_eq!(ctx.table, "webhook_endpoints");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SealContext<'a> {
    /// The tenant owning the row; `None` for a platform-wide row.
    pub tenant: Option<TenantId>,
    /// The table the value is stored in.
    pub table: &'a str,
    /// The row's id.
    pub row: Uuid,
    /// The value's version (a new version of a secret is sealed anew).
    pub version: u32,
}

/// What the associated data authenticates.
#[derive(Clone, Copy)]
#[repr(u8)]
pub(super) enum Purpose {
    /// The payload, encrypted under the data key.
    Payload = 1,
    /// The data key, wrapped under a key-encryption key.
    DataKey = 2,
}

impl<'a> SealContext<'a> {
    /// A tenant's row.
    pub fn new(tenant: TenantId, table: &'a str, row: impl Into<Uuid>, version: u32) -> Self {
        Self {
            tenant: Some(tenant),
            table,
            row: row.into(),
            version,
        }
    }

    /// A platform-wide row (no tenant).
    pub fn global(table: &'a str, row: impl Into<Uuid>, version: u32) -> Self {
        Self {
            tenant: None,
            table,
            row: row.into(),
            version,
        }
    }

    /// The associated data: every field fixed-size or length-prefixed, so
    /// no two contexts encode alike. The data key's also names its KEK.
    ///
    /// `format ‖ purpose ‖ (0 | 1 ‖ tenant[16]) ‖ len(table) u32 BE ‖ table
    /// ‖ row[16] ‖ version u32 BE [‖ len(kek id) u8 ‖ kek id]`
    pub(super) fn associated_data(&self, purpose: Purpose, kek: Option<&KeyId>) -> Vec<u8> {
        let table = self.table.as_bytes();
        let mut out = Vec::with_capacity(2 + 17 + 4 + table.len() + 16 + 4 + 65);
        out.push(super::envelope::FORMAT_VERSION);
        out.push(purpose as u8);
        match self.tenant {
            None => out.push(0),
            Some(t) => {
                out.push(1);
                out.extend_from_slice(t.0.as_bytes());
            }
        }
        // A table name longer than 4 GiB cannot exist; saturating keeps this
        // total without a panic path.
        out.extend_from_slice(&u32::try_from(table.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(table);
        out.extend_from_slice(self.row.as_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        if let Some(kek) = kek {
            let id = kek.as_str().as_bytes();
            out.push(id.len() as u8); // ≤ 64, KeyId guarantees it
            out.extend_from_slice(id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_contexts_encode_alike() {
        let t = TenantId(Uuid::from_u128(1));
        let row = Uuid::from_u128(2);
        let base = SealContext::new(t, "ab", row, 1);
        let variants = [
            base,
            SealContext {
                tenant: None,
                ..base
            },
            SealContext {
                tenant: Some(TenantId(Uuid::from_u128(3))),
                ..base
            },
            SealContext { table: "a", ..base },
            SealContext {
                table: "abc",
                ..base
            },
            SealContext { table: "", ..base },
            SealContext {
                row: Uuid::from_u128(3),
                ..base
            },
            SealContext { version: 2, ..base },
        ];
        let mut seen = std::collections::HashSet::new();
        for v in &variants {
            for p in [Purpose::Payload, Purpose::DataKey] {
                assert!(seen.insert(v.associated_data(p, None)), "{v:?}");
            }
        }
        // The data key's associated data differs per KEK id too.
        let k = |s| KeyId::new(s).unwrap();
        assert_ne!(
            base.associated_data(Purpose::DataKey, Some(&k("k1"))),
            base.associated_data(Purpose::DataKey, Some(&k("k2")))
        );
        assert_ne!(
            base.associated_data(Purpose::DataKey, Some(&k("k1"))),
            base.associated_data(Purpose::DataKey, None)
        );
    }

    #[test]
    fn the_encoding_is_length_prefixed() {
        let ctx = SealContext::global("t", Uuid::nil(), 7);
        let mut want = vec![1, 1, 0, 0, 0, 0, 1, b't'];
        want.extend_from_slice(&[0; 16]);
        want.extend_from_slice(&[0, 0, 0, 7]);
        assert_eq!(ctx.associated_data(Purpose::Payload, None), want);
    }
}
