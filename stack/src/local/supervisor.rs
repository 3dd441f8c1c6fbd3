//! The local backend's process table: one slot per service, and what can be done to it.
//!
//! A slot knows how to launch its service, how to tell that it is ready, and how to stop
//! it; it holds the child while it runs. The orchestrator's verbs (start, stop, kill,
//! pause, …) and the stack's boot and teardown are all operations on slots.
//!
//! Locking: each slot has an async operation lock (one verb at a time per service) and
//! a short synchronous state lock that is never held across an `.await`, so that the
//! synchronous teardown in `Drop` can always take it.

use crate::memory::MemoryCgroup;
use std::collections::BTreeMap;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;
use wire::wait::Poll;
use wire::{Clock, Service};

use super::process::{self, LaunchSpec};
use super::procfs::{self, Identity};
use super::run_dir::{PidRecord, RunDir};
use crate::wait::{self, Check};
use crate::{StackError, local::logs};

/// How to tell that a service is ready for work.
#[derive(Clone, Debug)]
pub(crate) enum Readiness {
    /// A connection succeeds.
    Postgres(Box<PgConnectOptions>),
    /// `PING` is answered with `+PONG`.
    Redis { port: u16 },
    /// `GET /chaos` answers 200 and, for services with an API, `GET /health` answers at all
    /// (a degraded service may answer 503; it is up all the same).
    Twin { chaos: Url, health: Option<Url> },
}

/// How a service is stopped.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StopPolicy {
    /// `docker compose stop` sends this (SIGTERM; SIGINT for PostgreSQL, as its image does).
    pub stop: Signal,
    /// Then waits this long before SIGKILL.
    pub grace: Duration,
    /// Sent at teardown, where speed matters more than a clean shutdown.
    pub teardown: Signal,
}

/// Everything the supervisor needs to run one service.
pub(crate) struct SlotConfig {
    pub spec: LaunchSpec,
    pub readiness: Readiness,
    pub policy: StopPolicy,
    pub ready_timeout: Duration,
}

enum State {
    NeverStarted,
    Running { child: Child, paused: bool },
    Stopped,
    Exited { code: Option<i32> },
}

struct Slot {
    service: Service,
    config: SlotConfig,
    overrides: Mutex<BTreeMap<String, String>>,
    /// The changes the running process (or the last one) was started with.
    applied: Mutex<BTreeMap<String, String>>,
    state: Mutex<State>,
    op: tokio::sync::Mutex<()>,
    cpu: Mutex<Option<CpuSample>>,
}

#[derive(Clone, Copy)]
struct CpuSample {
    pid: u32,
    at: Instant,
    ticks: u64,
}

/// What `docker compose ps` would say; mirrors [`runbooks::ops::ServiceStatus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotStatus {
    Running,
    Paused,
    Stopped,
    Exited(Option<i32>),
}

/// Memory and CPU of one running service.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotStats {
    pub memory_bytes: u64,
    pub cpu_percent: f64,
}

/// Teardown waits this long for graceful exits before SIGKILL.
const TEARDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long a SIGKILLed process may take to disappear before that is an error.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Probes of readiness and of exits run this often.
const POLL: Duration = Duration::from_millis(5);

pub(crate) struct Supervisor {
    run: RunDir,
    slots: BTreeMap<Service, Slot>,
    http: reqwest::Client,
    torn_down: AtomicBool,
    /// The stack's memory cgroup, which every service joins (see [`crate::memory`]).
    memory: Option<MemoryCgroup>,
}

impl Supervisor {
    pub(crate) fn new(run: RunDir, http: reqwest::Client) -> Self {
        Self {
            run,
            slots: BTreeMap::new(),
            http,
            torn_down: AtomicBool::new(false),
            memory: None,
        }
    }

    /// Services added from now on run in a child of `cgroup` named after them.
    pub(crate) fn limit_memory(&mut self, cgroup: MemoryCgroup) {
        self.memory = Some(cgroup);
    }

    pub(crate) fn add(&mut self, service: Service, mut config: SlotConfig) {
        if let Some(cgroup) = &self.memory {
            match cgroup.procs_of(service.name(), config.spec.run_as) {
                Ok(procs) => config.spec.cgroup_procs = Some(procs),
                Err(error) => {
                    tracing::warn!(%service, %error, "the service runs outside the stack's memory cgroup")
                }
            }
        }
        self.slots.insert(
            service,
            Slot {
                service,
                config,
                overrides: Mutex::default(),
                applied: Mutex::default(),
                state: Mutex::new(State::NeverStarted),
                op: tokio::sync::Mutex::new(()),
                cpu: Mutex::default(),
            },
        );
    }

    pub(crate) fn run_dir(&self) -> &RunDir {
        &self.run
    }

    pub(crate) fn services(&self) -> impl Iterator<Item = Service> + '_ {
        self.slots.keys().copied()
    }

    pub(crate) fn contains(&self, service: Service) -> bool {
        self.slots.contains_key(&service)
    }

    fn slot(&self, service: Service) -> Result<&Slot, SlotError> {
        if self.torn_down.load(Ordering::SeqCst) {
            return Err(SlotError::ShutDown);
        }
        self.slots.get(&service).ok_or(SlotError::NotInStack)
    }

    /// Starts the service if it is not running, and waits until it is ready.
    pub(crate) async fn start(&self, service: Service) -> Result<(), StackError> {
        let slot = self.slot(service).map_err(SlotError::into_stack)?;
        let _op = slot.op.lock().await;
        {
            let mut state = lock(&slot.state);
            refresh(&mut state);
            if matches!(*state, State::Running { .. }) {
                return Ok(());
            }
            if self.torn_down.load(Ordering::SeqCst) {
                return Err(StackError::ShutDown);
            }
            let overrides = lock(&slot.overrides).clone();
            *lock(&slot.applied) = overrides.clone();
            let child = slot
                .config
                .spec
                .spawn(&overrides)
                .map_err(StackError::io(format!(
                    "starting {service} ({})",
                    slot.config.spec.program.display()
                )))?;
            let record = PidRecord::of(child.id() as i32, &slot.config.spec.identity);
            *state = State::Running {
                child,
                paused: false,
            };
            drop(state);
            self.run.record(service.name(), &record)?;
        }
        self.wait_ready(slot).await
    }

    async fn wait_ready(&self, slot: &Slot) -> Result<(), StackError> {
        let service = slot.service;
        let log = slot.config.spec.log.clone();
        let what = match &slot.config.readiness {
            Readiness::Postgres(_) => format!("{service} to accept connections"),
            Readiness::Redis { port } => format!("{service} to answer PING on port {port}"),
            Readiness::Twin { chaos, health } => match health {
                Some(health) => format!("{service} to answer {chaos} and {health}"),
                None => format!("{service} to answer {chaos}"),
            },
        };
        wait::until(
            what,
            slot.config.ready_timeout,
            POLL,
            Some(&log),
            || async {
                if let Some(status) = slot.exit_status() {
                    return Err(StackError::ExitedDuringBoot {
                        service,
                        status,
                        tail: logs::tail(&log, 30).unwrap_or_default().join("\n"),
                        log: log.clone(),
                    });
                }
                Ok(match self.probe(&slot.config.readiness).await {
                    Ok(()) => Check::Ready(()),
                    Err(reason) => Check::Pending(reason),
                })
            },
        )
        .await
    }

    async fn probe(&self, readiness: &Readiness) -> Result<(), String> {
        match readiness {
            Readiness::Postgres(options) => {
                let conn = PgConnection::connect_with(options)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok(())
            }
            Readiness::Redis { port } => redis_ping(*port).await,
            Readiness::Twin { chaos, health } => {
                let response = self
                    .http
                    .get(chaos.clone())
                    .send()
                    .await
                    .map_err(|e| format!("GET {chaos}: {e}"))?;
                if response.status() != reqwest::StatusCode::OK {
                    return Err(format!("GET {chaos}: {}", response.status()));
                }
                if let Some(health) = health {
                    self.http
                        .get(health.clone())
                        .send()
                        .await
                        .map_err(|e| format!("GET {health}: {e}"))?;
                }
                Ok(())
            }
        }
    }

    /// Graceful stop: the service's stop signal, SIGKILL after its grace period.
    pub(crate) async fn stop(&self, service: Service) -> Result<(), SlotError> {
        let slot = self.slot(service)?;
        let _op = slot.op.lock().await;
        let Some(pid) = slot.running_pid() else {
            return Ok(()); // already stopped or exited: `docker compose stop` is a no-op
        };
        let family = process::family_of(pid);
        process::signal_group(pid, slot.config.policy.stop);
        process::signal_family(pid, Signal::SIGCONT); // a paused process must run to exit
        if !slot.wait_exit(slot.config.policy.grace).await {
            process::signal_family(pid, Signal::SIGKILL);
            if !slot.wait_exit(KILL_WAIT).await {
                return Err(SlotError::Failed(format!(
                    "pid {pid} survived SIGKILL for {KILL_WAIT:?}"
                )));
            }
        }
        finish_off(&family).await;
        *lock(&slot.state) = State::Stopped;
        self.run.forget(service.name());
        Ok(())
    }

    /// SIGKILL to every process of the service, no grace; it then shows as exited with
    /// code 137.
    pub(crate) async fn kill(&self, service: Service) -> Result<(), SlotError> {
        let slot = self.slot(service)?;
        let _op = slot.op.lock().await;
        let pid = slot.running_pid().ok_or(SlotError::NotRunning)?;
        let family = process::signal_family(pid, Signal::SIGKILL);
        if !slot.wait_exit(KILL_WAIT).await {
            return Err(SlotError::Failed(format!(
                "pid {pid} survived SIGKILL for {KILL_WAIT:?}"
            )));
        }
        // PostgreSQL's backends must be gone too, or a new postmaster finds their shared
        // memory still attached and refuses to start.
        finish_off(&family).await;
        self.run.forget(service.name());
        Ok(())
    }

    /// SIGSTOP to every process of the service, as `docker pause` freezes a container;
    /// returns once all of them are stopped.
    pub(crate) async fn pause(&self, service: Service) -> Result<(), SlotError> {
        self.set_paused(service, true).await
    }

    /// SIGCONT to every process of the service; returns once none is stopped.
    pub(crate) async fn unpause(&self, service: Service) -> Result<(), SlotError> {
        self.set_paused(service, false).await
    }

    async fn set_paused(&self, service: Service, pause: bool) -> Result<(), SlotError> {
        let slot = self.slot(service)?;
        let _op = slot.op.lock().await;
        let pid = {
            let mut state = lock(&slot.state);
            refresh(&mut state);
            let State::Running { child, paused } = &mut *state else {
                return Err(SlotError::NotRunning);
            };
            if *paused == pause {
                return Err(SlotError::Failed(if pause {
                    "it is already paused".into()
                } else {
                    "it is not paused".into()
                }));
            }
            *paused = pause;
            child.id()
        };
        let signal = if pause {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        let family = process::signal_family(pid, signal);
        // Signals are delivered asynchronously; wait until the state shows it.
        let settled = || {
            family.iter().all(|m| match procfs::stat(m.pid) {
                None => true,
                Some(s) => matches!(s.state, 'T' | 't' | 'Z' | 'X') == pause,
            })
        };
        let settling = wire::wait::until(
            Clock::real_time(),
            Duration::from_secs(2),
            Duration::from_millis(1),
            || async {
                if settled() {
                    Poll::Ready(())
                } else {
                    Poll::Pending(String::new())
                }
            },
        )
        .await;
        settling.map(drop).map_err(|_| {
            SlotError::Failed(format!(
                "its processes {:?} did not {} within 2 s",
                family.iter().map(|m| m.pid).collect::<Vec<_>>(),
                if pause { "stop" } else { "resume" }
            ))
        })
    }

    pub(crate) fn status(&self, service: Service) -> Result<SlotStatus, SlotError> {
        let slot = self.slot(service)?;
        let mut state = lock(&slot.state);
        refresh(&mut state);
        Ok(match &*state {
            State::Running { paused: true, .. } => SlotStatus::Paused,
            State::Running { .. } => SlotStatus::Running,
            State::NeverStarted | State::Stopped => SlotStatus::Stopped,
            State::Exited { code } => SlotStatus::Exited(*code),
        })
    }

    /// The PID of the running service (the leader of its process group).
    pub(crate) fn pid(&self, service: Service) -> Option<u32> {
        self.slots.get(&service)?.running_pid()
    }

    /// Environment changes applied at the service's next start.
    pub(crate) fn set_env(
        &self,
        service: Service,
        vars: BTreeMap<String, String>,
    ) -> Result<(), SlotError> {
        let slot = self.slot(service)?;
        lock(&slot.overrides).extend(vars);
        Ok(())
    }

    /// The environment changes the service's process was started with.
    pub(crate) fn applied_env(
        &self,
        service: Service,
    ) -> Result<BTreeMap<String, String>, SlotError> {
        Ok(lock(&self.slot(service)?.applied).clone())
    }

    /// Drops every environment change; true if there were any.
    pub(crate) fn clear_env(&self, service: Service) -> bool {
        self.slots
            .get(&service)
            .map(|slot| !std::mem::take(&mut *lock(&slot.overrides)).is_empty())
            .unwrap_or(false)
    }

    /// Memory of the service (its cgroup's, or without one its process group's: private
    /// memory of each process plus its shared memory once) and CPU since the previous
    /// sample.
    pub(crate) fn stats(&self, service: Service) -> Option<SlotStats> {
        let slot = self.slots.get(&service)?;
        let pid = slot.running_pid()?;
        let members = procfs::family(pid as i32);
        let mut memory = 0;
        let mut shared = 0;
        let mut ticks = 0;
        for member in &members {
            if let Some(m) = procfs::memory(*member) {
                memory += m.anon + m.file;
                shared = shared.max(m.shmem);
            }
            ticks += procfs::stat(*member).map(|s| s.cpu_ticks).unwrap_or(0);
        }
        // The service's cgroup counts as the engine counts a container; /proc counts
        // every file page each process maps, PostgreSQL's shared buffers many times.
        let memory_bytes = self
            .memory
            .as_ref()
            .and_then(|cgroup| cgroup.used_by(service.name()).ok())
            .unwrap_or(memory + shared);
        let now = Instant::now();
        let mut previous = lock(&slot.cpu);
        let cpu_percent = match *previous {
            Some(sample) if sample.pid == pid && now > sample.at => {
                let secs = (now - sample.at).as_secs_f64();
                ticks.saturating_sub(sample.ticks) as f64 / procfs::TICKS_PER_SECOND as f64 / secs
                    * 100.0
            }
            // First sample: the average over the process's lifetime.
            _ => lifetime_cpu_percent(pid as i32, ticks),
        };
        *previous = Some(CpuSample {
            pid,
            at: now,
            ticks,
        });
        Some(SlotStats {
            memory_bytes,
            cpu_percent,
        })
    }

    /// Leaves everything running and the run directory in place, marked kept, so that
    /// neither `Drop` nor the next start's reaping removes it.
    pub(crate) fn keep(&self) -> Result<(), crate::StackError> {
        self.torn_down.store(true, Ordering::SeqCst);
        let marker = self.run.path().join(crate::keep::KEPT_MARKER);
        std::fs::write(&marker, b"").map_err(crate::StackError::io(format!(
            "writing {}",
            marker.display()
        )))
    }

    /// Stops every process (teardown signal, SIGKILL after a short grace), reaps them and
    /// removes the run directory. Synchronous, for `Drop`; idempotent.
    pub(crate) fn teardown_blocking(&self) {
        if self.torn_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut running = Vec::new();
        let mut everyone = Vec::new();
        for slot in self.slots.values() {
            if let Some(pid) = slot.running_pid() {
                everyone.extend(process::family_of(pid));
                process::signal_group(pid, slot.config.policy.teardown);
                process::signal_family(pid, Signal::SIGCONT);
                running.push((slot, pid));
            }
        }
        let all_exited = |running: &[(&Slot, u32)]| running.iter().all(|(s, _)| s.has_exited());
        if !wait::until_blocking(TEARDOWN_GRACE, Duration::from_millis(2), || {
            all_exited(&running)
        }) {
            for (slot, pid) in &running {
                if !slot.has_exited() {
                    process::signal_family(*pid, Signal::SIGKILL);
                }
            }
            if !wait::until_blocking(KILL_WAIT, Duration::from_millis(2), || all_exited(&running)) {
                tracing::error!("some processes of the stack survived SIGKILL");
            }
        }
        // Children of a leader (PostgreSQL's backends) may outlive it by a moment.
        process::kill_remaining(&everyone);
        if !wait::until_blocking(KILL_WAIT, Duration::from_millis(2), || {
            everyone.iter().all(|m| !m.is_alive())
        }) {
            tracing::error!("some processes of the stack survived SIGKILL");
        }
        self.run.remove();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.teardown_blocking();
    }
}

impl Slot {
    fn running_pid(&self) -> Option<u32> {
        let mut state = lock(&self.state);
        refresh(&mut state);
        match &*state {
            State::Running { child, .. } => Some(child.id()),
            _ => None,
        }
    }

    /// `Some(description)` if the child has exited.
    fn exit_status(&self) -> Option<String> {
        let mut state = lock(&self.state);
        if let State::Running { child, .. } = &mut *state
            && let Ok(Some(status)) = child.try_wait()
        {
            let description = process::describe_exit(status);
            *state = State::Exited {
                code: process::exit_code(status),
            };
            return Some(description);
        }
        match &*state {
            State::Exited { code } => Some(match code {
                Some(code) => format!("exit code {code}"),
                None => "exited".into(),
            }),
            _ => None,
        }
    }

    fn has_exited(&self) -> bool {
        let mut state = lock(&self.state);
        refresh(&mut state);
        !matches!(*state, State::Running { .. })
    }

    async fn wait_exit(&self, timeout: Duration) -> bool {
        wire::wait::until(
            Clock::real_time(),
            timeout,
            Duration::from_millis(2),
            || async {
                if self.has_exited() {
                    Poll::Ready(())
                } else {
                    Poll::Pending(String::new())
                }
            },
        )
        .await
        .is_ok()
    }
}

/// Waits (bounded) until the processes of a family that outlived their leader are gone:
/// they get a second to exit on their own (PostgreSQL's backends notice their
/// postmaster's death), then SIGKILL.
async fn finish_off(family: &[Identity]) {
    let started = Instant::now();
    let insisted = AtomicBool::new(false);
    let gone = wire::wait::until(
        Clock::real_time(),
        KILL_WAIT,
        Duration::from_millis(2),
        || async {
            if !family.iter().any(Identity::is_alive) {
                return Poll::Ready(());
            }
            if started.elapsed() >= Duration::from_secs(1)
                && !insisted.swap(true, Ordering::Relaxed)
            {
                process::kill_remaining(family);
            }
            Poll::Pending(String::new())
        },
    )
    .await;
    if gone.is_err() {
        tracing::warn!(?family, "processes survived their service's stop");
    }
}

/// Moves a running slot whose child has exited to `Exited`.
fn refresh(state: &mut State) {
    if let State::Running { child, .. } = state
        && let Ok(Some(status)) = child.try_wait()
    {
        *state = State::Exited {
            code: process::exit_code(status),
        };
    }
}

/// A poisoned lock only means another thread panicked mid-update; the state is still
/// the best information there is, and teardown must proceed.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lifetime_cpu_percent(pid: i32, ticks: u64) -> f64 {
    let (Some(uptime), Some(start)) = (procfs::uptime_ticks(), procfs::start_time(pid)) else {
        return 0.0;
    };
    let lived = uptime.saturating_sub(start);
    if lived == 0 {
        return 0.0;
    }
    ticks as f64 / lived as f64 * 100.0
}

async fn redis_ping(port: u16) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connecting to 127.0.0.1:{port}: {e}"))?;
    stream
        .write_all(b"PING\r\n")
        .await
        .map_err(|e| format!("sending PING: {e}"))?;
    let mut reply = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut reply))
        .await
        .map_err(|_| "no reply to PING within 1 s".to_owned())?
        .map_err(|e| format!("reading the reply to PING: {e}"))?;
    let reply = String::from_utf8_lossy(&reply[..n]);
    if reply.starts_with("+PONG") {
        Ok(())
    } else {
        Err(format!("PING answered {:?}", reply.trim_end()))
    }
}

/// Why an operation on a slot was refused or failed.
#[derive(Debug)]
pub(crate) enum SlotError {
    NotInStack,
    NotRunning,
    ShutDown,
    Failed(String),
}

impl SlotError {
    fn into_stack(self) -> StackError {
        match self {
            SlotError::ShutDown => StackError::ShutDown,
            SlotError::NotInStack => StackError::InvalidOptions("service not in this stack".into()),
            SlotError::NotRunning => StackError::InvalidOptions("service not running".into()),
            SlotError::Failed(reason) => StackError::InvalidOptions(reason),
        }
    }
}

impl std::fmt::Display for SlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotError::NotInStack => f.write_str("it is not part of this stack"),
            SlotError::NotRunning => f.write_str("it is not running"),
            SlotError::ShutDown => f.write_str("the stack has been shut down"),
            SlotError::Failed(reason) => f.write_str(reason),
        }
    }
}
