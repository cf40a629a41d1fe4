//! Supervision of the engine process: start it, notice when it dies, restart it with a
//! capped exponential backoff, restart it on request, give up on it when it cannot
//! start, and stop it cleanly on shutdown.
//!
//! The supervisor is generic: it runs whatever [`ProcessSpec`] its `prepare` callback
//! returns before every (re)start (the engine driver renders the config from the current
//! spec and cgroup limit there). Tests drive it with `sleep` and `sh -c 'exit 1'`.
//! Waiting for the process goes through the [`Reaper`], never through `Child::wait`,
//! because the agent is PID 1 and reaps every child itself.
//!
//! The engine is started as the leader of its own process group so that, when it has to
//! be killed or dies with helpers left behind (a `beam.smp` outliving its `sh` wrapper
//! would keep the node name and port busy), the whole group can be signalled at once.
//!
//! **Output.** The engine's stdout and stderr write into one pipe (their lines stay in
//! order): every line is forwarded to the agent's stdout (`docker logs`) and the last
//! ones of the current run are kept in an [`EngineOutput`] ring.
//!
//! **When the engine stops by itself** the supervisor asks its `diagnose` callback (the
//! driver's [`diagnose_exit`](crate::engine::EngineDriver::diagnose_exit), scrubbed of
//! secrets by the agent) what the output says, and decides with [`after_exit`]:
//! - a run that had reached Ready is a crash: restart with backoff, forever (a broker
//!   that ran is worth restarting);
//! - a run that never became ready and whose output shows a deterministic error (a
//!   configuration the engine refuses): give up at once;
//! - other runs that never became ready: restart with backoff, and give up after
//!   [`SupervisorConfig::max_failed_starts`] of them in a row.
//!
//! Giving up means state `Failed` with the reason in `last_error`, and no more starts
//! until the agent itself is restarted (the control plane recreates the container when
//! it reboots the broker). A `prepare` error (the agent could not render a
//! configuration, e.g. a revision that is not XML) is `Failed` at once and retried up to
//! the same limit.
//!
//! **Restart on request** ([`RestartRequest`], e.g. to load a renewed certificate): the
//! running engine is stopped like at shutdown (SIGTERM, then SIGKILL after the stop
//! timeout), `prepare` renders the files again and the new process starts at once; no
//! restart is counted and no backoff applies. The request is answered with the new
//! run's generation once the process is started.
//!
//! **Kill on request** ([`KillRequest`]: the monitor found the engine hung, so that the
//! standby of a shared-storage pair can take the store's lock): the run's process group
//! gets SIGKILL at once, and its end is then handled like any crash (restart with
//! backoff), with the request's reason as `last_error`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::diagnosis::{self, Diagnosis};
use crate::enginelog::{self, EngineOutput};
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
    /// A command with stdin closed and its own process group; stdout and stderr are the
    /// agent's (the supervisor replaces them with its output pipe).
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

    /// [`command`](Self::command) with stdout and stderr both writing into one pipe (so
    /// their lines keep the order the engine wrote them in, like on a terminal); returns
    /// the pipe's reading end.
    pub fn piped_command(&self) -> std::io::Result<(Command, std::io::PipeReader)> {
        let (reader, writer) = std::io::pipe()?;
        let mut cmd = self.command();
        cmd.stdout(writer.try_clone()?).stderr(writer);
        Ok((cmd, reader))
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
    /// Give up after this many starts in a row that never became ready.
    pub max_failed_starts: u32,
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
            // With the backoff above: about 15 s of pauses plus five start attempts.
            max_failed_starts: 5,
        }
    }
}

/// What to do after the engine stopped by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Restart,
    GiveUp,
}

/// The restart decision (see the module docs). `failed_starts` counts the runs in a row,
/// this one included, that ended without becoming ready.
pub fn after_exit(
    was_ready: bool,
    deterministic: bool,
    failed_starts: u32,
    max_failed_starts: u32,
) -> Verdict {
    if was_ready {
        Verdict::Restart
    } else if deterministic || failed_starts >= max_failed_starts {
        Verdict::GiveUp
    } else {
        Verdict::Restart
    }
}

/// Ask the supervisor to restart the running engine; answered with the new run's
/// generation once it is started, or why not.
#[derive(Debug)]
pub struct RestartRequest {
    pub reason: String,
    pub done: oneshot::Sender<Result<u64, String>>,
}

/// Ask the supervisor to SIGKILL the engine run `generation` (ignored if that run is
/// over); its exit then counts as a crash, with `reason` as the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillRequest {
    pub generation: u64,
    pub reason: String,
}

/// What the rest of the agent may ask of the supervisor.
#[derive(Debug)]
pub enum Control {
    Restart(RestartRequest),
    Kill(KillRequest),
}

/// How a run ended, or what interrupted waiting for it.
enum RunEvent {
    Exited(ExitKind),
    Restart(RestartRequest),
    Shutdown,
}

/// Builds the process to run; called before every start.
pub type PrepareFn = Box<dyn FnMut() -> anyhow::Result<ProcessSpec> + Send + Sync>;
/// Reads the output of a run that ended.
pub type DiagnoseFn = Box<dyn Fn(&[String]) -> Diagnosis + Send + Sync>;

/// Keeps one engine process running until shutdown. See the module docs.
pub struct Supervisor {
    config: SupervisorConfig,
    prepare: PrepareFn,
    diagnose: DiagnoseFn,
    state: Arc<AgentState>,
    reaper: &'static Reaper,
    output: EngineOutput,
    control: Option<mpsc::Receiver<Control>>,
}

/// The next request, or never (no channel, or its senders are gone).
async fn next_request(control: &mut Option<mpsc::Receiver<Control>>) -> Control {
    if let Some(rx) = control {
        if let Some(req) = rx.recv().await {
            return req;
        }
    }
    std::future::pending().await
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
            diagnose: Box::new(diagnosis::generic),
            state,
            reaper,
            output: EngineOutput::default(),
            control: None,
        }
    }

    /// Read ended runs' output with `diagnose` (default: [`diagnosis::generic`]).
    pub fn with_diagnosis(mut self, diagnose: DiagnoseFn) -> Supervisor {
        self.diagnose = diagnose;
        self
    }

    /// Take restart and kill requests from `control`.
    pub fn with_control(mut self, control: mpsc::Receiver<Control>) -> Supervisor {
        self.control = Some(control);
        self
    }

    /// Keep the engine's output in `output` (shared with the agent, which reads a
    /// standby's lines from it) instead of a buffer of the supervisor's own.
    pub fn with_output(mut self, output: EngineOutput) -> Supervisor {
        self.output = output;
        self
    }

    /// The engine output of the current run.
    pub fn output(&self) -> EngineOutput {
        self.output.clone()
    }

    /// Run until `shutdown` turns true (or its sender goes away), then stop the engine
    /// and return.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        // Consecutive failures for the backoff, and consecutive runs that never became
        // ready for giving up.
        let mut failures: u32 = 0;
        let mut failed_starts: u32 = 0;
        let mut after_death = false;
        let mut requested: Option<oneshot::Sender<Result<u64, String>>> = None;
        loop {
            if *shutdown.borrow() {
                if let Some(done) = requested.take() {
                    let _ = done.send(Err("the agent is shutting down".into()));
                }
                return;
            }
            self.output.begin_run();
            let spawned = (self.prepare)().and_then(|spec| {
                let cannot = |e: std::io::Error| {
                    anyhow::anyhow!("cannot start {}: {e}", spec.program.display())
                };
                // The command (holding the pipe's writing ends) is dropped on return, so
                // the reader sees EOF once the engine and its helpers are gone.
                let (mut cmd, output) = spec.piped_command().map_err(cannot)?;
                let (_child, exit) = self.reaper.spawn(&mut cmd).map_err(cannot)?;
                Ok((output, exit))
            });
            let (pipe, exit) = match spawned {
                Ok(pair) => pair,
                Err(e) => {
                    failures += 1;
                    failed_starts += 1;
                    let msg = format!("{e:#}");
                    tracing::error!(error = %msg, "engine could not be started");
                    self.state.engine_failed(msg.clone());
                    if let Some(done) = requested.take() {
                        let _ = done.send(Err(msg));
                    }
                    if failed_starts >= self.config.max_failed_starts {
                        tracing::error!(
                            attempts = failed_starts,
                            "giving up on the engine until the agent is restarted"
                        );
                        self.idle_until_shutdown(&mut shutdown).await;
                        return;
                    }
                    if self.pause(failures, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            let forwarder = match enginelog::spawn_forwarder("engine-output", pipe, self.output()) {
                Ok(thread) => Some(thread),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the engine output thread; the engine's output is lost");
                    None
                }
            };
            let pid = exit.pid();
            let started = Instant::now();
            let generation = self.state.engine_started(after_death);
            after_death = false;
            tracing::info!(pid, restarts = self.state.restarts(), "engine started");
            if let Some(done) = requested.take() {
                let _ = done.send(Ok(generation));
            }

            let wait = exit.wait();
            tokio::pin!(wait);
            // Why the agent killed this run, if it did.
            let mut killed: Option<String> = None;
            let event = loop {
                tokio::select! {
                    status = &mut wait => break RunEvent::Exited(status),
                    req = next_request(&mut self.control) => match req {
                        Control::Restart(req) => break RunEvent::Restart(req),
                        Control::Kill(kill) if kill.generation == generation && killed.is_none() => {
                            tracing::error!(pid, reason = %kill.reason, "killing the engine (SIGKILL)");
                            self.reaper.signal_group(pid, Signal::SIGKILL);
                            self.reaper.signal(pid, Signal::SIGKILL);
                            killed = Some(kill.reason);
                        }
                        Control::Kill(_) => {}
                    },
                    _ = shutdown.changed() => break RunEvent::Shutdown,
                }
            };
            match event {
                RunEvent::Exited(status) => {
                    // Clean up helpers the engine may have left in its group.
                    self.reaper.signal_group(pid, Signal::SIGKILL);
                    let ran = started.elapsed();
                    // Let the forwarders read what the engine wrote last.
                    let drained = Instant::now() + Duration::from_secs(1);
                    while forwarder.as_ref().is_some_and(|f| !f.is_finished())
                        && Instant::now() < drained
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if ran >= self.config.stable_after {
                        failures = 0;
                    }
                    failures += 1;
                    let ready = self.state.was_ready(generation);
                    failed_starts = if ready { 0 } else { failed_starts + 1 };
                    let diagnosis = (self.diagnose)(&self.output.lines());
                    let msg = match &killed {
                        // The output of a killed run says nothing about why.
                        Some(reason) => {
                            format!("{reason} ({status} after {:.1} s)", ran.as_secs_f64())
                        }
                        None => {
                            let mut msg = format!(
                                "engine exited unexpectedly ({status}) after {:.1} s",
                                ran.as_secs_f64()
                            );
                            if let Some(excerpt) = &diagnosis.excerpt {
                                msg.push_str(": ");
                                msg.push_str(excerpt);
                            }
                            msg
                        }
                    };
                    match after_exit(
                        ready,
                        diagnosis.deterministic,
                        failed_starts,
                        self.config.max_failed_starts,
                    ) {
                        Verdict::Restart => {
                            tracing::warn!("{msg}");
                            after_death = true;
                            self.state.engine_died(msg);
                            if self.pause(failures, &mut shutdown).await {
                                return;
                            }
                        }
                        Verdict::GiveUp => {
                            let reason = failure_reason(&diagnosis, status, ran, failed_starts);
                            tracing::error!(
                                reason = %reason,
                                "the engine cannot start; giving up until the agent is restarted"
                            );
                            self.state.engine_failed(reason);
                            self.idle_until_shutdown(&mut shutdown).await;
                            return;
                        }
                    }
                }
                RunEvent::Restart(req) => {
                    tracing::info!(reason = %req.reason, "restarting the engine on request");
                    self.state.planned_restart();
                    self.stop(pid, wait).await;
                    requested = Some(req.done);
                    failures = 0;
                }
                RunEvent::Shutdown => {
                    self.stop(pid, wait).await;
                    return;
                }
            }
        }
    }

    /// Sleep the backoff; returns true if shutdown was requested meanwhile. Restart
    /// requests in the meantime are refused (there is no engine to restart).
    async fn pause(&mut self, failures: u32, shutdown: &mut watch::Receiver<bool>) -> bool {
        let delay = self.config.backoff.delay(failures);
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "restarting engine after backoff"
        );
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return *shutdown.borrow(),
                _ = shutdown.changed() => return true,
                req = next_request(&mut self.control) => {
                    if let Control::Restart(req) = req {
                        let _ = req.done.send(Err("the engine is not running (it is being restarted after a failure)".into()));
                    }
                }
            }
        }
    }

    /// After giving up: no engine, wait for shutdown, refuse restart requests.
    async fn idle_until_shutdown(&mut self, shutdown: &mut watch::Receiver<bool>) {
        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
                req = next_request(&mut self.control) => {
                    if let Control::Restart(req) = req {
                        let _ = req.done.send(Err("the engine is not running (the agent gave up on it)".into()));
                    }
                }
            }
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

/// `last_error` when the supervisor gives up.
fn failure_reason(diagnosis: &Diagnosis, status: ExitKind, ran: Duration, attempts: u32) -> String {
    let how = format!("{status} after {:.1} s", ran.as_secs_f64());
    let head = if diagnosis.deterministic {
        format!("engine failed to start ({how})")
    } else {
        format!("engine failed to start {attempts} times in a row (last: {how})")
    };
    match &diagnosis.excerpt {
        Some(excerpt) => format!("{head}: {excerpt}"),
        None => head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_contract::{Engine, EngineState};
    use std::sync::Mutex;

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
            max_failed_starts: 100,
        }
    }

    fn new_state() -> Arc<AgentState> {
        Arc::new(AgentState::new("b-t".into(), Engine::Rabbitmq))
    }

    /// Wait (real time) until `cond` holds; fail after `limit`.
    async fn eventually(limit: Duration, what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + limit;
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "{what}: not reached in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn the_failed_decision() {
        // a broker that ran is always restarted, whatever its output says
        assert_eq!(after_exit(true, true, 0, 5), Verdict::Restart);
        assert_eq!(after_exit(true, false, 0, 5), Verdict::Restart);
        // a configuration error: at once
        assert_eq!(after_exit(false, true, 1, 5), Verdict::GiveUp);
        // anything else: after max_failed_starts in a row
        assert_eq!(after_exit(false, false, 1, 5), Verdict::Restart);
        assert_eq!(after_exit(false, false, 4, 5), Verdict::Restart);
        assert_eq!(after_exit(false, false, 5, 5), Verdict::GiveUp);
    }

    #[test]
    fn failure_reasons() {
        let d = Diagnosis {
            excerpt: Some("bad value".into()),
            deterministic: true,
        };
        assert_eq!(
            failure_reason(&d, ExitKind::Code(1), Duration::from_millis(1100), 1),
            "engine failed to start (exit code 1 after 1.1 s): bad value"
        );
        let d = Diagnosis {
            excerpt: None,
            deterministic: false,
        };
        assert_eq!(
            failure_reason(&d, ExitKind::Signal(9), Duration::from_secs(2), 5),
            "engine failed to start 5 times in a row (last: killed by SIGKILL after 2.0 s)"
        );
    }

    /// A diagnosis that calls output with "BAD CONFIG" deterministic.
    fn test_diagnosis() -> DiagnoseFn {
        Box::new(|lines: &[String]| Diagnosis {
            excerpt: diagnosis::last_lines(lines, 1),
            deterministic: lines.iter().any(|l| l.contains("BAD CONFIG")),
        })
    }

    #[tokio::test]
    async fn a_configuration_error_fails_at_once_with_the_engines_words() {
        let state = new_state();
        let starts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = starts.clone();
        let sup = Supervisor::new(
            fast_config(),
            Box::new(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(sh(
                    "echo starting; echo 'BAD CONFIG: heartbeat is banana' >&2; exit 3",
                ))
            }),
            state.clone(),
            Reaper::global(),
        )
        .with_diagnosis(test_diagnosis());
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        eventually(Duration::from_secs(10), "Failed", || {
            state.state() == EngineState::Failed
        })
        .await;
        let err = state.last_error().unwrap();
        assert_eq!(
            err.split_once(" after ").unwrap().0,
            "engine failed to start (exit code 3"
        );
        assert!(err.ends_with("): BAD CONFIG: heartbeat is banana"), "{err}");
        // and it stays that way: no restart loop
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(state.state(), EngineState::Failed);
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn repeated_failed_starts_give_up_after_the_limit() {
        let state = new_state();
        let (ctl_tx, ctl_rx) = mpsc::channel(1);
        let starts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = starts.clone();
        let sup = Supervisor::new(
            SupervisorConfig {
                max_failed_starts: 3,
                ..fast_config()
            },
            Box::new(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(sh("echo 'cannot reach the disk' >&2; exit 1"))
            }),
            state.clone(),
            Reaper::global(),
        )
        .with_diagnosis(test_diagnosis())
        .with_control(ctl_rx);
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        eventually(Duration::from_secs(10), "Failed", || {
            state.state() == EngineState::Failed
        })
        .await;
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 3);
        let err = state.last_error().unwrap();
        assert!(
            err.starts_with("engine failed to start 3 times in a row (last: exit code 1"),
            "{err}"
        );
        assert!(err.ends_with(": cannot reach the disk"), "{err}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 3);
        // restart requests are refused now
        let (done_tx, done_rx) = oneshot::channel();
        ctl_tx
            .send(Control::Restart(RestartRequest {
                reason: "test".into(),
                done: done_tx,
            }))
            .await
            .unwrap();
        let refused = tokio::time::timeout(Duration::from_secs(5), done_rx)
            .await
            .unwrap()
            .unwrap();
        assert!(refused.unwrap_err().contains("gave up"));
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn an_engine_that_was_ready_is_restarted_whatever_it_printed() {
        let state = new_state();
        let starts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = starts.clone();
        let sup = Supervisor::new(
            fast_config(),
            Box::new(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(sh("sleep 0.3; echo 'BAD CONFIG after all'; exit 1"))
            }),
            state.clone(),
            Reaper::global(),
        )
        .with_diagnosis(test_diagnosis());
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        eventually(Duration::from_secs(10), "running", || state.phase().1 == 1).await;
        let (_, g) = state.phase();
        assert!(state.mark_ready(g).is_some());
        eventually(Duration::from_secs(10), "restarted", || {
            starts.load(std::sync::atomic::Ordering::SeqCst) >= 2
        })
        .await;
        assert_ne!(state.state(), EngineState::Failed);
        assert!(state.restarts() >= 1);
        assert!(state
            .last_error()
            .unwrap()
            .ends_with("s: BAD CONFIG after all"));
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn restart_on_request_is_not_a_crash() {
        let state = new_state();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!(
            "echo $$ > {}; echo hello from the engine; exec sleep 60",
            pidfile.display()
        );
        let starts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = starts.clone();
        let (ctl_tx, ctl_rx) = mpsc::channel(1);
        let sup = Supervisor::new(
            fast_config(),
            Box::new(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(sh(&script))
            }),
            state.clone(),
            Reaper::global(),
        )
        .with_control(ctl_rx);
        let output = sup.output();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        let read_pid = || {
            std::fs::read_to_string(&pidfile)
                .ok()
                .filter(|s| s.ends_with('\n'))
                .and_then(|s| s.trim().parse::<u32>().ok())
        };
        eventually(Duration::from_secs(10), "engine running", || {
            read_pid().is_some()
        })
        .await;
        let first = read_pid().unwrap();
        eventually(Duration::from_secs(5), "output captured", || {
            output.lines().iter().any(|l| l == "hello from the engine")
        })
        .await;
        let (_, g1) = state.phase();
        state.mark_ready(g1);
        std::fs::remove_file(&pidfile).unwrap();

        let (done_tx, done_rx) = oneshot::channel();
        ctl_tx
            .send(Control::Restart(RestartRequest {
                reason: "test".into(),
                done: done_tx,
            }))
            .await
            .unwrap();
        let g2 = tokio::time::timeout(Duration::from_secs(10), done_rx)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(g2 > g1);
        eventually(Duration::from_secs(10), "new engine", || {
            read_pid().is_some()
        })
        .await;
        assert_ne!(read_pid().unwrap(), first);
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(state.restarts(), 0);
        assert_eq!(state.state(), EngineState::Starting);
        assert_eq!(state.phase().1, g2);
        // the old process is gone
        eventually(Duration::from_secs(5), "old engine gone", || {
            std::fs::read_to_string(format!("/proc/{first}/stat")).map_or(true, |s| {
                s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z')
            })
        })
        .await;
        state.set_stopping();
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_kill_request_kills_the_run_and_counts_as_a_crash() {
        let state = new_state();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // a hung engine: ignores SIGTERM, answers nothing
        let script = format!(
            "trap '' TERM; echo $$ > {}; echo still here; exec sleep 60",
            pidfile.display()
        );
        let (ctl_tx, ctl_rx) = mpsc::channel(1);
        let sup = Supervisor::new(
            fast_config(),
            Box::new(move || Ok(sh(&script))),
            state.clone(),
            Reaper::global(),
        )
        .with_diagnosis(test_diagnosis())
        .with_control(ctl_rx);
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        let read_pid = || {
            std::fs::read_to_string(&pidfile)
                .ok()
                .filter(|s| s.ends_with('\n'))
                .and_then(|s| s.trim().parse::<u32>().ok())
        };
        eventually(Duration::from_secs(10), "engine running", || {
            read_pid().is_some()
        })
        .await;
        let first = read_pid().unwrap();
        let (_, g1) = state.phase();
        assert!(state.mark_ready(g1).is_some());
        std::fs::remove_file(&pidfile).unwrap();

        // a request for another (older) run is ignored
        ctl_tx
            .send(Control::Kill(KillRequest {
                generation: g1 - 1,
                reason: "stale".into(),
            }))
            .await
            .unwrap();
        ctl_tx
            .send(Control::Kill(KillRequest {
                generation: g1,
                reason: "engine hung: test".into(),
            }))
            .await
            .unwrap();
        eventually(Duration::from_secs(10), "restarted", || {
            read_pid().is_some()
        })
        .await;
        assert_ne!(read_pid().unwrap(), first);
        assert_eq!(state.restarts(), 1);
        let err = state.last_error().unwrap();
        assert!(
            err.starts_with("engine hung: test (killed by SIGKILL after "),
            "{err}"
        );
        assert!(!err.contains("still here"), "{err}");
        state.set_stopping();
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = SupervisorConfig::default().backoff;
        let secs: Vec<u64> = (1..=8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.delay(1000), Duration::from_secs(30));
    }

    /// No process involved (the program does not exist), so tokio's paused clock makes
    /// the backoff schedule exact.
    #[tokio::test(start_paused = true)]
    async fn failed_starts_back_off_exponentially_and_report_failed() {
        let state = new_state();
        let calls = Arc::new(Mutex::new(Vec::<tokio::time::Instant>::new()));
        let record = calls.clone();
        let sup = Supervisor::new(
            fast_config(),
            Box::new(move || {
                record.lock().unwrap().push(tokio::time::Instant::now());
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
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(state.state(), EngineState::Failed);
        assert!(state.last_error().unwrap().contains("/nonexistent/engine"));
        assert_eq!(state.restarts(), 0);
        let times = calls.lock().unwrap().clone();
        let gaps: Vec<u128> = times
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis())
            .collect();
        assert_eq!(&gaps[..5], &[20, 40, 80, 80, 80], "{gaps:?}");
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn failed_prepares_give_up_after_the_limit() {
        let state = new_state();
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = calls.clone();
        let sup = Supervisor::new(
            SupervisorConfig {
                max_failed_starts: 3,
                ..fast_config()
            },
            Box::new(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                anyhow::bail!("the configuration revision is not well-formed XML")
            }),
            state.clone(),
            Reaper::global(),
        );
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(state.state(), EngineState::Failed);
        assert!(state.last_error().unwrap().contains("not well-formed"));
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn crashing_engine_is_restarted() {
        let state = new_state();
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
        eventually(Duration::from_secs(20), "three starts", || {
            starts.load(std::sync::atomic::Ordering::SeqCst) >= 3
        })
        .await;
        assert!(state.restarts() >= 2);
        assert!(matches!(state.state(), EngineState::Restarting));
        assert!(state.last_error().unwrap().contains("exit code 1"));
        state.set_stopping();
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn running_engine_is_stopped_with_sigterm() {
        let state = new_state();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 60", pidfile.display());
        let sup = Supervisor::new(
            SupervisorConfig {
                stop_timeout: Duration::from_secs(30),
                ..fast_config()
            },
            Box::new(move || Ok(sh(&script))),
            state.clone(),
            Reaper::global(),
        );
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        eventually(Duration::from_secs(10), "engine running", || {
            std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
        })
        .await;
        assert_eq!(state.state(), EngineState::Starting);
        assert_eq!(state.restarts(), 0);
        let begun = Instant::now();
        state.set_stopping();
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(25), task)
            .await
            .unwrap()
            .unwrap();
        // SIGTERM worked: it did not take the 30 s stop timeout (and a SIGKILL)
        assert!(begun.elapsed() < Duration::from_secs(20));
        assert_eq!(state.restarts(), 0);
        assert_eq!(state.state(), EngineState::Stopping);
    }

    #[tokio::test]
    async fn engine_ignoring_sigterm_is_killed_with_its_group() {
        let state = new_state();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        // The shell ignores TERM and has a grandchild (like sh → beam.smp).
        let script = format!(
            "trap '' TERM; sleep 60 & echo $! > {}; wait",
            pidfile.display()
        );
        let sup = Supervisor::new(
            fast_config(),
            Box::new(move || Ok(sh(&script))),
            state.clone(),
            Reaper::global(),
        );
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sup.run(rx));
        eventually(Duration::from_secs(10), "grandchild started", || {
            std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
        })
        .await;
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let begun = Instant::now();
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        // it waited the whole stop timeout (timers never fire early)
        let took = begun.elapsed();
        assert!(took >= Duration::from_millis(450), "stopped after {took:?}");
        // the grandchild died with the group (it may linger as a zombie until reaped)
        let dead = || {
            let stat =
                std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
            stat.is_empty()
                || stat[stat.rfind(')').unwrap() + 1..]
                    .trim_start()
                    .starts_with('Z')
        };
        eventually(Duration::from_secs(10), "grandchild dead", dead).await;
    }
}
