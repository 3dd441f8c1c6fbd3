//! Data-quality scoring of an enriched track (`data_quality_scores`).
//!
//! The Data Quality runbook reads `quality_score`, `quality_tier` and
//! `GROUP BY validation_errors`, so the score must move with what enrichment really
//! delivered: a provider outage that leaves fields NULL, or a provider that sends
//! implausible values, must lower it. The score is the sum of the weights of the
//! fields that are present *and* valid (they add up to 100); each field that is missing
//! or invalid adds one rule name to `validation_errors`, in a fixed order so that equal
//! problems group together in SQL.

use crate::enrichment::contract::EnrichedFields;

/// Score weights of the fields that matter for a DJ library; they sum to 100.
pub const WEIGHTS: [(&str, f64); 7] = [
    ("spotify_id", 25.0),
    ("isrc", 15.0),
    ("bpm", 20.0),
    ("key", 15.0),
    ("musicbrainz_id", 10.0),
    ("genre", 10.0),
    ("duration_ms", 5.0),
];

/// Plausible tempo of a track in BPM (a 2× or ½× detection falls outside).
pub const BPM_RANGE: std::ops::RangeInclusive<f64> = 60.0..=200.0;
/// Plausible length of a track: 30 s to 30 min.
pub const DURATION_RANGE_MS: std::ops::RangeInclusive<i32> = 30_000..=1_800_000;

/// Every rule name [`assess`] can report, in report order.
pub const FIELD_RULES: [&str; 14] = [
    "missing_spotify_id",
    "invalid_spotify_id",
    "missing_isrc",
    "invalid_isrc",
    "missing_bpm",
    "bpm_out_of_range",
    "missing_key",
    "invalid_key",
    "missing_musicbrainz_id",
    "invalid_musicbrainz_id",
    "missing_genre",
    "missing_duration_ms",
    "duration_out_of_range",
    "popularity_out_of_range",
];

/// `quality_tier`: excellent ≥ 90, good ≥ 70, fair ≥ 50, else poor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Excellent,
    Good,
    Fair,
    Poor,
}

impl Tier {
    pub fn of(score: f64) -> Self {
        if score >= 90.0 {
            Tier::Excellent
        } else if score >= 70.0 {
            Tier::Good
        } else if score >= 50.0 {
            Tier::Fair
        } else {
            Tier::Poor
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Excellent => "excellent",
            Tier::Good => "good",
            Tier::Fair => "fair",
            Tier::Poor => "poor",
        }
    }
}

/// The verdict on one track.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// 0–100.
    pub score: f64,
    pub tier: Tier,
    /// Rule names from [`FIELD_RULES`], in that order; empty when the track is clean.
    pub validation_errors: Vec<String>,
}

/// Scores a track's fields.
pub fn assess(fields: &EnrichedFields) -> Assessment {
    let checks: [(&str, Check); 7] = [
        (
            "spotify_id",
            check_text(&fields.spotify_id, is_spotify_id, "invalid_spotify_id"),
        ),
        ("isrc", check_text(&fields.isrc, is_isrc, "invalid_isrc")),
        (
            "bpm",
            match fields.bpm {
                None => Check::Missing,
                Some(bpm) if BPM_RANGE.contains(&bpm) => Check::Valid,
                Some(_) => Check::Invalid("bpm_out_of_range"),
            },
        ),
        ("key", check_text(&fields.key, is_key_name, "invalid_key")),
        (
            "musicbrainz_id",
            check_text(&fields.musicbrainz_id, is_uuid, "invalid_musicbrainz_id"),
        ),
        ("genre", check_text(&fields.genre, |_| true, "")),
        (
            "duration_ms",
            match fields.duration_ms {
                None => Check::Missing,
                Some(ms) if DURATION_RANGE_MS.contains(&ms) => Check::Valid,
                Some(_) => Check::Invalid("duration_out_of_range"),
            },
        ),
    ];
    let mut score = 0.0;
    let mut errors = Vec::new();
    for ((field, check), (weighted, weight)) in checks.into_iter().zip(WEIGHTS) {
        debug_assert_eq!(field, weighted);
        match check {
            Check::Valid => score += weight,
            Check::Missing => errors.push(format!("missing_{field}")),
            Check::Invalid(rule) => errors.push(rule.to_owned()),
        }
    }
    if fields.popularity.is_some_and(|p| !(0..=100).contains(&p)) {
        errors.push("popularity_out_of_range".to_owned());
    }
    Assessment {
        score,
        tier: Tier::of(score),
        validation_errors: errors,
    }
}

/// Whether `name` is one of the rules [`assess`] computes from the fields themselves
/// (as opposed to a note from enrichment about a rejected provider payload).
pub fn is_field_rule(name: &str) -> bool {
    FIELD_RULES.contains(&name)
}

/// The musical keys as enrichment writes them: pitch class, `#` for sharps, `m` for minor.
pub const KEY_NAMES: [&str; 12] = [
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
];

enum Check {
    Valid,
    Missing,
    Invalid(&'static str),
}

fn check_text(value: &Option<String>, valid: impl Fn(&str) -> bool, rule: &'static str) -> Check {
    match value.as_deref().map(str::trim) {
        None | Some("") => Check::Missing,
        Some(text) if valid(text) => Check::Valid,
        Some(_) => Check::Invalid(rule),
    }
}

/// A Spotify track id: 22 base-62 characters.
fn is_spotify_id(id: &str) -> bool {
    id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An ISRC: country (2 letters), registrant (3 alphanumerics), year (2) and designation (5) digits.
fn is_isrc(isrc: &str) -> bool {
    let bytes = isrc.as_bytes();
    bytes.len() == 12
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..5]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && bytes[5..].iter().all(u8::is_ascii_digit)
}

fn is_key_name(key: &str) -> bool {
    let tonic = key.strip_suffix('m').unwrap_or(key);
    KEY_NAMES.contains(&tonic)
}

/// A MusicBrainz id: a UUID in its 8-4-4-4-12 hex form.
fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn complete() -> EnrichedFields {
        EnrichedFields {
            spotify_id: Some("2aJDlirz6v2a4HREki98cP".into()),
            isrc: Some("GBCFB1700260".into()),
            musicbrainz_id: Some("b1a9c0e9-d987-4042-ae91-78d6a3267d69".into()),
            bpm: Some(129.997),
            key: Some("A#m".into()),
            duration_ms: Some(269_000),
            genre: Some("electronic".into()),
            popularity: Some(62),
            lastfm_listeners: Some(412_093),
        }
    }

    #[test]
    fn the_weights_add_up_to_a_hundred() {
        assert_eq!(WEIGHTS.iter().map(|(_, w)| w).sum::<f64>(), 100.0);
    }

    #[test]
    fn a_complete_track_is_excellent_and_clean() {
        let verdict = assess(&complete());
        assert_eq!(verdict.score, 100.0);
        assert_eq!(verdict.tier, Tier::Excellent);
        assert!(verdict.validation_errors.is_empty());
    }

    #[test]
    fn a_spotify_outage_leaves_a_poor_track() {
        // What the runbook's "disable spotify rows" leaves: MusicBrainz and Last.fm only.
        let fields = EnrichedFields {
            spotify_id: None,
            isrc: None,
            bpm: None,
            key: None,
            ..complete()
        };
        let verdict = assess(&fields);
        assert_eq!(verdict.score, 25.0);
        assert_eq!(verdict.tier, Tier::Poor);
        assert_eq!(
            verdict.validation_errors,
            [
                "missing_spotify_id",
                "missing_isrc",
                "missing_bpm",
                "missing_key"
            ]
        );
    }

    #[test]
    fn implausible_values_earn_nothing_and_are_named() {
        let fields = EnrichedFields {
            bpm: Some(260.0),
            key: Some("H".into()),
            duration_ms: Some(5_000),
            popularity: Some(140),
            ..complete()
        };
        let verdict = assess(&fields);
        assert_eq!(verdict.score, 100.0 - 20.0 - 15.0 - 5.0);
        assert_eq!(verdict.tier, Tier::Fair);
        assert_eq!(
            verdict.validation_errors,
            [
                "bpm_out_of_range",
                "invalid_key",
                "duration_out_of_range",
                "popularity_out_of_range"
            ]
        );
        assert!(verdict.validation_errors.iter().all(|e| is_field_rule(e)));
    }

    #[test]
    fn tiers_have_inclusive_lower_bounds() {
        assert_eq!(Tier::of(90.0), Tier::Excellent);
        assert_eq!(Tier::of(89.99), Tier::Good);
        assert_eq!(Tier::of(70.0), Tier::Good);
        assert_eq!(Tier::of(50.0), Tier::Fair);
        assert_eq!(Tier::of(49.0), Tier::Poor);
    }

    #[test]
    fn identifier_formats() {
        assert!(is_isrc("GBCFB1700260"));
        assert!(!is_isrc("GB-CFB-17-00260"));
        assert!(is_uuid("b1a9c0e9-d987-4042-ae91-78d6a3267d69"));
        assert!(!is_uuid("b1a9c0e9d9874042ae9178d6a3267d69"));
        assert!(is_spotify_id("2aJDlirz6v2a4HREki98cP"));
        assert!(!is_spotify_id("spotify:track:2aJDlirz6v2a4HREki98cP"));
        assert!(is_key_name("C#m") && is_key_name("F") && !is_key_name("Cb"));
        assert!(!is_field_rule("spotify_payload_invalid"));
    }
}

/// The scoring rules as properties over arbitrary fields (proptest): every scored
/// field is either counted or named, once; rules come in report order; a valid value
/// never scores less than what it replaces, a missing one never more.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// The scored field a rule name speaks of (`None` for popularity, which is not scored).
    fn field_of(rule: &str) -> Option<&'static str> {
        let field = match rule {
            "invalid_spotify_id" => "spotify_id",
            "invalid_isrc" => "isrc",
            "bpm_out_of_range" => "bpm",
            "invalid_key" => "key",
            "invalid_musicbrainz_id" => "musicbrainz_id",
            "duration_out_of_range" => "duration_ms",
            "popularity_out_of_range" => return None,
            missing => missing.strip_prefix("missing_")?,
        };
        WEIGHTS.iter().map(|(f, _)| *f).find(|f| *f == field)
    }

    fn weight(field: &str) -> f64 {
        WEIGHTS
            .iter()
            .find(|(f, _)| *f == field)
            .map_or(0.0, |(_, w)| *w)
    }

    /// A text field: absent, blank, a valid value, or anything at all.
    fn text(valid: &'static str) -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some(String::new())),
            Just(Some("   ".to_owned())),
            Just(Some(valid.to_owned())),
            "\\PC{0,30}".prop_map(Some),
        ]
    }

    fn fields() -> impl Strategy<Value = EnrichedFields> {
        (
            text("2aJDlirz6v2a4HREki98cP"),
            text("GBCFB1700260"),
            text("b1a9c0e9-d987-4042-ae91-78d6a3267d69"),
            prop_oneof![
                Just(None),
                (-100.0f64..400.0).prop_map(Some),
                Just(Some(f64::NAN))
            ],
            text("A#m"),
            prop_oneof![Just(None), any::<i32>().prop_map(Some)],
            text("electronic"),
            prop_oneof![Just(None), (-50i32..150).prop_map(Some)],
        )
            .prop_map(
                |(spotify_id, isrc, musicbrainz_id, bpm, key, duration_ms, genre, popularity)| {
                    EnrichedFields {
                        spotify_id,
                        isrc,
                        musicbrainz_id,
                        bpm,
                        key,
                        duration_ms,
                        genre,
                        popularity,
                        lastfm_listeners: None,
                    }
                },
            )
    }

    /// `fields` with the scored field number `index` set valid (`Some`) or absent (`None`).
    fn with_field(fields: &EnrichedFields, index: usize, valid: bool) -> EnrichedFields {
        let complete = super::tests::complete();
        let mut changed = fields.clone();
        match WEIGHTS[index].0 {
            "spotify_id" => changed.spotify_id = complete.spotify_id.filter(|_| valid),
            "isrc" => changed.isrc = complete.isrc.filter(|_| valid),
            "bpm" => changed.bpm = complete.bpm.filter(|_| valid),
            "key" => changed.key = complete.key.filter(|_| valid),
            "musicbrainz_id" => changed.musicbrainz_id = complete.musicbrainz_id.filter(|_| valid),
            "genre" => changed.genre = complete.genre.filter(|_| valid),
            "duration_ms" => changed.duration_ms = complete.duration_ms.filter(|_| valid),
            other => unreachable!("{other} is not scored"),
        }
        changed
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn every_scored_field_is_counted_or_named_once(fields in fields()) {
            let assessment = assess(&fields);
            let named: Vec<&str> = assessment
                .validation_errors
                .iter()
                .filter_map(|rule| field_of(rule))
                .collect();
            let mut unique = named.clone();
            unique.dedup();
            prop_assert_eq!(&unique, &named, "a field named twice");
            let lost: f64 = named.iter().map(|f| weight(f)).sum();
            prop_assert!((assessment.score + lost - 100.0).abs() < 1e-9,
                "score {} + named {} ≠ 100: {:?}", assessment.score, lost, assessment);
            prop_assert_eq!(assessment.tier, Tier::of(assessment.score));
        }

        #[test]
        fn rules_are_known_and_in_report_order(fields in fields()) {
            let assessment = assess(&fields);
            let positions: Vec<usize> = assessment
                .validation_errors
                .iter()
                .map(|rule| FIELD_RULES.iter().position(|r| r == rule))
                .collect::<Option<_>>()
                .ok_or("an unknown rule")
                .map_err(TestCaseError::fail)?;
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "{:?}", assessment);
            let out_of_range = fields.bpm.is_some_and(|bpm| !BPM_RANGE.contains(&bpm));
            prop_assert_eq!(
                assessment.validation_errors.iter().any(|r| r == "bpm_out_of_range"),
                out_of_range
            );
        }

        #[test]
        fn a_valid_value_never_scores_less_and_a_missing_one_never_more(
            fields in fields(),
            index in 0..WEIGHTS.len(),
        ) {
            let score = assess(&fields).score;
            let repaired = assess(&with_field(&fields, index, true));
            prop_assert!(repaired.score >= score);
            prop_assert!(repaired.validation_errors.len() <= assess(&fields).validation_errors.len());
            prop_assert!(assess(&with_field(&fields, index, false)).score <= score);
        }
    }
}
