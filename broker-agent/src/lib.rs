//! broker-agent: the process that runs as PID 1 in every Berth broker container.
//!
//! The wire contract shared with the control plane lives in the `agent_contract` crate;
//! this library holds everything the binary needs to supervise an engine, so that it can
//! be unit-tested without a container. Dependencies point one way, from the top file
//! down to the leaves:
//!
//! - [`run`]: the top file: settings and [`run::run`], which wires everything together
//!   and performs the PID 1 shutdown sequence. Nothing imports it.
//! - [`context`]: the shared [`context::Agent`] (spec, state, driver) used by the
//!   monitor and the API; [`monitor`]: the readiness/liveness loop; [`api`]: the
//!   authenticated HTTP API.
//! - [`engine`]: the [`engine::EngineDriver`] seam and its implementations,
//!   [`engine::rabbitmq`] and [`engine::activemq`], chosen by [`engine::driver_for`].
//! - [`supervisor`] (start / restart with backoff / stop the engine), [`reaper`] (PID 1
//!   child reaping, the only place that calls `waitpid`), [`state`] (lifecycle
//!   bookkeeping behind `GET /health`), [`specfile`] (load, validate, persist the spec),
//!   [`cgroup`] (the container's memory limit), [`fsutil`] (files that hold secrets),
//!   [`enginelog`] (the engine's console output: forwarded, and its last lines kept),
//!   [`tlsutil`] (rustls configs from the spec's PEM, which certificate a port serves).
//! - Observability: [`metrics`] (`GET /metrics`: [`containerstats`] for the container,
//!   the driver for the engine), [`logstore`] (the engine's logs on the data volume for
//!   `GET /logs`, filled by [`enginelog`]), [`alarms`] (engine alarms in the health
//!   report, checked by the monitor).

pub mod alarms;
pub mod api;
pub mod cgroup;
pub mod containerstats;
pub mod context;
pub mod engine;
pub mod enginelog;
pub mod fsutil;
pub mod logstore;
pub mod metrics;
pub mod monitor;
pub mod reaper;
pub mod run;
pub mod specfile;
pub mod state;
pub mod supervisor;
pub mod tlsutil;

#[cfg(test)]
pub(crate) mod testutil;
