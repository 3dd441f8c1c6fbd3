//! Where a scraper's work lands: new `pending` tracks and its checkpoint.
//!
//! A page's tracks and the checkpoint that moves past the page are written in one
//! transaction, so a scraper killed mid-page (`docker compose restart`) neither
//! loses the page nor inserts it twice when it resumes from `scraper_checkpoints`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::source::{Page, Source};

#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct StoreError {
    action: String,
    #[source]
    source: sqlx::Error,
}

fn db(action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    let action = action.into();
    move |source| StoreError { action, source }
}

const NEXT_PAGE: &str = "SELECT next_page FROM scraper_checkpoints WHERE scraper = $1";

const INSERT_TRACKS: &str = "
    INSERT INTO tracks (artist_name, track_name, source, source_url, enrichment_status,
                        created_at, updated_at)
    SELECT artist, title, $3, $4, 'pending', $5, $5
    FROM UNNEST($1::text[], $2::text[]) AS scraped (artist, title)";

const ADVANCE: &str = "
    INSERT INTO scraper_checkpoints (scraper, next_page, last_success, updated_at)
    VALUES ($1, $2, $3, $3)
    ON CONFLICT (scraper) DO UPDATE
    SET next_page = EXCLUDED.next_page,
        last_success = EXCLUDED.last_success,
        updated_at = EXCLUDED.updated_at";

#[derive(Clone)]
pub struct ScraperStore {
    pool: PgPool,
    /// The compose name, which is the checkpoint's key.
    scraper: &'static str,
    source: Source,
}

impl ScraperStore {
    pub fn new(pool: PgPool, scraper: &'static str, source: Source) -> Self {
        Self {
            pool,
            scraper,
            source,
        }
    }

    /// The page to scrape next: the checkpoint's, or 1 for a scraper that never ran.
    pub async fn next_page(&self) -> Result<i32, StoreError> {
        let page = sqlx::query_scalar::<_, i32>(NEXT_PAGE)
            .bind(self.scraper)
            .fetch_optional(&self.pool)
            .await
            .map_err(db(format!("reading the checkpoint of {}", self.scraper)))?;
        Ok(page.unwrap_or(1))
    }

    /// Inserts `page`'s tracks as pending and moves the checkpoint to `next_page`.
    /// Returns how many tracks were inserted.
    pub async fn save_page(
        &self,
        page: &Page,
        next_page: i32,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (artists, titles): (Vec<Option<String>>, Vec<Option<String>>) = page
            .tracks
            .iter()
            .map(|entry| (entry.artist.clone(), entry.title.clone()))
            .unzip();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting the page transaction"))?;
        let inserted = sqlx::query(INSERT_TRACKS)
            .bind(artists)
            .bind(titles)
            .bind(self.source.name())
            .bind(&page.url)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("inserting the tracks of {}", page.url)))?
            .rows_affected();
        sqlx::query(ADVANCE)
            .bind(self.scraper)
            .bind(next_page)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("advancing the checkpoint to page {next_page}")))?;
        tx.commit()
            .await
            .map_err(db("committing the page transaction"))?;
        Ok(inserted)
    }
}
