//! PostgreSQL on the stack's modeled clock.
//!
//! The runbooks read time inside PostgreSQL: `NOW() - INTERVAL '1 hour'`,
//! `NOW() - query_start > INTERVAL '10 minutes'`, `pg_sleep`. Every other part of a
//! stack runs on one [`Clock`] that coincides with wall time at its epoch and then runs
//! `scale` times faster, so PostgreSQL must too, or the runbooks' SQL means something
//! else at every scale but 1. libfaketime (Debian's `libfaketime`), preloaded into the
//! postmaster, does that: with `FAKETIME_DONT_RESET` every backend shares the
//! postmaster's start, and the spec is read from a file (`FAKETIME_TIMESTAMP_FILE`),
//! re-read every second, so an offset can still be corrected once the server runs.
//!
//! libfaketime's clock is `T0 + X + (t - T0) * scale` for a process that started at
//! real time `T0` with spec `+X x<scale>`; ours is `E + (t - E) * scale` for the
//! epoch `E`. They agree when `X = (T0 - E) * (scale - 1)`. `T0` is only known
//! roughly (it is when the library initialised in the postmaster), so the spec is
//! written for "now" just before each start ([`PgClock::prepare_start`]), and once the
//! server answers, its clock is compared with ours and the offset corrected if the two
//! differ by more than [`TOLERANCE`] ([`PgClock::align`]).
//!
//! PostgreSQL's own timers speed up with its clock (a 5-minute checkpoint would come
//! every 5 real seconds at scale 60), so [`PgClock::settings`] stretches them back to
//! their real-time defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use wire::Clock;

use crate::StackError;
use crate::wait::{self, Check};

/// Where Debian's libfaketime keeps its multi-threaded library.
const LIBRARY_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/aarch64-linux-gnu/faketime",
    "/usr/lib/faketime",
];
const LIBRARY_NAME: &str = "libfaketimeMT.so.1";
/// Overrides the library's location.
pub const LIBRARY_ENV: &str = "DRILL_FAKETIME_LIB";

/// How far (modeled) PostgreSQL's clock may be from the stack's before it is corrected:
/// the runbooks' SQL compares times in minutes, and a reading through a connection is
/// itself uncertain by a few real milliseconds (a few hundred modeled at scale 60).
pub const TOLERANCE: Duration = Duration::from_millis(500);

/// How long a corrected spec may take to be read back: libfaketime re-reads its file
/// once its one-second cache has expired.
const CORRECTION_WAIT: Duration = Duration::from_secs(4);

/// PostgreSQL's clock for one stack: the spec file it reads and the clock it follows.
#[derive(Clone, Debug)]
pub struct PgClock {
    clock: Clock,
    /// On the host: the spec file the stack writes.
    spec_file: PathBuf,
    /// On the host: the libfaketime library preloaded into PostgreSQL.
    library: PathBuf,
}

impl PgClock {
    /// PostgreSQL's clock for a stack running on `clock`, with its spec in `dir`;
    /// `None` at scale 1, where modeled time is wall time and nothing is faked.
    pub fn new(clock: Clock, dir: &Path) -> Result<Option<Self>, StackError> {
        if clock.scale() == 1.0 {
            return Ok(None);
        }
        Ok(Some(Self {
            clock,
            spec_file: dir.join("faketime.rc"),
            library: locate_library(clock.scale())?,
        }))
    }

    /// Modeled seconds per real second.
    pub fn scale(&self) -> f64 {
        self.clock.scale()
    }

    /// The same clock, preloading the library found at `library` instead.
    pub fn with_library(mut self, library: PathBuf) -> Self {
        self.library = library;
        self
    }

    pub fn library(&self) -> &Path {
        &self.library
    }

    pub fn spec_file(&self) -> &Path {
        &self.spec_file
    }

    /// The environment of a postmaster that reads its spec at `spec_file` and
    /// preloads the library from `library` (paths as the server sees them: a
    /// container sees bind mounts, a process the host's own paths).
    pub fn env(spec_file: &Path, library: &Path) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), library.display().to_string()),
            (
                "FAKETIME_TIMESTAMP_FILE".into(),
                spec_file.display().to_string(),
            ),
            // Backends keep the postmaster's start instead of restarting the clock.
            ("FAKETIME_DONT_RESET".into(), "1".into()),
            // The spec is re-read every second, so a correction takes hold quickly.
            ("FAKETIME_CACHE_DURATION".into(), "1".into()),
        ]
    }

    /// Writes the spec for a postmaster that starts now.
    pub fn prepare_start(&self) -> Result<(), StackError> {
        let elapsed = self.clock.to_real(self.clock.elapsed()).as_secs_f64();
        self.write_offset(elapsed * (self.clock.scale() - 1.0))
    }

    /// Compares PostgreSQL's clock with the stack's and corrects it when they differ
    /// by more than [`TOLERANCE`]; returns the difference that remains (PostgreSQL
    /// minus the stack, modeled seconds).
    pub async fn align(&self, db: &PgPool) -> Result<f64, StackError> {
        let first = skew(db, &self.clock).await?;
        if first.abs() <= TOLERANCE.as_secs_f64() {
            return Ok(first);
        }
        let offset = self.read_offset()? - first;
        self.write_offset(offset)?;
        wait::until(
            "PostgreSQL's clock to take the corrected offset",
            CORRECTION_WAIT,
            Duration::from_millis(100),
            None,
            || async {
                let skew = skew(db, &self.clock).await?;
                Ok(if skew.abs() <= TOLERANCE.as_secs_f64() {
                    Check::Ready(skew)
                } else {
                    Check::Pending(format!(
                        "PostgreSQL is {skew:+.1} s (modeled) off the stack's clock"
                    ))
                })
            },
        )
        .await
    }

    /// Settings that keep PostgreSQL's own timers at their real-time defaults.
    pub fn settings(scale: f64) -> Vec<String> {
        let stretched = |default_ms: f64, max_ms: f64| (default_ms * scale).min(max_ms).round();
        vec![
            format!(
                "checkpoint_timeout={}ms",
                stretched(300_000.0, 86_400_000.0)
            ),
            format!(
                "autovacuum_naptime={}ms",
                stretched(60_000.0, 2_147_483_000.0)
            ),
            format!("bgwriter_delay={}ms", stretched(200.0, 10_000.0)),
            format!("wal_writer_delay={}ms", stretched(200.0, 10_000.0)),
            // A client gets its real minute to authenticate (the maximum is 10 minutes).
            format!(
                "authentication_timeout={}ms",
                stretched(60_000.0, 600_000.0)
            ),
            format!("deadlock_timeout={}ms", stretched(1_000.0, 2_147_483_000.0)),
        ]
    }

    fn write_offset(&self, seconds: f64) -> Result<(), StackError> {
        // libfaketime reads the spec in the C locale: a point, not a comma.
        let spec = format!("+{seconds:.3} x{}\n", self.clock.scale());
        std::fs::write(&self.spec_file, spec).map_err(StackError::io(format!(
            "writing PostgreSQL's clock to {}",
            self.spec_file.display()
        )))
    }

    fn read_offset(&self) -> Result<f64, StackError> {
        let text = std::fs::read_to_string(&self.spec_file).map_err(StackError::io(format!(
            "reading PostgreSQL's clock from {}",
            self.spec_file.display()
        )))?;
        parse_offset(&text).ok_or_else(|| {
            StackError::InvalidOptions(format!(
                "{} holds '{}', not a libfaketime offset",
                self.spec_file.display(),
                text.trim()
            ))
        })
    }
}

/// The `X` of a `+X x<scale>` spec.
fn parse_offset(spec: &str) -> Option<f64> {
    spec.split_whitespace().next()?.parse().ok()
}

/// PostgreSQL's clock minus the stack's, in modeled seconds: of a few readings, each
/// between two readings of ours, the one that took least time (a busy machine delays
/// some round trips, and a millisecond is a modeled tenth of a second at scale 100).
async fn skew(db: &PgPool, clock: &Clock) -> Result<f64, StackError> {
    let mut best: Option<(chrono::TimeDelta, f64)> = None;
    for _ in 0..READINGS {
        let before = clock.now();
        let theirs: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(db)
            .await
            .map_err(StackError::db("reading PostgreSQL's clock"))?;
        let after = clock.now();
        let ours = before + (after - before) / 2;
        let reading = (theirs - ours).num_milliseconds() as f64 / 1000.0;
        if best.is_none_or(|(width, _)| after - before < width) {
            best = Some((after - before, reading));
        }
    }
    Ok(best.map(|(_, reading)| reading).unwrap_or_default())
}

/// Readings of [`skew`].
const READINGS: usize = 5;

fn locate_library(scale: f64) -> Result<PathBuf, StackError> {
    if let Some(path) = std::env::var_os(LIBRARY_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(missing_library(
                scale,
                &format!("at ${LIBRARY_ENV} ({})", path.display()),
            ))
        };
    }
    LIBRARY_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(LIBRARY_NAME))
        .find(|path| path.is_file())
        .ok_or_else(|| missing_library(scale, &format!("in {}", LIBRARY_DIRS.join(", "))))
}

fn missing_library(scale: f64, searched: &str) -> StackError {
    StackError::MissingBinary {
        program: format!(
            "{LIBRARY_NAME} (PostgreSQL runs on the modeled clock, at scale {scale}, through libfaketime)"
        ),
        searched: searched.into(),
        install: "apt-get install libfaketime".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_is_written_for_a_start_now_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let started = Clock::new(chrono::Utc::now().timestamp_millis() - 2_000, 60.0).unwrap();
        let clock = PgClock {
            clock: started,
            spec_file: dir.path().join("faketime.rc"),
            library: PathBuf::from("/nonexistent"),
        };
        clock.prepare_start().unwrap();
        let spec = std::fs::read_to_string(clock.spec_file()).unwrap();
        assert!(spec.ends_with(" x60\n"), "{spec}");
        // Two real seconds after the epoch, a process starting now is 2 × 59 s behind.
        let offset = clock.read_offset().unwrap();
        assert!((117.0..125.0).contains(&offset), "{offset}");
    }

    #[test]
    fn nothing_is_faked_at_scale_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            PgClock::new(Clock::new(0, 1.0).unwrap(), dir.path())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn timers_are_stretched_back_to_real_time_within_their_limits() {
        let settings = PgClock::settings(60.0);
        assert!(settings.contains(&"checkpoint_timeout=18000000ms".to_owned()));
        assert!(settings.contains(&"bgwriter_delay=10000ms".to_owned()));
        assert!(settings.contains(&"authentication_timeout=600000ms".to_owned()));
        assert_eq!(PgClock::settings(1.0)[0], "checkpoint_timeout=300000ms");
    }

    #[test]
    fn a_missing_library_says_how_to_install_it() {
        let text = missing_library(60.0, "in /nowhere").to_string();
        assert!(text.contains("apt-get install libfaketime"), "{text}");
        assert!(text.contains("scale 60"), "{text}");
    }
}
