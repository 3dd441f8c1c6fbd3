//! MusicBrainz: recording search, filled from the catalogue.
//!
//! The query is MusicBrainz's Lucene syntax, `artist:"…" AND recording:"…"`; an unknown
//! recording is an empty result (`count: 0, recordings: []`), as MusicBrainz answers.

use std::sync::Arc;

use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

use super::{json, query_param, template};
use crate::catalogue::{Catalogue, CatalogueTrack};

const RECORDING: &str = include_str!("../../../fixtures/providers/musicbrainz_recording.json");

/// `GET /ws/2/recording?query=artist:"{artist}" AND recording:"{title}"&fmt=json&limit=1`.
pub(crate) struct Recording {
    catalogue: Arc<Catalogue>,
    template: Value,
}

impl Recording {
    pub(crate) fn new(catalogue: Arc<Catalogue>) -> Self {
        Self {
            catalogue,
            template: template(RECORDING),
        }
    }
}

impl Respond for Recording {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Some(query) = query_param(request, "query") else {
            return json(400, json!({"error": "Missing required parameter: query"}));
        };
        let found = field(&query, "artist")
            .zip(field(&query, "recording"))
            .and_then(|(artist, title)| self.catalogue.find(&artist, &title))
            .filter(|t| t.on_musicbrainz);
        let mut body = self.template.clone();
        match found {
            Some(track) => fill_recording(&mut body["recordings"][0], track),
            None => {
                body["count"] = json!(0);
                body["recordings"] = json!([]);
            }
        }
        json(200, body)
    }
}

/// The value of `name:"…"` (backslash escapes honoured) or `name:word` in a Lucene query.
pub(crate) fn field(query: &str, name: &str) -> Option<String> {
    let start = query.find(&format!("{name}:"))? + name.len() + 1;
    let rest = &query[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.push(chars.next()?),
                '"' => return Some(value),
                c => value.push(c),
            }
        }
        None
    } else {
        Some(rest.split(" AND ").next()?.trim().to_owned())
    }
}

fn fill_recording(r: &mut Value, t: &CatalogueTrack) {
    r["id"] = json!(t.musicbrainz_id);
    r["title"] = json!(t.title);
    r["length"] = json!(t.duration_ms);
    r["artist-credit"] = json!([{
        "name": t.artist,
        "artist": {
            "id": t.musicbrainz_artist_id,
            "name": t.artist,
            "sort-name": t.artist,
            "disambiguation": t.artist_disambiguation,
        }
    }]);
    r["first-release-date"] = json!(t.release_date);
    r["isrcs"] = json!([t.isrc]);
    r["releases"] = json!([{
        "id": t.musicbrainz_release_id,
        "title": t.album,
        "status": "Official",
        "date": t.release_date,
        "country": "XW",
        "track-count": t.album_tracks,
    }]);
    r["tags"] = Value::Array(
        t.tags
            .iter()
            .enumerate()
            .map(|(i, tag)| json!({"count": 3 - i.min(2), "name": tag}))
            .collect(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lucene_fields_are_read_with_escapes() {
        let q = r#"artist:"Mira Kessler" AND recording:"Say \"Yes\" (Dub)""#;
        assert_eq!(field(q, "artist").as_deref(), Some("Mira Kessler"));
        assert_eq!(field(q, "recording").as_deref(), Some(r#"Say "Yes" (Dub)"#));
        assert_eq!(
            field("artist:Bicep AND recording:Glue", "artist").as_deref(),
            Some("Bicep")
        );
        assert_eq!(field("recording:Glue", "artist"), None);
    }
}
