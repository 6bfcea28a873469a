//! The per-tenant hash chain of the audit trail, and its verifier.
//!
//! Each entry's `hash` is SHA-256 over a canonical encoding of
//! `prev_hash`, its position `seq`, the tenant, its id, `created_at`, the
//! actor, action, target, the diff's text, the request id and the
//! **commitment** to its personal fields (`pii_digest`). `prev_hash` is the
//! previous entry's hash ([`GENESIS`] for the first). Writers of one tenant
//! are serialised on the chain's head, so the chain never forks.
//!
//! The personal fields (ip, user agent) are not hashed directly but through
//! `pii_digest = SHA-256(salt ‖ fields)` with a random per-entry salt. Erasure
//! deletes the fields *and the salt*: the chain still verifies, and the
//! remaining digest no longer links the entry to the erased values.
//!
//! A retention purge deletes the oldest entries through position `n` and
//! records `n` and that entry's hash as the chain's *anchor*; the purge
//! appends an `audit.purged` entry naming the same anchor, so an anchor
//! moved behind the SDK's back is reported ([`ChainBreak::UnattestedPurge`]).
//!
//! The encoding is written here once; PostgreSQL's `insightpulse.audit_entry_hash`
//! (`migrations/0004_audit.sql`) computes the same bytes, which the
//! conformance suite proves by verifying chains written by the database.
//! Each field is `-` when absent and `<byte length>:<text>` otherwise,
//! joined by `|` after the tag `ipaudit1`; times are UTC with microseconds
//! (`2026-11-25T09:30:00.000000Z`), uuids lower-case, hashes lower-case hex.

use super::model::{Actor, ChainBreak, ChainVerdict};
use crate::ids::{AuditEntryId, TenantId};
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use std::net::IpAddr;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: Digest = [0; 32];

/// The action a retention purge records; its diff names the new anchor as
/// `through_seq` and `through_hash` (hex).
pub const PURGE_ACTION: &str = "audit.purged";

/// What an entry's hash covers.
#[derive(Debug, Clone, Copy)]
pub struct HashedFields<'a> {
    /// The previous entry's hash.
    pub prev_hash: &'a Digest,
    /// The entry's position.
    pub seq: i64,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its id.
    pub id: AuditEntryId,
    /// When it was recorded (microsecond precision).
    pub created_at: DateTime<Utc>,
    /// Who acted.
    pub actor: &'a Actor,
    /// The action label.
    pub action: &'a str,
    /// The target type label.
    pub target_type: &'a str,
    /// The target id.
    pub target_id: Option<&'a str>,
    /// The diff exactly as stored, as text.
    pub diff_text: &'a str,
    /// The request id.
    pub request_id: Option<&'a str>,
    /// The commitment to the personal fields.
    pub pii_digest: Option<&'a Digest>,
}

/// The hash of an entry.
pub fn entry_hash(f: &HashedFields<'_>) -> Digest {
    let mut out = String::from("ipaudit1");
    let mut field = |v: Option<&str>| {
        out.push('|');
        match v {
            None => out.push('-'),
            Some(v) => {
                out.push_str(&v.len().to_string());
                out.push(':');
                out.push_str(v);
            }
        }
    };
    field(Some(&hex(f.prev_hash)));
    field(Some(&f.seq.to_string()));
    field(Some(&f.tenant_id.to_string()));
    field(Some(&f.id.to_string()));
    field(Some(&timestamp(f.created_at)));
    field(Some(f.actor.kind()));
    field(f.actor.user_id().map(|u| u.to_string()).as_deref());
    field(f.actor.api_key_id().map(|k| k.to_string()).as_deref());
    field(f.actor.reason());
    field(Some(f.action));
    field(Some(f.target_type));
    field(f.target_id);
    field(Some(f.diff_text));
    field(f.request_id);
    field(f.pii_digest.map(|d| hex(d)).as_deref());
    Sha256::digest(out.as_bytes()).into()
}

/// The commitment to an entry's personal fields, or `None` when it has
/// none. `salt` must be random per entry (see [`new_salt`]).
pub fn pii_digest(salt: &[u8], ip: Option<IpAddr>, user_agent: Option<&str>) -> Option<Digest> {
    if ip.is_none() && user_agent.is_none() {
        return None;
    }
    let mut h = Sha256::new();
    h.update(salt);
    h.update(ip.map(|ip| ip.to_string()).unwrap_or_default().as_bytes());
    h.update([0u8]);
    h.update(user_agent.unwrap_or_default().as_bytes());
    Some(h.finalize().into())
}

/// A fresh salt and the commitment to `ip` and `user_agent` under it, for a
/// new entry; `None` when there is nothing personal to commit to (such an
/// entry has neither salt nor digest).
pub fn commit_personal(ip: Option<IpAddr>, user_agent: Option<&str>) -> Option<(Vec<u8>, Digest)> {
    let salt = new_salt();
    let digest = pii_digest(&salt, ip, user_agent)?;
    Some((salt, digest))
}

/// A fresh 16-byte salt for [`pii_digest`].
pub fn new_salt() -> Vec<u8> {
    use rand::RngCore;
    let mut salt = vec![0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    salt
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// The canonical text of an instant.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A digest read from storage (32 bytes), or `None` if it has another length.
pub fn digest(bytes: &[u8]) -> Option<Digest> {
    bytes.try_into().ok()
}

/// A tenant chain's head: its last position and hash, and the anchor a
/// retention purge left (position 0 and [`GENESIS`] when nothing was purged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// The last position written.
    pub seq: i64,
    /// The last hash written.
    pub hash: Digest,
    /// The last purged position.
    pub anchor_seq: i64,
    /// The hash of the last purged entry.
    pub anchor_hash: Digest,
}

/// An entry as stored, for [`verify`].
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Its position.
    pub seq: i64,
    /// The stored link to the previous entry.
    pub prev_hash: Digest,
    /// The stored hash.
    pub hash: Digest,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its id.
    pub id: AuditEntryId,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// Who acted.
    pub actor: Actor,
    /// Action label.
    pub action: String,
    /// Target type label.
    pub target_type: String,
    /// Target id.
    pub target_id: Option<String>,
    /// The diff's stored text.
    pub diff_text: String,
    /// Request id.
    pub request_id: Option<String>,
    /// The personal-fields commitment.
    pub pii_digest: Option<Digest>,
    /// Its salt (`None` once erased).
    pub pii_salt: Option<Vec<u8>>,
    /// The stored ip.
    pub ip: Option<IpAddr>,
    /// The stored user agent.
    pub user_agent: Option<String>,
}

impl StoredEntry {
    /// The fields its hash covers.
    pub fn hashed(&self) -> HashedFields<'_> {
        HashedFields {
            prev_hash: &self.prev_hash,
            seq: self.seq,
            tenant_id: self.tenant_id,
            id: self.id,
            created_at: self.created_at,
            actor: &self.actor,
            action: &self.action,
            target_type: &self.target_type,
            target_id: self.target_id.as_deref(),
            diff_text: &self.diff_text,
            request_id: self.request_id.as_deref(),
            pii_digest: self.pii_digest.as_ref(),
        }
    }

    fn personal_data_holds(&self) -> bool {
        match &self.pii_salt {
            // Erased: the fields must be gone too.
            None => self.ip.is_none() && self.user_agent.is_none(),
            Some(salt) => pii_digest(salt, self.ip, self.user_agent.as_deref()) == self.pii_digest,
        }
    }

    fn attests(&self, head: &ChainHead) -> bool {
        if self.action != PURGE_ACTION {
            return false;
        }
        let Ok(diff) = serde_json::from_str::<serde_json::Value>(&self.diff_text) else {
            return false;
        };
        diff["through_seq"].as_i64() == Some(head.anchor_seq)
            && diff["through_hash"].as_str() == Some(hex(&head.anchor_hash).as_str())
    }
}

/// Verifies a tenant's chain: `entries` must be every stored entry of the
/// tenant in ascending `seq` order, `head` its head (`None` when the tenant
/// never wrote one). Returns the first position that does not hold.
pub fn verify(
    head: Option<&ChainHead>,
    entries: impl IntoIterator<Item = StoredEntry>,
) -> ChainVerdict {
    let mut v = Verifier::new(head.copied());
    for e in entries {
        if let Some(broken) = v.push(&e) {
            return broken;
        }
    }
    v.finish()
}

/// [`verify`], one entry at a time, for chains too long to hold in memory.
#[derive(Debug, Clone)]
pub struct Verifier {
    head: ChainHead,
    expected: i64,
    prev: Digest,
    attested: bool,
    count: u64,
}

impl Verifier {
    /// Starts at the chain's anchor.
    pub fn new(head: Option<ChainHead>) -> Self {
        let head = head.unwrap_or(ChainHead {
            seq: 0,
            hash: GENESIS,
            anchor_seq: 0,
            anchor_hash: GENESIS,
        });
        Self {
            expected: head.anchor_seq + 1,
            prev: head.anchor_hash,
            attested: head.anchor_seq == 0,
            count: 0,
            head,
        }
    }

    /// Checks the next entry; `Some` when the chain breaks at it.
    pub fn push(&mut self, e: &StoredEntry) -> Option<ChainVerdict> {
        let broken = |seq, reason| Some(ChainVerdict::Broken { seq, reason });
        if e.seq < self.expected {
            return broken(e.seq, ChainBreak::Duplicate);
        }
        if e.seq > self.expected {
            return broken(self.expected, ChainBreak::Missing);
        }
        if e.prev_hash != self.prev {
            return broken(e.seq, ChainBreak::LinkBroken);
        }
        if entry_hash(&e.hashed()) != e.hash {
            return broken(e.seq, ChainBreak::ContentChanged);
        }
        if !e.personal_data_holds() {
            return broken(e.seq, ChainBreak::PersonalDataChanged);
        }
        self.attested |= e.attests(&self.head);
        self.prev = e.hash;
        self.expected += 1;
        self.count += 1;
        None
    }

    /// The verdict once every entry was pushed.
    pub fn finish(self) -> ChainVerdict {
        let last = self.expected - 1;
        if last != self.head.seq || self.prev != self.head.hash {
            return ChainVerdict::Broken {
                seq: last.min(self.head.seq) + 1,
                reason: ChainBreak::HeadMismatch,
            };
        }
        if !self.attested {
            return ChainVerdict::Broken {
                seq: self.head.anchor_seq,
                reason: ChainBreak::UnattestedPurge,
            };
        }
        ChainVerdict::Intact {
            entries: self.count,
            head_seq: self.head.seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn chain(n: i64) -> (ChainHead, Vec<StoredEntry>) {
        let tenant = TenantId::new();
        let actor = Actor::User(UserId::new());
        let mut prev = GENESIS;
        let mut entries = vec![];
        for seq in 1..=n {
            let salt = new_salt();
            let ip = Some("192.0.2.1".parse().unwrap());
            let mut e = StoredEntry {
                seq,
                prev_hash: prev,
                hash: GENESIS,
                tenant_id: tenant,
                id: AuditEntryId::new(),
                created_at: DateTime::from_timestamp_micros(1_700_000_000_000_000 + seq).unwrap(),
                actor: actor.clone(),
                action: "thing.done".into(),
                target_type: "thing".into(),
                target_id: Some(seq.to_string()),
                diff_text: format!("{{\"n\": {seq}}}"),
                request_id: None,
                pii_digest: pii_digest(&salt, ip, Some("ua")),
                pii_salt: Some(salt),
                ip,
                user_agent: Some("ua".into()),
            };
            e.hash = entry_hash(&e.hashed());
            prev = e.hash;
            entries.push(e);
        }
        let head = ChainHead {
            seq: n,
            hash: prev,
            anchor_seq: 0,
            anchor_hash: GENESIS,
        };
        (head, entries)
    }

    fn broken(seq: i64, reason: ChainBreak) -> ChainVerdict {
        ChainVerdict::Broken { seq, reason }
    }

    #[test]
    fn an_untouched_chain_is_intact() {
        let (head, entries) = chain(5);
        assert_eq!(
            verify(Some(&head), entries),
            ChainVerdict::Intact {
                entries: 5,
                head_seq: 5
            }
        );
        assert_eq!(
            verify(None, vec![]),
            ChainVerdict::Intact {
                entries: 0,
                head_seq: 0
            }
        );
    }

    #[test]
    fn every_kind_of_tampering_is_found_at_its_entry() {
        let (head, entries) = chain(5);
        let with = |f: &dyn Fn(&mut Vec<StoredEntry>)| {
            let mut e = entries.clone();
            f(&mut e);
            verify(Some(&head), e)
        };
        assert_eq!(
            with(&|e| e[2].action = "thing.undone".into()),
            broken(3, ChainBreak::ContentChanged)
        );
        assert_eq!(
            with(&|e| {
                e[2].diff_text = "{}".into();
                e[2].hash = entry_hash(&e[2].hashed());
            }),
            broken(4, ChainBreak::LinkBroken)
        );
        assert_eq!(
            with(&|e| {
                e.remove(1);
            }),
            broken(2, ChainBreak::Missing)
        );
        assert_eq!(
            with(&|e| {
                e.pop();
            }),
            broken(5, ChainBreak::HeadMismatch)
        );
        assert_eq!(
            with(&|e| e[0].ip = Some("198.51.100.9".parse().unwrap())),
            broken(1, ChainBreak::PersonalDataChanged)
        );
        assert_eq!(
            with(&|e| e[0].pii_salt = None),
            broken(1, ChainBreak::PersonalDataChanged)
        );
        assert_eq!(
            with(&|e| {
                let dup = e[1].clone();
                e.insert(2, dup);
            }),
            broken(2, ChainBreak::Duplicate)
        );
    }

    #[test]
    fn erasing_personal_fields_keeps_the_chain_verifiable() {
        let (head, mut entries) = chain(3);
        for e in &mut entries {
            e.ip = None;
            e.user_agent = None;
            e.pii_salt = None;
        }
        assert!(matches!(
            verify(Some(&head), entries),
            ChainVerdict::Intact { .. }
        ));
    }

    #[test]
    fn a_purge_is_accepted_only_when_attested() {
        let (mut head, entries) = chain(5);
        head.anchor_seq = 2;
        head.anchor_hash = entries[1].hash;
        let rest: Vec<_> = entries[2..].to_vec();
        assert_eq!(
            verify(Some(&head), rest.clone()),
            broken(2, ChainBreak::UnattestedPurge)
        );
        // An audit.purged entry naming the anchor, appended after the purge.
        let mut purge = rest[2].clone();
        purge.seq = 6;
        purge.prev_hash = rest[2].hash;
        purge.action = PURGE_ACTION.into();
        purge.diff_text = format!(
            "{{\"through_seq\": 2, \"through_hash\": \"{}\"}}",
            hex(&head.anchor_hash)
        );
        purge.hash = entry_hash(&purge.hashed());
        head.seq = 6;
        head.hash = purge.hash;
        let mut attested = rest;
        attested.push(purge);
        assert_eq!(
            verify(Some(&head), attested),
            ChainVerdict::Intact {
                entries: 4,
                head_seq: 6
            }
        );
    }

    #[test]
    fn the_encoding_is_unambiguous() {
        // Moving a separator between two fields changes the hash.
        let (_, entries) = chain(1);
        let mut a = entries[0].clone();
        let mut b = entries[0].clone();
        a.target_type = "a|b".into();
        a.target_id = Some("c".into());
        b.target_type = "a".into();
        b.target_id = Some("b|c".into());
        assert_ne!(entry_hash(&a.hashed()), entry_hash(&b.hashed()));
    }
}
