//! In-memory audit trail: each tenant's hash chain, the append every audited
//! mutation goes through, and the report and verifier of [`AuditRepo`].
//!
//! Rules guarded here:
//! - **One writer path.** Every entry — an SDK mutation's, a host app's, a
//!   retention run's — is appended by [`AuditState::append`], inside the
//!   same locked mutation as the change it records, so an audited change
//!   never lands without its entry and a failed call leaves none.
//! - **The hashing is core's.** Hashes, personal-data commitments and salts
//!   come from `insightpulse_core::audit::chain`, and verification is
//!   `chain::verify`; nothing here re-implements the encoding, so a chain
//!   written here verifies exactly like one written by PostgreSQL.
//! - **Entries only ever lose personal data.** After the append, the only
//!   changes an entry sees are the erasure of its ip, user agent and salt
//!   ([`AuditState::erase_personal_data`], for an erased user or by an
//!   anonymizing retention policy) and a retention purge of the chain's
//!   oldest prefix, which moves the head's anchor and is attested by the
//!   `audit.purged` entry it appends — so the chain still verifies.
//! - **The trail outlives its tenant.** Deleting a tenant keeps its chain;
//!   from then on only the system can read it.

use super::privacy::{retention_event, Counts, RetentionRun};
use super::{MemoryBackend, State};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use insightpulse_core::audit::chain::{
    self, ChainHead, Digest, StoredEntry, GENESIS, PURGE_ACTION,
};
use insightpulse_core::audit::{
    Actor, AuditCursor, AuditEntry, AuditEvent, AuditPage, AuditQuery, AuditRepo, ChainVerdict,
    Diff, KeyLabel, PLATFORM_TENANT,
};
use insightpulse_core::clock::truncate_to_micros;
use insightpulse_core::idempotency::{self, Call, Operation};
use insightpulse_core::privacy::DataCategory;
use insightpulse_core::{
    AuditAction, AuditEntryId, Context, Entity, Error, PermissionCode, RequestMeta, Result,
    TargetType, TenantId, UserId,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One stored entry: exactly what the hash covers (`stored`), plus the
/// typed labels and parsed diff the report hands back, so reading never
/// re-parses what was validated on the way in.
#[derive(Debug, Clone)]
pub(crate) struct AuditRow {
    pub stored: StoredEntry,
    pub action: AuditAction,
    pub target_type: TargetType,
    pub diff: Value,
}

impl AuditRow {
    /// Whether the entry still holds any personal field (or the salt that
    /// would let its commitment be matched against guessed values).
    pub fn has_personal_data(&self) -> bool {
        let s = &self.stored;
        s.ip.is_some() || s.user_agent.is_some() || s.pii_salt.is_some()
    }

    /// Erases the personal fields and their salt — the only change an
    /// entry allows; its hash commits to the digest, which stays.
    pub fn erase_personal_data(&mut self) {
        self.stored.ip = None;
        self.stored.user_agent = None;
        self.stored.pii_salt = None;
    }
}

/// One tenant's chain: its head and its entries by position. A chain exists
/// only once its first entry is written, so the head is never "absent" here.
#[derive(Debug, Clone)]
pub(crate) struct AuditChain {
    pub head: ChainHead,
    pub entries: BTreeMap<i64, AuditRow>,
}

impl AuditChain {
    fn empty() -> Self {
        Self {
            head: ChainHead {
                seq: 0,
                hash: GENESIS,
                anchor_seq: 0,
                anchor_hash: GENESIS,
            },
            entries: BTreeMap::new(),
        }
    }
}

/// The audit module's tables: each tenant's chain (head and entries), the
/// platform's included. A chain is not removed with its tenant: the trail
/// outlives it.
#[derive(Debug, Default)]
pub(crate) struct AuditState {
    pub chains: HashMap<TenantId, AuditChain>,
}

impl AuditState {
    /// Appends `event` to `tenant`'s chain as `actor`, with `request`'s
    /// metadata, at `now`. Infallible: callers validate (build the
    /// [`AuditEvent`]) before they mutate anything.
    pub(crate) fn append(
        &mut self,
        tenant: TenantId,
        actor: Actor,
        request: &RequestMeta,
        event: AuditEvent,
        now: DateTime<Utc>,
    ) -> AuditEntryId {
        let chain = self.chains.entry(tenant).or_insert_with(AuditChain::empty);
        let (ip, user_agent) = (request.ip, request.user_agent.clone());
        let (pii_salt, pii_digest) = chain::commit_personal(ip, user_agent.as_deref()).unzip();
        let id = AuditEntryId::new();
        let mut stored = StoredEntry {
            seq: chain.head.seq + 1,
            prev_hash: chain.head.hash,
            hash: GENESIS,
            tenant_id: tenant,
            id,
            // The hash covers the instant: at the precision PostgreSQL stores.
            created_at: truncate_to_micros(now),
            actor,
            action: event.action().to_string(),
            target_type: event.target_type().to_string(),
            target_id: event.target_id().map(str::to_owned),
            // `Value`'s Display is `serde_json::to_string` (compact), and
            // infallible; this is the exact text the hash covers.
            diff_text: event.diff().to_string(),
            request_id: request.request_id.clone(),
            pii_digest,
            pii_salt,
            ip,
            user_agent,
        };
        stored.hash = chain::entry_hash(&stored.hashed());
        chain.head.seq = stored.seq;
        chain.head.hash = stored.hash;
        chain.entries.insert(
            stored.seq,
            AuditRow {
                stored,
                action: event.action().clone(),
                target_type: event.target_type().clone(),
                diff: event.diff().clone(),
            },
        );
        id
    }

    /// Erases the personal fields of every entry (any tenant, the platform
    /// included) whose actor is `user` and that still holds any; returns
    /// how many entries changed.
    pub(crate) fn erase_personal_data(&mut self, user: UserId) -> u64 {
        let mut erased = 0;
        for chain in self.chains.values_mut() {
            for row in chain.entries.values_mut() {
                if row.stored.actor.user_id() == Some(user) && row.has_personal_data() {
                    row.erase_personal_data();
                    erased += 1;
                }
            }
        }
        erased
    }
}

impl State {
    /// Appends `event` to `tenant`'s chain as the context's principal, with
    /// its request metadata — what every audited SDK mutation does.
    pub(crate) fn audit(
        &mut self,
        ctx: &Context,
        tenant: TenantId,
        event: AuditEvent,
        now: DateTime<Utc>,
    ) -> AuditEntryId {
        self.audit
            .append(tenant, Actor::of(ctx), ctx.request(), event, now)
    }

    /// Whether the principal may append to tenant `t`'s trail: a tenant it
    /// can see, or — for the system only — the platform trail. A deleted
    /// tenant's trail is closed: its last entry is `tenant.deleted`.
    pub(crate) fn audit_writable(&self, ctx: &Context, t: TenantId) -> bool {
        self.tenant_visible(ctx, t) || (ctx.is_system() && t == PLATFORM_TENANT)
    }

    /// Whether the principal can see tenant `t`'s trail: a tenant it can
    /// see; the system sees every trail, the platform's and those of
    /// deleted tenants (which outlive them) included.
    pub(crate) fn audit_readable(&self, ctx: &Context, t: TenantId) -> bool {
        ctx.is_system() || self.tenant_visible(ctx, t)
    }

    /// An entry as the report returns it, with the acting user's current
    /// email (the pseudonym once erased) or the acting key's name.
    fn report_entry(&self, row: &AuditRow) -> AuditEntry {
        let s = &row.stored;
        AuditEntry {
            id: s.id,
            tenant_id: s.tenant_id,
            seq: s.seq,
            created_at: s.created_at,
            actor: s.actor.clone(),
            actor_email: s
                .actor
                .user_id()
                .and_then(|u| self.tenancy.users.get(&u))
                .map(|u| u.user.email.to_string()),
            actor_key: s
                .actor
                .api_key_id()
                .and_then(|k| self.tenancy.api_keys.get(&(s.tenant_id, k)))
                .map(|k| KeyLabel {
                    name: k.key.name.clone(),
                    prefix: k.key.prefix.clone(),
                }),
            action: row.action.clone(),
            target_type: row.target_type.clone(),
            target_id: s.target_id.clone(),
            diff: row.diff.clone(),
            ip: s.ip,
            user_agent: s.user_agent.clone(),
            request_id: s.request_id.clone(),
            hash: s.hash,
        }
    }
}

impl State {
    /// The trail's retention hook (`audit_logs`): purges the chain's old
    /// prefix, or anonymizes the old entries, as the policy says.
    pub(super) fn retire_audit(&mut self, run: &RetentionRun<'_>) -> Result<Counts> {
        if run.deletes() {
            self.purge_audit(run)
        } else {
            self.anonymize_audit(run)
        }
    }

    /// AuditLogs + Delete: purges the longest prefix of the chain whose
    /// entries are all older than the cutoff, batch by batch; each batch
    /// moves the anchor to its last entry and appends the `audit.purged`
    /// entry that attests it.
    fn purge_audit(&mut self, run: &RetentionRun<'_>) -> Result<Counts> {
        let Some(chain_of_tenant) = self.audit.chains.get(&run.tenant) else {
            return Ok((0, 0));
        };
        // Chosen before the first batch: the entries this run appends are
        // never part of the prefix it purges.
        let doomed: Vec<(i64, Digest)> = chain_of_tenant
            .entries
            .values()
            .take_while(|r| r.stored.created_at < run.cutoff)
            .map(|r| (r.stored.seq, r.stored.hash))
            .collect();
        let mut deleted = 0;
        for batch in doomed.chunks(run.batch_size) {
            let Some(&(through_seq, through_hash)) = batch.last() else {
                continue;
            };
            let event = AuditEvent::new(
                PURGE_ACTION,
                "audit_log",
                None::<String>,
                Diff::new()
                    .set("through_seq", through_seq)
                    .set("through_hash", chain::hex(&through_hash))
                    .set("deleted", batch.len())
                    .set("cutoff", run.cutoff),
            )?;
            if let Some(c) = self.audit.chains.get_mut(&run.tenant) {
                c.entries = c.entries.split_off(&(through_seq + 1));
                c.head.anchor_seq = through_seq;
                c.head.anchor_hash = through_hash;
            }
            self.audit(run.ctx, run.tenant, event, run.at);
            deleted += batch.len() as u64;
        }
        Ok((deleted, 0))
    }

    /// AuditLogs + Anonymize: erases the personal fields of the entries
    /// older than the cutoff that still hold any.
    fn anonymize_audit(&mut self, run: &RetentionRun<'_>) -> Result<Counts> {
        let Some(c) = self.audit.chains.get(&run.tenant) else {
            return Ok((0, 0));
        };
        let targets: Vec<i64> = c
            .entries
            .values()
            .filter(|r| r.stored.created_at < run.cutoff && r.has_personal_data())
            .map(|r| r.stored.seq)
            .collect();
        let mut anonymized = 0;
        for batch in targets.chunks(run.batch_size) {
            let counts = (0, batch.len() as u64);
            let event = retention_event(DataCategory::AuditLogs, run.cutoff, counts)?;
            if let Some(c) = self.audit.chains.get_mut(&run.tenant) {
                for seq in batch {
                    if let Some(row) = c.entries.get_mut(seq) {
                        row.erase_personal_data();
                    }
                }
            }
            self.audit(run.ctx, run.tenant, event, run.at);
            anonymized += counts.1;
        }
        Ok((0, anonymized))
    }
}

#[async_trait]
impl AuditRepo for MemoryBackend {
    async fn record_event(&self, ctx: &Context, event: AuditEvent) -> Result<AuditEntryId> {
        self.run(ctx, "AuditRepo.record_event", || {
            let t = ctx.require_tenant()?;
            let call = Call::new(
                Operation::RecordAuditEvent,
                Some(t),
                &(
                    event.action(),
                    event.target_type(),
                    event.target_id(),
                    event.diff(),
                ),
            )?;
            let scope = idempotency::scope(ctx);
            let now = self.now();
            let mut st = self.lock();
            if !st.audit_writable(ctx, t) {
                return Err(Error::not_found(Entity::Tenant));
            }
            // Entries are immutable: the first call's id is still its entry's.
            if let Some(id) = st.idempotency.replayed(&scope, ctx.request(), &call, now)? {
                return Ok(AuditEntryId(id));
            }
            let id = st.audit(ctx, t, event, now);
            st.idempotency
                .remember(scope, ctx.request(), call, id.0, now);
            Ok(id)
        })
    }

    async fn query_entries(&self, ctx: &Context, q: AuditQuery) -> Result<AuditPage> {
        self.run(ctx, "AuditRepo.query_entries", || {
            // Where before what: the context is checked before the query.
            let t = ctx.require_tenant()?;
            q.validate()?;
            let now = self.now();
            let st = self.lock();
            let empty = AuditPage {
                entries: Vec::new(),
                next: None,
            };
            // Like every list: a trail the principal cannot see is empty.
            if !st.audit_readable(ctx, t) {
                return Ok(empty);
            }
            st.require(ctx, t, PermissionCode::AUDIT_READ, None)?;
            let Some(chain) = st.audit.chains.get(&t) else {
                return Ok(empty);
            };
            let since = now - Duration::days(i64::from(q.last_days));
            let mut rows: Vec<&AuditRow> = chain
                .entries
                .values()
                .filter(|r| r.stored.created_at >= since)
                .filter(|r| {
                    q.after
                        .is_none_or(|c| c.precedes(r.stored.created_at, r.stored.seq))
                })
                .collect();
            rows.sort_by(|a, b| {
                (b.stored.created_at, b.stored.seq).cmp(&(a.stored.created_at, a.stored.seq))
            });
            let limit = q.limit as usize;
            let mut entries: Vec<AuditEntry> = rows
                .into_iter()
                .map(|r| st.report_entry(r))
                .filter(|e| q.matches(e))
                .take(limit + 1)
                .collect();
            let more = entries.len() > limit;
            entries.truncate(limit);
            let next = if more {
                entries.last().map(AuditCursor::after)
            } else {
                None
            };
            Ok(AuditPage { entries, next })
        })
    }

    async fn verify_chain(&self, ctx: &Context) -> Result<ChainVerdict> {
        self.run(ctx, "AuditRepo.verify_chain", || {
            let t = ctx.require_tenant()?;
            let st = self.lock();
            if !st.audit_readable(ctx, t) {
                return Err(Error::not_found(Entity::Tenant));
            }
            st.require(ctx, t, PermissionCode::AUDIT_READ, None)?;
            // A tenant that never wrote an entry has no head: an empty chain.
            let verdict = match st.audit.chains.get(&t) {
                Some(c) => {
                    chain::verify(Some(&c.head), c.entries.values().map(|r| r.stored.clone()))
                }
                None => chain::verify(None, std::iter::empty()),
            };
            Ok(verdict)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> AuditEvent {
        AuditEvent::new("thing.done", "thing", Some(n), Diff::new().set("n", n)).unwrap()
    }

    /// The fake's own storage must produce chains core's verifier accepts,
    /// including after the personal-data erasure it performs in place.
    #[test]
    fn appended_chain_verifies_and_survives_erasure() {
        let mut st = AuditState::default();
        let t = TenantId::new();
        let u = UserId::new();
        let request = RequestMeta::default()
            .with_request_id("req-1")
            .with_ip("192.0.2.7".parse().unwrap())
            .with_user_agent("curl/8");
        let now = Utc::now();
        for n in 0..3 {
            st.append(t, Actor::User(u), &request, event(n), now);
        }
        let verify = |st: &AuditState| {
            let c = &st.chains[&t];
            chain::verify(Some(&c.head), c.entries.values().map(|r| r.stored.clone()))
        };
        assert_eq!(
            verify(&st),
            ChainVerdict::Intact {
                entries: 3,
                head_seq: 3
            }
        );
        assert_eq!(st.erase_personal_data(u), 3);
        assert_eq!(st.erase_personal_data(u), 0);
        assert!(matches!(
            verify(&st),
            ChainVerdict::Intact { entries: 3, .. }
        ));
        let row = &st.chains[&t].entries[&1];
        assert!(row.stored.pii_digest.is_some() && row.stored.pii_salt.is_none());
        assert_eq!(row.stored.request_id.as_deref(), Some("req-1"));
    }

    /// Entries are stamped at the chain's precision even when the clock is
    /// not (a `ManualClock` advanced by nanoseconds).
    #[test]
    fn created_at_is_truncated_to_microseconds() {
        let mut st = AuditState::default();
        let t = TenantId::new();
        let at = DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap();
        st.append(
            t,
            Actor::System {
                reason: "test".into(),
            },
            &RequestMeta::default(),
            event(1),
            at,
        );
        let row = &st.chains[&t].entries[&1];
        assert_eq!(row.stored.created_at.timestamp_subsec_nanos(), 123_456_000);
        assert!(row.stored.pii_salt.is_none() && row.stored.pii_digest.is_none());
    }
}
