//! Last.fm: `track.getInfo`, filled from the catalogue.
//!
//! Last.fm reports problems in the body: an unknown track is HTTP 200 with
//! `{"error": 6, "message": "Track not found"}`; a missing `api_key` is error 10 (HTTP
//! 403) and an unknown method error 3 (HTTP 400), as the real API answers.

use std::sync::Arc;

use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

use super::{json, query_param, template};
use crate::catalogue::{Catalogue, CatalogueTrack};

const TRACK_INFO: &str = include_str!("../../../fixtures/providers/lastfm_track_getinfo.json");

/// `GET /2.0/?method=track.getInfo&artist=…&track=…&api_key=…&format=json`.
pub(crate) struct TrackInfo {
    catalogue: Arc<Catalogue>,
    template: Value,
}

impl TrackInfo {
    pub(crate) fn new(catalogue: Arc<Catalogue>) -> Self {
        Self {
            catalogue,
            template: template(TRACK_INFO),
        }
    }
}

impl Respond for TrackInfo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let method = query_param(request, "method").unwrap_or_default();
        if !method.eq_ignore_ascii_case("track.getInfo") {
            return json(
                400,
                json!({"error": 3, "message": "Invalid Method - No method with that name in this package"}),
            );
        }
        if query_param(request, "api_key").is_none_or(|k| k.is_empty()) {
            return json(
                403,
                json!({"error": 10, "message": "Invalid API key - You must be granted a valid key by last.fm"}),
            );
        }
        let found = query_param(request, "artist")
            .zip(query_param(request, "track"))
            .and_then(|(artist, title)| self.catalogue.find(&artist, &title))
            .filter(|t| t.on_lastfm);
        let Some(track) = found else {
            return json(200, json!({"error": 6, "message": "Track not found"}));
        };
        let mut body = self.template.clone();
        fill_track(&mut body["track"], track);
        json(200, body)
    }
}

fn fill_track(t: &mut Value, c: &CatalogueTrack) {
    let path = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mbid = if c.on_musicbrainz {
        c.musicbrainz_id.as_str()
    } else {
        ""
    };
    t["name"] = json!(c.title);
    t["mbid"] = json!(mbid);
    t["url"] = json!(format!(
        "https://www.last.fm/music/{}/_/{}",
        path(&c.artist),
        path(&c.title)
    ));
    t["duration"] = json!(c.duration_ms.to_string());
    t["listeners"] = json!(c.listeners.to_string());
    t["playcount"] = json!(c.playcount.to_string());
    t["artist"] = json!({
        "name": c.artist,
        "mbid": if c.on_musicbrainz { c.musicbrainz_artist_id.as_str() } else { "" },
        "url": format!("https://www.last.fm/music/{}", path(&c.artist)),
    });
    t["album"] = json!({
        "artist": c.artist,
        "title": c.album,
        "mbid": if c.on_musicbrainz { c.musicbrainz_release_id.as_str() } else { "" },
        "url": format!("https://www.last.fm/music/{}/{}", path(&c.artist), path(&c.album)),
    });
    t["toptags"] = json!({
        "tag": c.tags.iter().map(|tag| json!({
            "name": tag,
            "url": format!("https://www.last.fm/tag/{}", path(tag)),
        })).collect::<Vec<_>>()
    });
    t["wiki"] = json!({
        "published": c.release_date,
        "summary": format!("\"{}\" is a track by {}.", c.title, c.artist),
    });
}
