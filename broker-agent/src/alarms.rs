//! Engine alarms in `HealthReport.alarms` (see [`agent_contract::alarm_codes`]),
//! checked by the readiness monitor at most every [`CHECK_EVERY`] (piggy-backed on its
//! loop: no task of its own).
//!
//! - The engine's own alarms (RabbitMQ's memory and disk alarms, ActiveMQ's full store)
//!   come from [`EngineDriver::engine_alarms`](crate::engine::EngineDriver::engine_alarms),
//!   asked only while the engine is Ready (one local request); when it is not Ready or
//!   does not answer, the engine's alarms are dropped (nothing is known about them).
//! - `BROKER_OOM`: the cgroup's OOM kill counter (one file read) rose since the agent
//!   first read it; the alarm stays for [`OOM_HOLD`] after the last rise.

use std::time::Duration;

use agent_contract::{alarm_codes, EngineAlarm, EngineState};
use tokio::time::Instant;

use crate::context::Agent;

/// Alarms are checked at most this often.
pub const CHECK_EVERY: Duration = Duration::from_secs(15);
/// How long `BROKER_OOM` stays after an OOM kill.
pub const OOM_HOLD: Duration = Duration::from_secs(600);
/// Upper bound of the engine's part of a check (a first RabbitMQ check may put the
/// monitoring user in place with `rabbitmqctl`: seconds).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(20);

/// The OOM part of the alarms: the counter's last value and when it last rose.
#[derive(Debug, Default, Clone, Copy)]
pub struct OomWatch {
    seen: Option<u64>,
    rose_at: Option<Instant>,
    kills: u64,
}

impl OomWatch {
    /// Take a reading of the counter (`None`: unreadable) at `now`; the alarm, if on.
    pub fn observe(&mut self, count: Option<u64>, now: Instant) -> Option<EngineAlarm> {
        if let Some(count) = count {
            if let Some(seen) = self.seen {
                if count > seen {
                    self.kills += count - seen;
                    self.rose_at = Some(now);
                }
            }
            self.seen = Some(count);
        }
        let rose_at = self.rose_at?;
        if now.saturating_duration_since(rose_at) >= OOM_HOLD {
            return None;
        }
        Some(EngineAlarm {
            code: alarm_codes::BROKER_OOM.into(),
            message: format!(
                "the kernel killed {} process(es) of this node for memory (cgroup OOM kill) {} s ago",
                self.kills,
                now.saturating_duration_since(rose_at).as_secs()
            ),
        })
    }
}

/// The monitor's alarm bookkeeping.
#[derive(Debug)]
pub struct AlarmWatch {
    every: Duration,
    last: Option<Instant>,
    oom: OomWatch,
}

impl AlarmWatch {
    pub fn new(every: Duration) -> AlarmWatch {
        AlarmWatch {
            every,
            last: None,
            oom: OomWatch::default(),
        }
    }

    /// Check the alarms if the last check is at least `every` old, and publish them.
    pub async fn maybe_check(&mut self, agent: &Agent) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.saturating_duration_since(l) < self.every)
        {
            return;
        }
        self.last = Some(now);
        let mut alarms = Vec::new();
        if agent.state.state() == EngineState::Ready {
            let spec = agent.spec();
            match tokio::time::timeout(ENGINE_TIMEOUT, agent.driver.engine_alarms(&spec)).await {
                Ok(Ok(engine)) => alarms.extend(engine),
                Ok(Err(e)) => {
                    tracing::debug!(error = %format!("{e:#}"), "engine alarms not available")
                }
                Err(_) => tracing::debug!("engine alarms: no answer in time"),
            }
        }
        let oom = self.oom.observe(agent.container.counters().oom_kills, now);
        alarms.extend(oom);
        agent.state.set_alarms(alarms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_alarm_follows_the_counter_for_ten_minutes() {
        let t0 = Instant::now();
        let mut w = OomWatch::default();
        // the first reading is the baseline, whatever it is
        assert!(w.observe(Some(3), t0).is_none());
        assert!(w.observe(None, t0 + Duration::from_secs(1)).is_none());
        assert!(w.observe(Some(3), t0 + Duration::from_secs(2)).is_none());
        let a = w.observe(Some(4), t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(a.code, alarm_codes::BROKER_OOM);
        assert!(a.message.contains("killed 1 process"), "{}", a.message);
        let later = t0 + Duration::from_secs(3) + OOM_HOLD - Duration::from_secs(1);
        assert!(w.observe(Some(4), later).is_some());
        assert!(w.observe(Some(4), later + Duration::from_secs(1)).is_none());
        // another kill raises it again
        let again = w.observe(Some(6), later + Duration::from_secs(5)).unwrap();
        assert!(
            again.message.contains("killed 3 process"),
            "{}",
            again.message
        );
    }
}
