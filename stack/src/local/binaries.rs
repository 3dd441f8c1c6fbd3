//! Finding the programs the local backend runs, before anything is started.
//!
//! PostgreSQL's server binaries are not on PATH on Debian; they live in
//! `/usr/lib/postgresql/<major>/bin`. `$DRILL_PG_BIN` overrides the search.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::StackError;

/// The programs of one local stack.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
    pub redis_server: PathBuf,
    pub twin: PathBuf,
}

impl Binaries {
    pub fn locate(twin: &Path) -> Result<Self, StackError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let pg_dir = postgres_bin_dir(std::env::var_os("DRILL_PG_BIN").map(PathBuf::from), &path)?;
        let redis_server =
            find_on_path("redis-server", &path).ok_or_else(|| StackError::MissingBinary {
                program: "redis-server".into(),
                searched: "on PATH".into(),
                install: "apt-get install redis-server".into(),
            })?;
        // A bare name is looked up on PATH; a relative path would be ambiguous once the
        // child runs in the stack's directory, so the path is made absolute.
        let twin = if twin.components().count() == 1 && !twin.is_absolute() {
            find_on_path(&twin.to_string_lossy(), &path).unwrap_or_else(|| twin.to_owned())
        } else {
            twin.to_owned()
        };
        if !is_executable(&twin) {
            return Err(StackError::MissingTwinBinary { path: twin });
        }
        let twin = std::fs::canonicalize(&twin).unwrap_or(twin);
        Ok(Self {
            initdb: pg_dir.join("initdb"),
            postgres: pg_dir.join("postgres"),
            redis_server,
            twin,
        })
    }
}

/// The directory holding `initdb` and `postgres`: `$DRILL_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else PATH.
pub(crate) fn postgres_bin_dir(
    explicit: Option<PathBuf>,
    path: &std::ffi::OsStr,
) -> Result<PathBuf, StackError> {
    let has_both =
        |dir: &Path| is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"));
    if let Some(dir) = explicit {
        return if has_both(&dir) {
            Ok(dir)
        } else {
            Err(missing_postgres(&format!(
                "in $DRILL_PG_BIN ({})",
                dir.display()
            )))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_both(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    match find_on_path("postgres", path) {
        Some(postgres) => {
            let dir = postgres.parent().map(Path::to_owned).unwrap_or_default();
            if has_both(&dir) {
                Ok(dir)
            } else {
                Err(missing_postgres("beside postgres on PATH"))
            }
        }
        None => Err(missing_postgres("in /usr/lib/postgresql/*/bin or on PATH")),
    }
}

fn missing_postgres(searched: &str) -> StackError {
    StackError::MissingBinary {
        program: "PostgreSQL (initdb and postgres)".into(),
        searched: searched.into(),
        install: "apt-get install postgresql-15".into(),
    }
}

/// The first executable `name` in the directories of `path` (a PATH value).
pub(crate) fn find_on_path(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn a_missing_redis_server_says_how_to_install_it() {
        assert!(find_on_path("redis-server", OsStr::new("/nonexistent:/also-not")).is_none());
        let err = StackError::MissingBinary {
            program: "redis-server".into(),
            searched: "on PATH".into(),
            install: "apt-get install redis-server".into(),
        };
        assert_eq!(
            err.to_string(),
            "redis-server not found on PATH; install it with `apt-get install redis-server`"
        );
    }

    #[test]
    fn programs_are_found_on_a_path() {
        let found = find_on_path("sh", OsStr::new("/nonexistent:/bin:/usr/bin")).unwrap();
        assert!(found.ends_with("sh"));
    }

    #[test]
    fn an_explicit_postgres_dir_without_binaries_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let err = postgres_bin_dir(Some(dir.path().to_owned()), OsStr::new("")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("DRILL_PG_BIN"), "{text}");
        assert!(text.contains("apt-get install postgresql-15"), "{text}");
    }

    #[test]
    fn a_missing_twin_binary_says_how_to_build_it() {
        let err = Binaries::locate(Path::new("/nonexistent/drill"));
        // PostgreSQL or Redis may be missing on this machine; the twin check comes last.
        if let Err(e @ StackError::MissingTwinBinary { .. }) = err {
            assert_eq!(
                e.to_string(),
                "the twin binary /nonexistent/drill does not exist or is not executable; \
                 build it with `cargo build --bin drill`"
            );
        }
    }
}
