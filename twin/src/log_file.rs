//! A copy of the service's log in a file, so that logs can fill a disk as real ones do.
//!
//! With [`wire::env::LOG_DIR`] set (the docker backend sets it to the stack's
//! size-limited disk volume, mounted at `/var/log/songnodes`), every line the service
//! logs to stdout is also appended to `<dir>/<service>.log`. When the disk is full,
//! the service behaves as a production service should: it keeps running and keeps
//! logging to stdout, counts the failed writes and remembers the last error, and says
//! so once on stderr at the start of each run of failures (so `docker logs` shows
//! "No space left on device") and once when writing works again. Each line is retried,
//! so writes resume by themselves once space is freed.
//!
//! `GET /chaos/log_file` on the chaos surface reports [`LogFileStatus`] (JSON `null`
//! when the service has no log file).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use axum::Json;
use wire::Service;
pub use wire::api::LogFileStatus;

struct LogFile {
    service: Service,
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Opened at the first write, and again after a failed open.
    file: Option<File>,
    status: LogFileStatus,
    last_kind: Option<io::ErrorKind>,
}

static LOG_FILE: OnceLock<LogFile> = OnceLock::new();

/// From now on, [`append`] writes to `<dir>/<service>.log`. The file is opened (and
/// `dir` created) at the first line, so a directory that cannot be written yet is a
/// counted failure like any other, not a reason not to start.
pub fn init(dir: &Path, service: Service) {
    let path = dir.join(format!("{}.log", service.name()));
    let _ = LOG_FILE.set(LogFile {
        service,
        state: Mutex::new(State {
            status: LogFileStatus {
                path: path.display().to_string(),
                ..LogFileStatus::default()
            },
            ..State::default()
        }),
        path,
    });
}

/// Appends one log line; a no-op without [`init`]. Never fails: failures are counted.
pub fn append(line: &[u8]) {
    if let Some(log_file) = LOG_FILE.get() {
        log_file.append(line);
    }
}

/// The log file's status, or `None` when the service writes none.
pub fn status() -> Option<LogFileStatus> {
    let log_file = LOG_FILE.get()?;
    let state = log_file.state.lock().unwrap_or_else(|e| e.into_inner());
    Some(state.status.clone())
}

/// `GET /chaos/log_file`.
pub async fn serve_status() -> Json<Option<LogFileStatus>> {
    Json(status())
}

impl LogFile {
    fn append(&self, line: &[u8]) {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        let written = match state.file.as_mut() {
            Some(file) => file.write_all(line),
            None => open(&self.path).and_then(|mut file| {
                let written = file.write_all(line);
                state.file = Some(file);
                written
            }),
        };
        let status = &mut state.status;
        match written {
            Ok(()) => {
                if status.failing {
                    // Not through tracing: that would write to this file again.
                    eprintln!(
                        "{}: writing log file {} again after {} failed writes",
                        self.service, status.path, status.write_failures
                    );
                }
                status.lines_written += 1;
                status.failing = false;
            }
            Err(error) => {
                let newly_seen = !status.failing || state.last_kind != Some(error.kind());
                status.write_failures += 1;
                status.failing = true;
                status.last_error = Some(error.to_string());
                if newly_seen {
                    eprintln!(
                        "{}: cannot write log file {}: {error}; the service keeps running \
                         and counts failed writes (GET /chaos/log_file)",
                        self.service, status.path
                    );
                }
                state.last_kind = Some(error.kind());
            }
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_and_writing_resumes() {
        let dir = tempfile_dir();
        let log_file = LogFile {
            service: Service::ApiGatewayInternal,
            path: dir.join("sub").join("api-gateway-internal.log"),
            state: Mutex::default(),
        };
        log_file.append(b"one\n");
        // A directory where the file should be: every write fails, the service goes on.
        let blocked = LogFile {
            service: Service::ApiGatewayInternal,
            path: dir.clone(),
            state: Mutex::default(),
        };
        blocked.append(b"two\n");
        blocked.append(b"three\n");
        let state = blocked.state.lock().unwrap();
        assert_eq!(state.status.write_failures, 2);
        assert!(state.status.failing);
        assert!(state.status.last_error.is_some());
        drop(state);
        log_file.append(b"four\n");
        let text = std::fs::read_to_string(&log_file.path).unwrap();
        assert_eq!(text, "one\nfour\n");
        assert_eq!(log_file.state.lock().unwrap().status.lines_written, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "twin-log-file-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
