//! Writes [`SeedData`] into musicdb's tables, timestamps at the anchor.
//!
//! Runs once per template build, so clarity beats speed: one `INSERT … SELECT FROM
//! UNNEST(…)` per table, in foreign-key order, with explicit ids.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;

use super::{SeedData, anchor};
use crate::StackError;

fn at(age_ms: i64) -> DateTime<Utc> {
    anchor() - Duration::milliseconds(age_ms)
}

/// Inserts every seeded row (as the owner of the tables, `musicdb_user`).
pub async fn insert(conn: &mut PgConnection, data: &SeedData) -> Result<(), StackError> {
    insert_tracks(conn, data).await?;
    insert_quality(conn, data).await?;
    insert_audit(conn, data).await?;
    insert_dlq(conn, data).await?;
    insert_checkpoints(conn, data).await?;
    // The migration stamped the config rows with the build's wall clock; history is
    // measured from the anchor, so the config was last changed at the anchor.
    sqlx::query("UPDATE metadata_enrichment_config SET updated_at = $1")
        .bind(anchor())
        .execute(conn)
        .await
        .map_err(StackError::db("stamping the enrichment config"))?;
    Ok(())
}

async fn insert_tracks(conn: &mut PgConnection, data: &SeedData) -> Result<(), StackError> {
    let t = &data.tracks;
    let col = |f: fn(&super::SeedTrack) -> Option<String>| t.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO tracks (track_id, artist_name, track_name, source, source_url, spotify_id, isrc,
             musicbrainz_id, bpm, key, duration_ms, genre, popularity, lastfm_listeners,
             enrichment_status, enrichment_attempts, enriched_at, created_at, updated_at)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::float8[], $10::text[], $11::int[], $12::text[],
             $13::int[], $14::bigint[], $15::text[], $16::int[], $17::timestamptz[],
             $18::timestamptz[], $19::timestamptz[])",
    )
    .bind(t.iter().map(|r| r.track_id).collect::<Vec<_>>())
    .bind(t.iter().map(|r| r.artist_name.clone()).collect::<Vec<_>>())
    .bind(t.iter().map(|r| r.track_name.clone()).collect::<Vec<_>>())
    .bind(t.iter().map(|r| r.source.to_owned()).collect::<Vec<_>>())
    .bind(col(|r| r.source_url.clone()))
    .bind(col(|r| r.spotify_id.clone()))
    .bind(col(|r| r.isrc.clone()))
    .bind(col(|r| r.musicbrainz_id.clone()))
    .bind(t.iter().map(|r| r.bpm).collect::<Vec<_>>())
    .bind(col(|r| r.key.clone()))
    .bind(t.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
    .bind(col(|r| r.genre.clone()))
    .bind(t.iter().map(|r| r.popularity).collect::<Vec<_>>())
    .bind(t.iter().map(|r| r.lastfm_listeners).collect::<Vec<_>>())
    .bind(t.iter().map(|r| r.enrichment_status.to_owned()).collect::<Vec<_>>())
    .bind(t.iter().map(|r| r.enrichment_attempts).collect::<Vec<_>>())
    .bind(t.iter().map(|r| r.enriched_age_ms.map(at)).collect::<Vec<_>>())
    .bind(t.iter().map(|r| at(r.created_age_ms)).collect::<Vec<_>>())
    .bind(t.iter().map(|r| at(r.updated_age_ms)).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map_err(StackError::db("loading the seeded tracks"))?;
    Ok(())
}

async fn insert_quality(conn: &mut PgConnection, data: &SeedData) -> Result<(), StackError> {
    let q = &data.quality;
    sqlx::query(
        "INSERT INTO data_quality_scores (id, track_id, quality_score, quality_tier, validation_errors, created_at)
         SELECT id, track_id, score::numeric(5, 2), tier, errors::jsonb, created_at
         FROM UNNEST($1::bigint[], $2::bigint[], $3::float8[], $4::text[], $5::text[], $6::timestamptz[])
             AS u(id, track_id, score, tier, errors, created_at)",
    )
    .bind(q.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(q.iter().map(|r| r.track_id).collect::<Vec<_>>())
    .bind(q.iter().map(|r| r.quality_score).collect::<Vec<_>>())
    .bind(q.iter().map(|r| r.quality_tier.to_owned()).collect::<Vec<_>>())
    .bind(
        q.iter()
            .map(|r| r.validation_errors.as_ref().map(|e| serde_json::json!(e).to_string()))
            .collect::<Vec<_>>(),
    )
    .bind(q.iter().map(|r| at(r.created_age_ms)).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map_err(StackError::db("loading the seeded quality scores"))?;
    Ok(())
}

async fn insert_audit(conn: &mut PgConnection, data: &SeedData) -> Result<(), StackError> {
    let a = &data.audit;
    sqlx::query(
        "INSERT INTO enrichment_audit (id, track_id, sources_used, fields_enriched, quality_score,
             status, worker, cache_hits, duration_ms, created_at)
         SELECT id, track_id, sources, string_to_array(fields, ','), score::numeric(5, 2),
             status, worker, cache_hits, duration_ms, created_at
         FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::float8[], $6::text[],
             $7::text[], $8::int[], $9::int[], $10::timestamptz[])
             AS u(id, track_id, sources, fields, score, status, worker, cache_hits, duration_ms, created_at)",
    )
    .bind(a.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.track_id).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.sources_used.clone()).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.fields_enriched.join(",")).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.quality_score).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.status.to_owned()).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.worker.to_owned()).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.cache_hits).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
    .bind(a.iter().map(|r| at(r.created_age_ms)).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map_err(StackError::db("loading the seeded enrichment audit"))?;
    Ok(())
}

async fn insert_dlq(conn: &mut PgConnection, data: &SeedData) -> Result<(), StackError> {
    let d = &data.dlq;
    sqlx::query(
        "INSERT INTO dlq_messages (message_id, track_id, artist_name, track_name, error,
             error_message, provider, payload, created_at)
         SELECT id, track_id, artist, title, error, message, provider, payload::jsonb, created_at
         FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
             $7::text[], $8::text[], $9::timestamptz[])
             AS u(id, track_id, artist, title, error, message, provider, payload, created_at)",
    )
    .bind(d.iter().map(|r| r.message_id).collect::<Vec<_>>())
    .bind(d.iter().map(|r| r.track_id).collect::<Vec<_>>())
    .bind(d.iter().map(|r| r.artist_name.clone()).collect::<Vec<_>>())
    .bind(d.iter().map(|r| r.track_name.clone()).collect::<Vec<_>>())
    .bind(d.iter().map(|r| r.error.to_owned()).collect::<Vec<_>>())
    .bind(
        d.iter()
            .map(|r| r.error_message.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        d.iter()
            .map(|r| r.provider.map(str::to_owned))
            .collect::<Vec<_>>(),
    )
    .bind(d.iter().map(|r| r.payload.to_string()).collect::<Vec<_>>())
    .bind(d.iter().map(|r| at(r.created_age_ms)).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map_err(StackError::db("loading the seeded DLQ messages"))?;
    Ok(())
}

async fn insert_checkpoints(conn: &mut PgConnection, data: &SeedData) -> Result<(), StackError> {
    let c = &data.checkpoints;
    sqlx::query(
        "INSERT INTO scraper_checkpoints (scraper, next_page, last_success, updated_at)
         SELECT scraper, next_page, at, at
         FROM UNNEST($1::text[], $2::int[], $3::timestamptz[]) AS u(scraper, next_page, at)",
    )
    .bind(c.iter().map(|r| r.scraper.to_owned()).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.next_page).collect::<Vec<_>>())
    .bind(
        c.iter()
            .map(|r| at(r.last_success_age_ms))
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await
    .map_err(StackError::db("loading the seeded scraper checkpoints"))?;
    Ok(())
}
