//! The scraped sites: paginated tracklists of DJ mixes drawn from the catalogue.
//!
//! A page is about ten tracks drawn by popularity ([`Catalogue::popular`]), so popular
//! tracks recur across pages as they do across DJ sets (and the enrichment cache gets
//! hits). A page depends only on the seed, the site and the page number: a scraper
//! that restarts from its checkpoint sees the same page again. Pages never run out
//! (`next_page` is always N + 1), as new mixes keep being published.

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
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
}

impl Tracklists {
    pub(crate) fn mixesdb(catalogue: Arc<Catalogue>) -> Self {
        Self {
            catalogue,
            site: Site::MixesDb,
            template: template(MIXESDB),
        }
    }

    pub(crate) fn tracklists1001(catalogue: Arc<Catalogue>) -> Self {
        Self {
            catalogue,
            site: Site::Tracklists1001,
            template: template(TRACKLISTS_1001),
        }
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
        let tracks = draw(&self.catalogue, &mut rng);
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
                    tracks
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let entry = json!({
                                "position": i + 1,
                                "artist": t.artist,
                                "title": t.title,
                                "time": format!("{:02}:{:02}", at / 60, at % 60),
                            });
                            at += t.duration_ms / 1000 * 2 / 3; // mixed in before the end
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
                    tracks
                        .iter()
                        .enumerate()
                        .map(|(i, t)| json!({"cue": i + 1, "track": {"artist": t.artist, "title": t.title}}))
                        .collect(),
                );
            }
        }
        body["next_page"] = json!(page + 1);
        body
    }
}

/// 8–12 distinct tracks, by popularity.
fn draw<'a>(catalogue: &'a Catalogue, rng: &mut ChaCha8Rng) -> Vec<&'a CatalogueTrack> {
    let want = rng.random_range(8..=12).min(catalogue.len());
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

    #[test]
    fn a_page_is_the_same_every_time_and_pages_differ() {
        let catalogue = Arc::new(Catalogue::generate(42, 500));
        let site = Tracklists::mixesdb(catalogue.clone());
        assert_eq!(site.page(3), site.page(3));
        assert_ne!(site.page(3)["tracks"], site.page(4)["tracks"]);
        let other = Tracklists::tracklists1001(catalogue);
        assert_eq!(other.page(3)["next_page"], 4);
        assert!(other.page(3)["entries"].as_array().unwrap().len() >= 8);
    }

    #[test]
    fn popular_tracks_recur_across_pages() {
        let catalogue = Arc::new(Catalogue::generate(42, 2500));
        let site = Tracklists::tracklists1001(catalogue);
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
