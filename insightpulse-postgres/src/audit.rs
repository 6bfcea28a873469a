//! The audit trail on PostgreSQL (core module [`insightpulse_core::audit`];
//! schema in `migrations/0004_audit.sql`).
//!
//! Rule guarded here: every audited mutation calls [`PgBackend::audit`]
//! inside its own transaction, so the entry commits or rolls back with the
//! change. The database links the entry into the tenant's chain (a trigger
//! sets `seq`, `prev_hash` and `hash`); this module only supplies the
//! content, and the commitment to the personal fields, which is computed
//! here by core so that SQL never has to format an ip address the way Rust
//! does.

use crate::error::{corrupt, db};
use crate::guard::{may_list, require};
use crate::idempotency::claim;
use crate::privacy::{Batch, Retention};
use crate::rows::{parse, row, sql};
use crate::uow::traced;
use crate::uow::{quote_literal, uuid_literal, Tx};
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::audit::{
    chain, Actor, ActorFilter, AuditCursor, AuditEntry, AuditEvent, AuditPage, AuditQuery,
    AuditRepo, ChainVerdict, Diff, KeyLabel, PLATFORM_TENANT,
};
use insightpulse_core::idempotency::{Call, Operation};
use insightpulse_core::privacy::RetentionAction;
use insightpulse_core::{
    ApiKeyId, AuditAction, AuditEntryId, Context, Entity, Error, Name, PermissionCode, RequestMeta,
    Result, TargetType, TenantId, UserId,
};
use sqlx::Executor;
use uuid::Uuid;

/// Entries a verification reads per round trip.
const VERIFY_PAGE: i64 = 5_000;

impl PgBackend {
    /// Appends `event` to `tenant`'s trail in `tx`, as the context's
    /// principal with its request metadata. The entry is sent with the
    /// transaction's `COMMIT` (no round trip of its own), so it commits or
    /// rolls back with the change; its errors surface from `commit`.
    pub(crate) fn audit(&self, tx: &mut Tx, ctx: &Context, tenant: TenantId, event: AuditEvent) {
        #[cfg(feature = "bench-unaudited")]
        if self.unaudited {
            return;
        }
        append(
            tx,
            tenant,
            &Actor::of(ctx),
            ctx.request(),
            &event,
            self.clock.now(),
        );
    }

    /// Like [`Self::audit`], but sent at once: for a change that takes away
    /// the writer's own access to the tenant (leaving it, suspending
    /// oneself, deleting the tenant), whose entry must be written while the
    /// writer is still a member.
    pub(crate) async fn audit_now(
        &self,
        tx: &mut Tx,
        ctx: &Context,
        tenant: TenantId,
        event: AuditEvent,
    ) -> Result<()> {
        #[cfg(feature = "bench-unaudited")]
        if self.unaudited {
            return Ok(());
        }
        let statement = entry_statement(
            AuditEntryId::new(),
            tenant,
            &Actor::of(ctx),
            ctx.request(),
            &event,
            self.clock.now(),
        );
        tx.execute(statement.as_str()).await.map_err(db)?;
        Ok(())
    }
}

/// Queues an entry for `actor` (not necessarily the transaction's
/// principal: the system writes on behalf of an invitation's acceptor) to
/// be appended with `tx`'s `COMMIT`. Returns the entry's id.
pub(crate) fn append(
    tx: &mut Tx,
    tenant: TenantId,
    actor: &Actor,
    request: &RequestMeta,
    event: &AuditEvent,
    at: DateTime<Utc>,
) -> AuditEntryId {
    let id = AuditEntryId::new();
    tx.queue(entry_statement(id, tenant, actor, request, event, at));
    id
}

/// `SELECT audit_append(…)` with every value inlined as a literal (the
/// statement travels in a simple-query message).
fn entry_statement(
    id: AuditEntryId,
    tenant: TenantId,
    actor: &Actor,
    request: &RequestMeta,
    event: &AuditEvent,
    at: DateTime<Utc>,
) -> String {
    let text = |v: Option<&str>| v.map_or_else(|| "NULL".to_owned(), quote_literal);
    let uuid = |v: Option<Uuid>| v.map_or_else(|| "NULL".to_owned(), uuid_literal);
    let bytes = |v: Option<&[u8]>| {
        v.map_or_else(
            || "NULL".to_owned(),
            |b| format!("'\\x{}'::bytea", chain::hex(b)),
        )
    };
    let (salt, digest) = chain::commit_personal(request.ip, request.user_agent.as_deref()).unzip();
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    format!(
        "SELECT audit_append({}, {}::timestamptz, {}, {}::audit_actor_kind, {}, {}, {}, {}, {}, {}, {}::jsonb, {}::inet, {}, {}, {}, {})",
        uuid_literal(tenant.0),
        quote_literal(&at),
        uuid_literal(id.0),
        quote_literal(actor.kind()),
        uuid(actor.user_id().map(|u| u.0)),
        uuid(actor.api_key_id().map(|k| k.0)),
        text(actor.reason()),
        quote_literal(event.action().as_str()),
        quote_literal(event.target_type().as_str()),
        text(event.target_id()),
        quote_literal(&event.diff().to_string()),
        text(request.ip.map(|ip| ip.to_string()).as_deref()),
        text(request.user_agent.as_deref()),
        text(request.request_id.as_deref()),
        bytes(salt.as_deref()),
        bytes(digest.as_ref().map(|d| d.as_slice())),
    )
}

/// Refuses unless `ctx` may read `tenant`'s trail: holders of `audit.read`,
/// and the system for any trail (also of deleted tenants and the platform).
async fn require_reader(tx: &mut Tx, ctx: &Context, tenant: TenantId) -> Result<()> {
    if ctx.is_system() {
        return Ok(());
    }
    require(tx, ctx, tenant, Some(PermissionCode::AUDIT_READ), None).await
}

/// The actor an entry's four actor columns name.
fn actor(
    kind: &str,
    user: Option<Uuid>,
    key: Option<Uuid>,
    reason: Option<String>,
) -> Result<Actor> {
    Actor::from_parts(kind, user.map(UserId), key.map(ApiKeyId), reason).map_err(corrupt)
}

/// An address stored as `host(ip)`.
fn ip(text: Option<String>) -> Result<Option<std::net::IpAddr>> {
    text.map(|s| s.parse().map_err(corrupt)).transpose()
}

fn digest(bytes: Vec<u8>) -> Result<chain::Digest> {
    chain::digest(&bytes).ok_or_else(|| corrupt("a hash that is not 32 bytes"))
}

row! {
    /// An entry as the report shows it (see [`ReportRow`] for the names
    /// of its actors).
    struct EntryRow {
        id: Uuid,
        tenant_id: Uuid,
        seq: i64,
        created_at: DateTime<Utc>,
        #[sql = "actor_kind::text"]
        actor_kind: String,
        user_id: Option<Uuid>,
        api_key_id: Option<Uuid>,
        actor_reason: Option<String>,
        action: String,
        target_type: String,
        target_id: Option<String>,
        diff: serde_json::Value,
        #[sql = "host(ip)"]
        ip: Option<String>,
        user_agent: Option<String>,
        request_id: Option<String>,
        hash: Vec<u8>,
    }
}

/// A report's row: the entry and the names of its acting user and key.
#[derive(sqlx::FromRow)]
struct ReportRow {
    #[sqlx(flatten)]
    entry: EntryRow,
    actor_email: Option<String>,
    actor_key_name: Option<String>,
    actor_key_prefix: Option<String>,
}

impl TryFrom<ReportRow> for AuditEntry {
    type Error = Error;
    fn try_from(r: ReportRow) -> Result<Self> {
        let e = r.entry;
        let actor_key = match (r.actor_key_name, r.actor_key_prefix) {
            (Some(name), Some(prefix)) => Some(KeyLabel {
                name: parse(&name, Name::parse)?,
                prefix,
            }),
            _ => None,
        };
        Ok(AuditEntry {
            id: AuditEntryId(e.id),
            tenant_id: TenantId(e.tenant_id),
            seq: e.seq,
            created_at: e.created_at,
            actor: actor(&e.actor_kind, e.user_id, e.api_key_id, e.actor_reason)?,
            actor_email: r.actor_email,
            actor_key,
            action: parse(&e.action, AuditAction::parse)?,
            target_type: parse(&e.target_type, TargetType::parse)?,
            target_id: e.target_id,
            diff: e.diff,
            ip: ip(e.ip)?,
            user_agent: e.user_agent,
            request_id: e.request_id,
            hash: digest(e.hash)?,
        })
    }
}

row! {
    /// An entry as its chain hashed it.
    struct StoredRow {
        seq: i64,
        prev_hash: Vec<u8>,
        hash: Vec<u8>,
        tenant_id: Uuid,
        id: Uuid,
        created_at: DateTime<Utc>,
        #[sql = "actor_kind::text"]
        actor_kind: String,
        user_id: Option<Uuid>,
        api_key_id: Option<Uuid>,
        actor_reason: Option<String>,
        action: String,
        target_type: String,
        target_id: Option<String>,
        #[sql = "diff::text"]
        diff_text: String,
        request_id: Option<String>,
        pii_digest: Option<Vec<u8>>,
        pii_salt: Option<Vec<u8>>,
        #[sql = "host(ip)"]
        ip: Option<String>,
        user_agent: Option<String>,
    }
}

impl TryFrom<StoredRow> for chain::StoredEntry {
    type Error = Error;
    fn try_from(r: StoredRow) -> Result<Self> {
        Ok(chain::StoredEntry {
            seq: r.seq,
            prev_hash: digest(r.prev_hash)?,
            hash: digest(r.hash)?,
            tenant_id: TenantId(r.tenant_id),
            id: AuditEntryId(r.id),
            created_at: r.created_at,
            actor: actor(&r.actor_kind, r.user_id, r.api_key_id, r.actor_reason)?,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            diff_text: r.diff_text,
            request_id: r.request_id,
            pii_digest: r.pii_digest.map(digest).transpose()?,
            pii_salt: r.pii_salt,
            ip: ip(r.ip)?,
            user_agent: r.user_agent,
        })
    }
}

row! {
    struct HeadRow {
        seq: i64,
        hash: Vec<u8>,
        anchor_seq: i64,
        anchor_hash: Vec<u8>,
    }
}

impl TryFrom<HeadRow> for chain::ChainHead {
    type Error = Error;
    fn try_from(r: HeadRow) -> Result<Self> {
        Ok(chain::ChainHead {
            seq: r.seq,
            hash: digest(r.hash)?,
            anchor_seq: r.anchor_seq,
            anchor_hash: digest(r.anchor_hash)?,
        })
    }
}

#[async_trait]
impl AuditRepo for PgBackend {
    async fn record_event(&self, ctx: &Context, event: AuditEvent) -> Result<AuditEntryId> {
        traced!(ctx, "AuditRepo.record_event", {
            let t = ctx.require_tenant()?;
            let input = (
                event.action(),
                event.target_type(),
                event.target_id(),
                event.diff(),
            );
            let call = Call::new(Operation::RecordAuditEvent, Some(t), &input)?;
            let (id, now) = (AuditEntryId::new(), self.clock.now());
            let mut tx = self.begin(ctx).await?;
            if t == PLATFORM_TENANT {
                if !ctx.is_system() {
                    return Err(Error::not_found(Entity::Tenant));
                }
            } else {
                require(&mut tx, ctx, t, None, None).await?;
            }
            if let Some(done) = claim(&mut tx, ctx, &call, id.0, now).await? {
                tx.commit().await.map_err(db)?;
                return Ok(AuditEntryId(done));
            }
            let (actor, request) = (Actor::of(ctx), ctx.request());
            tx.queue(entry_statement(id, t, &actor, request, &event, now));
            tx.commit().await.map_err(db)?;
            Ok(id)
        })
    }

    async fn query_entries(&self, ctx: &Context, q: AuditQuery) -> Result<AuditPage> {
        traced!(ctx, "AuditRepo.query_entries", {
            let t = ctx.require_tenant()?;
            q.validate()?;
            let mut tx = self.begin_generic_plans(ctx).await?;
            if !ctx.is_system() && !may_list(&mut tx, ctx, t, PermissionCode::AUDIT_READ).await? {
                return Ok(AuditPage {
                    entries: vec![],
                    next: None,
                });
            }
            let since = self.clock.now() - chrono::Duration::days(i64::from(q.last_days));
            let (kind, user, key) = match &q.actor {
                None => (None, None, None),
                Some(ActorFilter::User(u)) => (Some("user"), Some(u.0), None),
                Some(ActorFilter::ApiKey(k)) => (Some("api_key"), None, Some(k.0)),
                Some(ActorFilter::System) => (Some("system"), None, None),
            };
            // The seed's "Audit Report", one page; the acting users' emails
            // come from audit_actor_emails, which also names members who
            // have left (the users policies no longer show them), and the
            // acting keys' names from audit_actor_keys (api_keys is shown only
            // to holders of api_key.manage), while the keys exist.
            let rows: Vec<ReportRow> = tx
                .query_as(sql!(
                    "WITH page AS (
                    SELECT ",
                    EntryRow::COLUMNS,
                    "
                      FROM audit_logs al
                     WHERE al.tenant_id = $1
                       AND al.created_at >= $2
                       AND ($3::text IS NULL OR al.action = $3)
                       AND ($4::audit_actor_kind IS NULL OR al.actor_kind = $4::audit_actor_kind)
                       AND ($5::uuid IS NULL OR al.user_id = $5)
                       AND ($6::uuid IS NULL OR al.api_key_id = $6)
                       AND ($7::text IS NULL OR al.target_type = $7)
                       AND ($8::text IS NULL OR al.target_id = $8)
                       AND ($9::timestamptz IS NULL OR (al.created_at, al.seq) < ($9, $10))
                     ORDER BY al.created_at DESC, al.seq DESC
                     LIMIT $11)
                 SELECT page.*, e.email AS actor_email,
                        k.name AS actor_key_name, k.prefix AS actor_key_prefix
                   FROM page
                   LEFT JOIN audit_actor_emails($1, ARRAY(SELECT DISTINCT user_id FROM page)) e
                          ON e.id = page.user_id
                   LEFT JOIN audit_actor_keys($1, ARRAY(SELECT DISTINCT api_key_id FROM page)) k
                          ON k.id = page.api_key_id
                  ORDER BY page.created_at DESC, page.seq DESC"
                ))
                .bind(t.0)
                .bind(since)
                .bind(q.action.as_ref().map(|a| a.as_str()))
                .bind(kind)
                .bind(user)
                .bind(key)
                .bind(q.target_type.as_ref().map(|t| t.as_str()))
                .bind(q.target_id.as_deref())
                .bind(q.after.map(|c| c.created_at()))
                .bind(q.after.map_or(0, |c| c.seq))
                .bind(i64::from(q.limit) + 1)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            let mut entries = rows
                .into_iter()
                .map(AuditEntry::try_from)
                .collect::<Result<Vec<_>>>()?;
            let more = entries.len() > q.limit as usize;
            entries.truncate(q.limit as usize);
            let next = if more {
                entries.last().map(AuditCursor::after)
            } else {
                None
            };
            Ok(AuditPage { entries, next })
        })
    }

    async fn verify_chain(&self, ctx: &Context) -> Result<ChainVerdict> {
        traced!(ctx, "AuditRepo.verify_chain", {
            let t = ctx.require_tenant()?;
            // One snapshot: entries appended meanwhile are neither in the
            // head read here nor in the pages below.
            let mut tx = self.begin_snapshot(ctx).await?;
            require_reader(&mut tx, ctx, t).await?;
            let head = tx
                .query_as::<HeadRow>(sql!(
                    "SELECT ",
                    HeadRow::COLUMNS,
                    " FROM audit_chain_heads WHERE tenant_id = $1"
                ))
                .bind(t.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?
                .map(chain::ChainHead::try_from)
                .transpose()?;
            let mut verifier = chain::Verifier::new(head);
            let mut after = i64::MIN;
            loop {
                let rows: Vec<StoredRow> = tx
                    .query_as(sql!(
                        "SELECT ",
                        StoredRow::COLUMNS,
                        " FROM audit_logs
                      WHERE tenant_id = $1 AND seq > $2
                      ORDER BY seq
                      LIMIT $3"
                    ))
                    .bind(t.0)
                    .bind(after)
                    .bind(VERIFY_PAGE)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                let fetched = rows.len();
                for row in rows {
                    let entry = chain::StoredEntry::try_from(row)?;
                    after = entry.seq;
                    if let Some(broken) = verifier.push(&entry) {
                        return Ok(broken);
                    }
                }
                if (fetched as i64) < VERIFY_PAGE {
                    break;
                }
            }
            tx.commit().await.map_err(db)?;
            Ok(verifier.finish())
        })
    }
}

row! {
    /// The result of `audit_purge`: how many entries it deleted, and the
    /// last of them (its new anchor) when it deleted any.
    struct PurgeRow {
        deleted: i64,
        through_seq: Option<i64>,
        through_hash: Option<Vec<u8>>,
    }
}

/// Retention of `run.tenant`'s trail (privacy's hook). Delete purges the
/// oldest entries before the cutoff past the chain's anchor, and returns
/// the entry that attests the purge (the new anchor); anonymize erases the
/// personal fields of entries before the cutoff.
pub(crate) async fn retire(tx: &mut Tx, run: &Retention<'_>) -> Result<Batch> {
    let mut batch = Batch::default();
    match run.action {
        RetentionAction::Delete => {
            let purged: PurgeRow = tx
                .query_as(sql!(
                    "SELECT ",
                    PurgeRow::COLUMNS,
                    " FROM audit_purge($1, $2, $3)"
                ))
                .bind(run.tenant.0)
                .bind(run.cutoff)
                .bind(run.limit)
                .fetch_one(&mut **tx)
                .await
                .map_err(db)?;
            batch.deleted = purged.deleted as u64;
            if batch.deleted > 0 {
                let (Some(seq), Some(hash)) = (purged.through_seq, purged.through_hash) else {
                    return Err(corrupt("a purge without its last entry"));
                };
                let diff = Diff::new()
                    .set("through_seq", seq)
                    .set("through_hash", chain::hex(&hash))
                    .set("deleted", batch.deleted)
                    .set("cutoff", run.cutoff);
                batch.event = Some(AuditEvent::new(
                    chain::PURGE_ACTION,
                    "audit_log",
                    None::<String>,
                    diff,
                )?);
            }
        }
        RetentionAction::Anonymize(_) => {
            let n: i64 = tx
                .query_scalar("SELECT audit_erase_personal(NULL, $1, $2, $3)")
                .bind(run.tenant.0)
                .bind(run.cutoff)
                .bind(run.limit)
                .fetch_one(&mut **tx)
                .await
                .map_err(db)?;
            batch.anonymized = n as u64;
        }
    }
    Ok(batch)
}

/// How many entries of `tenant`'s chain lie past its anchor (those a purge
/// could delete).
pub(crate) async fn unanchored(tx: &mut Tx, tenant: TenantId) -> Result<u64> {
    let n: Option<i64> = tx
        .query_scalar("SELECT seq - anchor_seq FROM audit_chain_heads WHERE tenant_id = $1")
        .bind(tenant.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// Erasure of `user` from every trail (privacy's hook): the personal
/// fields of each entry they made. Returns how many entries changed.
pub(crate) async fn erase_user(tx: &mut Tx, user: UserId) -> Result<u64> {
    let n: i64 = tx
        .query_scalar("SELECT audit_erase_personal($1, NULL, NULL, NULL)")
        .bind(user.0)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    Ok(n as u64)
}

impl PgBackend {
    /// Partition maintenance: makes sure the month of `from` and the
    /// `months_ahead` months after it have their own partition of
    /// `audit_logs`, moving any rows the default partition already holds
    /// for those months. Returns the partitions created. System only; run it
    /// from a monthly job (running it more often is harmless).
    ///
    /// ```no_run
    /// # async fn demo(backend: insightpulse_postgres::PgBackend) -> insightpulse_core::Result<()> {
    /// use insightpulse_core::Context;
    /// let created = backend
    ///     .ensure_audit_partitions(&Context::system("monthly maintenance"), chrono::Utc::now(), 3)
    ///     .await?;
    /// # let _ = created; Ok(()) }
    /// ```
    pub async fn ensure_audit_partitions(
        &self,
        ctx: &Context,
        from: DateTime<Utc>,
        months_ahead: u32,
    ) -> Result<Vec<String>> {
        traced!(ctx, "PgBackend.ensure_audit_partitions", {
            ctx.require_system()?;
            if months_ahead > 120 {
                return Err(Error::validation("months_ahead", "must be at most 120"));
            }
            let mut tx = self.begin(ctx).await?;
            let created: Vec<String> = tx
                .query_scalar("SELECT audit_ensure_partitions($1, $2)")
                .bind(from)
                .bind(months_ahead as i32)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(created)
        })
    }
}
