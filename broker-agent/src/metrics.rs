//! `GET /metrics`: one [`MetricsReport`] of this node, sampled when asked (no
//! background sampler).
//!
//! The container's samples ([`crate::containerstats`]) are always there; the engine's
//! ([`EngineDriver::engine_metrics`](crate::engine::EngineDriver::engine_metrics)) only
//! while the engine is Ready and answers within [`ENGINE_TIMEOUT`]; otherwise the
//! report says why in `engine_error` and still succeeds. The whole request stays under
//! 5 s.

use std::time::Duration;

use agent_contract::metrics::MetricsReport;
use agent_contract::EngineState;

use crate::context::Agent;

/// How long the engine's part of one report may take.
pub const ENGINE_TIMEOUT: Duration = Duration::from_millis(4500);

/// One report of `agent`'s node.
pub async fn report(agent: &Agent) -> MetricsReport {
    report_within(agent, ENGINE_TIMEOUT).await
}

/// [`report`] with another time limit for the engine's part (tests).
pub async fn report_within(agent: &Agent, engine_timeout: Duration) -> MetricsReport {
    let spec = agent.spec();
    let data_dir = agent.driver.data_dir().unwrap_or_else(|| "/".into());
    let mut samples = agent
        .container
        .sample(agent.driver.cpu_metric_name(), &data_dir);
    let engine_error = match agent.state.state() {
        EngineState::Ready => {
            match tokio::time::timeout(engine_timeout, agent.driver.engine_metrics(&spec)).await {
                Ok(Ok(engine)) => {
                    samples.extend(engine);
                    None
                }
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some(format!(
                    "the engine did not answer within {:.1} s",
                    engine_timeout.as_secs_f64()
                )),
            }
        }
        other => Some(format!("the engine is not ready (it is {other:?})")),
    };
    MetricsReport {
        broker_id: spec.broker_id.clone(),
        node: spec.node.index,
        timestamp_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        samples,
        engine_error,
    }
}
