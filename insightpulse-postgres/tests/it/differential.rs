//! The differential test (`insightpulse_testing::differential`): seeded
//! random sequences over every repository method, applied to the in-memory
//! fake and to PostgreSQL with one shared clock, compared call by call and
//! by every actor's final view; a divergence is shrunk to a minimal
//! sequence and reported with its seed.
//!
//! Every sequence (and every candidate while shrinking) gets a fresh
//! database: one database is migrated once, and each sequence's is
//! `CREATE DATABASE … TEMPLATE` of it (a file copy, far cheaper than
//! migrating), dropped in the background while the next sequence runs.
//!
//! Budget: `SEEDS` × `OPS` by default. A soak:
//! `INSIGHTPULSE_DIFF_SEEDS=200 INSIGHTPULSE_DIFF_OPS=150`; a replay:
//! `INSIGHTPULSE_DIFF_SEED=<n>`; every divergence instead of the first:
//! `INSIGHTPULSE_DIFF_ALL=1`.

use async_trait::async_trait;
use insightpulse_core::tenancy::passwords::PasswordCost;
use insightpulse_core::tenancy::tokens::TokenHasher;
use insightpulse_core::{ManualClock, Repos};
use insightpulse_postgres::PgBackend;
use insightpulse_testing::differential::{self, Config, RealBackend};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// Seeds of the default run (about 25 s for 12 × 80 on a 2-core machine,
/// debug build, with its own fresh databases; a divergence adds its
/// shrinking, ~10–30 s).
const SEEDS: u64 = 12;
/// Steps per sequence of the default run (100 since the outbox and the job
/// queue joined: the older modules keep about 80 steps of a sequence).
const OPS: usize = 100;

/// Fresh databases copied from one migrated template.
struct PgDatabases {
    admin: PgPool,
    options: PgConnectOptions,
    prefix: String,
    template: String,
    next: AtomicU32,
    /// The database of the running sequence, and its pool.
    current: Mutex<Option<(String, PgPool)>>,
    /// Drops still running.
    dropping: Mutex<Vec<JoinHandle<()>>>,
}

impl PgDatabases {
    async fn new() -> Self {
        let url = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL must name a PostgreSQL superuser (see scripts/test.sh)");
        let options: PgConnectOptions = url.parse().expect("DATABASE_URL parses");
        let admin = PgPoolOptions::new()
            .max_connections(3)
            .connect_with(options.clone())
            .await
            .expect("connect as the superuser of DATABASE_URL");
        drop_stale(&admin).await;
        let prefix = format!("ipdiff_{}", std::process::id());
        let template = format!("{prefix}_template");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {template} WITH (FORCE)").as_str())
            .await
            .expect("drop an old template");
        admin
            .execute(format!("CREATE DATABASE {template}").as_str())
            .await
            .expect("create the template database");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().database(&template))
            .await
            .expect("connect to the template database");
        PgBackend::from_pool(pool.clone(), TokenHasher::insecure_development())
            .migrate()
            .await
            .expect("migrate the template database");
        pool.close().await;
        Self {
            admin,
            options,
            prefix,
            template,
            next: AtomicU32::new(0),
            current: Mutex::new(None),
            dropping: Mutex::new(Vec::new()),
        }
    }

    /// Waits for the background drops, then drops the template.
    async fn finish(&self) {
        for task in self.dropping.lock().await.drain(..) {
            let _ = task.await;
        }
        let _ = self
            .admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.template).as_str())
            .await;
    }
}

/// Drops the databases of earlier runs whose process is gone.
async fn drop_stale(admin: &PgPool) {
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'ipdiff\\_%'")
            .fetch_all(admin)
            .await
            .unwrap_or_default();
    for (name,) in names {
        let pid = name.split('_').nth(1).unwrap_or_default();
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
    }
}

#[async_trait]
impl RealBackend for PgDatabases {
    async fn fresh(&self, clock: Arc<ManualClock>) -> Result<Repos, String> {
        let name = format!(
            "{}_{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        self.admin
            .execute(format!("CREATE DATABASE {name} TEMPLATE {}", self.template).as_str())
            .await
            .map_err(|e| format!("create database {name}: {e}"))?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(self.options.clone().database(&name))
            .await
            .map_err(|e| format!("connect to {name}: {e}"))?;
        let backend = PgBackend::from_pool(pool.clone(), TokenHasher::insecure_development())
            .with_clock(clock)
            .with_password_cost(PasswordCost::InsecureFastForTests);
        *self.current.lock().await = Some((name, pool));
        Ok(backend.repos())
    }

    async fn release(&self) {
        let Some((name, pool)) = self.current.lock().await.take() else {
            return;
        };
        let admin = self.admin.clone();
        let task = tokio::spawn(async move {
            pool.close().await;
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        });
        self.dropping.lock().await.push(task);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_agrees_with_postgres_on_random_sequences() {
    let databases = PgDatabases::new().await;
    let config = Config::from_env(SEEDS, OPS);
    let result = differential::check(&databases, &config).await;
    databases.finish().await;
    match result {
        Ok(summary) => println!("{summary}"),
        Err(report) => panic!("{report}"),
    }
}
