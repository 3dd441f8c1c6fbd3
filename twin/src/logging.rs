//! Logs of a twin service: plain text on standard output, stamped with modeled time.
//!
//! The harness sends each service's output to a file under the stack's data dir (local
//! backend) or keeps it as the container's log (docker), so
//! `logs --tail=100 | grep -i timeout` works. Lines carry the modeled instant, which is
//! what a runbook reader compares with alert times. With [`wire::env::LOG_DIR`] set,
//! every line also goes to a log file there ([`crate::log_file`]), so that logs can
//! fill a disk as real ones do.

use std::io::{self, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use wire::{Clock, Service};

use crate::log_file;

struct ModeledTime(Clock);

impl FormatTime for ModeledTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", self.0.now().format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

/// Standard output, and the log file when there is one.
struct Tee;

impl<'a> MakeWriter<'a> for Tee {
    type Writer = TeeWriter;

    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter
    }
}

/// The formatter writes each event whole, in one `write`: one line.
struct TeeWriter;

impl Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = io::stdout().write_all(buf);
        // Whatever became of stdout: a full disk must not silence stdout, nor the reverse.
        log_file::append(buf);
        out.map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

/// Installs the subscriber; `RUST_LOG` overrides the default `info` level.
pub fn init(service: Service, clock: Clock) {
    let log_dir = std::env::var_os(wire::env::LOG_DIR).filter(|dir| !dir.is_empty());
    if let Some(dir) = &log_dir {
        let var = |name: &str| std::env::var(name).ok();
        let rotation = log_file::Rotation::parse(
            var(wire::env::LOG_MAX_SIZE).as_deref(),
            var(wire::env::LOG_MAX_FILE).as_deref(),
        )
        .unwrap_or_else(|reason| {
            // Logging is not set up yet: say it on stderr, and keep the file unrotated
            // rather than refuse to start over a log option.
            eprintln!("{service}: {reason}; the log file will not rotate");
            None
        });
        log_file::init(dir.as_ref(), service, rotation);
    }
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(ModeledTime(clock))
        .with_ansi(false)
        .with_target(false)
        .with_writer(Tee)
        .try_init();
    match log_dir {
        Some(dir) => {
            tracing::debug!(service = %service, dir = ?dir, "logging to stdout and a file")
        }
        None => tracing::debug!(service = %service, "logging to stdout"),
    }
}
