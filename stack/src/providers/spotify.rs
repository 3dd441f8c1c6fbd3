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

/// `GET /v1/search?q=artist:{artist} track:{title}&type=track&limit=1`.
pub(crate) struct Search {
    catalogue: Arc<Catalogue>,
    template: Value,
}

impl Search {
    pub(crate) fn new(catalogue: Arc<Catalogue>) -> Self {
        Self {
            catalogue,
            template: template(SEARCH),
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
            Some(track) => fill_item(&mut body["tracks"]["items"][0], track),
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

/// `GET /v1/audio-features/{id}`.
pub(crate) struct AudioFeatures {
    catalogue: Arc<Catalogue>,
    template: Value,
}

impl AudioFeatures {
    pub(crate) fn new(catalogue: Arc<Catalogue>) -> Self {
        Self {
            catalogue,
            template: template(AUDIO_FEATURES),
        }
    }
}

impl Respond for AudioFeatures {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = request.url.path().rsplit('/').next().unwrap_or_default();
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
}
