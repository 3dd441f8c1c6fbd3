//! The two source sites and their page formats, reduced to one shape.
//!
//! MixesDB and 1001Tracklists list the same thing (the tracks of a DJ mix) in
//! different JSON: `tracks[].artist/title` under a `mix`, or
//! `entries[].track.artist/title` under a `tracklist`. One scraper program serves both
//! compose services; this module is the only place that knows the difference.
//! Parsing is lenient about entries (a missing artist or title is kept, as a real
//! spider would keep it, for enrichment to classify as `invalid_data`) and strict
//! about the page (no mix title or URL means we are not reading a tracklist at all).

use serde::Deserialize;

/// Which site a scraper reads: the site's name, listing path and scraper are the
/// wire contract; its page format is this module's.
pub use wire::api::SourceSite as Source;

/// Reads one listing page in `site`'s format.
pub fn parse(site: Source, body: &[u8]) -> Result<Page, serde_json::Error> {
    match site {
        Source::Mixesdb => serde_json::from_slice::<MixesdbPage>(body).map(Page::from),
        Source::Tracklists1001 => serde_json::from_slice::<TracklistsPage>(body).map(Page::from),
    }
}

/// One scraped listing page: a mix and its tracks.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub title: String,
    pub url: String,
    pub tracks: Vec<Entry>,
    /// The page the site says comes next, if it says.
    pub next_page: Option<i32>,
}

/// One track as the site lists it; either part may be missing.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub artist: Option<String>,
    pub title: Option<String>,
}

impl Entry {
    /// Whether enrichment will refuse it: no artist or no title worth the name.
    pub fn is_incomplete(&self) -> bool {
        let blank = |part: &Option<String>| part.as_deref().is_none_or(|s| s.trim().is_empty());
        blank(&self.artist) || blank(&self.title)
    }
}

impl Page {
    /// 1-based positions of the entries enrichment will classify `invalid_data`.
    pub fn incomplete_positions(&self) -> Vec<usize> {
        self.tracks
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.is_incomplete())
            .map(|(index, _)| index + 1)
            .collect()
    }
}

#[derive(Deserialize)]
struct MixesdbPage {
    mix: MixesdbMix,
    #[serde(default)]
    tracks: Vec<MixesdbTrack>,
    next_page: Option<i32>,
}

#[derive(Deserialize)]
struct MixesdbMix {
    title: String,
    url: String,
}

#[derive(Deserialize)]
struct MixesdbTrack {
    artist: Option<String>,
    title: Option<String>,
}

impl From<MixesdbPage> for Page {
    fn from(page: MixesdbPage) -> Self {
        Page {
            title: page.mix.title,
            url: page.mix.url,
            tracks: page
                .tracks
                .into_iter()
                .map(|t| Entry {
                    artist: t.artist,
                    title: t.title,
                })
                .collect(),
            next_page: page.next_page,
        }
    }
}

#[derive(Deserialize)]
struct TracklistsPage {
    tracklist: TracklistsHeader,
    #[serde(default)]
    entries: Vec<TracklistsEntry>,
    next_page: Option<i32>,
}

#[derive(Deserialize)]
struct TracklistsHeader {
    name: String,
    url: String,
}

#[derive(Deserialize)]
struct TracklistsEntry {
    /// An entry without a track (an ID / unknown cue) is kept as an empty track.
    track: Option<TracklistsTrack>,
}

#[derive(Deserialize)]
struct TracklistsTrack {
    artist: Option<String>,
    title: Option<String>,
}

impl From<TracklistsPage> for Page {
    fn from(page: TracklistsPage) -> Self {
        Page {
            title: page.tracklist.name,
            url: page.tracklist.url,
            tracks: page
                .entries
                .into_iter()
                .map(|e| match e.track {
                    Some(t) => Entry {
                        artist: t.artist,
                        title: t.title,
                    },
                    None => Entry {
                        artist: None,
                        title: None,
                    },
                })
                .collect(),
            next_page: page.next_page,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXESDB: &str = include_str!("../../../fixtures/providers/mixesdb_tracklist.json");
    const TRACKLISTS: &str =
        include_str!("../../../fixtures/providers/1001tracklists_tracklist.json");

    fn entry(artist: &str, title: &str) -> Entry {
        Entry {
            artist: Some(artist.into()),
            title: Some(title.into()),
        }
    }

    #[test]
    fn reads_the_mixesdb_fixture() {
        let page = parse(Source::Mixesdb, MIXESDB.as_bytes()).unwrap();
        assert_eq!(page.title, "2025-10-04 - Ben UFO @ Printworks, London");
        assert!(page.url.starts_with("https://www.mixesdb.com/w/"));
        assert_eq!(
            page.tracks,
            [entry("Bicep", "Glue"), entry("Floating Points", "Ratio")]
        );
        assert_eq!(page.next_page, Some(2));
        assert!(page.incomplete_positions().is_empty());
    }

    #[test]
    fn reads_the_1001tracklists_fixture() {
        let page = parse(Source::Tracklists1001, TRACKLISTS.as_bytes()).unwrap();
        assert_eq!(page.title, "Peggy Gou @ Boiler Room Seoul 2025-09-27");
        assert!(
            page.url
                .starts_with("https://www.1001tracklists.com/tracklist/")
        );
        assert_eq!(
            page.tracks,
            [
                entry("Peggy Gou", "(It Goes Like) Nanana"),
                entry("DJ Koze", "Pick Up")
            ]
        );
        assert_eq!(page.next_page, Some(2));
    }

    #[test]
    fn one_format_is_not_mistaken_for_the_other() {
        assert!(parse(Source::Mixesdb, TRACKLISTS.as_bytes()).is_err());
        assert!(parse(Source::Tracklists1001, MIXESDB.as_bytes()).is_err());
        assert!(parse(Source::Mixesdb, b"<html>503</html>").is_err());
    }

    #[test]
    fn incomplete_entries_are_kept_and_pointed_out() {
        let body = br#"{"mix": {"title": "t", "url": "u"}, "tracks": [
            {"artist": "Bicep", "title": "Glue"},
            {"artist": "", "title": "Untitled"},
            {"title": "No Artist"},
            {"artist": "No Title", "title": "  "}
        ]}"#;
        let page = parse(Source::Mixesdb, body).unwrap();
        assert_eq!(page.tracks.len(), 4);
        assert_eq!(page.tracks[1].artist.as_deref(), Some(""));
        assert_eq!(page.tracks[2].artist, None);
        assert_eq!(page.incomplete_positions(), [2, 3, 4]);
        assert_eq!(page.next_page, None);
    }

    #[test]
    fn a_cue_without_a_track_is_an_empty_entry() {
        let body = br#"{"tracklist": {"name": "n", "url": "u"}, "entries": [{"cue": 1}]}"#;
        let page = parse(Source::Tracklists1001, body).unwrap();
        assert_eq!(page.incomplete_positions(), [1]);
    }

    #[test]
    fn each_scraper_service_has_its_site() {
        use wire::Service;
        assert_eq!(
            Source::scraped_by(Service::ScraperMixesdb),
            Some(Source::Mixesdb)
        );
        assert_eq!(
            Source::scraped_by(Service::Scraper1001Tracklists).map(Source::name),
            Some("1001tracklists")
        );
        assert_eq!(Source::scraped_by(Service::RestApi), None);
    }
}
