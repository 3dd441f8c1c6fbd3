//! Service logs on the local backend: one append-only file per service.
//!
//! A service's standard output and error go to `<data_dir>/logs/<service>.log`, across
//! restarts, the way `docker compose logs` shows a container's whole history. Logs can
//! grow large (a disk-filling fault makes them), so the tail is read backwards from the
//! end of the file instead of reading the whole file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use wire::Service;

/// `<data_dir>/logs/<service>.log`.
pub fn path(data_dir: &Path, service: Service) -> PathBuf {
    data_dir
        .join("logs")
        .join(format!("{}.log", service.name()))
}

/// Opens the log for appending; both stdout and stderr of a child go here.
pub(crate) fn open_for_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The last `n` lines of a file, oldest first; an absent file has no lines.
pub fn tail(path: &Path, n: usize) -> io::Result<Vec<String>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if n == 0 {
        return Ok(Vec::new());
    }
    const CHUNK: u64 = 64 * 1024;
    let len = file.seek(SeekFrom::End(0))?;
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    // Read backwards until the buffer holds more than n line breaks (or the whole file).
    loop {
        let newlines = buf.iter().filter(|&&b| b == b'\n').count();
        // A trailing newline ends the last line rather than starting a new one.
        let needed = n + usize::from(buf.last() == Some(&b'\n'));
        if start == 0 || newlines > needed {
            break;
        }
        let step = CHUNK.min(start);
        start -= step;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    // When reading stopped mid-file, the first line is partial: drop it.
    let complete = if start > 0 && !lines.is_empty() {
        &lines[1..]
    } else {
        &lines[..]
    };
    let skip = complete.len().saturating_sub(n);
    Ok(complete[skip..].iter().map(|s| (*s).to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_tail_is_the_last_lines_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let mut f = File::create(&log).unwrap();
        for i in 0..100_000 {
            writeln!(f, "line {i}").unwrap();
        }
        drop(f);
        assert_eq!(
            tail(&log, 3).unwrap(),
            vec!["line 99997", "line 99998", "line 99999"]
        );
        assert_eq!(tail(&log, 0).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_short_or_missing_file_gives_what_there_is() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        assert!(tail(&log, 5).unwrap().is_empty());
        std::fs::write(&log, "a\nb").unwrap();
        assert_eq!(tail(&log, 5).unwrap(), vec!["a", "b"]);
    }
}
