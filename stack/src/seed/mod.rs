//! The seeded history of musicdb: a week of tracks, scores, audit rows and a small DLQ.
//!
//! A stack starts (and resets to) this state. It is generated from the seed alone, so
//! the same seed gives the same rows byte for byte, and it is drawn from the
//! [`Catalogue`], so seeded fields agree with what the providers return.
//!
//! Timestamps are stored as ages before a fixed [`anchor`]; the template holds them at
//! the anchor and every restore shifts them by (modeled now − anchor), so the history
//! always ends "now": tracks spread over the past 7 days, denser recently, some in the
//! last hour, a few still pending, and an older DLQ backlog: hundreds of failures from
//! one to six days ago, of every error type and from every provider (old breaker storms,
//! timeouts, rate limits, scraped garbage), as a real DLQ holds. The backlog is a decoy:
//! an investigation that reads the DLQ's totals instead of what fails now reads this
//! history. The baseline keeps every alert quiet: average quality over the last hour
//! well above 70, the DLQ well below 1000, tracks created within the last minutes.

pub mod load;
pub mod snapshot;

use chrono::{DateTime, TimeZone, Utc};
use rand::Rng;
use serde_json::json;

use twin::enrichment::contract::EnrichedFields;
use twin::quality;

use crate::catalogue::{Catalogue, CatalogueTrack, rng_for};

/// Bumped whenever generation or loading changes (it is part of the template's cache key).
pub const SEED_GENERATOR_VERSION: u32 = 3;

/// The instant seeded ages are measured back from.
pub fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid fixed date")
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Tracks failed in the past and sitting in the DLQ: a fifth of the history, at most
/// [`MAX_BACKLOG`].
pub fn backlog_for(tracks: usize) -> usize {
    (tracks / 5).min(MAX_BACKLOG)
}

/// The largest backlog: well below `DLQDepthCritical`'s 1000, so that only a live
/// incident can fire it.
pub const MAX_BACKLOG: usize = 450;
/// Tracks scraped in the last minutes and not yet enriched.
pub const PENDING_TRACKS: usize = 8;

/// Every seeded row. Ages are milliseconds before the anchor.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedData {
    pub tracks: Vec<SeedTrack>,
    pub quality: Vec<SeedQuality>,
    pub audit: Vec<SeedAudit>,
    pub dlq: Vec<SeedDlqMessage>,
    pub checkpoints: Vec<SeedCheckpoint>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeedTrack {
    pub track_id: i64,
    pub artist_name: String,
    pub track_name: String,
    pub source: &'static str,
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
    pub enrichment_status: &'static str,
    pub enrichment_attempts: i32,
    pub enriched_age_ms: Option<i64>,
    pub created_age_ms: i64,
    pub updated_age_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeedQuality {
    pub id: i64,
    pub track_id: i64,
    pub quality_score: f64,
    pub quality_tier: &'static str,
    /// A JSON array of rule names, or `None` when the track is clean.
    pub validation_errors: Option<Vec<String>>,
    pub created_age_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeedAudit {
    pub id: i64,
    pub track_id: i64,
    pub sources_used: String,
    pub fields_enriched: Vec<&'static str>,
    pub quality_score: Option<f64>,
    pub status: &'static str,
    pub worker: &'static str,
    pub cache_hits: i32,
    pub duration_ms: i32,
    pub created_age_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeedDlqMessage {
    pub message_id: i64,
    pub track_id: i64,
    pub artist_name: String,
    pub track_name: String,
    pub error: &'static str,
    pub error_message: String,
    pub provider: Option<&'static str>,
    pub payload: serde_json::Value,
    pub created_age_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeedCheckpoint {
    pub scraper: &'static str,
    pub next_page: i32,
    pub last_success_age_ms: i64,
}

/// What a seeded track is at the anchor.
#[derive(Clone, Copy, PartialEq)]
enum Fate {
    Enriched,
    Pending,
    Failed,
}

impl SeedData {
    /// The history of `tracks` tracks for `seed`, drawn from `catalogue`.
    pub fn generate(catalogue: &Catalogue, seed: u64, tracks: usize) -> Self {
        let mut rng = rng_for(seed, "seed", 0);
        let failed = backlog_for(tracks);
        let pending = PENDING_TRACKS.min(tracks / 10);
        // At least 30 tracks (2 %) in the last hour, so the last-hour quality is measured.
        let recent = (tracks / 50).max(30).min(tracks - failed - pending);
        let older = tracks - failed - pending - recent;

        let mut timeline: Vec<(i64, Fate)> = Vec::with_capacity(tracks);
        for _ in 0..older {
            // Denser recently: ages skew towards now, between 1 hour and 7 days.
            let u: f64 = rng.random();
            let age = HOUR_MS + (u.powf(1.8) * (7 * DAY_MS - HOUR_MS) as f64) as i64;
            timeline.push((age, Fate::Enriched));
        }
        for _ in 0..recent {
            timeline.push((rng.random_range(3 * MINUTE_MS..HOUR_MS), Fate::Enriched));
        }
        for _ in 0..pending {
            timeline.push((rng.random_range(5_000..3 * MINUTE_MS), Fate::Pending));
        }
        for _ in 0..failed {
            timeline.push((rng.random_range(DAY_MS..6 * DAY_MS), Fate::Failed));
        }
        // Oldest first, so track ids grow with creation time as a BIGSERIAL's do.
        timeline.sort_by_key(|entry| std::cmp::Reverse(entry.0));

        // Which catalogue tracks the history holds: a seeded sample without repeats.
        let mut order: Vec<usize> = (0..catalogue.len()).collect();
        for i in 0..tracks.min(order.len()) {
            let j = rng.random_range(i..order.len());
            order.swap(i, j);
        }

        let mut data = SeedData {
            tracks: Vec::with_capacity(tracks),
            quality: Vec::new(),
            audit: Vec::new(),
            dlq: Vec::new(),
            checkpoints: vec![
                SeedCheckpoint {
                    scraper: "scraper-mixesdb",
                    next_page: rng.random_range(40..60),
                    last_success_age_ms: rng.random_range(MINUTE_MS..5 * MINUTE_MS),
                },
                SeedCheckpoint {
                    scraper: "scraper-1001tracklists",
                    next_page: rng.random_range(40..60),
                    last_success_age_ms: rng.random_range(MINUTE_MS..5 * MINUTE_MS),
                },
            ],
        };
        for (i, &(age, fate)) in timeline.iter().enumerate() {
            let entry = &catalogue.tracks()[order[i % order.len()]];
            data.push_track(&mut rng, i as i64 + 1, age, fate, entry);
        }
        // Score and audit rows are written when enrichment finishes: number them in that order.
        data.quality.sort_by(|a, b| {
            b.created_age_ms
                .cmp(&a.created_age_ms)
                .then(a.track_id.cmp(&b.track_id))
        });
        data.audit.sort_by(|a, b| {
            b.created_age_ms
                .cmp(&a.created_age_ms)
                .then(a.track_id.cmp(&b.track_id))
        });
        for (i, row) in data.quality.iter_mut().enumerate() {
            row.id = i as i64 + 1;
        }
        for (i, row) in data.audit.iter_mut().enumerate() {
            row.id = i as i64 + 1;
        }
        data
    }

    fn push_track(
        &mut self,
        rng: &mut rand_chacha::ChaCha8Rng,
        track_id: i64,
        age: i64,
        fate: Fate,
        entry: &CatalogueTrack,
    ) {
        let (source, source_url) = match rng.random_range(0..100) {
            0..45 => (
                "mixesdb",
                Some(format!(
                    "https://www.mixesdb.com/w/Mix_{}",
                    rng.random_range(100_000..999_999)
                )),
            ),
            45..90 => (
                "1001tracklists",
                Some(format!(
                    "https://www.1001tracklists.com/tracklist/{:x}/",
                    rng.random_range(0x1000_0000u32..0xffff_ffff)
                )),
            ),
            _ => ("seed", None),
        };
        let mut track = SeedTrack {
            track_id,
            artist_name: entry.artist.clone(),
            track_name: entry.title.clone(),
            source,
            source_url,
            spotify_id: None,
            isrc: None,
            musicbrainz_id: None,
            bpm: None,
            key: None,
            duration_ms: None,
            genre: None,
            popularity: None,
            lastfm_listeners: None,
            enrichment_status: "pending",
            enrichment_attempts: 0,
            enriched_age_ms: None,
            created_age_ms: age,
            updated_age_ms: age,
        };
        let worker = if track_id % 2 == 0 {
            "metadata-enrichment-worker-2"
        } else {
            "metadata-enrichment-worker-1"
        };
        match fate {
            Fate::Pending => {}
            Fate::Failed => {
                let failed_age = age - rng.random_range(MINUTE_MS..20 * MINUTE_MS);
                track.enrichment_status = "failed";
                track.enrichment_attempts = 3;
                track.updated_age_ms = failed_age;
                let Failure {
                    error,
                    provider,
                    message,
                    garbage,
                } = failure(rng);
                if let Some((artist, title)) = garbage {
                    track.artist_name = artist;
                    track.track_name = title;
                }
                self.audit.push(SeedAudit {
                    id: 0,
                    track_id,
                    sources_used: provider.unwrap_or_default().to_owned(),
                    fields_enriched: Vec::new(),
                    quality_score: None,
                    status: "failed",
                    worker,
                    cache_hits: 0,
                    duration_ms: rng.random_range(1_000..30_000),
                    created_age_ms: failed_age,
                });
                self.dlq.push(SeedDlqMessage {
                    message_id: self.dlq.len() as i64 + 1,
                    track_id,
                    artist_name: track.artist_name.clone(),
                    track_name: track.track_name.clone(),
                    error,
                    error_message: message,
                    provider,
                    payload: json!({
                        "track_id": track_id,
                        "artist_name": track.artist_name,
                        "track_name": track.track_name,
                        "attempts": 3,
                    }),
                    created_age_ms: failed_age,
                });
            }
            Fate::Enriched => {
                let enriched_age = (age - rng.random_range(2_000..90_000)).max(1_000);
                track.enrichment_status = "enriched";
                track.enrichment_attempts = 1;
                track.enriched_age_ms = Some(enriched_age);
                track.updated_age_ms = enriched_age;
                let mut sources = Vec::new();
                // Field groups as the twin fills them (docs/twin.md), from what each provider knows.
                if entry.on_spotify {
                    sources.push("spotify");
                    track.spotify_id = Some(entry.spotify_id.clone());
                    track.isrc = Some(entry.isrc.clone());
                    track.bpm = Some(entry.bpm);
                    track.key = Some(entry.key_name());
                }
                if entry.on_musicbrainz {
                    sources.push("musicbrainz");
                    if track.isrc.is_none() {
                        track.isrc = Some(entry.isrc.clone());
                    }
                    track.musicbrainz_id = Some(entry.musicbrainz_id.clone());
                    track.duration_ms = Some(entry.duration_ms as i32);
                }
                if entry.on_lastfm {
                    sources.push("lastfm");
                    track.genre = Some(entry.genre.to_owned());
                    track.popularity = Some(i32::from(entry.popularity));
                    track.lastfm_listeners = Some(entry.listeners as i64);
                } else if entry.on_musicbrainz {
                    track.genre = Some(entry.genre.to_owned());
                }
                // A share of partial payloads: one field a provider left out.
                if rng.random_bool(0.05) {
                    match rng.random_range(0..4) {
                        0 => track.key = None,
                        1 => track.bpm = None,
                        2 => track.genre = None,
                        _ => track.isrc = None,
                    }
                }
                let fields = track.fields();
                let assessment = quality::assess(&fields);
                let score = assessment.score;
                self.quality.push(SeedQuality {
                    id: 0,
                    track_id,
                    quality_score: score,
                    quality_tier: assessment.tier.name(),
                    validation_errors: (!assessment.validation_errors.is_empty())
                        .then_some(assessment.validation_errors),
                    created_age_ms: enriched_age,
                });
                self.audit.push(SeedAudit {
                    id: 0,
                    track_id,
                    sources_used: sources.join(","),
                    fields_enriched: fields.present(),
                    quality_score: Some(score),
                    status: "success",
                    worker,
                    cache_hits: rng.random_range(0..=sources.len() as i32),
                    duration_ms: rng.random_range(80..900),
                    created_age_ms: enriched_age,
                });
            }
        }
        self.tracks.push(track);
    }

    /// Average quality of the scores written within `window_ms` before the anchor.
    pub fn average_quality_within(&self, window_ms: i64) -> Option<f64> {
        let recent: Vec<f64> = self
            .quality
            .iter()
            .filter(|q| q.created_age_ms <= window_ms)
            .map(|q| q.quality_score)
            .collect();
        (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64)
    }
}

impl SeedTrack {
    /// The fields enrichment filled, as the twin holds them: the seed scores and
    /// lists them with the twin's own code, so seeded and live rows agree (they
    /// group together under the runbooks' `GROUP BY validation_errors`).
    fn fields(&self) -> EnrichedFields {
        EnrichedFields {
            spotify_id: self.spotify_id.clone(),
            isrc: self.isrc.clone(),
            musicbrainz_id: self.musicbrainz_id.clone(),
            bpm: self.bpm,
            key: self.key.clone(),
            duration_ms: self.duration_ms,
            genre: self.genre.clone(),
            popularity: self.popularity,
            lastfm_listeners: self.lastfm_listeners,
        }
    }
}

/// An old failure, worded as the twin words its failures.
struct Failure {
    error: &'static str,
    provider: Option<&'static str>,
    message: String,
    /// For scraped garbage: the track's artist and title as the spider read them.
    garbage: Option<(String, String)>,
}

/// An old failure: the runbook's own example mix (breaker errors first, then timeouts,
/// invalid data, rate limits), with provider errors besides, from every provider.
fn failure(rng: &mut rand_chacha::ChaCha8Rng) -> Failure {
    let provider = match rng.random_range(0..10) {
        0..5 => "spotify",
        5..8 => "musicbrainz",
        _ => "lastfm",
    };
    let (error, message) = match rng.random_range(0..100) {
        0..40 => (
            "circuit_breaker_open",
            format!("circuit breaker for {provider} is OPEN"),
        ),
        40..64 => (
            "timeout",
            format!("{provider} timed out after 30s (gateway answered 504)"),
        ),
        64..76 => {
            let garbage = if rng.random_bool(0.5) {
                (
                    String::new(),
                    format!(
                        "{:02}:{:02}",
                        rng.random_range(0..90),
                        rng.random_range(0..60)
                    ),
                )
            } else {
                ("ID".to_owned(), String::new())
            };
            let missing = if garbage.0.is_empty() {
                "artist_name"
            } else {
                "track_name"
            };
            return Failure {
                error: "invalid_data",
                provider: None,
                message: format!("scraped track has an empty {missing}"),
                garbage: Some(garbage),
            };
        }
        76..88 => (
            "api_rate_limit",
            format!("{provider} rate limit exceeded (HTTP 429, Retry-After: 60)"),
        ),
        _ => ("provider_error", format!("{provider} returned HTTP 502")),
    };
    Failure {
        error,
        provider: Some(provider),
        message,
        garbage: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(seed: u64, tracks: usize) -> SeedData {
        SeedData::generate(
            &Catalogue::generate(seed, Catalogue::len_for(tracks)),
            seed,
            tracks,
        )
    }

    #[test]
    fn the_same_seed_gives_the_same_rows_byte_for_byte() {
        let a = generate(42, 2000);
        let b = generate(42, 2000);
        assert_eq!(a, b);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_ne!(a, generate(43, 2000));
    }

    #[test]
    fn the_baseline_keeps_every_alert_quiet() {
        let data = generate(42, 2000);
        assert_eq!(data.tracks.len(), 2000);
        let last_hour = data.average_quality_within(HOUR_MS).unwrap();
        assert!(
            last_hour > 70.0,
            "average quality over the last hour is {last_hour}"
        );
        let scored_last_hour = data
            .quality
            .iter()
            .filter(|q| q.created_age_ms <= HOUR_MS)
            .count();
        assert!(
            scored_last_hour >= 25,
            "{scored_last_hour} scores in the last hour"
        );
        assert_eq!(data.dlq.len(), 400);
        let newest = data.tracks.iter().map(|t| t.created_age_ms).min().unwrap();
        assert!(
            newest < 5 * MINUTE_MS,
            "the newest track is {newest} ms old"
        );
    }

    #[test]
    fn history_spans_a_week_with_old_failures_and_fresh_pending_tracks() {
        let data = generate(42, 2000);
        let oldest = data.tracks.iter().map(|t| t.created_age_ms).max().unwrap();
        assert!(oldest <= 7 * DAY_MS && oldest > 5 * DAY_MS);
        for message in &data.dlq {
            assert!((DAY_MS - HOUR_MS..6 * DAY_MS).contains(&message.created_age_ms));
        }
        // Every error type, from several providers: a decoy for investigations that
        // read totals.
        let kinds: std::collections::BTreeSet<_> = data.dlq.iter().map(|m| m.error).collect();
        assert_eq!(kinds.len(), 5, "{kinds:?}");
        let providers: std::collections::BTreeSet<_> =
            data.dlq.iter().filter_map(|m| m.provider).collect();
        assert_eq!(providers.len(), 3, "{providers:?}");
        // Scraped garbage is garbage in the track too.
        for message in data.dlq.iter().filter(|m| m.error == "invalid_data") {
            let track = &data.tracks[message.track_id as usize - 1];
            assert!(track.artist_name.is_empty() || track.track_name.is_empty());
        }
        let pending: Vec<_> = data
            .tracks
            .iter()
            .filter(|t| t.enrichment_status == "pending")
            .collect();
        assert_eq!(pending.len(), PENDING_TRACKS);
        assert!(pending.iter().all(|t| t.created_age_ms < 3 * MINUTE_MS));
        // Ids grow with creation time.
        assert!(
            data.tracks
                .windows(2)
                .all(|w| w[0].created_age_ms >= w[1].created_age_ms)
        );
        assert!(
            data.tracks
                .windows(2)
                .all(|w| w[0].track_id < w[1].track_id)
        );
    }

    #[test]
    fn seeded_fields_agree_with_the_catalogue() {
        let catalogue = Catalogue::generate(42, Catalogue::len_for(500));
        let data = SeedData::generate(&catalogue, 42, 500);
        for track in data
            .tracks
            .iter()
            .filter(|t| t.enrichment_status == "enriched")
        {
            let entry = catalogue
                .find(&track.artist_name, &track.track_name)
                .unwrap();
            if let Some(id) = &track.spotify_id {
                assert_eq!(id, &entry.spotify_id);
                assert!(entry.on_spotify);
            }
            if let Some(mbid) = &track.musicbrainz_id {
                assert_eq!(mbid, &entry.musicbrainz_id);
            }
            assert_eq!(track.spotify_id.is_some(), entry.on_spotify);
        }
    }

    #[test]
    fn seeded_fields_break_no_rule_of_the_twin_but_absence() {
        // The catalogue's ids, keys, tempos and durations are all valid by the twin's
        // rules; the only validation errors the history holds are fields a provider
        // did not have, as in production.
        let data = generate(42, 2000);
        let broken: Vec<&String> = data
            .quality
            .iter()
            .flat_map(|q| q.validation_errors.iter().flatten())
            .filter(|rule| !rule.starts_with("missing_"))
            .collect();
        assert!(broken.is_empty(), "{broken:?}");
        assert!(
            data.quality.iter().any(|q| q.validation_errors.is_some()),
            "some tracks lack a field"
        );
    }
}
