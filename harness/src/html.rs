//! HTML reports: one self-contained file (inline style, inline SVG charts, no script,
//! nothing fetched), for a game day or for a set of drills.
//!
//! A game day's page says what was injected and when, the times against the typical
//! resolution and the automation, a chart per signal with the fault, the page and each
//! action marked, the responder's actions beside the runbook's steps, and what the
//! response cost (ledger, new alerts, configuration). A drills page starts with a
//! summary table and gives each drill its times, failures, charts and step log.

use std::fmt::Write as _;

use runbooks::ops::timeline::format_modeled;

use crate::charts::{Mark, MarkKind, signal_chart};
use crate::gameday::GameDayReport;
use crate::report::{DrillReport, FaultRecord};
use crate::signals::{History, Signal};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.ok{color:#137333}.bad{color:#b3261e}.muted{color:#777}\
figure{margin:1em 0}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

fn minutes(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |m| format!("{m:.1} min"))
}

/// Every signal that was read, charted with `marks`; the one `alert` watches first.
fn charts(out: &mut String, history: &History, marks: &[Mark], alert: &str) {
    let mut drawn = 0;
    let mut order = Signal::ALL.to_vec();
    order.sort_by_key(|s| s.alert() != Some(alert));
    for signal in order {
        if let Some(svg) = signal_chart(history, signal, marks) {
            let _ = writeln!(
                out,
                "<figure class=\"chart\" data-signal=\"{}\">{svg}</figure>",
                serde_json::to_value(signal)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            );
            drawn += 1;
        }
    }
    if drawn == 0 {
        out.push_str("<p class=\"muted\">No signal was sampled.</p>\n");
    }
}

/// The report of a game day.
pub fn gameday_page(report: &GameDayReport) -> String {
    let mut out = String::new();
    let resolved = matches!(report.outcome, crate::gameday::Outcome::Resolved);
    let _ = writeln!(
        out,
        "<h1>Game day: {}</h1>\n<p class=\"{}\"><strong>{}</strong></p>",
        escape(&report.runbook_title),
        if resolved { "ok" } else { "bad" },
        escape(&report.outcome.to_string())
    );
    let _ = writeln!(
        out,
        "<p>Scenario{}: <strong>{}</strong> — {} (seed {}, scale {}). Alert {} {} ({}).</p>",
        if report.blind {
            " (drawn blind, revealed here)"
        } else {
            ""
        },
        escape(&report.scenario),
        escape(&report.scenario_title),
        report.seed,
        report.scale,
        escape(&report.severity),
        escape(&report.alert),
        escape(&report.threshold)
    );

    out.push_str("<h2>What was injected</h2>\n<table><tr><th>modeled time</th><th>fault</th><th>ended</th></tr>\n");
    for fault in &report.faults {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            format_modeled(fault.struck_at),
            escape(&fault.fault),
            fault
                .healed_at
                .map_or_else(|| "at the end".to_owned(), format_modeled)
        );
    }
    out.push_str("</table>\n");

    out.push_str("<h2>Times</h2>\n<table><tr><th></th><th>modeled</th><th>wall</th></tr>\n");
    let wall = |s: Option<f64>| s.map_or_else(|| "—".to_owned(), |s| format!("{s:.0} s"));
    let _ = writeln!(
        out,
        "<tr><td>time to detect (fault → page)</td><td>{}</td><td></td></tr>\
         <tr><td>time to acknowledge</td><td>{}</td><td>{}</td></tr>\
         <tr><td>time to resolve (page → resolved)</td><td>{}</td><td>{}</td></tr>\
         <tr><td>typical resolution (runbook)</td><td>{:.0} min</td><td></td></tr>\
         <tr><td>scenario budget</td><td>{:.1} min</td><td></td></tr>",
        minutes(report.time_to_detect_minutes),
        minutes(report.time_to_acknowledge_minutes),
        wall(report.time_to_acknowledge_wall_seconds),
        minutes(report.time_to_resolve_minutes),
        wall(report.time_to_resolve_wall_seconds),
        report.typical_resolution_minutes,
        report.budget_minutes
    );
    if let Some(auto) = &report.automation {
        let _ = writeln!(
            out,
            "<tr><td>the runbook's automation, same scenario and seed</td><td>{} to resolve ({} runbook time){}</td><td>{:.0} s</td></tr>",
            minutes(auto.time_to_resolve_minutes),
            minutes(auto.runbook_time_minutes),
            if auto.passed { "" } else { ", did not resolve" },
            auto.wall_seconds
        );
    }
    out.push_str("</table>\n");

    let mut marks = fault_marks(&report.faults);
    if let Some(page) = &report.page {
        marks.push(Mark {
            minute: page.minute,
            kind: MarkKind::Page,
            label: "page".into(),
        });
        if let Some(ttr) = report.time_to_resolve_minutes {
            marks.push(Mark {
                minute: page.minute + ttr,
                kind: MarkKind::Resolved,
                label: "resolved".into(),
            });
        }
    }
    for (i, action) in report.actions.iter().enumerate() {
        marks.push(Mark {
            minute: action.minute,
            kind: MarkKind::Action,
            label: format!("{}", i + 1),
        });
    }
    out.push_str("<h2>Signals</h2>\n<p class=\"muted\">Red: a fault struck; orange: the page; blue numbers: the responder's actions (below); green: resolved.</p>\n");
    charts(&mut out, &report.signals, &marks, &report.alert);

    out.push_str("<h2>The responder's actions</h2>\n");
    if report.actions.is_empty() {
        out.push_str("<p class=\"bad\">The stack saw no action of the responder.</p>\n");
    } else {
        out.push_str("<table class=\"actions\"><tr><th>#</th><th>modeled</th><th>wall</th><th>action</th><th>runbook</th></tr>\n");
        for (i, action) in report.actions.iter().enumerate() {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{:.1} min</td><td>{:.0} s</td><td><code>{}</code></td><td>{}</td></tr>",
                i + 1,
                action.minute,
                action.wall_seconds,
                escape(&action.what),
                escape(&action.judged)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("<h2>The runbook's steps</h2>\n<table class=\"steps\"><tr><th>line</th><th>part</th><th>command</th><th>done</th></tr>\n");
    for step in &report.steps {
        let class = match step.status.as_str() {
            "done" | "amended" => "ok",
            "skipped" => "bad",
            _ => "muted",
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"{class}\">{}{}</td></tr>",
            step.line,
            escape(&step.part),
            escape(&step.text),
            escape(&step.status),
            step.done_at_minute
                .map_or_else(String::new, |m| format!(" at {m:.1} min"))
        );
    }
    out.push_str("</table>\n");

    out.push_str("<h2>What the response cost</h2>\n<ul>\n");
    if let Some(ledger) = &report.ledger {
        let _ = writeln!(out, "<li>ledger: {}</li>", escape(&ledger.summary()));
    }
    for problem in &report.ledger_problems {
        let _ = writeln!(out, "<li class=\"bad\">{}</li>", escape(problem));
    }
    for alert in &report.new_alerts {
        let _ = writeln!(
            out,
            "<li class=\"bad\">new alert after the page: {}</li>",
            escape(alert)
        );
    }
    for row in &report.config_left_changed {
        let _ = writeln!(out, "<li>configuration left changed: {}</li>", escape(row));
    }
    if report.ledger_problems.is_empty()
        && report.new_alerts.is_empty()
        && report.config_left_changed.is_empty()
    {
        out.push_str("<li class=\"ok\">nothing lost, no new alert, configuration as it was</li>\n");
    }
    out.push_str("</ul>\n");
    if !report.verification.is_empty() {
        out.push_str("<h2>The runbook's verification</h2>\n<ul>\n");
        for outcome in &report.verification {
            let _ = writeln!(
                out,
                "<li class=\"{}\">{}</li>",
                if outcome.passed { "ok" } else { "bad" },
                escape(&outcome.to_string())
            );
        }
        out.push_str("</ul>\n");
    }
    page(
        &format!("Game day: {} — runbook-drill", report.scenario),
        &out,
    )
}

/// One page for many drills: a summary table, then each drill.
pub fn drills_page(reports: &[DrillReport]) -> String {
    let mut out = String::new();
    let passed = reports.iter().filter(|r| r.passed()).count();
    let _ = writeln!(
        out,
        "<h1>Drills</h1>\n<p>{passed} of {} as expected.</p>\n<table class=\"summary\"><tr><th>scenario</th><th>run</th><th>verdict</th>\
         <th>detect</th><th>resolve</th><th>runbook time</th><th>budget</th><th>wall</th></tr>",
        reports.len()
    );
    let opt = |d: Option<std::time::Duration>| d.map_or_else(|| "—".to_owned(), format_modeled);
    for (i, report) in reports.iter().enumerate() {
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#drill-{i}\">{}</a></td><td>{:?}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0} s</td></tr>",
            escape(&report.scenario),
            report.response,
            if report.passed() { "ok" } else { "bad" },
            if report.passed() {
                "as expected"
            } else {
                "FAILED"
            },
            opt(report.time_to_detect),
            opt(report.time_to_resolve),
            opt(report.runbook_time),
            format_modeled(report.budget),
            report.wall_seconds
        );
    }
    out.push_str("</table>\n");
    for (i, report) in reports.iter().enumerate() {
        let _ = writeln!(
            out,
            "<h2 id=\"drill-{i}\">{} — {}</h2>",
            escape(&report.scenario),
            escape(&report.title)
        );
        if !report.failures.is_empty() {
            out.push_str("<ul>\n");
            for failure in &report.failures {
                let _ = writeln!(out, "<li class=\"bad\">{}</li>", escape(failure));
            }
            out.push_str("</ul>\n");
        }
        if let Some(history) = &report.signals {
            let mut marks = fault_marks(&report.faults);
            if let (Some(onset), Some(ttd)) = (report.onset, report.time_to_detect) {
                let fired = (onset + ttd).as_secs_f64() / 60.0;
                marks.push(Mark {
                    minute: fired,
                    kind: MarkKind::Page,
                    label: "alert".into(),
                });
                if let Some(ttr) = report.time_to_resolve {
                    marks.push(Mark {
                        minute: fired + ttr.as_secs_f64() / 60.0,
                        kind: MarkKind::Resolved,
                        label: "resolved".into(),
                    });
                }
            }
            for entry in &report.timeline {
                if matches!(entry.phase, runbooks::ops::Phase::Resolve) && entry.command.is_some() {
                    marks.push(Mark {
                        minute: entry.at.as_secs_f64() / 60.0,
                        kind: MarkKind::Action,
                        label: "·".into(),
                    });
                }
            }
            charts(&mut out, history, &marks, &report.alert);
        }
        let _ = writeln!(out, "<pre>{}</pre>", escape(&report.render()));
    }
    page("Drills — runbook-drill", &out)
}

/// A chart mark where each fault struck.
fn fault_marks(faults: &[FaultRecord]) -> Vec<Mark> {
    faults
        .iter()
        .map(|f| Mark {
            minute: f.struck_at.as_secs_f64() / 60.0,
            kind: MarkKind::Fault,
            label: "fault".into(),
        })
        .collect()
}
