//! The seeded state kept inside the database, and the one call that restores it.
//!
//! At template build time every table of `public` (except sqlx's bookkeeping) is copied
//! into a `drill_seed` schema, and a function `drill_seed.restore(shift interval)` is
//! generated from the catalog: in one transaction it truncates the public tables,
//! re-inserts the seeded rows with every timestamp column shifted by `shift`, and sets
//! each serial sequence past the largest id. Generating it from the catalog means a new
//! migration's tables are covered without touching this code.
//!
//! Restoring is one round trip (~tens of ms for a few thousand tracks), which is what
//! makes a ≤100 ms reset between test cases possible. It runs as the superuser, which
//! may disable foreign-key triggers for the copy (`session_replication_role = replica`):
//! the seeded rows are consistent by construction and the insert order does not matter.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};

use crate::StackError;

/// The schema holding the seeded rows.
pub const SCHEMA: &str = "drill_seed";

/// Snapshots the public tables into `drill_seed` and creates `drill_seed.restore`.
/// Must run as a superuser, after the migrations and the seed load.
pub async fn install(conn: &mut PgConnection) -> Result<(), StackError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE '\\_sqlx%'
         ORDER BY c.relname",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StackError::db("listing the public tables"))?;
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c
         JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE c.contype = 'f' AND n.nspname = 'public'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StackError::db("listing the foreign keys"))?;
    let tables = referenced_first(tables, &references);
    let list = tables
        .iter()
        .map(|t| format!("public.{}", ident(t)))
        .collect::<Vec<_>>()
        .join(", ");

    let mut body = String::new();
    // All locks first, or none: waiting for one table's lock while holding another's
    // can close a cycle with a twin transaction (a scraper holds `tracks` and wants
    // `scraper_checkpoints`), and under libfaketime PostgreSQL's deadlock timer cannot
    // be relied on to break it (a clean-clone CI run hung on exactly that). NOWAIT
    // fails at once when any table is busy; `restore` retries after a breath.
    body.push_str(&format!(
        "LOCK TABLE {list} IN ACCESS EXCLUSIVE MODE NOWAIT;\n"
    ));
    body.push_str(&format!("TRUNCATE {list} RESTART IDENTITY;\n"));
    let mut sequences = String::new();
    for table in &tables {
        let columns: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),
                    pg_get_serial_sequence(format('public.%I', $1::text), a.attname::text)
             FROM pg_attribute a
             WHERE a.attrelid = format('public.%I', $1::text)::regclass
               AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
             ORDER BY a.attnum",
        )
        .bind(table)
        .fetch_all(&mut *conn)
        .await
        .map_err(StackError::db(format!("reading the columns of {table}")))?;
        let names: Vec<String> = columns.iter().map(|(name, _, _)| ident(name)).collect();
        let values: Vec<String> = columns
            .iter()
            .map(|(name, ty, _)| {
                if ty.starts_with("timestamp") {
                    format!("{} + shift", ident(name))
                } else {
                    ident(name)
                }
            })
            .collect();
        body.push_str(&format!(
            "INSERT INTO public.{t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {vals} FROM {SCHEMA}.{t};\n",
            t = ident(table),
            cols = names.join(", "),
            vals = values.join(", "),
        ));
        for (name, _, sequence) in &columns {
            if let Some(sequence) = sequence {
                sequences.push_str(&format!(
                    "PERFORM setval({seq}, COALESCE((SELECT max({col}) FROM public.{t}), 0) + 1, false);\n",
                    seq = literal(sequence),
                    col = ident(name),
                    t = ident(table),
                ));
            }
        }
    }
    body.push_str(&sequences);

    let mut script = format!("CREATE SCHEMA {SCHEMA};\n");
    for table in &tables {
        script.push_str(&format!(
            "CREATE TABLE {SCHEMA}.{t} AS TABLE public.{t};\n",
            t = ident(table)
        ));
    }
    script.push_str(&format!(
        "CREATE FUNCTION {SCHEMA}.restore(shift interval) RETURNS void LANGUAGE plpgsql
         SET session_replication_role = replica
         SET lock_timeout = '5s'
         SET deadlock_timeout = '20ms'
         AS $restore$\nBEGIN\n{body}END\n$restore$;\n"
    ));
    // The public copies are refilled by the first restore; emptying them keeps the template small.
    script.push_str(&format!("TRUNCATE {list};\n"));
    let mut tx = conn
        .begin()
        .await
        .map_err(StackError::db("beginning the seed snapshot"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut *tx)
        .await
        .map_err(StackError::db(
            "creating the drill_seed snapshot and its restore function",
        ))?;
    tx.commit()
        .await
        .map_err(StackError::db("committing the seed snapshot"))?;
    Ok(())
}

/// Puts the seeded rows back with timestamps shifted so the anchor falls at `now`.
///
/// Sessions that could hold locks the truncation needs — idle in a transaction, or
/// running one statement for more than a second (an injected long query) — are
/// terminated first; the twin's short queries finish within the lock timeout.
pub async fn restore(pool: &PgPool, now: DateTime<Utc>) -> Result<(), StackError> {
    let shift_us = (now - super::anchor())
        .num_microseconds()
        .ok_or_else(|| StackError::InvalidOptions(format!("modeled time {now} is out of range")))?;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND backend_type = 'client backend'
           AND (state IN ('idle in transaction', 'idle in transaction (aborted)')
                OR (state = 'active' AND query_start < clock_timestamp() - interval '1 second'))",
    )
    .execute(pool)
    .await
    .map_err(StackError::db(
        "terminating sessions that would block the restore",
    ))?;
    // A table in use by a twin transaction refuses the NOWAIT lock at once; the restore
    // holds nothing meanwhile, so the twin's work goes through and the restore retries
    // between its transactions, which last milliseconds.
    const ATTEMPTS: usize = 400;
    const BREATH: std::time::Duration = std::time::Duration::from_millis(15);
    let mut attempt = 1;
    loop {
        let result =
            sqlx::query("SELECT drill_seed.restore($1::bigint * interval '1 microsecond')")
                .bind(shift_us)
                .execute(pool)
                .await;
        match result {
            Ok(_) => return Ok(()),
            Err(sqlx::Error::Database(e))
                if attempt < ATTEMPTS && matches!(e.code().as_deref(), Some("40P01" | "55P03")) =>
            {
                tracing::debug!(attempt, error = %e, "restore collided with the twin; retrying");
                attempt += 1;
                tokio::time::sleep(BREATH).await;
            }
            Err(e) => {
                return Err(StackError::db(format!(
                    "restoring the seeded rows (attempt {attempt} of {ATTEMPTS})"
                ))(e));
            }
        }
    }
}

/// Orders tables so that every table comes after the tables its foreign keys reference
/// (`references` holds `(referencing, referenced)` pairs); ties stay alphabetical.
fn referenced_first(tables: Vec<String>, references: &[(String, String)]) -> Vec<String> {
    let mut ordered: Vec<String> = Vec::with_capacity(tables.len());
    let mut pending = tables;
    while !pending.is_empty() {
        let ready = pending.iter().position(|t| {
            references
                .iter()
                .filter(|(from, to)| from == t && to != t)
                .all(|(_, to)| ordered.contains(to) || !pending.contains(to))
        });
        // A reference cycle cannot be ordered; take the next table as it comes.
        let next = pending.remove(ready.unwrap_or(0));
        ordered.push(next);
    }
    ordered
}

/// A quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_tables_come_first() {
        let tables = ["audit", "dlq", "scores", "tracks"]
            .map(String::from)
            .to_vec();
        let references = [("audit", "tracks"), ("dlq", "tracks"), ("scores", "tracks")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()));
        assert_eq!(
            referenced_first(tables, &references),
            ["tracks", "audit", "dlq", "scores"]
        );
    }
}
