//! broker-agent: the process that runs as PID 1 in every Berth broker container.
//!
//! The library half holds the wire contract shared with the control plane
//! ([`spec`]) and everything the binary needs to supervise the engine, so that it
//! can be unit-tested without a container:
//!
//! - [`specfile`]: load, validate and persist the spec;
//! - [`cgroup`]: the container's memory limit;
//! - [`rabbitmq`], [`rabbitmqctl`]: RabbitMQ config rendering, user reconciliation;
//! - [`reaper`]: PID 1 child reaping (the only place that calls `waitpid`);
//! - [`supervisor`]: start / restart with backoff / stop the engine;
//! - [`readiness`]: protocol-level readiness probe and state monitor;
//! - [`state`]: lifecycle bookkeeping behind `GET /health`;
//! - [`api`]: the authenticated HTTP API;
//! - [`agent`]: shared context and the top-level [`agent::run`].

pub mod agent;
pub mod api;
pub mod cgroup;
pub mod fsutil;
pub mod rabbitmq;
pub mod rabbitmqctl;
pub mod readiness;
pub mod reaper;
pub mod spec;
pub mod specfile;
pub mod state;
pub mod supervisor;
