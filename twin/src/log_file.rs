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
//!
//! With [`wire::env::LOG_MAX_SIZE`] (and [`wire::env::LOG_MAX_FILE`]) set, the file
//! rotates as docker's `json-file` driver rotates a container's log: once the next
//! write would take it past the size, `<service>.log` becomes `<service>.log.1` (the
//! older ones move up by one, the oldest beyond the count is dropped) and a new file
//! starts. The file's size is read from the open file before each write, so a file
//! truncated by someone else (`truncate -s 0`) counts from zero again; the file is
//! opened for appending, so writing goes on at its new end rather than leaving a hole.

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
    rotation: Option<Rotation>,
    state: Mutex<State>,
}

/// When a log file rotates and how many files are kept in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: u64,
    pub max_files: u32,
}

impl Rotation {
    /// From the log options' strings (`"10m"`, `"3"`); `None` without a size. A size
    /// that does not parse is an error: a service must not run with a rotation it
    /// was not given.
    pub fn parse(max_size: Option<&str>, max_file: Option<&str>) -> Result<Option<Self>, String> {
        let Some(size) = max_size.filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let max_bytes = wire::env::parse_size(size)
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                format!("log max-size '{size}' is not a size (a number with k, m or g)")
            })?;
        let max_files = match max_file.filter(|s| !s.is_empty()) {
            None => 1,
            Some(files) => files
                .parse::<u32>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| format!("log max-file '{files}' is not a positive count"))?,
        };
        Ok(Some(Rotation {
            max_bytes,
            max_files,
        }))
    }
}

#[derive(Default)]
struct State {
    /// Opened at the first write, and again after a failed open.
    file: Option<File>,
    status: LogFileStatus,
    last_kind: Option<io::ErrorKind>,
}

static LOG_FILE: OnceLock<LogFile> = OnceLock::new();

/// From now on, [`append`] writes to `<dir>/<service>.log`, rotating it as `rotation`
/// says. The file is opened (and `dir` created) at the first line, so a directory that
/// cannot be written yet is a counted failure like any other, not a reason not to start.
pub fn init(dir: &Path, service: Service, rotation: Option<Rotation>) {
    let path = dir.join(format!("{}.log", service.name()));
    let _ = LOG_FILE.set(LogFile {
        service,
        rotation,
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
        if let (Some(rotation), Some(file)) = (self.rotation, state.file.as_ref()) {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if size > 0 && size + line.len() as u64 > rotation.max_bytes {
                state.file = None;
                if let Err(error) = rotate(&self.path, rotation.max_files) {
                    eprintln!(
                        "{}: rotating log file {}: {error}",
                        self.service,
                        self.path.display()
                    );
                }
            }
        }
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

/// Moves `<path>.<n>` to `<path>.<n+1>` for the kept ones, `<path>` to `<path>.1`,
/// and drops what falls beyond `max_files` in all. With one file kept, the file is
/// emptied instead.
fn rotate(path: &Path, max_files: u32) -> io::Result<()> {
    let numbered = |n: u32| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    if max_files <= 1 {
        return OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .map(drop);
    }
    match std::fs::remove_file(numbered(max_files - 1)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    for n in (1..max_files - 1).rev() {
        match std::fs::rename(numbered(n), numbered(n + 1)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(path, numbered(1))
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
            rotation: None,
            state: Mutex::default(),
        };
        log_file.append(b"one\n");
        // A directory where the file should be: every write fails, the service goes on.
        let blocked = LogFile {
            service: Service::ApiGatewayInternal,
            path: dir.clone(),
            rotation: None,
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

    #[test]
    fn a_rotated_log_keeps_max_file_files_under_max_size_each() {
        let dir = tempfile_dir().join("rotation");
        std::fs::create_dir_all(&dir).unwrap();
        let log_file = LogFile {
            service: Service::RestApi,
            path: dir.join("rest-api.log"),
            rotation: Rotation::parse(Some("1k"), Some("3")).unwrap(),
            state: Mutex::default(),
        };
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        for _ in 0..100 {
            log_file.append(&line);
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["rest-api.log", "rest-api.log.1", "rest-api.log.2"]);
        for name in &names {
            let size = std::fs::metadata(dir.join(name)).unwrap().len();
            assert!(size <= 1024, "{name} is {size} bytes");
        }
        // Truncated by someone else, the file counts from zero and has no hole.
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("rest-api.log"))
            .unwrap()
            .set_len(0)
            .unwrap();
        log_file.append(&line);
        assert_eq!(
            std::fs::metadata(dir.join("rest-api.log")).unwrap().len(),
            100
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes_are_read_as_docker_reads_them() {
        assert_eq!(
            Rotation::parse(Some("10m"), Some("3"))
                .unwrap()
                .unwrap()
                .max_bytes,
            10 << 20
        );
        assert!(Rotation::parse(Some("0m"), None).is_err());
        assert!(Rotation::parse(Some("10x"), None).is_err());
        assert!(Rotation::parse(Some("10m"), Some("0")).is_err());
        assert_eq!(Rotation::parse(None, Some("3")), Ok(None));
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
