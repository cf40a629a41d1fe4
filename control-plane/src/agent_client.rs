//! Typed client for the broker-agent's HTTP API, behind a trait so the reconciler's
//! workflow logic can be unit-tested without a container.

use std::time::Duration;

use agent_contract::{AgentSpec, HealthReport};
use async_trait::async_trait;

#[async_trait]
pub trait AgentClient: Send + Sync + 'static {
    /// `GET /health` on the agent at `base` (e.g. `http://127.0.0.1:21007`).
    async fn health(&self, base: &str, token: &str) -> anyhow::Result<HealthReport>;
    /// `PUT /spec`: the agent applies users (and the watermark) live; Ok once applied.
    async fn put_spec(
        &self,
        base: &str,
        token: &str,
        spec: &AgentSpec,
    ) -> anyhow::Result<HealthReport>;
}

/// The real client.
#[derive(Clone)]
pub struct HttpAgentClient {
    http: reqwest::Client,
}

impl Default for HttpAgentClient {
    fn default() -> Self {
        Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5))
                .build()
                .expect("reqwest client with static config"),
        }
    }
}

#[async_trait]
impl AgentClient for HttpAgentClient {
    async fn health(&self, base: &str, token: &str) -> anyhow::Result<HealthReport> {
        let resp = self
            .http
            .get(format!("{base}/health"))
            .bearer_auth(token)
            .send()
            .await?;
        let status = resp.status();
        anyhow::ensure!(status.is_success(), "agent answered {status}");
        Ok(resp.json().await?)
    }

    async fn put_spec(
        &self,
        base: &str,
        token: &str,
        spec: &AgentSpec,
    ) -> anyhow::Result<HealthReport> {
        let resp = self
            .http
            .put(format!("{base}/spec"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(60))
            .json(spec)
            .send()
            .await?;
        let status = resp.status();
        anyhow::ensure!(status.is_success(), "agent refused the spec: {status}");
        Ok(resp.json().await?)
    }
}
