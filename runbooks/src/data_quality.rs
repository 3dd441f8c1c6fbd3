//! Runbook: Data Quality Issues (`DataQualityScoreLow`, P2, quality score < 70 for
//! > 1 hour).
//!
//! A quality incident breaks nothing that pages on its own: every provider answers
//! 200, no breaker opens, the DLQ stays empty, the success rate holds. Only the stored
//! data is worse, and the investigation's four queries are all there is to read.
//!
//! Their decoy is steady: tracks Spotify does not know score low every day (no
//! Spotify ID, hence no ISRC, BPM or key), and step 2's `GROUP BY validation_errors`
//! lists them among the incident's tracks, often first. Re-enriching them cannot
//! help, and the text's own re-enrichment query (`WHERE spotify_id IS NULL`) selects
//! exactly them. The automation sets them aside, reads the rest as either fields left
//! out (Scenario A: re-enrich) or values that fail validation (Scenario B: escalate the
//! validation fix, purge only what cannot be repaired), and re-enriches the tracks a
//! provider knows but left incomplete (`docs/data-quality.md`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::alert::{AlertRule, Severity, minutes_of};
use crate::criteria::{Check, Criterion};
use crate::ops::{Ops, Phase, Reenriched, ReenrichedTrack, StepContext, StepError};
use crate::probe::Probe;
use crate::runbook::{Diagnosis, Evidence, Runbook, RunbookMeta, Scenario};
use crate::scenarios;

/// The alert's reading: the average score of the last hour's enrichments.
const HOURLY_QUALITY: &str = "SELECT COALESCE(AVG(quality_score), 100)::float8 FROM data_quality_scores \
     WHERE created_at > NOW() - INTERVAL '1 hour'";

/// Tracks of the last day that a provider knows (Spotify gave their ID) but that lack
/// a field Spotify gives: what a provider left out, and re-enrichment can fill.
const INCOMPLETE_KNOWN_TRACKS: &str = "SELECT COUNT(*)::float8 FROM tracks \
     WHERE spotify_id IS NOT NULL AND enrichment_status = 'enriched' \
       AND (isrc IS NULL OR bpm IS NULL OR key IS NULL) \
       AND created_at > NOW() - INTERVAL '24 hours'";

pub static META: RunbookMeta = RunbookMeta {
    title: "Data Quality Issues",
    rule: AlertRule {
        name: "DataQualityScoreLow",
        severity: Severity::P2,
        runbook: "data-quality",
        threshold: "Quality score < 70 for > 1 hour",
        probe: Probe::Sql {
            sql: HOURLY_QUALITY,
        },
        condition: Check::Below(70.0),
        for_duration: minutes_of(60),
        typical_resolution: minutes_of(120),
    },
    doc: include_str!("../docs/data-quality.md"),
};

scenarios! {
    /// What lowered the scores, as the investigation tells it.
    pub enum QualityScenario {
        MissingRequiredFields = ('A', "Missing Required Fields", "missing-required-fields"),
        IncorrectData = ('B', "Incorrect Data", "incorrect-data"),
    }
}

/// The Data Quality Issues runbook.
pub struct DataQuality;

#[derive(Debug)]
pub struct QualityDiagnosis {
    pub scenario: QualityScenario,
    pub tally: Tally,
    pub evidence: Vec<Evidence>,
}

impl Diagnosis for QualityDiagnosis {
    type Scenario = QualityScenario;
    fn scenario(&self) -> QualityScenario {
        self.scenario
    }
    fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }
}

/// One row of step 2: a set of validation errors, and how many low-scoring tracks of
/// the last day have exactly that set.
#[derive(Clone, Debug, PartialEq)]
pub struct IssueGroup {
    pub errors: Vec<String>,
    pub tracks: i64,
}

/// Step 2's groups, read by what they say about the providers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    /// Tracks Spotify does not know (`missing_spotify_id`): low every day, and beyond
    /// re-enrichment.
    pub unknown_to_spotify: i64,
    /// Tracks a provider knows with fields left out, and only that.
    pub missing: i64,
    /// Tracks with values that fail validation.
    pub incorrect: i64,
    /// Tracks lacking each field (`missing_isrc` → `isrc`), among those.
    pub missing_by_field: BTreeMap<&'static str, i64>,
    /// The rules broken by incorrect values, most tracks first.
    pub incorrect_rules: Vec<(String, i64)>,
}

/// Columns whose absence a rule names, as `tracks` spells them (a whitelist: they
/// are written into SQL).
const FIELDS: [&str; 7] = [
    "spotify_id",
    "isrc",
    "bpm",
    "key",
    "musicbrainz_id",
    "genre",
    "duration_ms",
];

fn missing_field(rule: &str) -> Option<&'static str> {
    let field = rule.strip_prefix("missing_")?;
    FIELDS.into_iter().find(|f| *f == field)
}

/// A value that is there but wrong: `invalid_isrc`, `bpm_out_of_range`, a provider's
/// payload that failed validation.
fn is_incorrect(rule: &str) -> bool {
    rule.starts_with("invalid_") || rule.ends_with("_out_of_range") || rule.ends_with("_invalid")
}

impl Tally {
    pub fn of(groups: &[IssueGroup]) -> Self {
        let mut tally = Tally::default();
        let mut rules: Vec<(String, i64)> = Vec::new();
        for group in groups {
            if group.errors.iter().any(|e| e == "missing_spotify_id") {
                tally.unknown_to_spotify += group.tracks;
                continue;
            }
            let incorrect: Vec<&String> = group.errors.iter().filter(|e| is_incorrect(e)).collect();
            if incorrect.is_empty() {
                let fields: Vec<&'static str> = group
                    .errors
                    .iter()
                    .filter_map(|e| missing_field(e))
                    .collect();
                if !fields.is_empty() {
                    tally.missing += group.tracks;
                    for field in fields {
                        *tally.missing_by_field.entry(field).or_default() += group.tracks;
                    }
                }
                continue;
            }
            tally.incorrect += group.tracks;
            for rule in incorrect {
                match rules.iter_mut().find(|(r, _)| r == rule) {
                    Some((_, n)) => *n += group.tracks,
                    None => rules.push((rule.clone(), group.tracks)),
                }
            }
        }
        rules.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tally.incorrect_rules = rules;
        tally
    }

    /// The incident's fields: those at least half of the incomplete tracks lack. A
    /// field few of them lack (a MusicBrainz ID, a genre) is one its provider lacks
    /// every day, for tracks it does not know; re-enriching cannot fill it.
    pub fn missing_fields(&self) -> Vec<&'static str> {
        self.missing_by_field
            .iter()
            .filter(|(_, n)| **n * 2 >= self.missing)
            .map(|(field, _)| *field)
            .collect()
    }

    pub fn describe(&self) -> String {
        format!(
            "{} tracks with fields left out ({}), {} with values that fail validation ({}), \
             {} that Spotify does not know (set aside: low every day)",
            self.missing,
            self.missing_by_field
                .iter()
                .map(|(field, n)| format!("{field} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.incorrect,
            self.incorrect_rules
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.unknown_to_spotify
        )
    }
}

/// The scenario step 2's groups point to: the larger of fields left out and values
/// that fail validation, among the tracks a provider knows. An incident of neither
/// (only tracks Spotify does not know) has nothing for this runbook to do.
pub fn choose(tally: &Tally) -> Result<QualityScenario, String> {
    match (tally.missing, tally.incorrect) {
        (0, 0) => Err(format!(
            "every low-scoring track of the last day is one Spotify does not know ({}): \
             neither re-enrichment nor a purge changes that",
            tally.unknown_to_spotify
        )),
        (missing, incorrect) if incorrect > missing => Ok(QualityScenario::IncorrectData),
        _ => Ok(QualityScenario::MissingRequiredFields),
    }
}

/// Tracks one `POST /enrich/batch` names (the text's `LIMIT 100`).
const BATCH: i64 = 100;
/// Batches one pass may send: a day of a busy pipeline's tracks. More than that is an
/// incident of another size, for a person to plan.
const MAX_BATCHES: usize = 80;
/// Passes over the incomplete tracks: the first, and one after the provider has
/// caught up (a track it left out meanwhile is caught by the second).
const PASSES: usize = 3;
/// How often a sample of the incomplete tracks is re-enriched while waiting for the
/// provider, and for how long at most.
const SAMPLE_EVERY: Duration = Duration::from_secs(10 * 60);
const PROVIDER_BOUND: Duration = Duration::from_secs(4 * 60 * 60);
/// Tracks of a pass re-enriched again to see whether the provider has caught up.
const SAMPLE: usize = 5;
/// A pass is done when at most this share of the tracks it re-enriched still lack
/// the fields (a provider that knows a track but has no analysis for it is not an
/// incident).
const STILL_MISSING_TOLERATED: f64 = 0.02;

#[async_trait]
impl Runbook for DataQuality {
    type Diagnosis = QualityDiagnosis;

    fn meta(&self) -> &'static RunbookMeta {
        &META
    }

    async fn investigate(&self, ops: &Ops) -> Result<QualityDiagnosis, StepError> {
        let phase = Phase::Investigate;
        let tiers = quality_tiers(ops, phase).await?;
        let groups = common_issues(ops, phase).await?;
        let low = sample_low_quality(ops, phase).await?;
        let audit = audit_trail(ops, phase).await?;
        let tally = Tally::of(&groups);
        let scenario = choose(&tally).map_err(|reason| StepError::Escalate {
            step: "Identify common quality issues".into(),
            reason,
        })?;
        ops.timeline.note(
            phase,
            format!("Diagnosis: scenario {}", scenario.id()),
            tally.describe(),
        );
        let evidence = vec![
            Evidence::new("quality tiers, last 24 hours", tiers),
            Evidence::new("low-scoring tracks by validation errors", tally.describe()),
            Evidence::new("tracks scoring under 50 (sample)", low),
            Evidence::new("average quality by sources used", audit),
        ];
        Ok(QualityDiagnosis {
            scenario,
            tally,
            evidence,
        })
    }

    async fn resolve(&self, ops: &Ops, diagnosis: &QualityDiagnosis) -> Result<(), StepError> {
        match diagnosis.scenario {
            QualityScenario::MissingRequiredFields => {
                reenrich_incomplete(ops, &diagnosis.tally).await
            }
            QualityScenario::IncorrectData => purge_and_escalate(ops, &diagnosis.tally).await,
        }
    }

    fn criteria(&self) -> Vec<Criterion> {
        vec![
            Criterion::new(
                "Quality score normal (last hour's average at least 70)",
                Probe::Sql {
                    sql: HOURLY_QUALITY,
                },
                Check::Above(70.0),
            ),
            Criterion::new(
                "No track of the last 24 hours that Spotify knows lacks ISRC, BPM or key",
                Probe::Sql {
                    sql: INCOMPLETE_KNOWN_TRACKS,
                },
                Check::AtMost(5.0),
            ),
        ]
    }
}

/// Investigation step 1, as written.
async fn quality_tiers(ops: &Ops, phase: Phase) -> Result<String, StepError> {
    let sql = "SELECT
    quality_tier,
    COUNT(*) as track_count,
    ROUND(AVG(quality_score), 2)::float8 as avg_quality
FROM data_quality_scores
WHERE created_at > NOW() - INTERVAL '24 hours'
GROUP BY quality_tier
ORDER BY quality_tier;";
    let rows: Vec<(String, i64, f64)> = ops
        .act(
            phase,
            "Check data quality metrics",
            ops.psql(sql),
            sqlx::query_as(sql).fetch_all(&ops.db),
            |rows| {
                describe_rows(
                    rows.iter()
                        .map(|(t, n, avg)| format!("{t} {n} (avg {avg})")),
                )
            },
        )
        .await?;
    Ok(describe_rows(
        rows.iter()
            .map(|(t, n, avg)| format!("{t} {n} (avg {avg})")),
    ))
}

/// Investigation step 2, as written (the JSON read back as text).
async fn common_issues(ops: &Ops, phase: Phase) -> Result<Vec<IssueGroup>, StepError> {
    let sql = "SELECT
    validation_errors::text,
    COUNT(*) as occurrence_count
FROM data_quality_scores
WHERE quality_score < 70
  AND created_at > NOW() - INTERVAL '24 hours'
GROUP BY validation_errors
ORDER BY occurrence_count DESC
LIMIT 10;";
    let rows: Vec<(Option<String>, i64)> = ops
        .act(
            phase,
            "Identify common quality issues",
            ops.psql(sql),
            sqlx::query_as(sql).fetch_all(&ops.db),
            |rows: &Vec<(Option<String>, i64)>| {
                describe_rows(
                    rows.iter()
                        .map(|(e, n)| format!("{} {n}", e.as_deref().unwrap_or("NULL"))),
                )
            },
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(errors, tracks)| IssueGroup {
            errors: errors
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default(),
            tracks,
        })
        .collect())
}

/// Investigation step 3, as written.
async fn sample_low_quality(ops: &Ops, phase: Phase) -> Result<String, StepError> {
    let sql = "SELECT
    t.track_id,
    t.artist_name,
    t.track_name,
    dq.quality_score::float8,
    dq.validation_errors::text
FROM tracks t
JOIN data_quality_scores dq ON t.track_id = dq.track_id
WHERE dq.quality_score < 50
  AND dq.created_at > NOW() - INTERVAL '24 hours'
LIMIT 20;";
    type Row = (i64, Option<String>, Option<String>, f64, Option<String>);
    let rows: Vec<Row> = ops
        .act(
            phase,
            "Sample low-quality tracks",
            ops.psql(sql),
            sqlx::query_as(sql).fetch_all(&ops.db),
            |rows| format!("{} tracks under 50", rows.len()),
        )
        .await?;
    Ok(match rows.first() {
        None => "none".to_owned(),
        Some((id, artist, title, score, errors)) => format!(
            "{} shown; e.g. #{id} {} – {}: {score} {}",
            rows.len(),
            artist.as_deref().unwrap_or("?"),
            title.as_deref().unwrap_or("?"),
            errors.as_deref().unwrap_or("")
        ),
    })
}

/// Investigation step 4, as written.
async fn audit_trail(ops: &Ops, phase: Phase) -> Result<String, StepError> {
    let sql = "SELECT
    sources_used,
    COUNT(*) as count,
    ROUND(AVG(quality_score), 2)::float8 as avg_quality
FROM enrichment_audit
WHERE created_at > NOW() - INTERVAL '24 hours'
GROUP BY sources_used
ORDER BY avg_quality DESC;";
    let rows: Vec<(String, i64, Option<f64>)> = ops
        .act(
            phase,
            "Check enrichment audit trail",
            ops.psql(sql),
            sqlx::query_as(sql).fetch_all(&ops.db),
            |rows| format!("{} source combinations", rows.len()),
        )
        .await?;
    Ok(describe_rows(rows.iter().map(|(sources, n, avg)| {
        let sources = if sources.is_empty() {
            "(failed)"
        } else {
            sources
        };
        match avg {
            Some(avg) => format!("{sources} {n} (avg {avg})"),
            None => format!("{sources} {n}"),
        }
    })))
}

fn describe_rows(rows: impl Iterator<Item = String>) -> String {
    let rows: Vec<String> = rows.collect();
    if rows.is_empty() {
        "no rows".to_owned()
    } else {
        rows.join("; ")
    }
}

/// Scenario A: count what is missing, then re-enrich the tracks a provider knows but
/// left incomplete, pass after pass while the provider still leaves the fields out.
async fn reenrich_incomplete(ops: &Ops, tally: &Tally) -> Result<(), StepError> {
    let phase = Phase::Resolve;
    identify_missing_fields(ops, phase).await?;
    unknown_to_spotify(ops, phase).await?;
    let fields: Vec<&'static str> = tally
        .missing_fields()
        .into_iter()
        .filter(|f| *f != "spotify_id")
        .collect();
    if fields.is_empty() {
        return Err(StepError::Escalate {
            step: "Re-enrich tracks with missing critical fields".into(),
            reason: "the tracks left incomplete lack only their Spotify ID: re-enrichment \
                     asks Spotify the same question"
                .into(),
        });
    }
    for pass in 1..=PASSES {
        let outcome = reenrichment_pass(ops, &fields, pass).await?;
        if outcome.is_complete() {
            ops.timeline.note(
                phase,
                format!("Re-enrichment complete after pass {pass}"),
                outcome.describe(),
            );
            return Ok(());
        }
        if pass < PASSES {
            ops.timeline.note(
                phase,
                format!("Pass {pass}: the provider still leaves the fields out"),
                format!(
                    "{}; re-enriching a sample every {} minutes until it comes back complete",
                    outcome.describe(),
                    SAMPLE_EVERY.as_secs() / 60
                ),
            );
            wait_for_complete_answers(ops, &fields, &outcome.incomplete_sample).await?;
        }
    }
    Err(StepError::Escalate {
        step: "Re-enrich tracks with missing critical fields".into(),
        reason: format!(
            "after {PASSES} passes the provider still leaves {} out",
            fields.join(", ")
        ),
    })
}

/// Re-enriches a few of the tracks that came back incomplete, every
/// [`SAMPLE_EVERY`], until most come back complete: the provider has caught up.
async fn wait_for_complete_answers(
    ops: &Ops,
    fields: &[&'static str],
    sample: &[i64],
) -> Result<(), StepError> {
    ops.wait_until(
        Phase::Resolve,
        &format!(
            "Wait for the provider: re-enrich {} incomplete tracks every {} minutes",
            sample.len(),
            SAMPLE_EVERY.as_secs() / 60
        ),
        PROVIDER_BOUND,
        SAMPLE_EVERY,
        || async move {
            let answer = ops
                .enrichment
                .reenrich(sample)
                .await
                .step("Re-enrich a sample")?;
            let incomplete = answer.tracks.iter().filter(|t| lacks(t, fields)).count();
            Ok(if incomplete * 5 <= sample.len() {
                Ok(format!(
                    "{} of {} sampled tracks complete",
                    sample.len() - incomplete,
                    sample.len()
                ))
            } else {
                Err(format!("{incomplete} of {} still incomplete", sample.len()))
            })
        },
    )
    .await?;
    Ok(())
}

fn lacks(track: &ReenrichedTrack, fields: &[&str]) -> bool {
    track.validation_errors.as_ref().is_some_and(|errors| {
        fields
            .iter()
            .any(|f| errors.iter().any(|e| e.strip_prefix("missing_") == Some(f)))
    })
}

/// Resolution A step 1, as written.
async fn identify_missing_fields(ops: &Ops, phase: Phase) -> Result<(), StepError> {
    let sql = "SELECT
    COUNT(*) as total_tracks,
    SUM(CASE WHEN spotify_id IS NULL THEN 1 ELSE 0 END) as missing_spotify_id,
    SUM(CASE WHEN isrc IS NULL THEN 1 ELSE 0 END) as missing_isrc,
    SUM(CASE WHEN bpm IS NULL THEN 1 ELSE 0 END) as missing_bpm,
    SUM(CASE WHEN key IS NULL THEN 1 ELSE 0 END) as missing_key
FROM tracks
WHERE created_at > NOW() - INTERVAL '24 hours';";
    ops.act(
        phase,
        "Identify missing fields",
        ops.psql(sql),
        sqlx::query_as::<_, (i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>)>(sql)
            .fetch_one(&ops.db),
        |(total, spotify, isrc, bpm, key)| {
            let n = |v: &Option<i64>| v.unwrap_or(0);
            format!(
                "{total} tracks: spotify_id {} missing, isrc {}, bpm {}, key {}",
                n(spotify),
                n(isrc),
                n(bpm),
                n(key)
            )
        },
    )
    .await?;
    Ok(())
}

/// Resolution A step 2 as the text writes it: the tracks without a Spotify ID. They
/// are the tracks Spotify does not know, which no re-enrichment fills; the query is
/// run for the record, and its tracks are not re-enriched.
async fn unknown_to_spotify(ops: &Ops, phase: Phase) -> Result<(), StepError> {
    let sql = "SELECT track_id, artist_name, track_name
FROM tracks
WHERE spotify_id IS NULL
  AND created_at > NOW() - INTERVAL '24 hours'
LIMIT 100;";
    ops.act(
        phase,
        "Re-enrich tracks with missing critical fields: select them (as written)",
        ops.psql(sql),
        sqlx::query(sql).fetch_all(&ops.db),
        |rows| {
            format!(
                "{} tracks without a Spotify ID: tracks Spotify does not know, low every \
                 day; not what this incident left out",
                rows.len()
            )
        },
    )
    .await?;
    Ok(())
}

/// What one pass over the incomplete tracks did.
#[derive(Clone, Debug, Default)]
struct PassOutcome {
    batches: usize,
    reenriched: usize,
    failed: usize,
    /// Re-enriched tracks that still lack one of the fields.
    still_incomplete: usize,
    /// The first few of them, to sample while waiting for the provider.
    incomplete_sample: Vec<i64>,
}

impl PassOutcome {
    fn add(&mut self, answer: &Reenriched, fields: &[&str]) {
        self.batches += 1;
        self.reenriched += answer.reenriched;
        self.failed += answer.failed;
        for track in answer.tracks.iter().filter(|t| lacks(t, fields)) {
            self.still_incomplete += 1;
            if self.incomplete_sample.len() < SAMPLE {
                self.incomplete_sample.push(track.track_id);
            }
        }
    }

    /// At most [`STILL_MISSING_TOLERATED`] of the tracks came back incomplete.
    fn is_complete(&self) -> bool {
        self.still_incomplete as f64 <= self.reenriched as f64 * STILL_MISSING_TOLERATED
    }

    fn describe(&self) -> String {
        format!(
            "{} batches: {} tracks re-enriched, {} still incomplete, {} failed",
            self.batches, self.reenriched, self.still_incomplete, self.failed
        )
    }
}

/// One pass: the incomplete tracks of the last day a provider knows, in batches of
/// [`BATCH`] by ascending id, each sent to `POST /enrich/batch`.
async fn reenrichment_pass(
    ops: &Ops,
    fields: &[&'static str],
    pass: usize,
) -> Result<PassOutcome, StepError> {
    let phase = Phase::Resolve;
    let lacking = fields
        .iter()
        .map(|f| format!("{f} IS NULL"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let sql = format!(
        "SELECT track_id FROM tracks
WHERE spotify_id IS NOT NULL
  AND enrichment_status = 'enriched'
  AND ({lacking})
  AND created_at > NOW() - INTERVAL '24 hours'
  AND track_id > $1
ORDER BY track_id
LIMIT {BATCH};"
    );
    let mut outcome = PassOutcome::default();
    let mut after = 0_i64;
    loop {
        if outcome.batches == MAX_BATCHES {
            return Err(StepError::Escalate {
                step: "Re-enrich tracks with missing critical fields".into(),
                reason: format!(
                    "more than {} incomplete tracks in one day: too many to re-enrich \
                     in batches without a plan",
                    MAX_BATCHES as i64 * BATCH
                ),
            });
        }
        // The SQL is built from whitelisted column names only (`FIELDS`).
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(after)
            .fetch_all(&ops.db)
            .await
            .step("Select the next tracks to re-enrich")?;
        let Some(&last) = ids.last() else {
            break;
        };
        let body = format!("{{\"track_ids\": [{} tracks from #{}]}}", ids.len(), ids[0]);
        let answer = ops
            .act(
                phase,
                &format!("Re-enrich pass {pass}, batch {}", outcome.batches + 1),
                format!(
                    "{}\n{}",
                    ops.psql(&sql.replace("$1", &after.to_string())),
                    ops.enrichment
                        .0
                        .curl(reqwest::Method::POST, "/enrich/batch", Some(&body))
                ),
                ops.enrichment.reenrich(&ids),
                |r| {
                    format!(
                        "{} re-enriched, {} failed, {} skipped",
                        r.reenriched, r.failed, r.skipped
                    )
                },
            )
            .await?;
        outcome.add(&answer, fields);
        after = last;
    }
    Ok(outcome)
}

/// Scenario B: group the validation errors, purge only the values no fix can repair
/// (after approval), and escalate the validation fix with the evidence.
async fn purge_and_escalate(ops: &Ops, tally: &Tally) -> Result<(), StepError> {
    let phase = Phase::Resolve;
    identify_validation_errors(ops, phase).await?;
    let samples = sample_incorrect_values(ops, phase).await?;
    let purged = purge_unrepairable(ops, phase).await?;
    let rules = tally
        .incorrect_rules
        .iter()
        .map(|(rule, n)| format!("{rule} on {n} tracks"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(StepError::Escalate {
        step: "Fix validation logic (requires code change)".into(),
        reason: format!(
            "stored values fail validation: {rules}; e.g. {samples}. Purged {purged} \
             (no fix can tell their true value); Spotify IDs given as URIs and ISRCs in \
             display form are kept: the validation fix can normalise them"
        ),
    })
}

/// Resolution B step 1, as written.
async fn identify_validation_errors(ops: &Ops, phase: Phase) -> Result<(), StepError> {
    let sql = "SELECT validation_errors::text, COUNT(*)
FROM data_quality_scores
WHERE validation_errors IS NOT NULL
  AND created_at > NOW() - INTERVAL '24 hours'
GROUP BY validation_errors
ORDER BY COUNT(*) DESC;";
    ops.act(
        phase,
        "Identify validation errors",
        ops.psql(sql),
        sqlx::query_as::<_, (Option<String>, i64)>(sql).fetch_all(&ops.db),
        |rows: &Vec<(Option<String>, i64)>| {
            describe_rows(
                rows.iter()
                    .take(5)
                    .map(|(e, n)| format!("{} {n}", e.as_deref().unwrap_or("NULL"))),
            )
        },
    )
    .await?;
    Ok(())
}

/// The values behind the rules, for the escalation to show.
async fn sample_incorrect_values(ops: &Ops, phase: Phase) -> Result<String, StepError> {
    let sql = "SELECT track_id, spotify_id, isrc, bpm
FROM tracks
WHERE (bpm NOT BETWEEN 60 AND 200 OR isrc !~ '^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$'
       OR spotify_id !~ '^[0-9A-Za-z]{22}$')
  AND created_at > NOW() - INTERVAL '24 hours'
ORDER BY track_id DESC
LIMIT 5;";
    /// track_id, spotify_id, isrc, bpm.
    type Row = (i64, Option<String>, Option<String>, Option<f64>);
    let rows: Vec<Row> = ops
        .act(
            phase,
            "Sample the values that fail validation",
            ops.psql(sql),
            sqlx::query_as(sql).fetch_all(&ops.db),
            |rows| format!("{} shown", rows.len()),
        )
        .await?;
    Ok(describe_rows(rows.iter().map(
        |(id, spotify_id, isrc, bpm)| {
            format!(
                "#{id} spotify_id {} isrc {} bpm {}",
                spotify_id.as_deref().unwrap_or("NULL"),
                isrc.as_deref().unwrap_or("NULL"),
                bpm.map_or("NULL".to_owned(), |b| b.to_string())
            )
        },
    )))
}

/// Resolution B step 3, "Purge bad data if necessary (Get approval first - data
/// loss)": only values out of their plausible range, which no fix can repair (a
/// double-time tempo may as well be a half-time one). Tracks and their other fields
/// stay; an ID given as a URI and an ISRC in display form are the validation fix's to
/// normalise.
async fn purge_unrepairable(ops: &Ops, phase: Phase) -> Result<String, StepError> {
    let sql = "UPDATE tracks
SET bpm = CASE WHEN bpm NOT BETWEEN 60 AND 200 THEN NULL ELSE bpm END,
    duration_ms = CASE WHEN duration_ms NOT BETWEEN 30000 AND 1800000 THEN NULL ELSE duration_ms END
WHERE (bpm NOT BETWEEN 60 AND 200 OR duration_ms NOT BETWEEN 30000 AND 1800000)
  AND created_at > NOW() - INTERVAL '24 hours';";
    let purged = ops
        .destructive(
            phase,
            "Purge bad data",
            ops.psql(sql),
            "data loss: implausible BPM and duration values of the last day are removed \
             (set to NULL); the tracks stay",
            sqlx::query(sql).execute(&ops.db),
            |done| format!("{} tracks lost an implausible value", done.rows_affected()),
        )
        .await?;
    Ok(format!(
        "the implausible BPM and duration values of {} tracks",
        purged.rows_affected()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(errors: &[&str], tracks: i64) -> IssueGroup {
        IssueGroup {
            errors: errors.iter().map(|e| (*e).to_owned()).collect(),
            tracks,
        }
    }

    const UNKNOWN: [&str; 4] = [
        "missing_spotify_id",
        "missing_isrc",
        "missing_bpm",
        "missing_key",
    ];

    #[test]
    fn tracks_spotify_does_not_know_are_set_aside_even_when_they_lead() {
        // The steady population of tracks Spotify does not know leads the listing;
        // the incident is the smaller group behind it.
        let groups = [
            group(&UNKNOWN, 900),
            group(&["invalid_isrc", "bpm_out_of_range"], 600),
            group(&["missing_genre", "missing_isrc"], 20),
        ];
        let tally = Tally::of(&groups);
        assert_eq!(tally.unknown_to_spotify, 900);
        assert_eq!(tally.incorrect, 600);
        assert_eq!(tally.missing, 20);
        assert_eq!(choose(&tally), Ok(QualityScenario::IncorrectData));
        assert_eq!(
            tally.incorrect_rules,
            vec![
                ("bpm_out_of_range".into(), 600),
                ("invalid_isrc".into(), 600)
            ]
        );
    }

    #[test]
    fn fields_left_out_by_a_provider_that_knows_the_track_are_scenario_a() {
        let groups = [
            group(&UNKNOWN, 900),
            group(&["missing_isrc", "missing_bpm", "missing_key"], 700),
            // MusicBrainz does not know some of them either: not the incident's field.
            group(
                &[
                    "missing_isrc",
                    "missing_bpm",
                    "missing_key",
                    "missing_musicbrainz_id",
                ],
                40,
            ),
            group(&["missing_genre"], 30),
            group(&["bpm_out_of_range"], 3),
        ];
        let tally = Tally::of(&groups);
        assert_eq!(choose(&tally), Ok(QualityScenario::MissingRequiredFields));
        assert_eq!(tally.missing_fields(), vec!["bpm", "isrc", "key"]);
    }

    #[test]
    fn only_tracks_spotify_does_not_know_leave_nothing_to_do() {
        let tally = Tally::of(&[group(&UNKNOWN, 900), group(&[], 4)]);
        let reason = choose(&tally).unwrap_err();
        assert!(reason.contains("Spotify does not know (900)"), "{reason}");
    }

    #[test]
    fn rule_names_map_to_columns_only_through_the_whitelist() {
        assert_eq!(missing_field("missing_isrc"), Some("isrc"));
        assert_eq!(missing_field("missing_isrc; DROP TABLE tracks"), None);
        assert!(is_incorrect("spotify_payload_invalid"));
        assert!(is_incorrect("duration_out_of_range"));
        assert!(!is_incorrect("missing_bpm"));
    }
}
