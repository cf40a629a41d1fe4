//! The readiness monitor: turns the driver's probe results into lifecycle state.
//!
//! While Starting/Restarting it probes every 250 ms and, once the engine answers (a
//! protocol-level check, see each driver's probe module), reconciles users if needed
//! before reporting Ready. While Ready it runs the driver's cheaper *liveness* check
//! every 5 s (flipping back to Starting if the engine stops answering), retries a
//! pending user reconciliation and follows live changes of the memory limit.
//!
//! The monitor knows only the [`EngineDriver`](crate::engine::EngineDriver) trait
//! (through the shared [`Agent`] context), never a particular engine.

use std::time::Duration;

use agent_contract::EngineState;
use tokio::sync::watch;

use crate::context::Agent;

/// Cadence of [`monitor`].
#[derive(Debug, Clone, Copy)]
pub struct MonitorConfig {
    /// Probe interval while Starting/Restarting.
    pub poll: Duration,
    /// Probe interval while Ready.
    pub ready: Duration,
    /// Pause after a failed user reconciliation.
    pub retry_after_error: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            poll: Duration::from_millis(250),
            ready: Duration::from_secs(5),
            retry_after_error: Duration::from_secs(2),
        }
    }
}

/// Drive Starting/Restarting → Ready → … until `shutdown`. See the module docs.
pub async fn monitor(
    agent: std::sync::Arc<Agent>,
    config: MonitorConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let delay = step(&agent, &config).await;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One monitor step; returns how long to wait before the next.
async fn step(agent: &Agent, config: &MonitorConfig) -> Duration {
    let (state, generation) = agent.state.phase();
    match state {
        EngineState::Starting | EngineState::Restarting => {
            if agent.driver.probe().await.is_err() {
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
                    "engine ready (protocol answers, users in place)"
                );
            }
            config.ready
        }
        EngineState::Ready => {
            if let Err(e) = agent.driver.liveness().await {
                let msg = format!("engine stopped answering: {e}");
                if agent.state.mark_unready(generation, msg.clone()) {
                    tracing::warn!("{msg}");
                }
                return config.poll;
            }
            if agent.users_dirty() {
                if let Err(e) = agent.reconcile_users().await {
                    let msg = format!("user reconciliation failed: {e:#}");
                    tracing::warn!("{msg}");
                    agent.state.set_last_error(msg);
                }
            }
            agent.follow_memory_limit().await;
            config.ready
        }
        // Standby: the engine waits for the shared store's lock; nothing to probe yet.
        EngineState::Standby | EngineState::Stopping | EngineState::Failed => config.poll,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sample_spec, test_agent};
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
            retry_after_error: Duration::from_millis(20),
        }
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
}
