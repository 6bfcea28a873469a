//! Embedding in a host's database: the SDK lives in its own schemas with
//! its own migration bookkeeping, so a host's own tables (`public.users`,
//! `projects`, `audit_logs` …) and its own sqlx migrations coexist with it,
//! in either order; the roles and a Supabase-style `auth.uid()` are left as
//! they were; a failed migration leaves no lock behind.

use crate::backend;
use insightpulse_core::projects::NewProject;
use insightpulse_core::tenancy::{NewTenant, SignUp};
use insightpulse_core::{Email, Name, RequestMeta, SecretString, Slug, TimeZone};
use insightpulse_postgres::migrate::MigrateError;
use sqlx::migrate::Migrator;
use sqlx::{PgPool, Row};
use std::path::PathBuf;
use std::time::Duration;

/// The host's migrations: `0001_users`, `0002_projects`, later `0003_invoices`.
static HOST: Migrator = sqlx::migrate!("tests/it/host_migrations");

/// The host's migrator as it was before it added `0003_invoices`.
async fn host_v1() -> Migrator {
    let dir = std::env::temp_dir().join(format!("ip-host-v1-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/host_migrations");
    for file in ["0001_users.sql", "0002_projects.sql"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    let migrator = Migrator::new(dir.as_path()).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    migrator
}

/// The versions recorded, after checking that each is recorded with the
/// checksum of the SQL this SDK embeds.
async fn sdk_versions(pool: &PgPool) -> Vec<i64> {
    let recorded: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM insightpulse._migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap();
    for (version, checksum) in &recorded {
        let embedded = insightpulse_postgres::migrate::migrations()
            .find(|m| m.version == *version)
            .unwrap();
        assert_eq!(
            checksum.as_slice(),
            embedded.checksum,
            "migration {version}"
        );
        assert_eq!(checksum.len(), 48, "a SHA-384");
    }
    recorded.into_iter().map(|(v, _)| v).collect()
}

async fn host_versions(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM public._sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The relations in `public`, which only the host creates.
async fn public_relations(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT relname::text FROM pg_class
          WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v', 'S')
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The host works with its own tables and the SDK with its own, on one
/// pool: a host user and project, an SDK sign-up and project.
async fn both_work(pool: &PgPool, host_email: &str, slug: &str) {
    let host_user: i64 = sqlx::query_scalar("INSERT INTO users (email) VALUES ($1) RETURNING id")
        .bind(host_email)
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO projects (user_id, title) VALUES ($1, 'host project')")
        .bind(host_user)
        .execute(pool)
        .await
        .unwrap();
    let (backend, _) = backend(pool.clone()).await;
    let repos = backend.repos();
    let signed = repos
        .auth
        .sign_up(
            RequestMeta::default(),
            SignUp {
                email: Email::parse(host_email).unwrap(),
                full_name: None,
                password: SecretString::from("correct horse battery"),
                tenant: NewTenant {
                    slug: Slug::parse(slug).unwrap(),
                    name: Name::parse("Acme").unwrap(),
                    timezone: TimeZone::utc(),
                },
            },
        )
        .await
        .unwrap();
    let project = NewProject {
        slug: Slug::parse("web").unwrap(),
        name: Name::parse("Web").unwrap(),
        description: None,
    };
    repos
        .projects
        .create_project(&signed.ctx, project)
        .await
        .unwrap();
    // Each side sees its own rows under the same names.
    let (host_users, host_projects): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM public.users WHERE email = $1),
                (SELECT count(*) FROM public.projects)",
    )
    .bind(host_email)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((host_users, host_projects), (1, 1));
    let sdk_projects: i64 =
        sqlx::query_scalar("SELECT count(*) FROM insightpulse.projects WHERE tenant_id = $1")
            .bind(signed.tenant.id.0)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(sdk_projects, 1);
}

fn all_sdk_versions() -> Vec<i64> {
    insightpulse_postgres::migrate::migrations()
        .map(|m| m.version)
        .collect()
}

#[sqlx::test(migrations = false)]
async fn the_host_migrates_first_then_the_sdk_then_both_again(pool: PgPool) {
    host_v1().await.run(&pool).await.unwrap();
    let (backend, _) = backend(pool.clone()).await; // migrates
    host_v1().await.run(&pool).await.unwrap();
    backend.migrate().await.unwrap();
    // The host adds a migration later; both still agree.
    HOST.run(&pool).await.unwrap();
    backend.migrate().await.unwrap();

    assert_eq!(host_versions(&pool).await, vec![1, 2, 3]);
    assert_eq!(sdk_versions(&pool).await, all_sdk_versions());
    assert_eq!(
        public_relations(&pool).await,
        [
            "_sqlx_migrations",
            "audit_logs",
            "audit_logs_id_seq",
            "invoices",
            "invoices_id_seq",
            "projects",
            "projects_id_seq",
            "users",
            "users_id_seq"
        ]
    );
    both_work(&pool, "ada@host.io", "acme").await;
}

#[sqlx::test(migrations = false)]
async fn the_sdk_migrates_first_then_the_host_then_both_again(pool: PgPool) {
    let (backend, _) = backend(pool.clone()).await;
    // Nothing of the SDK in public: not even sqlx's bookkeeping.
    assert!(public_relations(&pool).await.is_empty());
    HOST.run(&pool).await.unwrap();
    backend.migrate().await.unwrap();
    HOST.run(&pool).await.unwrap();

    assert_eq!(host_versions(&pool).await, vec![1, 2, 3]);
    assert_eq!(sdk_versions(&pool).await, all_sdk_versions());
    both_work(&pool, "grace@host.io", "umbrella").await;
}

/// The roles are created only when missing and never altered, and a
/// Supabase-style `auth` schema with its own `auth.uid()` is untouched.
#[sqlx::test(migrations = false)]
async fn supabase_roles_and_auth_functions_are_left_alone(pool: PgPool) {
    sqlx::query("CREATE SCHEMA auth")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
         AS $$ SELECT '00000000-0000-0000-0000-00000000beef'::uuid $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    let roles = || async {
        let rows: Vec<(String, bool, bool, bool, bool)> = sqlx::query_as(
            "SELECT rolname::text, rolinherit, rolcanlogin, rolbypassrls, rolsuper
               FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role')
              ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        rows
    };
    // The roles are cluster-wide: another test may have created them; make
    // sure they exist, with attributes a Supabase project gives them.
    for role in ["anon", "authenticated", "service_role"] {
        let _ = sqlx::query(&format!("CREATE ROLE {role} NOLOGIN NOINHERIT"))
            .execute(&pool)
            .await;
    }
    let before = roles().await;
    backend(pool.clone()).await;
    assert_eq!(roles().await, before);
    let (uid, body): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT auth.uid(), prosrc FROM pg_proc
          WHERE proname = 'uid' AND pronamespace = 'auth'::regnamespace",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(uid.to_string(), "00000000-0000-0000-0000-00000000beef");
    assert!(body.contains("beef"));
    // Nothing of the SDK landed in the host's auth schema.
    let in_auth: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = 'auth'::regnamespace",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(in_auth, 1);
}

/// A migration that cannot run stops with a typed error, applies nothing,
/// and leaves no lock: the next run (on a one-connection pool) answers at
/// within a minute instead of hanging.
#[sqlx::test(migrations = false)]
async fn a_failed_migration_leaves_no_lock_behind(pool: PgPool) {
    backend(pool.clone()).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    let checksum: Vec<u8> =
        sqlx::query_scalar("SELECT checksum FROM insightpulse._migrations WHERE version = 2")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("UPDATE insightpulse._migrations SET checksum = '\\x00' WHERE version = 2")
        .execute(&pool)
        .await
        .unwrap();
    let backend = insightpulse_postgres::PgBackend::from_pool(
        pool.clone(),
        insightpulse_core::tenancy::tokens::TokenHasher::insecure_development(),
    );
    for _ in 0..2 {
        let err = tokio::time::timeout(Duration::from_secs(60), backend.migrate())
            .await
            .expect("a second migrate must not wait on a lock the first one left")
            .unwrap_err();
        let insightpulse_core::Error::Backend(source) = &err else {
            panic!("{err:?}");
        };
        assert!(
            matches!(
                source.downcast_ref::<MigrateError>(),
                Some(MigrateError::Changed { version: 2 })
            ),
            "{source}"
        );
        assert_eq!(
            err.to_string(),
            "backend error: insightpulse migration 2 was applied but its SQL has changed since"
        );
    }
    let advisory: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
              WHERE l.locktype = 'advisory' AND d.datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(advisory, 0);

    // Restored, it migrates again; a migration of an unknown (newer)
    // version is refused just as clearly.
    sqlx::query("UPDATE insightpulse._migrations SET checksum = $1 WHERE version = 2")
        .bind(checksum)
        .execute(&pool)
        .await
        .unwrap();
    backend.migrate().await.unwrap();
    sqlx::query(
        "INSERT INTO insightpulse._migrations (version, description, checksum, execution_ms)
         VALUES (9999, 'from the future', '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = backend.migrate().await.unwrap_err();
    let insightpulse_core::Error::Backend(source) = &err else {
        panic!("{err:?}");
    };
    assert!(
        matches!(
            source.downcast_ref::<MigrateError>(),
            Some(MigrateError::Unknown { version: 9999 })
        ),
        "{source}"
    );
    assert!(err
        .to_string()
        .contains("migration 9999, which this SDK does not know"));
}

/// Several processes starting at once migrate once.
#[sqlx::test(migrations = false)]
async fn concurrent_migrators_apply_each_migration_once(pool: PgPool) {
    let backend = insightpulse_postgres::PgBackend::from_pool(
        pool.clone(),
        insightpulse_core::tenancy::tokens::TokenHasher::insecure_development(),
    );
    let runs = (0..4).map(|_| {
        let b = backend.clone();
        tokio::spawn(async move { b.migrate().await })
    });
    for run in runs.collect::<Vec<_>>() {
        run.await.unwrap().unwrap();
    }
    assert_eq!(sdk_versions(&pool).await, all_sdk_versions());
}

/// The seed's example queries run verbatim once the SDK's schema is on the
/// search path (here a DBA's session, as the owner).
#[sqlx::test(migrations = false)]
async fn the_seeds_examples_run_verbatim_on_the_search_path(pool: PgPool) {
    backend(pool.clone()).await;
    let mut conn = pool.acquire().await.unwrap();
    conn.close_on_drop();
    sqlx::query("SET search_path TO insightpulse, public")
        .execute(&mut *conn)
        .await
        .unwrap();
    // "Create First Tenant"
    let tenant: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO tenants (slug, name, timezone)
         VALUES ('acme', 'Acme Corporation', 'America/New_York')
         RETURNING id;",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let user: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, full_name)
         VALUES ('admin@acme.com', 'Admin User')
         RETURNING id;",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    sqlx::query(&format!(
        "INSERT INTO org_memberships (tenant_id, user_id, is_owner, status)
         VALUES ('{tenant}', '{user}', true, 'active');"
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(&format!(
        "INSERT INTO user_roles (user_id, tenant_id, role_id)
         SELECT '{user}', '{tenant}', id
         FROM roles WHERE name = 'Admin' AND scope = 'org';"
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    // "Get User's Tenants"
    let rows = sqlx::query(&format!(
        "SELECT t.*
         FROM tenants t
         JOIN org_memberships om ON t.id = om.tenant_id
         WHERE om.user_id = '{user}' AND om.status = 'active';"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let slugs: Vec<String> = rows.iter().map(|r| r.get("slug")).collect();
    assert_eq!(slugs, ["acme"]);
}

/// A migrating role that is neither a superuser nor BYPASSRLS would own
/// SECURITY DEFINER functions that forced RLS blinds: it is refused before
/// anything of the SDK is created.
#[sqlx::test(migrations = false)]
async fn a_migrator_without_bypassrls_is_refused_up_front(pool: PgPool) {
    let role = format!("ip_plain_{}", uuid::Uuid::new_v4().simple());
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    for sql in [
        format!("CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS"),
        format!("GRANT CREATE ON DATABASE \"{db}\" TO {role}"),
    ] {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
    let plain = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(pool.connect_options().as_ref().clone().username(&role))
        .await
        .unwrap();
    let backend = insightpulse_postgres::PgBackend::from_pool(
        plain.clone(),
        insightpulse_core::tenancy::tokens::TokenHasher::insecure_development(),
    );
    let err = backend.migrate().await.unwrap_err();
    plain.close().await;
    let insightpulse_core::Error::Backend(source) = &err else {
        panic!("{err:?}");
    };
    let migrate_err = source.downcast_ref::<MigrateError>();
    let Some(MigrateError::Database {
        version: Some(1),
        source: sqlx::Error::Database(db_err),
    }) = migrate_err
    else {
        panic!("{source}");
    };
    // The database's refusal stays reachable for the host's logs.
    let cause = std::error::Error::source(migrate_err.unwrap()).expect("a cause");
    assert!(cause.to_string().contains("BYPASSRLS"), "{cause}");
    assert_eq!(db_err.code().as_deref(), Some("42501"), "{db_err}");
    assert!(db_err.message().contains("BYPASSRLS"), "{db_err}");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class
          WHERE relnamespace = 'insightpulse'::regnamespace AND relname NOT LIKE '\\_migrations%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 0);
    for sql in [
        format!("REVOKE CREATE ON DATABASE \"{db}\" FROM {role}"),
        "DROP SCHEMA insightpulse CASCADE".to_owned(),
        format!("DROP ROLE {role}"),
    ] {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
}
