//! The RLS-aware unit of work.
//!
//! Rule: no statement touches data before the transaction has switched to
//! the principal's database role and claims, and both are
//! transaction-local, so a pooled connection (or PgBouncer in transaction
//! mode) never carries one caller's identity into the next call.
//!
//! Cost: the role, the claims and `BEGIN` travel in **one** simple-query
//! message (`BEGIN; SELECT set_config('role', …, true),
//! set_config('request.jwt.claims', …, true)`), so a unit of work costs one
//! round trip more than its statements plus `COMMIT`. The values are
//! inlined, which is safe because the claims are built here from typed ids
//! and validated permission codes only (and quoted regardless).
//!
//! | principal | role | claims |
//! |---|---|---|
//! | user | `authenticated` | `{"sub": user}` |
//! | API key | `authenticated` | `{"api_key_id", "tenant_id", "project_id", "environment_id", "permissions"}` |
//! | system | `service_role` (BYPASSRLS) | `{}` |

use crate::error::db;
use crate::PgBackend;
use insightpulse_core::{Context, Principal, Result};
use sqlx::{Postgres, Transaction};
use tracing::Span;

/// A transaction running as the context's principal.
pub type Tx = Transaction<'static, Postgres>;

/// The database role and the claims JSON for a context.
pub fn role_and_claims(ctx: &Context) -> (&'static str, String) {
    match ctx.principal() {
        Principal::User(user) => (
            "authenticated",
            serde_json::json!({ "sub": user }).to_string(),
        ),
        Principal::ApiKey(key) => (
            "authenticated",
            serde_json::json!({
                "api_key_id": key.key_id,
                "tenant_id": key.tenant_id,
                "project_id": key.project_id,
                "environment_id": key.environment_id,
                "permissions": key.permissions,
            })
            .to_string(),
        ),
        Principal::System { .. } => ("service_role", "{}".to_owned()),
    }
}

/// The statement that opens a unit of work for `ctx`.
pub fn begin_statement(ctx: &Context) -> String {
    let (role, claims) = role_and_claims(ctx);
    format!(
        "BEGIN; SELECT set_config('role', '{role}', true), set_config('request.jwt.claims', {}, true)",
        quote_literal(&claims)
    )
}

/// A SQL string literal for `s` (doubling quotes; `E''` form when `s` holds
/// backslashes, so it is right whatever `standard_conforming_strings` says).
pub fn quote_literal(s: &str) -> String {
    let body = s.replace('\'', "''");
    if body.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// The tracing span of one operation: its name, tenant and principal kind,
/// never a secret.
pub(crate) fn span(ctx: &Context, op: &'static str) -> Span {
    tracing::info_span!(
        "insightpulse",
        op,
        tenant = ctx.tenant_id().map(tracing::field::display),
        principal = ctx.principal_kind().as_str(),
        backend = "postgres",
    )
}

impl PgBackend {
    /// Opens a unit of work for `ctx`: one round trip.
    pub(crate) async fn begin(&self, ctx: &Context) -> Result<Tx> {
        self.pool.begin_with(begin_statement(ctx)).await.map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote_literal("a'b"), "'a''b'");
        assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
    }
}
