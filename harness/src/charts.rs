//! Charts of the signals over modeled time, drawn by plotters as SVG.
//!
//! One chart per signal, with the alert's threshold where a rule watches the signal
//! and vertical marks where something happened: a fault struck, the page went out,
//! the responder (or the runbook) acted, the incident resolved. The HTML reports
//! ([`crate::html`]) inline them, so a report is one file that opens offline.

use plotters::prelude::*;
use runbooks::criteria::Check;

use crate::signals::{History, Signal, Unit};

/// What a mark on a chart stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    Fault,
    Page,
    Action,
    Resolved,
}

impl MarkKind {
    fn color(self) -> RGBColor {
        match self {
            MarkKind::Fault => RGBColor(200, 30, 30),
            MarkKind::Page => RGBColor(230, 140, 0),
            MarkKind::Action => RGBColor(90, 90, 200),
            MarkKind::Resolved => RGBColor(20, 150, 60),
        }
    }
}

/// A moment to mark on every chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub minute: f64,
    pub kind: MarkKind,
    pub label: String,
}

const SIZE: (u32, u32) = (760, 230);

/// The SVG of one signal's chart, or `None` when it was never read.
pub fn signal_chart(history: &History, signal: Signal, marks: &[Mark]) -> Option<String> {
    let series = history.series(signal);
    if series.is_empty() {
        return None;
    }
    let x_end = series
        .iter()
        .map(|(m, _)| *m)
        .chain(marks.iter().map(|m| m.minute))
        .fold(1.0_f64, f64::max)
        // Room for the last mark's label.
        * 1.04;
    let threshold = threshold(signal);
    let highest = series
        .iter()
        .map(|(_, v)| *v)
        .chain(threshold)
        .fold(0.0_f64, f64::max);
    let y_end = match signal.unit() {
        Unit::Share => highest.max(1.0),
        _ => (highest * 1.15).max(1.0),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(signal.label(), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x_end, 0.0..y_end)
            .ok()?;
        chart
            .configure_mesh()
            .x_desc("modeled minutes")
            .y_label_formatter(&|v| signal.format(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .ok()?;
        if let Some(threshold) = threshold {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, threshold), (x_end, threshold)],
                    RGBColor(200, 30, 30).stroke_width(1),
                ))
                .ok()?
                .label("alert threshold")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RGBColor(200, 30, 30)));
        }
        for mark in marks {
            let color = mark.kind.color();
            chart
                .draw_series(std::iter::once(PathElement::new(
                    [(mark.minute, 0.0), (mark.minute, y_end)],
                    color.stroke_width(1),
                )))
                .ok()?;
            chart
                .draw_series(std::iter::once(Text::new(
                    mark.label.clone(),
                    (mark.minute, y_end * 0.97),
                    ("sans-serif", 11).into_font().color(&color),
                )))
                .ok()?;
        }
        chart
            .draw_series(LineSeries::new(series, BLUE.stroke_width(2)))
            .ok()?
            .label(signal.label())
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
        chart
            .configure_series_labels()
            .border_style(RGBColor(200, 200, 200))
            .background_style(WHITE.mix(0.8))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// The threshold of the alert rule that watches `signal`, if one does.
fn threshold(signal: Signal) -> Option<f64> {
    let name = signal.alert()?;
    let rule = runbooks::alert_rules()
        .into_iter()
        .find(|r| r.name == name)?;
    match rule.condition {
        Check::Above(v) | Check::Below(v) | Check::AtMost(v) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Sample;

    #[test]
    fn a_chart_is_an_svg_with_its_title_threshold_and_marks() {
        let mut history = History::default();
        for i in 0..10 {
            let mut sample = Sample {
                minute: f64::from(i),
                ..Sample::default()
            };
            sample.values.insert(Signal::PoolUsage, f64::from(i) / 10.0);
            history.samples.push(sample);
        }
        let marks = [Mark {
            minute: 3.0,
            kind: MarkKind::Page,
            label: "page".into(),
        }];
        let svg = signal_chart(&history, Signal::PoolUsage, &marks).expect("a chart");
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        assert!(svg.contains("DB pool usage"));
        assert!(svg.contains("alert threshold"));
        assert!(svg.contains("page"), "the mark is labelled");
        assert!(signal_chart(&history, Signal::DlqDepth, &marks).is_none());
    }
}
