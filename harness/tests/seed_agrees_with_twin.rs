//! The seeded history must look like what the twin itself writes, so that seeded rows
//! and live rows group together in the runbooks' queries (`GROUP BY validation_errors`,
//! `AVG(quality_score)`) and a re-enrichment of a seeded track changes nothing.

use harness::catalogue::Catalogue;
use harness::seed::SeedData;
use twin::enrichment::contract::EnrichedFields;

#[test]
fn seeded_scores_are_the_twins_scores() {
    let catalogue = Catalogue::generate(42, Catalogue::len_for(2000));
    let data = SeedData::generate(&catalogue, 42, 2000);
    let scores: std::collections::HashMap<i64, _> =
        data.quality.iter().map(|q| (q.track_id, q)).collect();
    let audits: std::collections::HashMap<i64, _> =
        data.audit.iter().map(|a| (a.track_id, a)).collect();
    let mut checked = 0;
    for track in data
        .tracks
        .iter()
        .filter(|t| t.enrichment_status == "enriched")
    {
        let fields = EnrichedFields {
            spotify_id: track.spotify_id.clone(),
            isrc: track.isrc.clone(),
            musicbrainz_id: track.musicbrainz_id.clone(),
            bpm: track.bpm,
            key: track.key.clone(),
            duration_ms: track.duration_ms,
            genre: track.genre.clone(),
            popularity: track.popularity,
            lastfm_listeners: track.lastfm_listeners,
        };
        let twin = twin::quality::assess(&fields);
        let seeded = scores[&track.track_id];
        assert_eq!(seeded.quality_score, twin.score, "track {}", track.track_id);
        assert_eq!(
            seeded.quality_tier,
            twin.tier.name(),
            "track {}",
            track.track_id
        );
        let seeded_errors: Vec<String> = seeded
            .validation_errors
            .iter()
            .flatten()
            .map(|e| (*e).to_owned())
            .collect();
        assert_eq!(
            seeded_errors, twin.validation_errors,
            "track {}",
            track.track_id
        );
        assert_eq!(audits[&track.track_id].fields_enriched, fields.present());
        if let Some(key) = &track.key {
            let tonic = key.strip_suffix('m').unwrap_or(key);
            assert!(twin::quality::KEY_NAMES.contains(&tonic), "{key}");
        }
        checked += 1;
    }
    assert!(checked > 1900, "{checked} enriched tracks checked");
}
