//! The reconciler: the only component that changes Docker.
//!
//! Request handlers record desired state in Postgres and nudge the reconciler. The
//! reconciler sweeps every broker periodically (and on each nudge) and runs one
//! idempotent convergence step per broker ([`broker::BrokerReconciler::step`]): create
//! what is missing, start what should run, tear down what is being deleted, and move the
//! lifecycle state forward when the agent confirms. Because every step re-reads the row
//! and re-inspects Docker, killing the control plane at any moment loses nothing: the
//! next process picks up where the last stopped. A periodic garbage collection removes
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
    /// never holds up the others; a broker is never worked on twice at once.
    pub async fn run(self, cancel: CancellationToken) {
        let mut sweeps: u64 = 0;
        loop {
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
        for id in ids {
            if !self.in_flight.lock().unwrap().insert(id.clone()) {
                continue;
            }
            let inner = self.inner.clone();
            let in_flight = self.in_flight.clone();
            tokio::spawn(async move {
                inner.converge(&id).await;
                in_flight.lock().unwrap().remove(&id);
            });
        }
    }
}
