//! The SDK's own migrator: applies `migrations/*.sql` in version order and
//! records them in `insightpulse._migrations`.
//!
//! Rule guarded here: the SDK shares a database with its host. Its
//! bookkeeping lives in its own schema, never in sqlx's shared
//! `_sqlx_migrations` (where the host's migrator would find versions it
//! does not know, and the SDK the host's), so the two migrators run in
//! either order, any number of times. Each migration runs in its own
//! transaction that first takes a transaction-level advisory lock: two
//! processes migrating at once apply each migration once, and a failure
//! releases the lock with its rollback, on a connection that is closed
//! afterwards and never returned to the pool (the migrations set the
//! session's `search_path`).
//!
//! The same files run with `psql -f` in version order (they carry no
//! bookkeeping then: use one way or the other for a database).
//!
//! An applied migration never changes (its checksum is recorded and a
//! changed file is refused with [`MigrateError::Changed`]): a fix to the
//! schema is a new file.
//!
//! On a Citus coordinator (the `citus` extension is there) the migrations
//! run with DDL propagation off, and the migrator then distributes what
//! they created in the three steps of migration 0012 (see the README's
//! "Running on Citus").

use crate::PoolerMode;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::fmt;
use std::time::Instant;

/// The migrations, embedded at compile time (sqlx only reads and checksums
/// the files here; they are applied by [`run`]).
static EMBEDDED: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The key of the transaction-level advisory lock that serialises
/// migrators of one database ("ipmigrat").
const LOCK_KEY: i64 = 0x6970_6d69_6772_6174;

/// The migrator's statements are unnamed whatever the backend's mode: each
/// runs once, on a connection closed afterwards, so naming them saves
/// nothing, and unnamed they are right through any pooler.
const STATEMENTS: PoolerMode = PoolerMode::Transaction;

const BOOKKEEPING: &str = "
    CREATE SCHEMA IF NOT EXISTS insightpulse;
    CREATE TABLE IF NOT EXISTS insightpulse._migrations (
        version      bigint PRIMARY KEY,
        description  text NOT NULL,
        checksum     bytea NOT NULL,
        applied_at   timestamptz NOT NULL DEFAULT now(),
        execution_ms bigint NOT NULL
    )";

/// One migration of the SDK.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version (the file's number).
    pub version: i64,
    /// What it creates (from the file name).
    pub description: &'static str,
    /// Its SQL.
    pub sql: &'static str,
    /// The SHA-384 of its SQL, as recorded in `insightpulse._migrations`.
    pub checksum: &'static [u8],
}

/// Every migration of the SDK, in the order they apply.
pub fn migrations() -> impl Iterator<Item = Migration> {
    EMBEDDED.iter().map(|m| Migration {
        version: m.version,
        description: &m.description,
        sql: &m.sql,
        checksum: &m.checksum,
    })
}

/// Why [`run`] stopped. Nothing of the failing migration is applied.
#[derive(Debug)]
#[non_exhaustive]
pub enum MigrateError {
    /// A migration this SDK applied before has different SQL now.
    Changed {
        /// Its version.
        version: i64,
    },
    /// The database records a migration this SDK does not have (a newer
    /// SDK migrated it).
    Unknown {
        /// Its version.
        version: i64,
    },
    /// The database refused a statement (of `version`, when one was running).
    Database {
        /// The migration that failed, if any.
        version: Option<i64>,
        /// What the database said.
        source: sqlx::Error,
    },
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Changed { version } => write!(
                f,
                "insightpulse migration {version} was applied but its SQL has changed since"
            ),
            Self::Unknown { version } => write!(
                f,
                "the database has insightpulse migration {version}, which this SDK does not know"
            ),
            Self::Database {
                version: Some(v),
                source,
            } => write!(f, "insightpulse migration {v} failed: {source}"),
            Self::Database {
                version: None,
                source,
            } => write!(f, "insightpulse migrations failed: {source}"),
        }
    }
}

impl std::error::Error for MigrateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn database(version: Option<i64>) -> impl Fn(sqlx::Error) -> MigrateError {
    move |source| MigrateError::Database { version, source }
}

/// Applies every pending migration; returns the versions it applied.
pub async fn run(pool: &PgPool) -> Result<Vec<i64>, MigrateError> {
    let mut conn = pool.acquire().await.map_err(database(None))?;
    // The migrations set the session's search_path: this connection must
    // not serve anyone afterwards, whatever happens here.
    conn.close_on_drop();
    let conn: &mut PgConnection = &mut conn;
    locked(conn, None, |c| {
        Box::pin(async move {
            c.execute(BOOKKEEPING).await.map_err(database(None))?;
            Ok(())
        })
    })
    .await?;
    let citus: bool = STATEMENTS
        .query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(database(None))?;
    let mut applied = Vec::new();
    loop {
        let next = locked(conn, None, |c| Box::pin(next_pending(c))).await?;
        let Some(m) = next else {
            break;
        };
        if locked(conn, Some(m.version), |c| Box::pin(apply(c, m, citus))).await? {
            applied.push(m.version);
        }
    }
    if citus {
        distribute(conn, !applied.is_empty()).await?;
    }
    Ok(applied)
}

/// On Citus: distributes the tables the migrations created, in the three
/// steps of migration 0012 (each its own transaction), and brings the
/// workers' functions up to date when a migration may have changed them.
async fn distribute(conn: &mut PgConnection, migrated: bool) -> Result<(), MigrateError> {
    let distributed: i32 = locked(conn, None, |c| {
        Box::pin(async move {
            STATEMENTS
                .query_scalar("SELECT insightpulse.citus_distribute()")
                .fetch_one(&mut *c)
                .await
                .map_err(database(None))
        })
    })
    .await?;
    // A migrator stopped between the steps left what it took off the
    // tables in `_citus_restore`: the next one finishes.
    let unfinished: bool = STATEMENTS
        .query_scalar("SELECT EXISTS (SELECT 1 FROM insightpulse._citus_restore)")
        .fetch_one(&mut *conn)
        .await
        .map_err(database(None))?;
    if distributed > 0 || migrated || unfinished {
        for step in [
            "SELECT insightpulse.citus_sync_workers()",
            "SELECT insightpulse.citus_restore()",
        ] {
            locked(conn, None, |c| {
                Box::pin(async move {
                    c.execute(step).await.map_err(database(None))?;
                    Ok(())
                })
            })
            .await?;
        }
    }
    Ok(())
}

/// Applies `m` and records it, unless another migrator did first. On Citus
/// with DDL propagation off: the migrations before 0012 predate Citus (its
/// deparser loses the search path they set), and [`distribute`] then takes
/// what they created to the workers.
async fn apply(c: &mut PgConnection, m: Migration, citus: bool) -> Result<bool, MigrateError> {
    let failed = database(Some(m.version));
    let done: bool = STATEMENTS
        .query_scalar("SELECT EXISTS (SELECT 1 FROM insightpulse._migrations WHERE version = $1)")
        .bind(m.version)
        .fetch_one(&mut *c)
        .await
        .map_err(&failed)?;
    if done {
        return Ok(false);
    }
    let started = Instant::now();
    if citus {
        c.execute("SET LOCAL citus.enable_ddl_propagation = off")
            .await
            .map_err(&failed)?;
    }
    c.execute(m.sql).await.map_err(&failed)?;
    STATEMENTS
        .query(
            "INSERT INTO insightpulse._migrations (version, description, checksum, execution_ms)
         VALUES ($1, $2, $3, $4)",
        )
        .bind(m.version)
        .bind(m.description)
        .bind(m.checksum)
        .bind(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX))
        .execute(&mut *c)
        .await
        .map_err(&failed)?;
    Ok(true)
}

/// The first migration not applied yet, after checking that every applied
/// one is known and unchanged.
async fn next_pending(c: &mut PgConnection) -> Result<Option<Migration>, MigrateError> {
    let rows: Vec<(i64, Vec<u8>)> = STATEMENTS
        .query_as("SELECT version, checksum FROM insightpulse._migrations")
        .fetch_all(&mut *c)
        .await
        .map_err(database(None))?;
    let mut applied = std::collections::HashSet::new();
    for (version, checksum) in rows {
        match migrations().find(|m| m.version == version) {
            None => return Err(MigrateError::Unknown { version }),
            Some(m) if checksum.as_slice() != m.checksum => {
                return Err(MigrateError::Changed { version })
            }
            Some(_) => {}
        }
        applied.insert(version);
    }
    Ok(migrations().find(|m| !applied.contains(&m.version)))
}

type Step<'c, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, MigrateError>> + Send + 'c>>;

/// Runs `step` in a transaction holding the migrators' advisory lock; the
/// lock goes with the transaction, on success and on failure alike.
async fn locked<T>(
    conn: &mut PgConnection,
    version: Option<i64>,
    step: impl for<'c> FnOnce(&'c mut PgConnection) -> Step<'c, T>,
) -> Result<T, MigrateError> {
    let mut tx = conn.begin().await.map_err(database(version))?;
    STATEMENTS
        .query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await
        .map_err(database(version))?;
    // On an error `tx` is dropped: sqlx rolls it back, releasing the lock.
    let out = step(&mut tx).await?;
    tx.commit().await.map_err(database(version))?;
    Ok(out)
}
