//! Logs of a twin service: plain text on standard output, stamped with modeled time.
//!
//! The harness sends each service's output to a file under the stack's data dir, so
//! `logs --tail=100 | grep -i timeout` works, and so logs can fill a disk as real
//! ones do. Lines carry the modeled instant, which is what a runbook reader compares
//! with alert times.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use wire::{Clock, Service};

struct ModeledTime(Clock);

impl FormatTime for ModeledTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", self.0.now().format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

/// Installs the subscriber; `RUST_LOG` overrides the default `info` level.
pub fn init(service: Service, clock: Clock) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(ModeledTime(clock))
        .with_ansi(false)
        .with_target(false)
        .try_init();
    tracing::debug!(service = %service, "logging to stdout");
}
