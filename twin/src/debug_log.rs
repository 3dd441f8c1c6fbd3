//! DEBUG logging left on in the log file: the `debug_file_log` chaos switch.
//!
//! A common way a disk fills: someone sets a service's file log level to DEBUG to
//! chase a problem and never sets it back. The console (what `docker compose logs`
//! shows) stays at INFO, so nothing looks wrong there; the log file on the stack's
//! disk grows by every request and response body. While the switch is on, the service
//! appends such DEBUG lines to its log file (never to stdout) at a modeled rate, with
//! the file's rotation, if any, applying to them as to every line. A service without
//! a log file writes nothing.
//!
//! Parameters: `{"mib_per_minute": 6}` (modeled minutes).

use std::time::Duration;

use serde::Deserialize;
use wire::{Clock, Service};

use crate::chaos::Chaos;
use crate::log_file;

#[derive(Debug, Deserialize)]
struct DebugLogParams {
    mib_per_minute: f64,
}

const MIB: f64 = 1024.0 * 1024.0;

/// Runs for the life of the service, writing while the switch is on.
pub fn spawn(chaos: Chaos, clock: Clock, service: Service) {
    tokio::spawn(async move {
        let mut tick = clock.interval(Duration::from_secs(1));
        let mut owed_bytes = 0.0;
        let mut request = 0u64;
        // Bytes are owed for the modeled time that passed, not per tick: a tick the
        // machine was too busy to run must not slow the disk's filling.
        let mut last = clock.now();
        loop {
            tick.tick().await;
            let now = clock.now();
            let elapsed_minutes = (now - last).as_seconds_f64().max(0.0) / 60.0;
            last = now;
            let Some(params) = chaos.get("debug_file_log") else {
                owed_bytes = 0.0;
                continue;
            };
            let params: DebugLogParams = match serde_json::from_value(params) {
                Ok(params) => params,
                Err(error) => {
                    tracing::error!(%error, "debug_file_log switch has bad parameters");
                    continue;
                }
            };
            owed_bytes += params.mib_per_minute.max(0.0) * MIB * elapsed_minutes;
            let at = now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            let mut chunk = Vec::with_capacity(owed_bytes as usize + 4096);
            while (chunk.len() as f64) < owed_bytes {
                request += 1;
                debug_lines(&mut chunk, &at, service, request);
            }
            owed_bytes -= chunk.len() as f64;
            log_file::append(&chunk);
        }
    });
}

/// The DEBUG lines of one request: its headers and the body it answered, as a
/// framework's debug logging writes them.
fn debug_lines(out: &mut Vec<u8>, at: &str, service: Service, request: u64) {
    use std::io::Write as _;
    let target = service.name().replace('-', "_");
    let _ = writeln!(
        out,
        "{at} DEBUG {target}::http: request id={request:016x} headers={{\"accept\": \"application/json\", \
         \"user-agent\": \"songnodes-client/2.4\", \"x-request-id\": \"{request:016x}\"}}"
    );
    let _ = write!(
        out,
        "{at} DEBUG {target}::http: response id={request:016x} status=200 body=["
    );
    for track in 0..12 {
        let _ = write!(
            out,
            "{}{{\"track_id\": {}, \"title\": \"Track {track}\", \"artist\": \"Artist {track}\", \
             \"isrc\": \"GBUM7{:07}\", \"bpm\": 124.0, \"key\": \"8A\", \"energy\": 0.81, \
             \"danceability\": 0.74, \"sources\": [\"spotify\", \"musicbrainz\", \"lastfm\"]}}",
            if track == 0 { "" } else { ", " },
            request * 12 + track,
            (request * 12 + track) % 10_000_000
        );
    }
    let _ = writeln!(out, "]");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_logs_about_two_kilobytes_of_whole_lines() {
        let mut out = Vec::new();
        debug_lines(&mut out, "2026-11-30T02:00:00.000000Z", Service::RestApi, 7);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().all(|l| l.contains(" DEBUG rest_api::http: ")));
        assert!((1500..4000).contains(&text.len()), "{} bytes", text.len());
    }
}
