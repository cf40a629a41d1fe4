//! The readiness monitor: turns the driver's probe results into lifecycle state.
//!
//! While Starting/Restarting it probes every 250 ms and, once the engine answers (a
//! protocol-level check, see each driver's probe module), reconciles users if needed
//! before reporting Ready. While Ready it runs the driver's cheaper *liveness* check
//! every 5 s (flipping back to Starting if the engine stops answering), retries a
//! pending user reconciliation, follows live changes of the memory limit and, on a
//! cluster node, records the members the engine sees running.
//!
//! **Shared storage** (`Topology::SharedStorage`, an active/standby pair on one volume):
//! - *Standby*: while the probe fails, the monitor asks the driver whether the output
//!   of the current run says the engine waits for the store's lock
//!   ([`EngineDriver::waits_for_lock`](crate::engine::EngineDriver::waits_for_lock)) and
//!   reports `Standby` if so; it keeps probing every 250 ms, and when the lock passes to
//!   it the engine answers and becomes Ready (through Starting, if the output shows the
//!   lock taken before the protocol answers). A Single node never reports Standby.
//! - *Hung active*: while Ready, liveness runs every [`MonitorConfig::ready_shared`]
//!   (1 s), each check cut off after [`MonitorConfig::liveness_timeout`] (1 s) so that a
//!   frozen engine cannot stall the monitor. When a run that was Ready has not answered
//!   for [`MonitorConfig::hung_after`] (3 s) while its process is alive (the run is still
//!   the current generation), the monitor records why in `last_error` and asks the
//!   supervisor to SIGKILL it: a frozen JVM keeps its lock on the store, so the standby
//!   would never take over otherwise. The supervisor restarts it with backoff like any
//!   crash, and it comes back as the standby. Single nodes are never killed.
//!
//! **Alarms**: after every step the monitor lets [`AlarmWatch`] check the engine alarms
//! if the last check is [`MonitorConfig::alarms`] (15 s) old (see [`crate::alarms`]).
//!
//! The monitor knows only the [`EngineDriver`](crate::engine::EngineDriver) trait
//! (through the shared [`Agent`] context), never a particular engine.

use std::time::Duration;

use agent_contract::{EngineState, Topology};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::alarms::AlarmWatch;
use crate::context::Agent;

/// Cadence of [`monitor`].
#[derive(Debug, Clone, Copy)]
pub struct MonitorConfig {
    /// Probe interval while Starting/Restarting/Standby (and after a failed liveness
    /// check of a shared-storage node).
    pub poll: Duration,
    /// Liveness interval while Ready.
    pub ready: Duration,
    /// Liveness interval while Ready on shared storage (a hung active must be found fast).
    pub ready_shared: Duration,
    /// Shared storage: a liveness check that has not answered by then has failed.
    pub liveness_timeout: Duration,
    /// Shared storage: a Ready run that has not answered for this long while its process
    /// is alive is killed.
    pub hung_after: Duration,
    /// Pause after a failed user reconciliation.
    pub retry_after_error: Duration,
    /// Engine alarms are checked at most this often.
    pub alarms: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            poll: Duration::from_millis(250),
            ready: Duration::from_secs(5),
            ready_shared: Duration::from_secs(1),
            liveness_timeout: Duration::from_secs(1),
            hung_after: Duration::from_secs(3),
            retry_after_error: Duration::from_secs(2),
            alarms: crate::alarms::CHECK_EVERY,
        }
    }
}

/// How long a cluster node's member list may take.
const CLUSTER_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The last answer of a run that was Ready on shared storage (for the hung check).
#[derive(Debug, Clone, Copy)]
struct Answered {
    generation: u64,
    at: Instant,
    /// The kill of this run was asked for.
    kill_requested: bool,
}

/// Drive Starting/Restarting → (Standby →) Ready → … until `shutdown`. See the module
/// docs.
pub async fn monitor(
    agent: std::sync::Arc<Agent>,
    config: MonitorConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut answered: Option<Answered> = None;
    let mut alarms = AlarmWatch::new(config.alarms);
    loop {
        let delay = step(&agent, &config, &mut answered).await;
        alarms.maybe_check(&agent).await;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The driver's liveness check, failed if it takes longer than `limit`.
async fn liveness_within(agent: &Agent, limit: Duration) -> anyhow::Result<()> {
    match tokio::time::timeout(limit, agent.driver.liveness()).await {
        Ok(result) => result,
        Err(_) => anyhow::bail!("no answer within {limit:?}"),
    }
}

/// One monitor step; returns how long to wait before the next.
async fn step(agent: &Agent, config: &MonitorConfig, answered: &mut Option<Answered>) -> Duration {
    let (state, generation) = agent.state.phase();
    let topology = agent.topology();
    let shared = topology == Topology::SharedStorage;
    // The hung check follows one run only.
    if answered.is_some_and(|a| a.generation != generation) || !shared {
        *answered = None;
    }
    match state {
        EngineState::Starting | EngineState::Restarting | EngineState::Standby => {
            // A run that was Ready and stopped answering: watched for a hang.
            let watched = answered.is_some();
            let result = if watched {
                liveness_within(agent, config.liveness_timeout).await
            } else {
                agent.driver.probe().await
            };
            if let Err(e) = result {
                if watched {
                    hung_check(agent, config, answered, generation, &e);
                } else if shared {
                    follow_lock(agent, state, generation);
                }
                return config.poll;
            }
            let reconciled = if agent.users_dirty() {
                agent.reconcile_users().await
            } else {
                Ok(())
            };
            if let Err(e) = reconciled {
                let msg = format!("engine answers but user reconciliation failed: {e:#}");
                tracing::warn!("{msg}");
                agent.state.set_last_error(msg);
                return config.retry_after_error;
            }
            if let Some(took) = agent.state.mark_ready(generation) {
                tracing::info!(
                    secs = format!("{:.2}", took.as_secs_f64()),
                    was = ?state,
                    "engine ready (protocol answers, users in place)"
                );
            }
            if shared {
                *answered = Some(Answered {
                    generation,
                    at: Instant::now(),
                    kill_requested: false,
                });
                config.ready_shared
            } else if topology == Topology::Cluster {
                // Ask for the members at once: the control plane waits for them.
                config.poll
            } else {
                config.ready
            }
        }
        EngineState::Ready => {
            let result = if shared {
                liveness_within(agent, config.liveness_timeout).await
            } else {
                agent.driver.liveness().await
            };
            if let Err(e) = result {
                let msg = format!("engine stopped answering: {e}");
                if agent.state.mark_unready(generation, msg.clone()) {
                    tracing::warn!("{msg}");
                }
                if shared {
                    hung_check(agent, config, answered, generation, &e);
                }
                return config.poll;
            }
            if shared {
                *answered = Some(Answered {
                    generation,
                    at: Instant::now(),
                    kill_requested: false,
                });
            }
            if agent.users_dirty() {
                if let Err(e) = agent.reconcile_users().await {
                    let msg = format!("user reconciliation failed: {e:#}");
                    tracing::warn!("{msg}");
                    agent.state.set_last_error(msg);
                }
            }
            agent.follow_memory_limit().await;
            if topology == Topology::Cluster {
                let members =
                    tokio::time::timeout(CLUSTER_QUERY_TIMEOUT, agent.driver.cluster_running())
                        .await
                        .unwrap_or(None);
                // While not every member is seen running, look again soon.
                let complete = members
                    .as_ref()
                    .is_some_and(|m| m.len() >= agent.node_count() as usize);
                agent.state.set_cluster_running(members);
                if !complete {
                    return config.ready_shared;
                }
            }
            if shared {
                config.ready_shared
            } else {
                config.ready
            }
        }
        EngineState::Stopping | EngineState::Failed => config.poll,
    }
}

/// Shared storage, the probe failed: Standby while the engine's output says it waits for
/// the store's lock, Starting once it says it has it.
fn follow_lock(agent: &Agent, state: EngineState, generation: u64) {
    let waiting = agent.driver.waits_for_lock(&agent.engine_output().lines());
    if waiting && state != EngineState::Standby {
        if let Some(took) = agent.state.mark_standby(generation) {
            tracing::info!(
                secs = format!("{:.2}", took.as_secs_f64()),
                "engine is a standby: it waits for the shared store's lock"
            );
        }
    } else if !waiting && state == EngineState::Standby && agent.state.leave_standby(generation) {
        tracing::info!("the standby got the store's lock; the engine is starting");
    }
}

/// Shared storage, a run that was Ready did not answer (`error`): kill it once it has
/// been silent for `hung_after` (see the module docs).
fn hung_check(
    agent: &Agent,
    config: &MonitorConfig,
    answered: &mut Option<Answered>,
    generation: u64,
    error: &anyhow::Error,
) {
    let now = Instant::now();
    let last = answered.get_or_insert(Answered {
        generation,
        at: now,
        kill_requested: false,
    });
    let silent = now.saturating_duration_since(last.at);
    if silent < config.hung_after || last.kill_requested {
        return;
    }
    let msg = format!(
        "engine hung: no answer for {:.1} s while its process is alive (last check: {error}); killed so the standby takes over",
        silent.as_secs_f64()
    );
    tracing::error!("{msg}");
    agent.state.set_last_error(msg.clone());
    // A full channel (a restart request in progress): asked again at the next check.
    last.kill_requested = agent.request_kill(generation, msg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::{Control, KillRequest};
    use crate::testutil::{
        sample_spec, shared_storage_spec, test_agent, test_agent_with, FAKE_LOCKED, FAKE_WAITING,
    };
    use std::sync::atomic::Ordering;

    /// Poll `cond` for up to 5 s of (paused, auto-advancing) tokio time.
    async fn wait_for(cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not reached in 5 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn fast_monitor() -> MonitorConfig {
        MonitorConfig {
            poll: Duration::from_millis(10),
            ready: Duration::from_millis(30),
            ready_shared: Duration::from_millis(30),
            liveness_timeout: Duration::from_millis(20),
            hung_after: Duration::from_millis(100),
            retry_after_error: Duration::from_millis(20),
            alarms: Duration::from_millis(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn engine_alarms_reach_the_health_report_while_ready() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent(dir.path());
        *driver.alarms.lock().unwrap() = vec![agent_contract::EngineAlarm {
            code: agent_contract::alarm_codes::RABBITMQ_MEMORY_ALARM.into(),
            message: "memory alarm: 900 of 800 bytes".into(),
        }];
        agent.state.engine_started(false);
        let (_tx, rx) = watch::channel(false);
        tokio::spawn(monitor(agent.clone(), fast_monitor(), rx));
        // not Ready: the engine is not asked
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(agent.state.report().alarms.is_empty());
        driver.probe_ok.store(true, Ordering::SeqCst);
        wait_for(|| agent.state.report().alarms.len() == 1).await;
        assert_eq!(
            agent.state.report().alarms[0].code,
            agent_contract::alarm_codes::RABBITMQ_MEMORY_ALARM
        );
        // cleared by the engine: gone at the next check
        driver.alarms.lock().unwrap().clear();
        wait_for(|| agent.state.report().alarms.is_empty()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn reports_ready_only_after_users_are_reconciled() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent(dir.path());
        agent.state.engine_started(false);
        let (tx, rx) = watch::channel(false);
        tokio::spawn(monitor(agent.clone(), fast_monitor(), rx));

        // engine not answering: stays Starting, no reconciliation (6 probe rounds)
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(agent.state.state(), EngineState::Starting);
        assert!(driver.reconciled.lock().unwrap().is_empty());

        // answering but reconciliation fails: still not Ready
        driver.fail_reconcile.store(true, Ordering::SeqCst);
        driver.probe_ok.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(agent.state.state(), EngineState::Starting);
        assert!(agent.state.last_error().unwrap().contains("exploded"));

        driver.fail_reconcile.store(false, Ordering::SeqCst);
        wait_for(|| agent.state.state() == EngineState::Ready).await;
        assert_eq!(driver.reconciled.lock().unwrap()[0], vec!["admin"]);

        // stops answering: back to Starting; answers again: Ready again
        driver.probe_ok.store(false, Ordering::SeqCst);
        wait_for(|| agent.state.state() == EngineState::Starting).await;
        driver.probe_ok.store(true, Ordering::SeqCst);
        wait_for(|| agent.state.state() == EngineState::Ready).await;

        // a live memory-limit change is pushed to the engine
        *driver.limit.lock().unwrap() = Some(2 << 30);
        wait_for(|| agent.state.memory_limit() == Some(2 << 30)).await;
        assert_eq!(driver.memory_applied.lock().unwrap()[0], Some(2 << 30));

        tx.send(true).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_live_reconciliation_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent(dir.path());
        let g = agent.state.engine_started(false);
        agent.state.mark_ready(g);
        driver.fail_reconcile.store(true, Ordering::SeqCst);
        assert!(agent.update_spec(sample_spec()).await.is_err());
        assert!(agent.users_dirty());
        driver.fail_reconcile.store(false, Ordering::SeqCst);
        driver.probe_ok.store(true, Ordering::SeqCst);
        let (tx, rx) = watch::channel(false);
        tokio::spawn(monitor(agent.clone(), fast_monitor(), rx));
        wait_for(|| !agent.users_dirty()).await;
        tx.send(true).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, _driver) = test_agent(dir.path());
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(monitor(agent, fast_monitor(), rx));
        tokio::time::sleep(Duration::from_millis(25)).await;
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_storage_node_waiting_for_the_lock_is_a_standby_until_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent_with(dir.path(), shared_storage_spec(1));
        let g = agent.state.engine_started(false);
        let output = agent.engine_output();
        output.push(b"engine starting");
        let (tx, rx) = watch::channel(false);
        tokio::spawn(monitor(agent.clone(), MonitorConfig::default(), rx));

        // no answer, nothing said about the lock yet: Starting
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(agent.state.state(), EngineState::Starting);
        // the engine says it waits for the lock: Standby, a healthy run
        output.push(FAKE_WAITING.as_bytes());
        wait_for(|| agent.state.state() == EngineState::Standby).await;
        assert!(agent.state.was_ready(g));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(agent.state.state(), EngineState::Standby);

        // the lock passes to it and the protocol answers: Ready, users reconciled first
        assert!(agent.users_dirty());
        driver.probe_ok.store(true, Ordering::SeqCst);
        let before = tokio::time::Instant::now();
        wait_for(|| agent.state.state() == EngineState::Ready).await;
        // found by the standby's 250 ms polling
        assert!(before.elapsed() <= Duration::from_millis(250));
        assert_eq!(driver.reconciled.lock().unwrap().len(), 1);
        tx.send(true).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_that_got_the_lock_is_starting_until_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent_with(dir.path(), shared_storage_spec(0));
        agent.state.engine_started(false);
        let output = agent.engine_output();
        output.push(FAKE_WAITING.as_bytes());
        let (tx, rx) = watch::channel(false);
        tokio::spawn(monitor(agent.clone(), fast_monitor(), rx));
        wait_for(|| agent.state.state() == EngineState::Standby).await;
        output.push(FAKE_LOCKED.as_bytes());
        wait_for(|| agent.state.state() == EngineState::Starting).await;
        // it never goes back to Standby on the old line
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(agent.state.state(), EngineState::Starting);
        driver.probe_ok.store(true, Ordering::SeqCst);
        wait_for(|| agent.state.state() == EngineState::Ready).await;
        tx.send(true).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_node_never_reports_standby() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, _driver) = test_agent(dir.path());
        agent.state.engine_started(false);
        agent.engine_output().push(FAKE_WAITING.as_bytes());
        let (tx, rx) = watch::channel(false);
        tokio::spawn(monitor(agent.clone(), fast_monitor(), rx));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(agent.state.state(), EngineState::Starting);
        tx.send(true).unwrap();
    }

    /// The next kill request the supervisor would get.
    async fn next_kill(rx: &mut tokio::sync::mpsc::Receiver<Control>) -> KillRequest {
        match rx.recv().await.unwrap() {
            Control::Kill(k) => k,
            Control::Restart(r) => panic!("unexpected restart request: {}", r.reason),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_active_on_shared_storage_is_killed_after_hung_after() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent_with(dir.path(), shared_storage_spec(0));
        let mut control = agent.take_control().unwrap();
        let config = MonitorConfig::default();
        let g = agent.state.engine_started(false);
        driver.probe_ok.store(true, Ordering::SeqCst);
        let (tx, rx) = watch::channel(false);
        tokio::spawn(monitor(agent.clone(), config, rx));
        wait_for(|| agent.state.state() == EngineState::Ready).await;

        // healthy for a while: checked every second, never killed
        let answered = driver.reconciled.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        assert_eq!(agent.state.state(), EngineState::Ready);
        assert!(control.try_recv().is_err());
        assert_eq!(driver.reconciled.lock().unwrap().len(), answered);

        // the engine freezes: its checks time out, and once it has been silent for
        // hung_after the monitor asks for the kill of exactly that run
        driver.probe_hangs.store(true, Ordering::SeqCst);
        let frozen = tokio::time::Instant::now();
        let kill = next_kill(&mut control).await;
        let after = frozen.elapsed();
        assert_eq!(kill.generation, g);
        assert!(
            kill.reason.starts_with("engine hung: no answer for 3."),
            "{}",
            kill.reason
        );
        assert!(kill.reason.ends_with("killed so the standby takes over"));
        // silent since the last answer (≤ ready_shared before the freeze) for hung_after,
        // found by a check that takes at most liveness_timeout (+ a poll)
        assert!(
            after >= config.hung_after - config.ready_shared
                && after <= config.hung_after + config.liveness_timeout + config.poll,
            "killed {after:?} after the freeze"
        );
        assert_eq!(agent.state.last_error().unwrap(), kill.reason);
        assert_ne!(agent.state.state(), EngineState::Ready);
        // asked once per run
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(control.try_recv().is_err());

        // the supervisor killed and restarted it; the other node holds the lock now
        agent.state.engine_died(kill.reason.clone());
        let g2 = agent.state.engine_started(true);
        driver.probe_hangs.store(false, Ordering::SeqCst);
        driver.probe_ok.store(false, Ordering::SeqCst);
        agent.engine_output().begin_run();
        agent.engine_output().push(FAKE_WAITING.as_bytes());
        wait_for(|| agent.state.phase() == (EngineState::Standby, g2)).await;
        // a standby is not watched for hangs
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(control.try_recv().is_err());
        tx.send(true).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn nodes_are_not_killed_when_single_or_never_ready() {
        // a Single node whose engine stops answering: Starting, never killed
        let dir = tempfile::tempdir().unwrap();
        let (agent, driver) = test_agent(dir.path());
        let mut control = agent.take_control().unwrap();
        agent.state.engine_started(false);
        driver.probe_ok.store(true, Ordering::SeqCst);
        let (tx, rx) = watch::channel(false);
        tokio::spawn(monitor(agent.clone(), MonitorConfig::default(), rx));
        wait_for(|| agent.state.state() == EngineState::Ready).await;
        driver.probe_ok.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(agent.state.state(), EngineState::Starting);
        assert!(control.try_recv().is_err());
        tx.send(true).unwrap();

        // a shared-storage engine that never answered (a long recovery) is left alone
        let dir = tempfile::tempdir().unwrap();
        let (agent, _driver) = test_agent_with(dir.path(), shared_storage_spec(0));
        let mut control = agent.take_control().unwrap();
        agent.state.engine_started(false);
        let (tx, rx) = watch::channel(false);
        tokio::spawn(monitor(agent.clone(), MonitorConfig::default(), rx));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(agent.state.state(), EngineState::Starting);
        assert!(control.try_recv().is_err());
        tx.send(true).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_cluster_node_reports_the_members_it_sees() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sample_spec();
        spec.node.topology = Topology::Cluster;
        let (agent, driver) = test_agent_with(dir.path(), spec);
        *driver.cluster_members.lock().unwrap() = Some(vec!["rabbit@a".into(), "rabbit@b".into()]);
        agent.state.engine_started(false);
        driver.probe_ok.store(true, Ordering::SeqCst);
        let (tx, rx) = watch::channel(false);
        tokio::spawn(monitor(agent.clone(), fast_monitor(), rx));
        wait_for(|| {
            agent
                .state
                .report()
                .cluster_running
                .is_some_and(|m| m.len() == 2)
        })
        .await;
        tx.send(true).unwrap();
    }
}
