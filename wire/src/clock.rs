//! Modeled time: one clock, with a scale, read by the harness and every twin service.
//!
//! Runbooks wait minutes (a 60 s breaker recovery, 15-minute rate-limit windows,
//! alert `for` durations of up to two hours). A drill in CI cannot wait that long, so
//! every timer in runbook-drill reads a [`Clock`] instead of the wall clock. The clock
//! coincides with wall time at its *epoch* and then runs `scale` modeled seconds per
//! real second. Game days run at scale 1, where modeled time *is* wall time and the
//! runbook's own `NOW() - INTERVAL '24 hours'` means what it says.
//!
//! The clock crosses process boundaries as a single string (`"<epoch_unix_ms>x<scale>"`,
//! see [`Clock::to_env`]), so the harness and each child process compute the same
//! modeled instant from their own wall clocks without talking to each other.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// A modeled clock: wall time at `epoch`, running `scale` times faster afterwards.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clock {
    epoch_unix_ms: i64,
    scale: f64,
}

/// A clock description that could not be parsed or is not sensible.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClockError {
    #[error("clock scale must be a finite number ≥ 1 (modeled seconds per real second), got {0}")]
    BadScale(f64),
    #[error("clock '{0}' is not of the form '<epoch_unix_ms>x<scale>', e.g. '1764300000000x60'")]
    Malformed(String),
}

impl Clock {
    /// A clock that starts now and runs `scale` modeled seconds per real second.
    pub fn starting_now(scale: f64) -> Result<Self, ClockError> {
        Self::new(wall_now_ms(), scale)
    }

    /// Wall time, for game days: modeled time is real time.
    pub fn real_time() -> Self {
        Self {
            epoch_unix_ms: wall_now_ms(),
            scale: 1.0,
        }
    }

    pub fn new(epoch_unix_ms: i64, scale: f64) -> Result<Self, ClockError> {
        // Scales below 1 would make drills slower than the incident; we have no use for them.
        if !scale.is_finite() || scale < 1.0 {
            return Err(ClockError::BadScale(scale));
        }
        Ok(Self {
            epoch_unix_ms,
            scale,
        })
    }

    /// Modeled seconds per real second.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The modeled instant now.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed_real_ms = (wall_now_ms() - self.epoch_unix_ms) as f64;
        let modeled_ms = self.epoch_unix_ms as f64 + elapsed_real_ms * self.scale;
        DateTime::from_timestamp_millis(modeled_ms as i64).unwrap_or_default()
    }

    /// The modeled instant at a wall time (Unix milliseconds), e.g. when a request
    /// that a service stamped with its wall clock arrived.
    pub fn modeled_at(&self, unix_ms: i64) -> DateTime<Utc> {
        let elapsed_real_ms = (unix_ms - self.epoch_unix_ms) as f64;
        let modeled_ms = self.epoch_unix_ms as f64 + elapsed_real_ms * self.scale;
        DateTime::from_timestamp_millis(modeled_ms as i64).unwrap_or_default()
    }

    /// Modeled time elapsed since the clock's epoch.
    pub fn elapsed(&self) -> Duration {
        let ms = ((wall_now_ms() - self.epoch_unix_ms).max(0) as f64) * self.scale;
        Duration::from_millis(ms as u64)
    }

    /// How long a modeled duration lasts in real time.
    pub fn to_real(&self, modeled: Duration) -> Duration {
        modeled.div_f64(self.scale)
    }

    /// How much modeled time a real duration represents.
    pub fn to_modeled(&self, real: Duration) -> Duration {
        real.mul_f64(self.scale)
    }

    /// Sleeps for a modeled duration.
    pub async fn sleep(&self, modeled: Duration) {
        tokio::time::sleep(self.to_real(modeled)).await;
    }

    /// A tokio interval ticking every `modeled` period; missed ticks are skipped, not burst.
    pub fn interval(&self, modeled: Duration) -> tokio::time::Interval {
        let period = self.to_real(modeled).max(Duration::from_millis(1));
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        interval
    }

    /// The form handed to child processes in [`crate::env::CLOCK`].
    pub fn to_env(&self) -> String {
        self.to_string()
    }

    /// Reads the clock from [`crate::env::CLOCK`]; wall time when unset.
    pub fn from_env() -> Result<Self, ClockError> {
        match std::env::var(crate::env::CLOCK) {
            Ok(text) => text.parse(),
            Err(_) => Ok(Self::real_time()),
        }
    }
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.epoch_unix_ms, self.scale)
    }
}

impl FromStr for Clock {
    type Err = ClockError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || ClockError::Malformed(text.to_owned());
        let (epoch, scale) = text.split_once('x').ok_or_else(malformed)?;
        let epoch = epoch.trim().parse().map_err(|_| malformed())?;
        let scale = scale.trim().parse().map_err(|_| malformed())?;
        Self::new(epoch, scale)
    }
}

/// `mm:ss` of a duration, or `h:mm:ss` past an hour: how reports write modeled time.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{:02}:{:02}", secs / 60, secs % 60)
    }
}

fn wall_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_survives_the_trip_through_the_environment() {
        let clock = Clock::new(1_764_300_000_000, 60.0).unwrap();
        assert_eq!(clock.to_env().parse::<Clock>().unwrap(), clock);
    }

    #[test]
    fn a_scaled_clock_runs_ahead_of_the_wall_clock() {
        let start = wall_now_ms() - 1_000;
        let clock = Clock::new(start, 60.0).unwrap();
        // One real second since the epoch is at least 60 modeled seconds.
        assert!(clock.elapsed() >= Duration::from_secs(60));
        assert!(clock.now().timestamp_millis() >= start + 60_000);
    }

    #[test]
    fn modeled_durations_shrink_by_the_scale() {
        let clock = Clock::new(0, 600.0).unwrap();
        assert_eq!(
            clock.to_real(Duration::from_secs(900)),
            Duration::from_millis(1500)
        );
        assert_eq!(
            clock.to_modeled(Duration::from_millis(1500)),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn nonsense_clocks_are_rejected_with_the_expected_form() {
        assert_eq!(Clock::new(0, 0.5), Err(ClockError::BadScale(0.5)));
        let err = "yesterday".parse::<Clock>().unwrap_err();
        assert!(err.to_string().contains("<epoch_unix_ms>x<scale>"), "{err}");
    }
}
