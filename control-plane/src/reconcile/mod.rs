//! The reconciler: the only component that changes Docker.
//!
//! Request handlers record desired state in Postgres and nudge the reconciler. The
//! reconciler sweeps every broker periodically (and on each nudge) and runs one
//! idempotent convergence step per broker ([`broker::BrokerReconciler::step`]): create
//! what is missing, start what should run, tear down what is being deleted, and move the
//! lifecycle state forward when the agent confirms. Because every step re-reads the row
//! and re-inspects Docker, killing the control plane at any moment loses nothing: the
//! next process picks up where the last stopped. A watchdog asks the active node of
//! every active/standby pair four times a second and kills one that hangs. A periodic
//! garbage collection removes
//! Docker objects labelled with this installation whose broker row no longer exists.

pub mod broker;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use broker::{BrokerReconciler, StepOutcome};

use crate::domain::BrokerId;

/// How often the hung-active watchdog asks the actives of active/standby pairs.
pub const WATCHDOG_INTERVAL: Duration = Duration::from_millis(250);

/// Drives [`BrokerReconciler`] over all brokers.
pub struct Driver {
    inner: Arc<BrokerReconciler>,
    nudge: Arc<Notify>,
    interval: Duration,
    in_flight: Arc<Mutex<HashSet<BrokerId>>>,
    up: Arc<AtomicBool>,
}

/// Handle the API uses to wake the reconciler after a change.
#[derive(Clone, Debug, Default)]
pub struct Nudger {
    nudge: Arc<Notify>,
    up: Arc<AtomicBool>,
}

impl Nudger {
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// True once the reconciler loop has completed its first sweep.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }
}

impl Driver {
    pub fn new(inner: BrokerReconciler, interval: Duration) -> (Self, Nudger) {
        let nudger = Nudger::default();
        let driver = Self {
            inner: Arc::new(inner),
            nudge: nudger.nudge.clone(),
            interval,
            in_flight: Arc::default(),
            up: nudger.up.clone(),
        };
        (driver, nudger)
    }

    /// Runs until `cancel` fires. Per-broker work runs in its own task so a slow broker
    /// never holds up the others; a broker is never worked on twice at once. The
    /// hung-active watchdog runs next to it (see [`Driver::watchdog`]).
    pub async fn run(self, cancel: CancellationToken) {
        tokio::spawn(Self::watchdog(self.inner.clone(), cancel.clone()));
        let mut sweeps: u64 = 0;
        loop {
            if sweeps.is_multiple_of(30) {
                // Beside the sweeps: a fill copies an image's program files (seconds)
                // and must not hold up the brokers' work. A pass with nothing missing
                // only looks; repeated, it also fills for an image `make images`
                // rebuilt meanwhile.
                let inner = self.inner.clone();
                tokio::spawn(async move {
                    if let Err(e) = inner.prepare_program_volumes().await {
                        tracing::warn!(error = %format!("{e:#}"), "filling program volumes failed");
                    }
                });
            }
            self.sweep().await;
            if sweeps.is_multiple_of(30) {
                if let Err(e) = self.inner.collect_garbage().await {
                    tracing::warn!(error = %format!("{e:#}"), "garbage collection failed");
                }
            }
            sweeps += 1;
            self.up.store(true, Ordering::SeqCst);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.nudge.notified() => {}
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
        tracing::info!("reconciler stopped");
    }

    /// Every [`WATCHDOG_INTERVAL`], asks the active node of every active/standby pair
    /// whether it still answers and kills one that has been silent for `hung_after`
    /// ([`BrokerReconciler::watch_hung_actives`]): a hung active keeps the shared
    /// store's lock, so waiting for the next sweep would keep clients waiting.
    async fn watchdog(inner: Arc<BrokerReconciler>, cancel: CancellationToken) {
        let mut last_answer = std::collections::HashMap::new();
        loop {
            if let Err(e) = inner.watch_hung_actives(&mut last_answer).await {
                tracing::warn!(error = %format!("{e:#}"), "hung-node watchdog round failed");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(WATCHDOG_INTERVAL) => {}
            }
        }
    }

    async fn sweep(&self) {
        if let Err(e) = self.inner.schedule_maintenance(chrono::Utc::now()).await {
            tracing::warn!(error = %format!("{e:#}"), "maintenance scheduling failed");
        }
        let ids = match self.inner.store().broker_ids_all().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "reconciler could not list brokers");
                return;
            }
        };
        let mut busy = 0;
        for id in ids {
            let Some(mark) = InFlight::claim(&self.in_flight, &id) else {
                busy += 1;
                continue;
            };
            let inner = self.inner.clone();
            tokio::spawn(async move {
                // The mark is dropped when the task ends, also if it panics.
                let _mark = mark;
                let _timer = crate::instruments::global().reconcile_step();
                inner.converge(&id).await;
            });
        }
        crate::instruments::global().reconcile_waiting(busy);
    }
}

/// A broker being worked on; the mark is cleared on drop, so a task that fails or
/// panics never keeps its broker from being reconciled again.
struct InFlight {
    set: Arc<Mutex<HashSet<BrokerId>>>,
    id: BrokerId,
}

impl InFlight {
    fn claim(set: &Arc<Mutex<HashSet<BrokerId>>>, id: &BrokerId) -> Option<Self> {
        let mut guard = set.lock().unwrap_or_else(|e| e.into_inner());
        guard.insert(id.clone()).then(|| Self {
            set: set.clone(),
            id: id.clone(),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_clears_its_mark() {
        let set: Arc<Mutex<HashSet<BrokerId>>> = Arc::default();
        let id = BrokerId::generate();
        let mark = InFlight::claim(&set, &id).unwrap();
        assert!(InFlight::claim(&set, &id).is_none(), "claimed twice");
        let task = tokio::spawn(async move {
            let _mark = mark;
            panic!("reconcile step panicked");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(set.lock().unwrap().is_empty());
        assert!(InFlight::claim(&set, &id).is_some());
    }
}
