//! The scraped sites: paginated tracklists of DJ mixes drawn from the catalogue.
//!
//! A page is a DJ mix's tracks drawn by popularity ([`Catalogue::popular`]), so popular
//! tracks recur across pages as they do across DJ sets (and the enrichment cache gets
//! hits). Its mean length is the stack's workload ([`crate::workload`]), a shared
//! switch the stand-ins read per request; a page depends only on the seed, the site,
//! the page number and that length: a scraper that restarts from its checkpoint sees
//! the same page again. Pages never run out (`next_page` is always N + 1), as new
//! mixes keep being published.
//!
//! A site can also be garbled ([`Tracklists::garbled`]): after a markup change its
//! spider reads cue lines (times, "ID") as entries without an artist or a title, which
//! enrichment classifies `invalid_data`: the DLQ Overflow runbook's scenario D, struck
//! where it strikes in production.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{Duration, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use wire::api::SourceSite;
use wiremock::{Request, Respond, ResponseTemplate};

use super::{json, query_param, template};
use crate::catalogue::{Catalogue, CatalogueTrack, rng_for};

const MIXESDB: &str = include_str!("../../../fixtures/providers/mixesdb_tracklist.json");
const TRACKLISTS_1001: &str =
    include_str!("../../../fixtures/providers/1001tracklists_tracklist.json");

const VENUES: &[(&str, &str)] = &[
    ("Printworks", "London"),
    ("Berghain", "Berlin"),
    ("Tresor", "Berlin"),
    ("De School", "Amsterdam"),
    ("Fabric", "London"),
    ("Concrete", "Paris"),
    ("Fold", "London"),
    ("Robert Johnson", "Offenbach"),
    ("Boiler Room", "Seoul"),
    ("Output", "Brooklyn"),
    ("Warehouse Project", "Manchester"),
    ("Ibiza Sonica", "Ibiza"),
    ("Awakenings", "Amsterdam"),
    ("Club Der Visionaere", "Berlin"),
];

#[derive(Clone, Copy)]
enum Site {
    MixesDb,
    Tracklists1001,
}

/// `GET /api/tracklists?page=N` (mixesdb) or `GET /api/tracklist?page=N` (1001tracklists).
pub(crate) struct Tracklists {
    catalogue: Arc<Catalogue>,
    site: Site,
    template: Value,
    /// The mean number of tracks per page (the stack's workload).
    page_size: Arc<AtomicU32>,
    /// Entries without artist or title added to each page (a garbled site).
    garbage: u32,
}

impl Tracklists {
    pub(crate) fn new(
        site: SourceSite,
        catalogue: Arc<Catalogue>,
        page_size: Arc<AtomicU32>,
    ) -> Self {
        let (site, fixture) = match site {
            SourceSite::Mixesdb => (Site::MixesDb, MIXESDB),
            SourceSite::Tracklists1001 => (Site::Tracklists1001, TRACKLISTS_1001),
        };
        Self {
            catalogue,
            site,
            template: template(fixture),
            page_size,
            garbage: 0,
        }
    }

    /// The same site, its pages carrying `garbage` entries without artist or title
    /// among their tracks.
    pub(crate) fn garbled(mut self, garbage: u32) -> Self {
        self.garbage = garbage;
        self
    }
}

impl Respond for Tracklists {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let page = match query_param(request, "page").map(|p| p.parse::<u32>()) {
            None => 1,
            Some(Ok(page)) if page >= 1 => page,
            Some(_) => return json(400, json!({"error": "page must be a positive integer"})),
        };
        json(200, self.page(page))
    }
}

impl Tracklists {
    /// The body of page `page`.
    pub(crate) fn page(&self, page: u32) -> Value {
        let salt = match self.site {
            Site::MixesDb => "mixesdb",
            Site::Tracklists1001 => "1001tracklists",
        };
        let mut rng = rng_for(self.catalogue.seed(), salt, u64::from(page));
        let tracks = draw(
            &self.catalogue,
            &mut rng,
            self.page_size.load(Ordering::Relaxed),
        );
        // Garbage is placed among the tracks by its own draw, so a garbled page keeps
        // the tracks of the clean one.
        let mut garbage_rng = rng_for(self.catalogue.seed(), "garbage", u64::from(page));
        let garbage: Vec<(usize, Entry)> = (0..self.garbage)
            .map(|i| {
                let at = garbage_rng.random_range(0..=tracks.len());
                (at, Entry::garbage(i, &mut garbage_rng))
            })
            .collect();
        let entries = interleave(&tracks, garbage);
        let djs = self.catalogue.artist_names();
        let dj = djs[rng.random_range(0..djs.len())];
        let (venue, city) = VENUES[rng.random_range(0..VENUES.len())];
        // Newer pages are newer mixes: a day apart, counted back from a fixed date.
        let date = NaiveDate::from_ymd_opt(2025, 10, 4).expect("a valid date")
            - Duration::days(i64::from(rng.random_range(0..3)) + 1000 - i64::from(page % 1000));
        let mut body = self.template.clone();
        match self.site {
            Site::MixesDb => {
                let title = format!("{date} - {dj} @ {venue}, {city}");
                body["page"] = json!(page);
                body["mix"] = json!({
                    "title": title,
                    "url": format!("https://www.mixesdb.com/w/{}", title.replace(' ', "_")),
                    "date": date.to_string(),
                });
                let mut at = 0u32;
                body["tracks"] = Value::Array(
                    entries
                        .iter()
                        .enumerate()
                        .map(|(i, e)| {
                            let entry = json!({
                                "position": i + 1,
                                "artist": e.artist,
                                "title": e.title,
                                "time": format!("{:02}:{:02}", at / 60, at % 60),
                            });
                            at += e.duration_ms / 1000 * 2 / 3; // mixed in before the end
                            entry
                        })
                        .collect(),
                );
            }
            Site::Tracklists1001 => {
                let id: String = (0..8)
                    .map(|_| {
                        char::from_digit(rng.random_range(0..36), 36).expect("a base-36 digit")
                    })
                    .collect();
                let name = format!("{dj} @ {venue} {city} {date}");
                let slug = name
                    .to_lowercase()
                    .replace(" @ ", "-")
                    .replace([' ', '.'], "-");
                body["tracklist"] = json!({
                    "id": id,
                    "name": name,
                    "url": format!("https://www.1001tracklists.com/tracklist/{id}/{slug}.html"),
                    "page": page,
                });
                body["entries"] = Value::Array(
                    entries
                        .iter()
                        .enumerate()
                        .map(|(i, e)| json!({"cue": i + 1, "track": {"artist": e.artist, "title": e.title}}))
                        .collect(),
                );
            }
        }
        body["next_page"] = json!(page + 1);
        body
    }
}

/// One entry of a listing page as the site prints it.
struct Entry {
    artist: String,
    title: String,
    duration_ms: u32,
}

impl Entry {
    fn of(track: &CatalogueTrack) -> Self {
        Self {
            artist: track.artist.clone(),
            title: track.title.clone(),
            duration_ms: track.duration_ms,
        }
    }

    /// What a spider reads from a cue line after a markup change: a time or "ID" where
    /// a title belongs, and no artist; or an artist and nothing after the dash.
    fn garbage(i: u32, rng: &mut ChaCha8Rng) -> Self {
        let (artist, title) = if i % 3 == 2 {
            ("ID".to_owned(), String::new())
        } else {
            (
                String::new(),
                format!(
                    "{:02}:{:02}",
                    rng.random_range(0..90),
                    rng.random_range(0..60)
                ),
            )
        };
        Self {
            artist,
            title,
            duration_ms: 0,
        }
    }
}

/// The tracks in order, with each piece of garbage inserted before the track at its
/// position (garbage at the same position keeps its order).
fn interleave(tracks: &[&CatalogueTrack], mut garbage: Vec<(usize, Entry)>) -> Vec<Entry> {
    garbage.sort_by_key(|(at, _)| *at);
    let mut garbage = garbage.into_iter().peekable();
    let mut entries = Vec::with_capacity(tracks.len() + garbage.len());
    for (i, track) in tracks.iter().enumerate() {
        while let Some((_, entry)) = garbage.next_if(|(at, _)| *at <= i) {
            entries.push(entry);
        }
        entries.push(Entry::of(track));
    }
    entries.extend(garbage.map(|(_, entry)| entry));
    entries
}

/// About `mean` distinct tracks (within a fifth either way), by popularity.
fn draw<'a>(catalogue: &'a Catalogue, rng: &mut ChaCha8Rng, mean: u32) -> Vec<&'a CatalogueTrack> {
    let spread = (mean / 5).max(1);
    let want = (rng.random_range(mean.saturating_sub(spread)..=mean + spread) as usize)
        .clamp(1, catalogue.len());
    let mut picked: Vec<&CatalogueTrack> = Vec::with_capacity(want);
    while picked.len() < want {
        let track = catalogue.popular(rng.random());
        if !picked.iter().any(|p| p.rank == track.rank) {
            picked.push(track);
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(n: u32) -> Arc<AtomicU32> {
        Arc::new(AtomicU32::new(n))
    }

    fn names(page: &Value) -> Vec<(String, String)> {
        page["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["artist"].to_string(), t["title"].to_string()))
            .collect()
    }

    #[test]
    fn the_workload_sets_the_page_size() {
        let catalogue = Arc::new(Catalogue::generate(42, 500));
        let page_size = size(10);
        let site = Tracklists::new(SourceSite::Mixesdb, catalogue, page_size.clone());
        let mean = |site: &Tracklists| {
            (1..=50).map(|p| names(&site.page(p)).len()).sum::<usize>() as f64 / 50.0
        };
        assert!((9.0..=11.0).contains(&mean(&site)), "{}", mean(&site));
        page_size.store(25, Ordering::Relaxed);
        assert!((23.0..=27.0).contains(&mean(&site)), "{}", mean(&site));
    }

    #[test]
    fn a_garbled_site_adds_entries_without_artist_or_title_and_keeps_the_tracks() {
        let catalogue = Arc::new(Catalogue::generate(42, 500));
        let clean = Tracklists::new(SourceSite::Mixesdb, catalogue.clone(), size(10));
        let garbled = Tracklists::new(SourceSite::Mixesdb, catalogue, size(10)).garbled(20);
        let page = names(&garbled.page(7));
        let blank = page
            .iter()
            .filter(|(a, t)| a == "\"\"" || t == "\"\"")
            .count();
        assert_eq!(blank, 20);
        let kept: Vec<_> = page
            .iter()
            .filter(|(a, t)| a != "\"\"" && t != "\"\"")
            .cloned()
            .collect();
        assert_eq!(kept, names(&clean.page(7)));
    }

    #[test]
    fn a_page_is_the_same_every_time_and_pages_differ() {
        let catalogue = Arc::new(Catalogue::generate(42, 500));
        let site = Tracklists::new(SourceSite::Mixesdb, catalogue.clone(), size(10));
        assert_eq!(site.page(3), site.page(3));
        assert_ne!(site.page(3)["tracks"], site.page(4)["tracks"]);
        let other = Tracklists::new(SourceSite::Tracklists1001, catalogue, size(10));
        assert_eq!(other.page(3)["next_page"], 4);
        assert!(other.page(3)["entries"].as_array().unwrap().len() >= 8);
    }

    #[test]
    fn popular_tracks_recur_across_pages() {
        let catalogue = Arc::new(Catalogue::generate(42, 2500));
        let site = Tracklists::new(SourceSite::Tracklists1001, catalogue, size(10));
        let mut seen = std::collections::HashMap::<String, usize>::new();
        let mut total = 0;
        for page in 1..=20 {
            for entry in site.page(page)["entries"].as_array().unwrap() {
                *seen.entry(entry["track"].to_string()).or_default() += 1;
                total += 1;
            }
        }
        let repeats = total - seen.len();
        assert!(repeats > total / 5, "{repeats} repeats in {total} entries");
    }
}
