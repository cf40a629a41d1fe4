//! Observation of running brokers: what the control plane pulls from every node's agent
//! besides health (metrics, logs), on its own schedule and never in a request.
//!
//! [`targets`] finds the agents to ask; the collectors that use it live next to it
//! ([`collector`]: metrics, their roll-ups and retention; [`logs`]: engine logs).

pub mod collector;
pub mod logs;
pub mod targets;
