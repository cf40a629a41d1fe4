//! Berth control plane: an Amazon MQ-compatible API whose desired state lives in
//! Postgres and whose reconciler drives Docker until brokers match it.

pub mod agent_client;
pub mod app;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod embedded_pg;
pub mod error;
pub mod http;
pub mod reconcile;
pub mod runtime;
pub mod startup;
pub mod telemetry;
