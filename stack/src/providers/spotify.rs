//! Spotify: track search and audio features, filled from the catalogue.
//!
//! A track the catalogue marks as not on Spotify is not found: the search answers
//! `"items": []` (with `total: 0`), as Spotify does, and its audio features are a 404.

use std::sync::Arc;

use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

use super::{json, query_param, template};
use crate::catalogue::{Catalogue, CatalogueTrack};

const SEARCH: &str = include_str!("../../../fixtures/providers/spotify_search.json");
const AUDIO_FEATURES: &str =
    include_str!("../../../fixtures/providers/spotify_audio_features.json");

/// How Spotify's answers change for part of the catalogue, as they do when Spotify
/// changes (the Data Quality runbook's two scenarios). Nothing fails: every answer is
/// a 200 in Spotify's format, and enrichment stores what it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Degradation {
    /// The analysis is not done: audio features with `tempo` 0 and `key` -1 (what
    /// Spotify answers for an unanalysed track), and search results without
    /// `external_ids.isrc`. Enrichment stores the track without ISRC, BPM and key.
    Unanalysed,
    /// A new answer format: track IDs as URIs (`spotify:track:…`), ISRCs in their
    /// display form (`GB-CFB-17-00260`) and tempos counted in double time. Enrichment
    /// stores values that fail validation.
    Reformatted,
}

/// A [`Degradation`] of `per_thousand` of the catalogue's tracks, chosen by their
/// Spotify ID (the same tracks whichever call asks about them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Degraded {
    pub degradation: Degradation,
    pub per_thousand: u16,
}

impl Degraded {
    fn strikes(self, spotify_id: &str) -> bool {
        // FNV-1a: stable across runs and platforms, unlike the std hasher.
        let hash = spotify_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        hash % 1000 < u64::from(self.per_thousand)
    }
}

/// `GET /v1/search?q=artist:{artist} track:{title}&type=track&limit=1`.
pub(crate) struct Search {
    catalogue: Arc<Catalogue>,
    template: Value,
    degraded: Option<Degraded>,
}

impl Search {
    pub(crate) fn new(catalogue: Arc<Catalogue>) -> Self {
        Self {
            catalogue,
            template: template(SEARCH),
            degraded: None,
        }
    }
}

impl Respond for Search {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Some(q) = query_param(request, "q") else {
            return json(
                400,
                json!({"error": {"status": 400, "message": "No search query"}}),
            );
        };
        let mut body = self.template.clone();
        body["tracks"]["href"] = json!(format!(
            "https://api.spotify.com/v1/search?query={}&type=track&offset=0&limit=1",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        ));
        let found = parse_query(&q)
            .and_then(|(artist, title)| self.catalogue.find(&artist, &title))
            .filter(|t| t.on_spotify);
        match found {
            Some(track) => {
                let item = &mut body["tracks"]["items"][0];
                fill_item(item, track);
                match self.degraded {
                    Some(d) if d.strikes(&track.spotify_id) => match d.degradation {
                        Degradation::Unanalysed => item["external_ids"] = json!({}),
                        Degradation::Reformatted => {
                            item["external_ids"] = json!({ "isrc": display_isrc(&track.isrc) });
                            item["id"] = json!(format!("spotify:track:{}", track.spotify_id));
                        }
                    },
                    _ => {}
                }
            }
            None => {
                body["tracks"]["items"] = json!([]);
                body["tracks"]["total"] = json!(0);
            }
        }
        json(200, body)
    }
}

/// `artist:{artist} track:{title}`, either value optionally in double quotes.
pub(crate) fn parse_query(q: &str) -> Option<(String, String)> {
    let q = q.trim();
    let rest = q.strip_prefix("artist:")?;
    let split = rest.rfind(" track:")?;
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    Some((
        unquote(&rest[..split]),
        unquote(&rest[split + " track:".len()..]),
    ))
}

fn fill_item(item: &mut Value, t: &CatalogueTrack) {
    let artist = json!({
        "external_urls": { "spotify": format!("https://open.spotify.com/artist/{}", t.spotify_artist_id) },
        "href": format!("https://api.spotify.com/v1/artists/{}", t.spotify_artist_id),
        "id": t.spotify_artist_id,
        "name": t.artist,
        "type": "artist",
        "uri": format!("spotify:artist:{}", t.spotify_artist_id),
    });
    let album = &mut item["album"];
    album["album_type"] = json!(if t.album_tracks <= 4 {
        "single"
    } else {
        "album"
    });
    album["artists"] = json!([artist.clone()]);
    album["id"] = json!(t.spotify_album_id);
    album["name"] = json!(t.album);
    album["release_date"] = json!(t.release_date);
    album["total_tracks"] = json!(t.album_tracks);
    album["uri"] = json!(format!("spotify:album:{}", t.spotify_album_id));
    item["artists"] = json!([artist]);
    item["duration_ms"] = json!(t.duration_ms);
    item["external_ids"] = json!({ "isrc": t.isrc });
    item["external_urls"] =
        json!({ "spotify": format!("https://open.spotify.com/track/{}", t.spotify_id) });
    item["href"] = json!(format!(
        "https://api.spotify.com/v1/tracks/{}",
        t.spotify_id
    ));
    item["id"] = json!(t.spotify_id);
    item["name"] = json!(t.title);
    item["popularity"] = json!(t.popularity);
    item["track_number"] = json!(t.track_number);
    item["uri"] = json!(format!("spotify:track:{}", t.spotify_id));
}

/// An ISRC in its display form: `GBCFB1700260` → `GB-CFB-17-00260`.
fn display_isrc(isrc: &str) -> String {
    if isrc.len() != 12 || !isrc.is_ascii() {
        return isrc.to_owned();
    }
    format!(
        "{}-{}-{}-{}",
        &isrc[..2],
        &isrc[2..5],
        &isrc[5..7],
        &isrc[7..]
    )
}

/// `GET /v1/audio-features/{id}`.
pub(crate) struct AudioFeatures {
    catalogue: Arc<Catalogue>,
    template: Value,
    degraded: Option<Degraded>,
}

impl AudioFeatures {
    pub(crate) fn new(catalogue: Arc<Catalogue>) -> Self {
        Self {
            catalogue,
            template: template(AUDIO_FEATURES),
            degraded: None,
        }
    }
}

/// Spotify's API with a [`Degradation`]: both routes, for a fault to mount over the
/// baseline.
pub(crate) struct DegradedApi {
    search: Search,
    features: AudioFeatures,
}

impl DegradedApi {
    pub(crate) fn new(catalogue: Arc<Catalogue>, degraded: Degraded) -> Self {
        let mut search = Search::new(catalogue.clone());
        search.degraded = Some(degraded);
        let mut features = AudioFeatures::new(catalogue);
        features.degraded = Some(degraded);
        Self { search, features }
    }
}

impl Respond for DegradedApi {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.url.path().starts_with("/v1/audio-features/") {
            self.features.respond(request)
        } else {
            self.search.respond(request)
        }
    }
}

impl Respond for AudioFeatures {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = request.url.path().rsplit('/').next().unwrap_or_default();
        // The new format's IDs are URIs, and its clients ask with them.
        let id = match self.degraded {
            Some(Degraded {
                degradation: Degradation::Reformatted,
                ..
            }) => id.strip_prefix("spotify:track:").unwrap_or(id),
            _ => id,
        };
        let Some(t) = self.catalogue.by_spotify_id(id).filter(|t| t.on_spotify) else {
            return json(
                404,
                json!({"error": {"status": 404, "message": "analysis not found"}}),
            );
        };
        let mut body = self.template.clone();
        let a = &t.audio;
        body["acousticness"] = json!(a.acousticness);
        body["analysis_url"] = json!(format!("https://api.spotify.com/v1/audio-analysis/{id}"));
        body["danceability"] = json!(a.danceability);
        body["duration_ms"] = json!(t.duration_ms);
        body["energy"] = json!(a.energy);
        body["id"] = json!(t.spotify_id);
        body["instrumentalness"] = json!(a.instrumentalness);
        body["key"] = json!(t.key);
        body["liveness"] = json!(a.liveness);
        body["loudness"] = json!(a.loudness);
        body["mode"] = json!(t.mode);
        body["speechiness"] = json!(a.speechiness);
        body["tempo"] = json!(t.bpm);
        body["time_signature"] = json!(4);
        body["track_href"] = json!(format!("https://api.spotify.com/v1/tracks/{id}"));
        body["uri"] = json!(format!("spotify:track:{id}"));
        body["valence"] = json!(a.valence);
        match self.degraded {
            Some(d) if d.strikes(&t.spotify_id) => match d.degradation {
                Degradation::Unanalysed => {
                    body["tempo"] = json!(0.0);
                    body["key"] = json!(-1);
                }
                Degradation::Reformatted => body["tempo"] = json!(t.bpm * 2.0),
            },
            _ => {}
        }
        json(200, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_queries_parse_with_or_without_quotes() {
        assert_eq!(
            parse_query("artist:Bicep track:Glue"),
            Some(("Bicep".into(), "Glue".into()))
        );
        assert_eq!(
            parse_query("artist:\"Mira Kessler\" track:\"Low Tide (Dub)\""),
            Some(("Mira Kessler".into(), "Low Tide (Dub)".into()))
        );
        assert_eq!(parse_query("Glue"), None);
    }

    #[test]
    fn isrcs_are_shown_with_hyphens_and_a_share_strikes_stable_tracks() {
        assert_eq!(display_isrc("GBCFB1700260"), "GB-CFB-17-00260");
        let half = Degraded {
            degradation: Degradation::Unanalysed,
            per_thousand: 500,
        };
        let ids: Vec<String> = (0..2000).map(|i| format!("{i:022}")).collect();
        let struck = ids.iter().filter(|id| half.strikes(id)).count();
        assert!((850..1150).contains(&struck), "{struck} of 2000");
        assert!(ids.iter().all(|id| half.strikes(id) == half.strikes(id)));
        let none = Degraded {
            per_thousand: 0,
            ..half
        };
        assert!(!ids.iter().any(|id| none.strikes(id)));
    }
}
