//! Loopback ports: the documented ones of drill mode, and free ones for test mode.
//!
//! A free port is chosen by the harness and handed to a child that binds it later, so
//! two things can steal it in between: another stack starting at the same moment (in
//! this process or another test process), and the kernel handing it out as the source
//! port of an outgoing connection. Against the second, free ports come from below the
//! kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), which the kernel
//! never uses for outgoing connections. Against the first, each port is *claimed* by
//! creating `<root>/ports/<port>` exclusively (its content is the run id), and released
//! when the run's directory is removed; claims of runs that no longer exist are reaped.
//! Both backends' stacks have a run directory (a docker stack's holds PostgreSQL's data).

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use wire::Service;

use crate::StackError;
use crate::local::run_dir;

/// The lowest port handed out in test mode: above every documented port and common service.
const FREE_RANGE_START: u16 = 15_000;
/// How many candidates to try before giving up.
const ATTEMPTS: usize = 500;

fn claims_dir(root: &Path) -> PathBuf {
    root.join("ports")
}

/// Claims a port that is free on 127.0.0.1 for the run `run_id`.
pub(crate) fn claim_free_port(root: &Path, run_id: &str) -> Result<u16, StackError> {
    let dir = claims_dir(root);
    crate::dirs::ensure_traversable_dir(&dir)?;
    let end = ephemeral_range_start().max(FREE_RANGE_START + 1024);
    let span = u64::from(end - FREE_RANGE_START);
    let mut candidate = starting_offset() % span;
    // A stride coprime with any span below 2^16 (it is prime and larger) visits every port.
    const STRIDE: u64 = 7_919;
    let mut last_reason = String::from("every candidate was claimed");
    for _ in 0..ATTEMPTS {
        candidate = (candidate + STRIDE) % span;
        let port = FREE_RANGE_START + candidate as u16;
        if !handed_out()
            .lock()
            .map(|mut s| s.insert(port))
            .unwrap_or(true)
        {
            continue;
        }
        let claim = dir.join(port.to_string());
        match OpenOptions::new().write(true).create_new(true).open(&claim) {
            Ok(mut file) => {
                let _ = file.write_all(run_id.as_bytes());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(StackError::io(format!(
                    "claiming port {port} in {}",
                    dir.display()
                ))(e));
            }
        }
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(_) => return Ok(port),
            Err(e) => {
                last_reason = format!("port {port}: {e}");
                let _ = fs::remove_file(&claim);
            }
        }
    }
    Err(StackError::NoFreePort {
        attempts: ATTEMPTS,
        reason: last_reason,
    })
}

/// Releases the claims of `run_id` on `ports`.
pub(crate) fn release(root: &Path, run_id: &str, ports: &[u16]) {
    let dir = claims_dir(root);
    for port in ports {
        let claim = dir.join(port.to_string());
        if fs::read_to_string(&claim).is_ok_and(|owner| owner == run_id) {
            let _ = fs::remove_file(&claim);
        }
        if let Ok(mut set) = handed_out().lock() {
            set.remove(port);
        }
    }
}

/// The ports claimed under `root` by run `run_id`, in order.
pub fn claimed_by(root: &Path, run_id: &str) -> Vec<u16> {
    let Ok(entries) = fs::read_dir(claims_dir(root)) else {
        return Vec::new();
    };
    let mut ports: Vec<u16> = entries
        .flatten()
        .filter(|entry| fs::read_to_string(entry.path()).is_ok_and(|o| o == run_id))
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    ports.sort_unstable();
    ports
}

fn owner_is_gone(owner: &str, runs: &Path) -> bool {
    !runs.join(owner).exists()
}

/// Removes claims whose owner is gone. Claims are made after their run directory is
/// created and released before it is removed, so a claim without a run directory is
/// stale.
pub(crate) fn reap_stale_claims(root: &Path) -> usize {
    let Ok(entries) = fs::read_dir(claims_dir(root)) else {
        return 0;
    };
    let runs = run_dir::runs_dir(root);
    let mut reaped = 0;
    for entry in entries.flatten() {
        let Ok(owner) = fs::read_to_string(entry.path()) else {
            continue;
        };
        // An empty claim is being written right now.
        if !owner.is_empty() && owner_is_gone(owner.trim(), &runs) {
            let _ = fs::remove_file(entry.path());
            reaped += 1;
        }
    }
    reaped
}

/// Fails with [`StackError::PortInUse`] when `port` cannot be bound on 127.0.0.1 (and on
/// ::1 where IPv6 loopback exists and `ipv6` is asked for).
pub fn check_documented(service: Service, port: u16, ipv6: bool) -> Result<(), StackError> {
    let in_use = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err()
        || (ipv6 && ipv6_loopback() && TcpListener::bind((Ipv6Addr::LOCALHOST, port)).is_err());
    if in_use {
        return Err(StackError::PortInUse { port, service });
    }
    Ok(())
}

/// Whether `[::1]` can be bound here (containers often run without IPv6).
pub fn ipv6_loopback() -> bool {
    TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))).is_ok()
}

fn ephemeral_range_start() -> u16 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Different in every process and every call, so concurrent processes start apart.
fn starting_offset() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed =
        nanos ^ (u64::from(std::process::id()) << 32) ^ CALLS.fetch_add(1, Ordering::Relaxed);
    crate::catalogue::splitmix64(mixed)
}

/// Ports handed out by this process and not yet released.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static SET: std::sync::OnceLock<Mutex<HashSet<u16>>> = std::sync::OnceLock::new();
    SET.get_or_init(Mutex::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_ports_are_distinct_free_and_below_the_ephemeral_range() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(run_dir::runs_dir(root.path()).join("run-a")).unwrap();
        let ports: Vec<u16> = (0..50)
            .map(|_| claim_free_port(root.path(), "run-a").unwrap())
            .collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        assert!(
            ports
                .iter()
                .all(|&p| p >= FREE_RANGE_START && p < ephemeral_range_start())
        );
        assert_eq!(reap_stale_claims(root.path()), 0, "the run still exists");
        release(root.path(), "run-a", &ports[..10]);
        assert_eq!(fs::read_dir(claims_dir(root.path())).unwrap().count(), 40);
        fs::remove_dir(run_dir::runs_dir(root.path()).join("run-a")).unwrap();
        assert_eq!(reap_stale_claims(root.path()), 40, "the run is gone");
        release(root.path(), "run-a", &ports[10..]);
    }

    #[test]
    fn claims_are_listed_by_their_run() {
        let root = tempfile::tempdir().unwrap();
        let a = claim_free_port(root.path(), "run-a").unwrap();
        let b = claim_free_port(root.path(), "run-b").unwrap();
        let a2 = claim_free_port(root.path(), "run-a").unwrap();
        let mut expected = vec![a, a2];
        expected.sort_unstable();
        assert_eq!(claimed_by(root.path(), "run-a"), expected);
        assert_eq!(claimed_by(root.path(), "run-b"), [b]);
        release(root.path(), "run-a", &[a, a2]);
        assert_eq!(claimed_by(root.path(), "run-a"), Vec::<u16>::new());
        assert_eq!(claimed_by(root.path(), "run-b"), [b]);
    }

    #[test]
    fn a_held_documented_port_is_reported_with_the_command_to_find_its_holder() {
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let err = check_documented(Service::MetadataEnrichment, port, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "port {port} for metadata-enrichment is in use; stop what holds it \
                 (`ss -ltnp 'sport = :{port}'`) or run in test mode"
            )
        );
    }
}
