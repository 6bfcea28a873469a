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

use crate::error::db;
use crate::guard::{may_list, require};
use crate::idempotency::claim;
use crate::uow::traced;
use crate::uow::{quote_literal, uuid_literal, Tx};
use crate::PgBackend;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insightpulse_core::audit::{
    chain, Actor, ActorFilter, AuditCursor, AuditEntry, AuditEvent, AuditPage, AuditQuery,
    AuditRepo, ChainVerdict, KeyLabel, PLATFORM_TENANT,
};
use insightpulse_core::idempotency::{Call, Operation};
use insightpulse_core::{
    ApiKeyId, AuditAction, AuditEntryId, Context, Entity, Error, Name, PermissionCode, RequestMeta,
    Result, TargetType, TenantId, UserId,
};
use sqlx::{Executor, Row};
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

fn actor_of(row: &sqlx::postgres::PgRow) -> Result<Actor> {
    Actor::from_parts(
        row.try_get::<String, _>("actor_kind").map_err(db)?.as_str(),
        row.try_get::<Option<Uuid>, _>("user_id")
            .map_err(db)?
            .map(UserId),
        row.try_get::<Option<Uuid>, _>("api_key_id")
            .map_err(db)?
            .map(ApiKeyId),
        row.try_get("actor_reason").map_err(db)?,
    )
    .map_err(crate::error::corrupt)
}

fn ip_of(row: &sqlx::postgres::PgRow) -> Result<Option<std::net::IpAddr>> {
    row.try_get::<Option<String>, _>("ip")
        .map_err(db)?
        .map(|s| s.parse().map_err(crate::error::corrupt))
        .transpose()
}

fn key_label_of(row: &sqlx::postgres::PgRow) -> Result<Option<KeyLabel>> {
    let name: Option<String> = row.try_get("actor_key_name").map_err(db)?;
    let prefix: Option<String> = row.try_get("actor_key_prefix").map_err(db)?;
    Ok(match (name, prefix) {
        (Some(name), Some(prefix)) => Some(KeyLabel {
            name: crate::rows::parse(&name, Name::parse)?,
            prefix,
        }),
        _ => None,
    })
}

fn digest_of(bytes: Vec<u8>) -> Result<chain::Digest> {
    chain::digest(&bytes).ok_or_else(|| crate::error::corrupt("a hash that is not 32 bytes"))
}

fn entry_of(row: &sqlx::postgres::PgRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: AuditEntryId(row.try_get("id").map_err(db)?),
        tenant_id: TenantId(row.try_get("tenant_id").map_err(db)?),
        seq: row.try_get("seq").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        actor: actor_of(row)?,
        actor_email: row.try_get("actor_email").map_err(db)?,
        actor_key: key_label_of(row)?,
        action: crate::rows::parse(row.try_get("action").map_err(db)?, AuditAction::parse)?,
        target_type: crate::rows::parse(
            row.try_get("target_type").map_err(db)?,
            TargetType::parse,
        )?,
        target_id: row.try_get("target_id").map_err(db)?,
        diff: row.try_get("diff").map_err(db)?,
        ip: ip_of(row)?,
        user_agent: row.try_get("user_agent").map_err(db)?,
        request_id: row.try_get("request_id").map_err(db)?,
        hash: digest_of(row.try_get("hash").map_err(db)?)?,
    })
}

fn stored_of(row: &sqlx::postgres::PgRow) -> Result<chain::StoredEntry> {
    Ok(chain::StoredEntry {
        seq: row.try_get("seq").map_err(db)?,
        prev_hash: digest_of(row.try_get("prev_hash").map_err(db)?)?,
        hash: digest_of(row.try_get("hash").map_err(db)?)?,
        tenant_id: TenantId(row.try_get("tenant_id").map_err(db)?),
        id: AuditEntryId(row.try_get("id").map_err(db)?),
        created_at: row.try_get("created_at").map_err(db)?,
        actor: actor_of(row)?,
        action: row.try_get("action").map_err(db)?,
        target_type: row.try_get("target_type").map_err(db)?,
        target_id: row.try_get("target_id").map_err(db)?,
        diff_text: row.try_get("diff_text").map_err(db)?,
        request_id: row.try_get("request_id").map_err(db)?,
        pii_digest: row
            .try_get::<Option<Vec<u8>>, _>("pii_digest")
            .map_err(db)?
            .map(digest_of)
            .transpose()?,
        pii_salt: row.try_get("pii_salt").map_err(db)?,
        ip: ip_of(row)?,
        user_agent: row.try_get("user_agent").map_err(db)?,
    })
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
            let rows = tx
                .query(
                    "WITH page AS (
                    SELECT al.id, al.tenant_id, al.seq, al.created_at,
                           al.actor_kind::text AS actor_kind, al.user_id, al.api_key_id,
                           al.actor_reason, al.action, al.target_type, al.target_id, al.diff,
                           host(al.ip) AS ip, al.user_agent, al.request_id, al.hash
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
                  ORDER BY page.created_at DESC, page.seq DESC",
                )
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
            let mut entries = rows.iter().map(entry_of).collect::<Result<Vec<_>>>()?;
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
            let head = tx.query(
                "SELECT seq, hash, anchor_seq, anchor_hash FROM audit_chain_heads WHERE tenant_id = $1",
            )
            .bind(t.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .map(|r| -> Result<chain::ChainHead> {
                Ok(chain::ChainHead {
                    seq: r.try_get("seq").map_err(db)?,
                    hash: digest_of(r.try_get("hash").map_err(db)?)?,
                    anchor_seq: r.try_get("anchor_seq").map_err(db)?,
                    anchor_hash: digest_of(r.try_get("anchor_hash").map_err(db)?)?,
                })
            })
            .transpose()?;
            let mut verifier = chain::Verifier::new(head);
            let mut after = i64::MIN;
            loop {
                let rows = tx
                    .query(
                        "SELECT seq, prev_hash, hash, tenant_id, id, created_at,
                            actor_kind::text AS actor_kind, user_id, api_key_id, actor_reason,
                            action, target_type, target_id, diff::text AS diff_text, request_id,
                            pii_digest, pii_salt, host(ip) AS ip, user_agent
                       FROM audit_logs
                      WHERE tenant_id = $1 AND seq > $2
                      ORDER BY seq
                      LIMIT $3",
                    )
                    .bind(t.0)
                    .bind(after)
                    .bind(VERIFY_PAGE)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                for row in &rows {
                    let entry = stored_of(row)?;
                    after = entry.seq;
                    if let Some(broken) = verifier.push(&entry) {
                        return Ok(broken);
                    }
                }
                if (rows.len() as i64) < VERIFY_PAGE {
                    break;
                }
            }
            tx.commit().await.map_err(db)?;
            Ok(verifier.finish())
        })
    }
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
