//! The cached PostgreSQL template: initdb, roles, schema and seed, built once.
//!
//! Building a seeded database takes seconds (initdb alone ~0.6 s); copying a finished
//! data directory takes tens of milliseconds. So the finished data directory is kept in
//! the cache (`<cache>/templates/<key>/pgdata`), keyed by a hash of everything that
//! shapes it: the migrations, the catalogue and seed-generator versions, the seed, the
//! track count and the PostgreSQL binary. A build happens in a run directory of its own
//! (so a killed build is reaped like a killed stack), is copied into the cache under a
//! temporary name and renamed into place atomically; when two processes race, the
//! loser's rename fails and it discards its copy. Within one process, builds are
//! serialised.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, SqlSafeStr};
use wire::Service;

use super::binaries::Binaries;
use super::logs;
use super::postgres::{self, APP_USER, DATABASE, Listen, SUPERUSER};
use super::run_dir::{RunDir, remove_tree};
use super::supervisor::Supervisor;
use crate::StackError;
use crate::catalogue::{CATALOGUE_VERSION, Catalogue};
use crate::seed::{self, SEED_GENERATOR_VERSION, SeedData};

/// The migrations of musicdb, embedded at compile time. Listed here rather than read
/// by `sqlx::migrate!`, whose procedural macro compiles sqlx's PostgreSQL driver a
/// second time on every clean build: a new file in `fixtures/migrations` gets a line.
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "musicdb".into(),
        MigrationType::Simple,
        include_str!("../../../fixtures/migrations/0001_musicdb.sql").into_sql_str(),
        false,
    )])
});

/// Whether a template had to be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateOutcome {
    /// Found in the cache.
    Cached,
    /// Built now, in this long.
    Built(Duration),
}

/// A ready template data directory.
#[derive(Clone, Debug)]
pub struct Template {
    pub pgdata: PathBuf,
    pub outcome: TemplateOutcome,
}

/// The cache key of the template for `seed` and `tracks`.
pub fn key(bins: &Binaries, seed: u64, tracks: usize) -> String {
    let mut hash = Sha256::new();
    hash.update(b"runbook-drill pg template v5\n");
    for migration in MIGRATOR.iter() {
        hash.update(migration.version.to_le_bytes());
        hash.update(&*migration.checksum);
    }
    hash.update(CATALOGUE_VERSION.to_le_bytes());
    hash.update(SEED_GENERATOR_VERSION.to_le_bytes());
    hash.update(seed.to_le_bytes());
    hash.update((tracks as u64).to_le_bytes());
    // A data directory belongs to one PostgreSQL build.
    hash.update(bins.postgres.as_os_str().as_encoded_bytes());
    if let Ok(meta) = fs::metadata(&bins.postgres) {
        hash.update(meta.size().to_le_bytes());
        hash.update(meta.mtime().to_le_bytes());
    }
    hex::encode(&hash.finalize()[..12])
}

/// The template for `seed` and `tracks`, built into `cache_dir` if it is not there yet.
pub async fn ensure(
    bins: &Binaries,
    cache_dir: &Path,
    runtime_root: &Path,
    seed: u64,
    tracks: usize,
) -> Result<Template, StackError> {
    let templates = cache_dir.join("templates");
    let key = key(bins, seed, tracks);
    let final_dir = templates.join(&key);
    let pgdata = final_dir.join("pgdata");
    if pgdata.is_dir() {
        return Ok(Template {
            pgdata,
            outcome: TemplateOutcome::Cached,
        });
    }
    // One build at a time in this process; the second caller finds the first one's result.
    static BUILDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _building = BUILDING.lock().await;
    if pgdata.is_dir() {
        return Ok(Template {
            pgdata,
            outcome: TemplateOutcome::Cached,
        });
    }
    let started = Instant::now();
    fs::create_dir_all(&templates).map_err(StackError::io(format!(
        "creating the template cache {}",
        templates.display()
    )))?;
    let catalogue = Catalogue::shared(seed, Catalogue::len_for(tracks));
    let data = SeedData::generate(&catalogue, seed, tracks);
    let run = RunDir::create(runtime_root, &format!("template-build {key}"))?;
    let built = run.path().join("pg");
    let staging = templates.join(format!(".tmp-{}", run.run_id()));
    let result = build(bins, run, &built, &data, &staging).await;
    if let Err(error) = result {
        remove_tree(&staging);
        return Err(error);
    }
    fs::write(
        staging.join("template.json"),
        serde_json::to_vec_pretty(&serde_json::json!({
            "seed": seed,
            "tracks": tracks,
            "catalogue_version": CATALOGUE_VERSION,
            "seed_generator_version": SEED_GENERATOR_VERSION,
            "postgres": bins.postgres,
            "built_at": chrono::Utc::now().to_rfc3339(),
        }))
        .expect("metadata serialises"),
    )
    .map_err(StackError::io("describing the template"))?;
    match fs::rename(&staging, &final_dir) {
        Ok(()) => {}
        // Another process finished first: theirs is as good as ours.
        Err(_) if pgdata.is_dir() => remove_tree(&staging),
        Err(e) => {
            remove_tree(&staging);
            return Err(StackError::io(format!(
                "moving the template into {}",
                final_dir.display()
            ))(e));
        }
    }
    Ok(Template {
        pgdata,
        outcome: TemplateOutcome::Built(started.elapsed()),
    })
}

/// initdb, start, roles, database, migrations, seed, snapshot, clean stop; then copies
/// the data directory to `staging/pgdata`. The build's run directory goes with `run`.
async fn build(
    bins: &Binaries,
    run: RunDir,
    pgdata: &Path,
    data: &SeedData,
    staging: &Path,
) -> Result<(), StackError> {
    let owner = postgres::run_as()?;
    postgres::create_data_dir(pgdata, owner)?;
    postgres::initdb(bins, pgdata, owner)?;
    let port = run.claim_port()?;
    let log = logs::path(run.path(), Service::Postgres);
    let listen = Listen {
        port,
        addresses: "127.0.0.1".into(),
    };
    let http = reqwest::Client::new();
    let mut supervisor = Supervisor::new(run, http);
    supervisor.add(
        Service::Postgres,
        postgres::slot(bins, pgdata, &listen, owner, &log, "postgres", None),
    );
    supervisor.start(Service::Postgres).await?;

    let mut admin = connect(port, SUPERUSER, "postgres").await?;
    // One statement per call: CREATE DATABASE cannot run inside the implicit
    // transaction of a multi-statement query.
    for statement in [
        "CREATE ROLE musicdb_user LOGIN",
        // The runbooks read pg_stat_activity and call pg_terminate_backend as musicdb_user.
        "GRANT pg_read_all_stats, pg_signal_backend TO musicdb_user",
        "CREATE DATABASE musicdb OWNER musicdb_user",
    ] {
        sqlx::raw_sql(statement)
            .execute(&mut admin)
            .await
            .map_err(StackError::db(format!("setting up musicdb: {statement}")))?;
    }
    let _ = admin.close().await;

    // Through a one-connection pool: `Migrator::run` on a bare connection makes this
    // future non-`Send` (sqlx's "Acquire is not general enough").
    let app = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(postgres::connect_options(port, APP_USER, DATABASE))
        .await
        .map_err(StackError::db("connecting to musicdb as musicdb_user"))?;
    MIGRATOR.run(&app).await?;
    let mut conn = app
        .acquire()
        .await
        .map_err(StackError::db("connecting to musicdb as musicdb_user"))?;
    seed::load::insert(&mut conn, data).await?;
    drop(conn);
    app.close().await;

    let mut admin = connect(port, SUPERUSER, DATABASE).await?;
    seed::snapshot::install(&mut admin).await?;
    for statement in ["VACUUM ANALYZE", "CHECKPOINT"] {
        sqlx::raw_sql(statement)
            .execute(&mut admin)
            .await
            .map_err(StackError::db(format!(
                "finishing the template: {statement}"
            )))?;
    }
    let _ = admin.close().await;

    // A clean (fast) shutdown, so copies start without crash recovery.
    supervisor
        .stop(Service::Postgres)
        .await
        .map_err(|e| StackError::Io {
            action: format!("stopping the template's PostgreSQL: {e}"),
            source: std::io::Error::other("stop failed"),
        })?;
    fs::create_dir(staging).map_err(StackError::io(format!("creating {}", staging.display())))?;
    // The cache copy belongs to whoever runs the harness; each stack's copy is handed to
    // the postgres user again.
    postgres::copy_data_dir(pgdata, &staging.join("pgdata"), None)?;
    for transient in ["postmaster.opts", "postmaster.pid"] {
        let _ = fs::remove_file(staging.join("pgdata").join(transient));
    }
    drop(supervisor); // removes the build's run directory
    Ok(())
}

async fn connect(port: u16, user: &str, database: &str) -> Result<PgConnection, StackError> {
    PgConnection::connect_with(&postgres::connect_options(port, user, database))
        .await
        .map_err(StackError::db(format!(
            "connecting to {database} as {user} on port {port}"
        )))
}

#[cfg(test)]
mod tests {
    use super::MIGRATOR;

    /// The migrations are listed by hand: a file added to `fixtures/migrations` without
    /// its line would never run.
    #[test]
    fn every_migration_file_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/migrations");
        let files = std::fs::read_dir(dir)
            .expect("the migrations directory")
            .filter(|entry| {
                entry
                    .as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|ext| ext == "sql"))
            })
            .count();
        assert_eq!(
            MIGRATOR.iter().count(),
            files,
            "{dir}: list each file in MIGRATOR"
        );
    }
}
