//! What `/proc` says about a process: liveness, identity, memory and CPU time.
//!
//! Identity matters for reaping: a PID recorded by a run that was killed may since have
//! been reused by an unrelated process. A process is "the one we recorded" only if its
//! start time (field 22 of `/proc/<pid>/stat`) is the recorded one and its command line
//! still names the program we started.

use std::fs;

/// Clock ticks per second of `/proc` CPU and start times (USER_HZ, 100 on every Linux ABI).
pub const TICKS_PER_SECOND: u64 = 100;

/// The fields of `/proc/<pid>/stat` the harness uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// R, S, D, T (stopped), Z (zombie), …
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// User plus system CPU time, in ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, in ticks.
    pub start_time: u64,
}

pub fn stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may contain spaces or parentheses.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field k is fields[k - 3].
    let field = |k: usize| fields.get(k - 3).copied();
    Some(ProcStat {
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        cpu_ticks: field(14)?.parse::<u64>().ok()? + field(15)?.parse::<u64>().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// Alive and not a zombie.
pub fn is_alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X'))
}

/// The start time of a live process, to recognise it later.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// The command line, arguments joined by spaces (empty for kernel threads and zombies).
pub fn cmdline(pid: i32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(args.join(" "))
}

/// Resident memory split the way `/proc/<pid>/status` reports it, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub anon: u64,
    pub file: u64,
    pub shmem: u64,
}

impl Memory {
    pub fn rss(&self) -> u64 {
        self.anon + self.file + self.shmem
    }
}

pub fn memory(pid: i32) -> Option<Memory> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let memory = Memory {
        anon: kib("RssAnon:"),
        file: kib("RssFile:"),
        shmem: kib("RssShmem:"),
    };
    if memory.rss() == 0 {
        // Older kernels lack the split; VmRSS is the total.
        return Some(Memory {
            anon: kib("VmRSS:"),
            ..Memory::default()
        });
    }
    Some(memory)
}

/// A service's processes: `leader`, the members of its process group, and their
/// descendants. PostgreSQL's backends call `setsid()`, so they leave the postmaster's
/// group; they are found as its children.
pub fn family(leader: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let live: Vec<(i32, ProcStat)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .filter(|(_, s)| !matches!(s.state, 'Z' | 'X'))
        .collect();
    let mut members: Vec<i32> = live
        .iter()
        .filter(|(pid, s)| *pid == leader || s.pgrp == leader)
        .map(|(pid, _)| *pid)
        .collect();
    // Add children of members until nothing new turns up.
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        for (pid, s) in &live {
            if s.ppid == parent && !members.contains(pid) {
                members.push(*pid);
            }
        }
        i += 1;
    }
    members
}

/// A process recognised by PID and start time, so that a later process reusing the PID
/// is not mistaken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub pid: i32,
    pub start_time: u64,
}

impl Identity {
    pub fn of(pid: i32) -> Option<Self> {
        Some(Self {
            pid,
            start_time: start_time(pid)?,
        })
    }

    /// Still running (not a zombie) and still the same process.
    pub fn is_alive(&self) -> bool {
        stat(self.pid)
            .is_some_and(|s| s.start_time == self.start_time && !matches!(s.state, 'Z' | 'X'))
    }
}

/// Seconds since boot, in ticks.
pub fn uptime_ticks() -> Option<u64> {
    let text = fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some((secs * TICKS_PER_SECOND as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_recognisable() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert!(is_alive(me));
        assert_eq!(start_time(me), Some(s.start_time));
        assert!(memory(me).unwrap().rss() > 0);
        assert!(!cmdline(me).unwrap().is_empty());
        assert!(family(me).contains(&me));
    }
}
