//! Supervision of the engine process: start it, notice when it dies, restart it with a
//! capped exponential backoff, and stop it cleanly on shutdown.
//!
//! The supervisor is generic: it runs whatever [`ProcessSpec`] its `prepare` callback
//! returns before every (re)start (for RabbitMQ that callback renders the config from
//! the current spec and cgroup limit). Tests drive it with `sleep` and
//! `sh -c 'exit 1'`. Waiting for the process goes through the [`Reaper`], never through
//! `Child::wait`, because the agent is PID 1 and reaps every child itself.
//!
//! The engine is started as the leader of its own process group so that, when it has to
//! be killed or dies with helpers left behind (a `beam.smp` outliving its `sh` wrapper
//! would keep the node name and port busy), the whole group can be signalled at once.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::watch;

use crate::reaper::{ExitKind, Reaper};
use crate::state::AgentState;

/// What to execute for one engine run.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment (the agent's own environment is not inherited).
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

impl ProcessSpec {
    /// A command with stdin closed, stdout/stderr inherited (so `docker logs` shows the
    /// engine) and its own process group.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .process_group(0);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }
}

/// Capped exponential backoff: `initial`, 2×, 4×, … up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Delay before the restart following the `failures`-th consecutive failure (≥ 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// Timings of the supervisor.
#[derive(Debug, Clone, Copy)]
pub struct SupervisorConfig {
    pub backoff: Backoff,
    /// How long to wait for the engine after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    /// A run at least this long resets the backoff.
    pub stable_after: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            stop_timeout: Duration::from_secs(25),
            stable_after: Duration::from_secs(60),
        }
    }
}

/// Builds the process to run; called before every start.
pub type PrepareFn = Box<dyn FnMut() -> anyhow::Result<ProcessSpec> + Send + Sync>;

/// Keeps one engine process running until shutdown. See the module docs.
pub struct Supervisor {
    config: SupervisorConfig,
    prepare: PrepareFn,
    state: Arc<AgentState>,
    reaper: &'static Reaper,
}

impl Supervisor {
    pub fn new(
        config: SupervisorConfig,
        prepare: PrepareFn,
        state: Arc<AgentState>,
        reaper: &'static Reaper,
    ) -> Supervisor {
        Supervisor {
            config,
            prepare,
            state,
            reaper,
        }
    }

    /// Run until `shutdown` turns true (or its sender goes away), then stop the engine
    /// and return.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        let mut after_death = false;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let spawned = (self.prepare)().and_then(|spec| {
                let mut cmd = spec.command();
                self.reaper
                    .spawn(&mut cmd)
                    .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", spec.program.display()))
            });
            let (_child, exit) = match spawned {
                Ok(pair) => pair,
                Err(e) => {
                    failures += 1;
                    let msg = format!("{e:#}");
                    tracing::error!(error = %msg, "engine could not be started");
                    self.state.engine_failed(msg);
                    if self.pause(failures, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            let pid = exit.pid();
            let started = Instant::now();
            self.state.engine_started(after_death);
            tracing::info!(pid, restarts = self.state.restarts(), "engine started");

            let wait = exit.wait();
            tokio::pin!(wait);
            tokio::select! {
                status = &mut wait => {
                    // Clean up helpers the engine may have left in its group.
                    self.reaper.signal_group(pid, Signal::SIGKILL);
                    let ran = started.elapsed();
                    if ran >= self.config.stable_after {
                        failures = 0;
                    }
                    failures += 1;
                    after_death = true;
                    let msg = format!("engine exited unexpectedly ({status}) after {:.1} s", ran.as_secs_f64());
                    tracing::warn!("{msg}");
                    self.state.engine_died(msg);
                    if self.pause(failures, &mut shutdown).await {
                        return;
                    }
                }
                _ = shutdown.changed() => {
                    self.stop(pid, wait).await;
                    return;
                }
            }
        }
    }

    /// Sleep the backoff; returns true if shutdown was requested meanwhile.
    async fn pause(&self, failures: u32, shutdown: &mut watch::Receiver<bool>) -> bool {
        let delay = self.config.backoff.delay(failures);
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "restarting engine after backoff"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => *shutdown.borrow(),
            _ = shutdown.changed() => true,
        }
    }

    /// SIGTERM, wait up to `stop_timeout`, then SIGKILL the whole process group.
    async fn stop(
        &self,
        pid: u32,
        wait: std::pin::Pin<&mut impl std::future::Future<Output = ExitKind>>,
    ) {
        let mut wait = wait;
        tracing::info!(pid, "stopping engine (SIGTERM)");
        let begun = Instant::now();
        self.reaper.signal(pid, Signal::SIGTERM);
        let status = match tokio::time::timeout(self.config.stop_timeout, &mut wait).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!(
                    timeout_s = self.config.stop_timeout.as_secs_f64(),
                    "engine did not stop in time; sending SIGKILL"
                );
                self.reaper.signal_group(pid, Signal::SIGKILL);
                self.reaper.signal(pid, Signal::SIGKILL);
                wait.await
            }
        };
        self.reaper.signal_group(pid, Signal::SIGKILL);
        tracing::info!(%status, secs = format!("{:.2}", begun.elapsed().as_secs_f64()), "engine stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Engine, EngineState};

    fn sh(script: &str) -> ProcessSpec {
        ProcessSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: None,
        }
    }

    fn fast_config() -> SupervisorConfig {
        SupervisorConfig {
            backoff: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(80),
            },
            stop_timeout: Duration::from_millis(500),
            stable_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = SupervisorConfig::default().backoff;
        let secs: Vec<u64> = (1..=8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.delay(1000), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn crashing_engine_is_restarted_with_backoff() {
        let state = Arc::new(AgentState::new("b-t".into(), Engine::Rabbitmq));
        let starts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = starts.clone();
        let sup = Supervisor::new(
            fast_config(),
            Box::new(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(sh("exit 1"))
            }),
            state.clone(),
            Reaper::global(),
        );
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        // delays 20, 40, 80, 80, … ms: about 6+ starts in 600 ms, never 30 (no backoff)
        tokio::time::sleep(Duration::from_millis(600)).await;
        let n = starts.load(std::sync::atomic::Ordering::SeqCst);
        assert!((3..=12).contains(&n), "started {n} times");
        assert!(state.restarts() >= 2);
        assert!(matches!(state.state(), EngineState::Restarting));
        assert!(state.last_error().unwrap().contains("exit code 1"));
        state.set_stopping();
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn running_engine_is_stopped_with_sigterm() {
        let state = Arc::new(AgentState::new("b-t".into(), Engine::Rabbitmq));
        let sup = Supervisor::new(
            SupervisorConfig {
                stop_timeout: Duration::from_secs(5),
                ..fast_config()
            },
            Box::new(|| Ok(sh("exec sleep 30"))),
            state.clone(),
            Reaper::global(),
        );
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(state.state(), EngineState::Starting);
        assert_eq!(state.restarts(), 0);
        let begun = Instant::now();
        state.set_stopping();
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(4), task)
            .await
            .unwrap()
            .unwrap();
        // SIGTERM worked: well under the 5 s stop timeout
        assert!(begun.elapsed() < Duration::from_secs(2));
        assert_eq!(state.restarts(), 0);
        assert_eq!(state.state(), EngineState::Stopping);
    }

    #[tokio::test]
    async fn engine_ignoring_sigterm_is_killed_with_its_group() {
        let state = Arc::new(AgentState::new("b-t".into(), Engine::Rabbitmq));
        let pidfile = tempfile::NamedTempFile::new().unwrap();
        let path = pidfile.path().to_string_lossy().into_owned();
        // The shell ignores TERM and has a grandchild (like sh → beam.smp).
        let script = format!("trap '' TERM; sleep 30 & echo $! > {path}; wait");
        let sup = Supervisor::new(
            fast_config(),
            Box::new(move || Ok(sh(&script))),
            state.clone(),
            Reaper::global(),
        );
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let grandchild: i32 = std::fs::read_to_string(pidfile.path())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let begun = Instant::now();
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(3), task)
            .await
            .unwrap()
            .unwrap();
        let took = begun.elapsed();
        assert!(took >= Duration::from_millis(450), "stopped after {took:?}");
        // the grandchild died with the group (it may linger as a zombie until reaped)
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty()
                || stat[stat.rfind(')').unwrap() + 1..]
                    .trim_start()
                    .starts_with('Z'),
            "grandchild still running: {stat}"
        );
    }

    #[tokio::test]
    async fn failing_prepare_reports_failed_and_retries() {
        let state = Arc::new(AgentState::new("b-t".into(), Engine::Rabbitmq));
        let sup = Supervisor::new(
            fast_config(),
            Box::new(|| {
                Ok(ProcessSpec {
                    program: "/nonexistent/engine".into(),
                    ..Default::default()
                })
            }),
            state.clone(),
            Reaper::global(),
        );
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(state.state(), EngineState::Failed);
        assert!(state.last_error().unwrap().contains("/nonexistent/engine"));
        assert_eq!(state.restarts(), 0);
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    }
}
