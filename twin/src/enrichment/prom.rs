//! A writer for the Prometheus text exposition format (version 0.0.4).
//!
//! The runbooks read metrics with `curl … | grep circuit_breaker_failure_count`, so
//! the text must be exactly what a Prometheus client library would print: a HELP and
//! TYPE line per family, then `name{label="value"} number`. A dependency on a full
//! metrics registry is not worth it for a handful of gauges; the gateway shares this.

use std::fmt::Write;

/// `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{label}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
        self
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// Integers without a fraction (`5`, as the runbook shows), others in shortest form.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples_are_printed_as_prometheus_expects() {
        let mut out = Exposition::new();
        out.family(
            "circuit_breaker_failure_count",
            Kind::Gauge,
            "Consecutive failures.",
        )
        .sample(
            "circuit_breaker_failure_count",
            &[("provider", "spotify")],
            5.0,
        )
        .family("error_rate", Kind::Gauge, "Share of errors.")
        .sample("error_rate", &[], 0.125);
        assert_eq!(
            out.finish(),
            "# HELP circuit_breaker_failure_count Consecutive failures.\n\
             # TYPE circuit_breaker_failure_count gauge\n\
             circuit_breaker_failure_count{provider=\"spotify\"} 5\n\
             # HELP error_rate Share of errors.\n\
             # TYPE error_rate gauge\n\
             error_rate 0.125\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::new();
        out.sample("m", &[("a", "x\"y\\z"), ("b", "2")], f64::NAN);
        assert_eq!(out.finish(), "m{a=\"x\\\"y\\\\z\",b=\"2\"} NaN\n");
    }
}
