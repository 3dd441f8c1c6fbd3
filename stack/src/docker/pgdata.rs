//! PostgreSQL's data directory for a docker stack: a copy of the template on the host,
//! bind-mounted into the PostgreSQL container.
//!
//! Why on the host rather than inside the container: the engine's storage driver here
//! is fuse-overlayfs, where every write crosses FUSE, and copying the template (~35 MB,
//! ~1,400 files) into the container's own file system took 1.6–1.8 s; into a docker
//! volume under `/var/lib/docker`, 0.8–1.3 s (this disk is slow to write). Onto the
//! runtime root, a tmpfs where there is one (`crate::dirs`), the same copy takes
//! ~0.05 s. A host directory also outlives its container, as a compose volume does:
//! stop, start, kill and recreation keep the data.
//!
//! It lives in the stack's run directory (`<run dir>/pg`), so teardown removes it with
//! the directory, and a killed run's copy is reaped with its run directory.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::StackError;
use crate::local::postgres;

/// The access rule added to the template's (which trusts loopback only): the harness
/// connects through a published port and the twin from the stack's network.
const TRUST_THE_STACK: &str = "host all all all trust\n";

/// Copies `template` to `target` (which must not exist) for a container to run on:
/// files handed to `owner` (the host's `postgres` user when we are root, else left
/// ours; the container's server runs as whoever owns them), no stale lock file, and
/// connections from the stack's network trusted.
pub(crate) fn prepare(
    template: &Path,
    target: &Path,
    owner: Option<(u32, u32)>,
) -> Result<(), StackError> {
    postgres::copy_data_dir(template, target, owner)?;
    let lock = target.join("postmaster.pid");
    match fs::remove_file(&lock) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(StackError::io(format!("removing {}", lock.display()))(e));
        }
        _ => {}
    }
    let hba = target.join("pg_hba.conf");
    OpenOptions::new()
        .append(true)
        .open(&hba)
        .and_then(|mut file| file.write_all(TRUST_THE_STACK.as_bytes()))
        .map_err(StackError::io(format!(
            "trusting the stack's network in {}",
            hba.display()
        )))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_copy_trusts_the_stack_and_has_no_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("template");
        fs::create_dir_all(template.join("base/1")).unwrap();
        fs::set_permissions(&template, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(template.join("PG_VERSION"), "15\n").unwrap();
        fs::write(template.join("base/1/1259"), [7u8; 8192]).unwrap();
        fs::write(
            template.join("pg_hba.conf"),
            "host all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        fs::write(template.join("postmaster.pid"), "42\n").unwrap();

        let target = dir.path().join("pg");
        prepare(&template, &target, None).unwrap();

        assert_eq!(fs::read(target.join("base/1/1259")).unwrap(), [7u8; 8192]);
        assert!(!target.join("postmaster.pid").exists());
        assert_eq!(
            fs::read_to_string(target.join("pg_hba.conf")).unwrap(),
            "host all all 127.0.0.1/32 trust\nhost all all all trust\n"
        );
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o700,
            "PostgreSQL refuses a data directory others can read"
        );
        // The template itself is untouched.
        assert!(template.join("postmaster.pid").exists());
    }

    #[test]
    fn a_template_without_access_rules_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("template");
        fs::create_dir(&template).unwrap();
        let error = prepare(&template, &dir.path().join("pg"), None).unwrap_err();
        assert!(error.to_string().contains("pg_hba.conf"), "{error}");
    }
}
