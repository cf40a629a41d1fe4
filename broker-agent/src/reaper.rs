//! Child-process spawning and reaping for an agent that runs as PID 1.
//!
//! In a container the agent is PID 1, so every orphan (epmd daemonizes, helpers of
//! `beam.smp`, grandchildren of `rabbitmqctl`) is re-parented to it and stays a zombie
//! unless the agent collects it with `waitpid(-1)`. Reaping everything races with code
//! that waits for one specific child (`std::process::Child::wait`, `tokio::process`):
//! whoever calls `waitpid` first gets the status, the other gets `ECHILD`.
//!
//! So this module is the *only* place in the agent that waits for processes:
//! - every child is started with [`Reaper::spawn`], which registers the pid while holding
//!   the same lock the reaper holds around `waitpid`, so an exit can never be collected
//!   before somebody listens for it;
//! - a dedicated thread calls [`Reaper::reap`] on every `SIGCHLD` (and once a second as a
//!   safety net), hands registered exits to their [`ExitWaiter`] and silently collects
//!   orphans;
//! - signals to registered children go through [`Reaper::signal`], which only sends while
//!   the pid is still ours (not yet reaped, so it cannot have been reused).
//!
//! When the agent is not PID 1 (tests, `docker run --init`) it marks itself a child
//! subreaper ([`become_subreaper`]) so orphans of its descendants still come back to it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Normal exit with this code.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
    /// The status was lost (the reaper went away); should not happen.
    Unknown,
}

impl ExitKind {
    pub fn success(self) -> bool {
        self == ExitKind::Code(0)
    }
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitKind::Code(c) => write!(f, "exit code {c}"),
            ExitKind::Signal(s) => match Signal::try_from(*s) {
                Ok(sig) => write!(f, "killed by {}", sig.as_str()),
                Err(_) => write!(f, "killed by signal {s}"),
            },
            ExitKind::Unknown => write!(f, "unknown exit status"),
        }
    }
}

/// Resolves when the registered child has been reaped.
#[derive(Debug)]
pub struct ExitWaiter {
    pid: u32,
    rx: oneshot::Receiver<ExitKind>,
}

impl ExitWaiter {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub async fn wait(self) -> ExitKind {
        self.rx.await.unwrap_or(ExitKind::Unknown)
    }
}

/// The single owner of `waitpid` in this process. See the module docs.
pub struct Reaper {
    waiters: Mutex<HashMap<i32, oneshot::Sender<ExitKind>>>,
}

static GLOBAL: OnceLock<Reaper> = OnceLock::new();

impl Reaper {
    /// The process-wide reaper; the first call starts its thread.
    pub fn global() -> &'static Reaper {
        let mut fresh = false;
        let reaper = GLOBAL.get_or_init(|| {
            fresh = true;
            Reaper {
                waiters: Mutex::new(HashMap::new()),
            }
        });
        if fresh {
            reaper.start_thread();
        }
        reaper
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i32, oneshot::Sender<ExitKind>>> {
        // A panic while holding the lock cannot leave the map inconsistent: keep going.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start `cmd` and register it, atomically with respect to reaping.
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<(Child, ExitWaiter)> {
        let mut waiters = self.lock();
        let child = cmd.spawn()?;
        let pid = child.id();
        let (tx, rx) = oneshot::channel();
        waiters.insert(pid as i32, tx);
        Ok((child, ExitWaiter { pid, rx }))
    }

    /// Send `sig` to a registered child that has not been reaped yet.
    /// Returns false when the pid is not (or no longer) ours.
    pub fn signal(&self, pid: u32, sig: Signal) -> bool {
        let waiters = self.lock();
        if !waiters.contains_key(&(pid as i32)) {
            return false;
        }
        kill(Pid::from_raw(pid as i32), sig).is_ok()
    }

    /// Send `sig` to a whole process group (children are spawned as group leaders).
    pub fn signal_group(&self, pgid: u32, sig: Signal) -> bool {
        killpg(Pid::from_raw(pgid as i32), sig).is_ok()
    }

    /// Collect every exited child. Returns whether any child is still alive.
    pub fn reap(&self) -> bool {
        let mut waiters = self.lock();
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => return true,
                Ok(WaitStatus::Exited(pid, code)) => {
                    dispatch(&mut waiters, pid, ExitKind::Code(code))
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    dispatch(&mut waiters, pid, ExitKind::Signal(sig as i32))
                }
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => return false,
                Err(e) => {
                    tracing::warn!(error = %e, "waitpid failed");
                    return true;
                }
            }
        }
    }

    fn start_thread(&'static self) {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || self.thread_main(ready_tx));
        match spawned {
            // Wait until SIGCHLD is hooked so no early exit is missed (the 1 s poll would
            // catch it anyway, just later).
            Ok(_) => {
                let _ = ready_rx.recv_timeout(Duration::from_secs(5));
            }
            Err(e) => tracing::error!(error = %e, "cannot start the reaper thread"),
        }
    }

    fn thread_main(&'static self, ready: std::sync::mpsc::Sender<()>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "reaper runtime failed; falling back to polling");
                let _ = ready.send(());
                loop {
                    self.reap();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        rt.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut sigchld = match signal(SignalKind::child()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot hook SIGCHLD; reaping by polling");
                    None
                }
            };
            let _ = ready.send(());
            loop {
                self.reap();
                let poll = if sigchld.is_some() {
                    Duration::from_secs(1)
                } else {
                    Duration::from_millis(200)
                };
                match sigchld.as_mut() {
                    Some(s) => {
                        tokio::select! {
                            _ = s.recv() => {}
                            _ = tokio::time::sleep(poll) => {}
                        }
                    }
                    None => tokio::time::sleep(poll).await,
                }
            }
        });
    }
}

fn dispatch(waiters: &mut HashMap<i32, oneshot::Sender<ExitKind>>, pid: Pid, status: ExitKind) {
    match waiters.remove(&pid.as_raw()) {
        Some(tx) => {
            let _ = tx.send(status);
        }
        None => tracing::debug!(pid = pid.as_raw(), %status, "reaped orphan"),
    }
}

/// Ask the kernel to re-parent orphaned descendants to this process instead of to the
/// namespace's PID 1. Not needed (and a no-op) when we are PID 1.
pub fn become_subreaper() {
    if std::process::id() == 1 {
        return;
    }
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(error = %e, "cannot become a child subreaper; orphans will not be reaped by the agent");
    }
}

/// Pids whose parent is `parent`, from `/proc/*/stat`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat_ppid(&s))
                == Some(parent)
        })
        .collect()
}

/// Field 4 of `/proc/PID/stat`; the command name (field 2) may contain spaces and
/// parentheses, so parse from the last `)`.
pub fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Terminate every process left over after the engine stopped (epmd, stray helpers):
/// SIGTERM, wait up to `grace` for them to be reaped, then SIGKILL.
///
/// As PID 1 this is `kill(-1, …)`, which reaches every other process in the container.
/// Otherwise only our direct children are signalled (with the subreaper flag those
/// include re-parented orphans), so a test run can never signal unrelated processes.
pub async fn terminate_remaining(reaper: &Reaper, grace: Duration) {
    let me = std::process::id();
    let broadcast = |sig: Signal| {
        if me == 1 {
            let _ = kill(Pid::from_raw(-1), sig);
        } else {
            for pid in children_of(me) {
                let _ = kill(Pid::from_raw(pid as i32), sig);
            }
        }
    };
    if !reaper.reap() {
        return;
    }
    tracing::info!("terminating remaining processes");
    broadcast(Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if !reaper.reap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!("processes still alive after SIGTERM; sending SIGKILL");
    broadcast(Signal::SIGKILL);
    for _ in 0..40 {
        if !reaper.reap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Output of [`run_captured`].
#[derive(Debug)]
pub struct Captured {
    pub status: ExitKind,
    pub stdout: String,
    pub stderr: String,
}

/// Errors from [`run_captured`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    Timeout { program: String, timeout: Duration },
}

/// Run a short-lived command through the reaper, feeding `stdin` (kept out of argv, for
/// secrets) and capturing stdout/stderr. The child is killed after `timeout`.
pub async fn run_captured(
    reaper: &'static Reaper,
    cmd: &mut Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Captured, RunError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let (mut child, exit) = reaper.spawn(cmd).map_err(|error| RunError::Spawn {
        program: program.clone(),
        error,
    })?;
    let pid = exit.pid();

    if let (Some(mut pipe), Some(data)) = (child.stdin.take(), stdin) {
        tokio::task::spawn_blocking(move || {
            let _ = pipe.write_all(&data);
            // dropping the pipe sends EOF
        });
    }
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        tokio::task::spawn_blocking(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = read_all(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read_all(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );

    let wait = exit.wait();
    tokio::pin!(wait);
    let status = match tokio::time::timeout(timeout, &mut wait).await {
        Ok(status) => status,
        Err(_) => {
            reaper.signal_group(pid, Signal::SIGKILL);
            reaper.signal(pid, Signal::SIGKILL);
            wait.await;
            return Err(RunError::Timeout { program, timeout });
        }
    };
    Ok(Captured {
        status,
        stdout: out.await.unwrap_or_default(),
        stderr: err.await.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn stat_ppid_parsing_handles_odd_names() {
        assert_eq!(parse_stat_ppid("42 (sh) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parse_stat_ppid("42 (a (b) c) R 1 42 42"), Some(1));
        assert_eq!(parse_stat_ppid("garbage"), None);
    }

    #[test]
    fn exit_kind_display() {
        assert_eq!(ExitKind::Code(3).to_string(), "exit code 3");
        assert_eq!(ExitKind::Signal(9).to_string(), "killed by SIGKILL");
        assert!(ExitKind::Code(0).success());
    }

    #[tokio::test]
    async fn exit_status_reaches_the_waiter() {
        let reaper = Reaper::global();
        let (_child, exit) = reaper
            .spawn(Command::new("sh").args(["-c", "exit 7"]))
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(5), exit.wait())
            .await
            .unwrap();
        assert_eq!(status, ExitKind::Code(7));
    }

    #[tokio::test]
    async fn signal_only_reaches_live_registered_children() {
        let reaper = Reaper::global();
        let (_child, exit) = reaper
            .spawn(Command::new("sleep").arg("30").process_group(0))
            .unwrap();
        let pid = exit.pid();
        assert!(reaper.signal(pid, Signal::SIGTERM));
        let status = tokio::time::timeout(Duration::from_secs(5), exit.wait())
            .await
            .unwrap();
        assert_eq!(status, ExitKind::Signal(Signal::SIGTERM as i32));
        // Reaped: the pid is no longer ours, nothing is sent.
        assert!(!reaper.signal(pid, Signal::SIGTERM));
    }

    #[tokio::test]
    async fn captured_run_feeds_stdin_and_reads_output() {
        let reaper = Reaper::global();
        let out = run_captured(
            reaper,
            Command::new("sh").args(["-c", "cat; echo oops >&2; exit 2"]),
            Some(b"secret-on-stdin".to_vec()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out.status, ExitKind::Code(2));
        assert_eq!(out.stdout, "secret-on-stdin");
        assert_eq!(out.stderr.trim(), "oops");
    }

    #[tokio::test]
    async fn captured_run_times_out() {
        let reaper = Reaper::global();
        let err = run_captured(
            reaper,
            Command::new("sleep").arg("30").process_group(0),
            None,
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RunError::Timeout { .. }));
    }

    /// Orphans (the `sleep` backgrounded by a shell that exits at once) come back to us
    /// thanks to the subreaper flag and are collected: none is left a zombie.
    #[tokio::test]
    async fn orphans_are_reaped() {
        become_subreaper();
        let reaper = Reaper::global();
        let out = run_captured(
            reaper,
            Command::new("sh").args(["-c", "sleep 0.3 >/dev/null 2>&1 & echo $!; exit 0"]),
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out.status, ExitKind::Code(0));
        let orphan: u32 = out.stdout.trim().parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match std::fs::read_to_string(format!("/proc/{orphan}/stat")) {
                Err(_) => break, // gone: reaped
                Ok(stat) => {
                    assert_eq!(parse_stat_ppid(&stat), Some(std::process::id()));
                    assert!(
                        std::time::Instant::now() < deadline,
                        "orphan {orphan} not reaped: {stat}"
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
