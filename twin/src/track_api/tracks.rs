//! The track queries behind rest-api and graph-api, each run on the one connection
//! its request holds (so pool pressure is real: a slow query keeps it checked out).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

crate::pg_row! {
    /// A track as the APIs show it.
    #[derive(Debug, Serialize)]
    pub struct Track {
        pub track_id: i64,
        pub artist_name: Option<String>,
        pub track_name: Option<String>,
        pub source: String,
        pub source_url: Option<String>,
        pub spotify_id: Option<String>,
        pub isrc: Option<String>,
        pub musicbrainz_id: Option<String>,
        pub bpm: Option<f64>,
        pub key: Option<String>,
        pub duration_ms: Option<i32>,
        pub genre: Option<String>,
        pub popularity: Option<i32>,
        pub lastfm_listeners: Option<i64>,
        pub enrichment_status: String,
        pub enriched_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

crate::pg_row! {
    /// Figures of the same-artist graph: tracks are nodes, two tracks by one artist are
    /// neighbours.
    #[derive(Debug, Serialize)]
    pub struct GraphStats {
        pub nodes: i64,
        pub artists: i64,
        pub edges: i64,
    }
}

/// How many neighbours `/neighbors` returns at most.
pub const NEIGHBOR_LIMIT: i64 = 20;

macro_rules! select_tracks {
    ($rest:literal) => {
        concat!(
            "SELECT track_id, artist_name, track_name, source, source_url, spotify_id, isrc, \
             musicbrainz_id, bpm, key, duration_ms, genre, popularity, lastfm_listeners, \
             enrichment_status, enriched_at, created_at, updated_at FROM tracks ",
            $rest
        )
    };
}

const PAGE: &str = select_tracks!("ORDER BY track_id LIMIT $1 OFFSET $2");
const ONE: &str = select_tracks!("WHERE track_id = $1");
/// Case-insensitive substring match, without LIKE so `%` and `_` mean themselves.
const BY_ARTIST: &str =
    select_tracks!("WHERE strpos(lower(artist_name), lower($1)) > 0 ORDER BY track_id LIMIT $2");
const NEIGHBORS: &str =
    select_tracks!("WHERE artist_name = $1 AND track_id <> $2 ORDER BY track_id LIMIT $3");
const STATS: &str = "
    WITH per_artist AS (
        SELECT COUNT(*) AS n FROM tracks
        WHERE artist_name IS NOT NULL AND artist_name <> ''
        GROUP BY artist_name
    )
    SELECT (SELECT COUNT(*) FROM tracks) AS nodes,
           (SELECT COUNT(*) FROM per_artist) AS artists,
           (SELECT COALESCE(SUM(n * (n - 1) / 2), 0)::bigint FROM per_artist) AS edges";

pub async fn page(
    conn: &mut PgConnection,
    limit: i64,
    offset: i64,
) -> Result<Vec<Track>, sqlx::Error> {
    sqlx::query_as(PAGE)
        .bind(limit)
        .bind(offset)
        .fetch_all(conn)
        .await
}

pub async fn one(conn: &mut PgConnection, track_id: i64) -> Result<Option<Track>, sqlx::Error> {
    sqlx::query_as(ONE)
        .bind(track_id)
        .fetch_optional(conn)
        .await
}

pub async fn by_artist(
    conn: &mut PgConnection,
    artist: &str,
    limit: i64,
) -> Result<Vec<Track>, sqlx::Error> {
    sqlx::query_as(BY_ARTIST)
        .bind(artist)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Other tracks by `track`'s artist; none when the artist is unknown.
pub async fn neighbors(conn: &mut PgConnection, track: &Track) -> Result<Vec<Track>, sqlx::Error> {
    let Some(artist) = track.artist_name.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(Vec::new());
    };
    sqlx::query_as(NEIGHBORS)
        .bind(artist)
        .bind(track.track_id)
        .bind(NEIGHBOR_LIMIT)
        .fetch_all(conn)
        .await
}

pub async fn graph_stats(conn: &mut PgConnection) -> Result<GraphStats, sqlx::Error> {
    sqlx::query_as(STATS).fetch_one(conn).await
}
