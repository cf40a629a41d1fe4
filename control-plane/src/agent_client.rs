//! Typed client for the broker-agent's HTTP API, behind a trait so the reconciler's
//! workflow logic can be unit-tested without a container.
//!
//! The destinations calls ([`AgentClient::destinations`], [`AgentClient::send_message`],
//! [`AgentClient::peek`]) answer an [`AgentCallError`] that keeps the agent's status and
//! message, so the application layer can tell an unknown queue (404) or a node that does
//! not serve (409) from a failure. Their default implementations refuse, so fake agents
//! in tests need not implement them.

use std::time::Duration;

use agent_contract::logs::{LogPage, LogStream};
use agent_contract::metrics::MetricsReport;
use agent_contract::{
    AgentSpec, Destination, DestinationKind, DestinationName, HealthReport, PeekedMessage,
    TestMessage,
};
use async_trait::async_trait;

/// Why a destinations call to an agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentCallError {
    /// The agent answered with this (non-success) status and message.
    #[error("agent answered {status}: {message}")]
    Status { status: u16, message: String },
    /// No usable answer (connection, timeout, unparsable body), or not supported.
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

fn unsupported() -> AgentCallError {
    AgentCallError::Failed(anyhow::anyhow!(
        "this agent client does not support destinations"
    ))
}

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
    /// `GET /destinations`.
    async fn destinations(
        &self,
        base: &str,
        token: &str,
    ) -> Result<Vec<Destination>, AgentCallError> {
        let _ = (base, token);
        Err(unsupported())
    }
    /// `POST /destinations/{kind}/{name}/send`.
    async fn send_message(
        &self,
        base: &str,
        token: &str,
        kind: DestinationKind,
        name: &DestinationName,
        message: &TestMessage,
    ) -> Result<(), AgentCallError> {
        let _ = (base, token, kind, name, message);
        Err(unsupported())
    }
    /// `POST /destinations/queue/{name}/peek?count=N`.
    async fn peek(
        &self,
        base: &str,
        token: &str,
        name: &DestinationName,
        count: u32,
    ) -> Result<Vec<PeekedMessage>, AgentCallError> {
        let _ = (base, token, name, count);
        Err(unsupported())
    }
    /// `GET /metrics`: one sample of the node (see `agent_contract::metrics`).
    async fn metrics(&self, base: &str, token: &str) -> Result<MetricsReport, AgentCallError> {
        let _ = (base, token);
        Err(unsupported())
    }
    /// `GET /logs?stream=…&after=…&limit=…`: lines numbered after `after`.
    async fn logs(
        &self,
        base: &str,
        token: &str,
        stream: LogStream,
        after: u64,
        limit: usize,
    ) -> Result<LogPage, AgentCallError> {
        let _ = (base, token, stream, after, limit);
        Err(unsupported())
    }
}

/// RFC 3986's unreserved characters stay; everything else is percent-encoded.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode a path segment.
fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// The agent's answer: `Ok(resp)` if it succeeded, else its status and `error` message.
async fn checked(resp: reqwest::Response) -> Result<reqwest::Response, AgentCallError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    #[derive(serde::Deserialize)]
    struct Body {
        error: String,
    }
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Body>(&text)
        .map(|b| b.error)
        .unwrap_or_else(|_| status.canonical_reason().unwrap_or("error").to_owned());
    Err(AgentCallError::Status {
        status: status.as_u16(),
        message: message.chars().take(500).collect(),
    })
}

fn failed(e: reqwest::Error) -> AgentCallError {
    AgentCallError::Failed(e.into())
}

/// The agent client as the application layer holds it (shared, printable).
#[derive(Clone)]
pub struct SharedAgentClient(pub std::sync::Arc<dyn AgentClient>);

impl std::fmt::Debug for SharedAgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedAgentClient")
    }
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

/// Bound of one destinations call (listing, sending, peeking).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound of one metrics or logs call (the collectors' own timeouts may be shorter).
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(10);

impl HttpAgentClient {
    /// Sends `req` with the agent token within `timeout`: the agent's answer if it
    /// succeeded, else its status and message.
    async fn call(
        &self,
        req: reqwest::RequestBuilder,
        token: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, AgentCallError> {
        let resp = req
            .bearer_auth(token)
            .timeout(timeout)
            .send()
            .await
            .map_err(failed)?;
        checked(resp).await
    }

    /// `GET url`, answered with JSON.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: String,
        token: &str,
        timeout: Duration,
    ) -> Result<T, AgentCallError> {
        self.call(self.http.get(url), token, timeout)
            .await?
            .json()
            .await
            .map_err(failed)
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

    async fn destinations(
        &self,
        base: &str,
        token: &str,
    ) -> Result<Vec<Destination>, AgentCallError> {
        self.get_json(format!("{base}/destinations"), token, CALL_TIMEOUT)
            .await
    }

    async fn send_message(
        &self,
        base: &str,
        token: &str,
        kind: DestinationKind,
        name: &DestinationName,
        message: &TestMessage,
    ) -> Result<(), AgentCallError> {
        let req = self
            .http
            .post(format!(
                "{base}/destinations/{kind}/{}/send",
                segment(name.as_str())
            ))
            .json(message);
        self.call(req, token, CALL_TIMEOUT).await.map(|_| ())
    }

    async fn peek(
        &self,
        base: &str,
        token: &str,
        name: &DestinationName,
        count: u32,
    ) -> Result<Vec<PeekedMessage>, AgentCallError> {
        let req = self.http.post(format!(
            "{base}/destinations/queue/{}/peek?count={count}",
            segment(name.as_str())
        ));
        self.call(req, token, CALL_TIMEOUT)
            .await?
            .json()
            .await
            .map_err(failed)
    }

    async fn metrics(&self, base: &str, token: &str) -> Result<MetricsReport, AgentCallError> {
        self.get_json(format!("{base}/metrics"), token, OBSERVE_TIMEOUT)
            .await
    }

    async fn logs(
        &self,
        base: &str,
        token: &str,
        stream: LogStream,
        after: u64,
        limit: usize,
    ) -> Result<LogPage, AgentCallError> {
        let url = format!(
            "{base}/logs?stream={}&after={after}&limit={limit}",
            stream.as_str()
        );
        self.get_json(url, token, OBSERVE_TIMEOUT).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_one_path_segment() {
        assert_eq!(super::segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(super::segment("orders.eu-1_x~"), "orders.eu-1_x~");
    }
}
