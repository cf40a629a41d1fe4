//! The agent's view of the engine's lifecycle, as reported by `GET /health`.
//!
//! Three actors update it concurrently: the supervisor (process started / died /
//! stopping), the readiness monitor (protocol answers, users reconciled) and the HTTP API
//! (reads). Every engine start gets a new *generation* so the monitor can never mark a
//! process Ready that has died in the meantime, and `Stopping` is sticky so a shutdown is
//! never reported as anything else.
//!
//! A node of an active/standby pair on shared storage may be `Standby` (its engine runs
//! and waits for the store's lock, see [`AgentState::mark_standby`]): a healthy state,
//! like Ready, from which it becomes Ready when the lock passes to it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use agent_contract::{Engine, EngineAlarm, EngineState, HealthReport};

#[derive(Debug)]
struct Inner {
    state: EngineState,
    restarts: u32,
    last_error: Option<String>,
    memory_limit: Option<u64>,
    generation: u64,
    started_at: Option<Instant>,
    /// The last generation that reached Ready or Standby.
    healthy_generation: Option<u64>,
    /// An engine process of the current generation is running.
    running: bool,
    /// Cluster members the engine last said were running (see `set_cluster_running`).
    cluster_running: Option<Vec<String>>,
    /// Engine alarms raised right now (see `set_alarms`).
    alarms: Vec<EngineAlarm>,
}

/// Shared lifecycle bookkeeping. Cheap to lock; never held across `.await`.
#[derive(Debug)]
pub struct AgentState {
    started: Instant,
    broker_id: String,
    engine: Engine,
    inner: Mutex<Inner>,
}

impl AgentState {
    pub fn new(broker_id: String, engine: Engine) -> AgentState {
        AgentState {
            started: Instant::now(),
            broker_id,
            engine,
            inner: Mutex::new(Inner {
                state: EngineState::Starting,
                restarts: 0,
                last_error: None,
                memory_limit: None,
                generation: 0,
                started_at: None,
                healthy_generation: None,
                running: false,
                cluster_running: None,
                alarms: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Snapshot for `GET /health`.
    pub fn report(&self) -> HealthReport {
        let inner = self.lock();
        HealthReport {
            broker_id: self.broker_id.clone(),
            engine: self.engine,
            state: inner.state,
            restarts: inner.restarts,
            uptime_secs: self.started.elapsed().as_secs(),
            memory_limit_bytes: inner.memory_limit,
            last_error: inner.last_error.clone(),
            cluster_running: inner.cluster_running.clone(),
            alarms: inner.alarms.clone(),
        }
    }

    /// Replaces the engine alarms the node reports (empty: none).
    pub fn set_alarms(&self, alarms: Vec<EngineAlarm>) {
        self.lock().alarms = alarms;
    }

    /// Records the cluster members the engine sees running (`None`: not known).
    pub fn set_cluster_running(&self, members: Option<Vec<String>>) {
        self.lock().cluster_running = members;
    }

    /// Current state and engine generation.
    pub fn phase(&self) -> (EngineState, u64) {
        let inner = self.lock();
        (inner.state, inner.generation)
    }

    pub fn state(&self) -> EngineState {
        self.lock().state
    }

    pub fn restarts(&self) -> u32 {
        self.lock().restarts
    }

    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    pub fn memory_limit(&self) -> Option<u64> {
        self.lock().memory_limit
    }

    pub fn set_memory_limit(&self, limit: Option<u64>) {
        self.lock().memory_limit = limit;
    }

    pub fn set_last_error(&self, msg: impl Into<String>) {
        self.lock().last_error = Some(msg.into());
    }

    /// A new engine process is running. `after_death` counts it as a restart.
    /// Returns its generation.
    pub fn engine_started(&self, after_death: bool) -> u64 {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.started_at = Some(Instant::now());
        inner.running = true;
        if after_death {
            inner.restarts += 1;
        }
        if inner.state != EngineState::Stopping {
            inner.state = if after_death || inner.restarts > 0 {
                EngineState::Restarting
            } else {
                EngineState::Starting
            };
        }
        inner.generation
    }

    /// The engine died without being asked to.
    pub fn engine_died(&self, msg: String) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.running = false;
        inner.last_error = Some(msg);
        if inner.state != EngineState::Stopping {
            inner.state = EngineState::Restarting;
        }
    }

    /// The agent is restarting a healthy engine on purpose (e.g. to load a renewed
    /// certificate): not a crash, so no restart is counted, but the running generation
    /// ends now, so the monitor never takes the stopping process for a failing one.
    pub fn planned_restart(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.running = false;
        if inner.state != EngineState::Stopping {
            inner.state = EngineState::Restarting;
        }
    }

    /// Whether the engine run `generation` reached Ready, or Standby: a standby is an
    /// engine that started correctly too (the supervisor restarts either whatever it
    /// printed, see [`crate::supervisor`]).
    pub fn was_ready(&self, generation: u64) -> bool {
        self.lock().healthy_generation == Some(generation)
    }

    /// The engine could not be started (or the supervisor gave up on it): Failed, with
    /// the reason.
    pub fn engine_failed(&self, msg: String) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.running = false;
        inner.last_error = Some(msg);
        if inner.state != EngineState::Stopping {
            inner.state = EngineState::Failed;
        }
    }

    /// Shutdown requested: from now on the state stays `Stopping`.
    pub fn set_stopping(&self) {
        self.lock().state = EngineState::Stopping;
    }

    /// Mark generation `generation` Ready if it is still the current, starting (or
    /// standby) one. Returns how long it took since the process started, or None if
    /// nothing changed.
    pub fn mark_ready(&self, generation: u64) -> Option<Duration> {
        let mut inner = self.lock();
        let starting = matches!(
            inner.state,
            EngineState::Starting | EngineState::Restarting | EngineState::Standby
        );
        if inner.generation != generation || !starting || !inner.running {
            return None;
        }
        inner.state = EngineState::Ready;
        inner.healthy_generation = Some(generation);
        Some(inner.started_at.map(|t| t.elapsed()).unwrap_or_default())
    }

    /// The starting engine of `generation` waits for the shared store's lock: Standby.
    /// Returns how long it took since the process started, or None if nothing changed.
    pub fn mark_standby(&self, generation: u64) -> Option<Duration> {
        let mut inner = self.lock();
        let starting = matches!(inner.state, EngineState::Starting | EngineState::Restarting);
        if inner.generation != generation || !starting || !inner.running {
            return None;
        }
        inner.state = EngineState::Standby;
        inner.healthy_generation = Some(generation);
        Some(inner.started_at.map(|t| t.elapsed()).unwrap_or_default())
    }

    /// The standby of `generation` got the lock and starts serving (not answering yet):
    /// back to Starting. Returns whether anything changed.
    pub fn leave_standby(&self, generation: u64) -> bool {
        let mut inner = self.lock();
        if inner.generation != generation || inner.state != EngineState::Standby {
            return false;
        }
        inner.state = EngineState::Starting;
        true
    }

    /// A Ready engine stopped answering: back to Starting (same process).
    pub fn mark_unready(&self, generation: u64, msg: String) -> bool {
        let mut inner = self.lock();
        if inner.generation != generation || inner.state != EngineState::Ready {
            return false;
        }
        inner.state = EngineState::Starting;
        inner.last_error = Some(msg);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_transitions() {
        let s = AgentState::new("b-1".into(), Engine::Rabbitmq);
        assert_eq!(s.state(), EngineState::Starting);
        let g1 = s.engine_started(false);
        assert_eq!(s.state(), EngineState::Starting);
        assert!(s.mark_ready(g1).is_some());
        assert_eq!(s.state(), EngineState::Ready);
        assert!(s.mark_unready(g1, "no answer".into()));
        assert_eq!(s.state(), EngineState::Starting);
        assert!(s.mark_ready(g1).is_some());

        s.engine_died("exit code 1".into());
        assert_eq!(s.state(), EngineState::Restarting);
        // the dead generation can no longer become Ready
        assert!(s.mark_ready(g1).is_none());
        let g2 = s.engine_started(true);
        assert_eq!(s.restarts(), 1);
        assert_eq!(s.state(), EngineState::Restarting);
        assert!(s.mark_ready(g2).is_some());

        assert!(s.was_ready(g2));
        // a planned restart ends the generation without counting a restart
        s.planned_restart();
        assert_eq!(s.state(), EngineState::Restarting);
        assert!(s.mark_ready(g2).is_none());
        // not even for the generation of the stop itself (the old process may still
        // answer while it shuts down)
        let (_, stopping) = s.phase();
        assert!(s.mark_ready(stopping).is_none());
        assert!(!s.mark_unready(g2, "stopped".into()));
        let g3 = s.engine_started(false);
        assert_eq!(s.restarts(), 1);
        assert!(!s.was_ready(g3));
        assert!(s.mark_ready(g3).is_some());

        s.engine_failed("gave up".into());
        assert_eq!(s.state(), EngineState::Failed);
        assert_eq!(s.last_error().as_deref(), Some("gave up"));

        s.set_stopping();
        s.planned_restart();
        s.engine_died("exit".into());
        assert_eq!(s.state(), EngineState::Stopping);
        assert!(s.mark_ready(g2).is_none());
        let r = s.report();
        assert_eq!(r.state, EngineState::Stopping);
        assert_eq!(r.restarts, 1);
        assert_eq!(r.broker_id, "b-1");
    }

    #[test]
    fn standby_transitions() {
        let s = AgentState::new("b-1".into(), Engine::Activemq);
        let g1 = s.engine_started(false);
        assert!(s.mark_standby(g1).is_some());
        assert_eq!(s.state(), EngineState::Standby);
        // a standby is a healthy run (restarted, not given up on, when it dies)
        assert!(s.was_ready(g1));
        // only from Starting/Restarting
        assert!(s.mark_standby(g1).is_none());
        // the lock came: Ready, straight from Standby
        assert!(s.mark_ready(g1).is_some());
        assert_eq!(s.state(), EngineState::Ready);
        assert!(s.mark_standby(g1).is_none());
        assert!(!s.leave_standby(g1));

        s.engine_died("killed".into());
        assert!(s.mark_standby(g1).is_none());
        let g2 = s.engine_started(true);
        assert_eq!(s.state(), EngineState::Restarting);
        assert!(!s.was_ready(g2));
        assert!(s.mark_standby(g2).is_some());
        // got the lock but does not answer yet: Starting, then Ready
        assert!(!s.leave_standby(g1));
        assert!(s.leave_standby(g2));
        assert_eq!(s.state(), EngineState::Starting);
        assert!(s.mark_ready(g2).is_some());

        // a planned restart of a standby ends its generation like any other
        let g3 = s.engine_started(false);
        assert!(s.mark_standby(g3).is_some());
        s.planned_restart();
        assert_eq!(s.state(), EngineState::Restarting);
        assert!(s.mark_ready(g3).is_none());
        s.set_stopping();
        assert!(s.mark_standby(g3).is_none());
        assert_eq!(s.state(), EngineState::Stopping);
    }
}
