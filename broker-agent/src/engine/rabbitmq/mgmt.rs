//! Cluster membership from the node's management API, for
//! [`EngineDriver::cluster_running`](crate::engine::EngineDriver::cluster_running).
//!
//! `GET /api/nodes?columns=name,running` on the node's own management listener
//! (`127.0.0.1:15672`, plain HTTP, loopback even when the broker's plaintext listeners
//! are off) lists every cluster member with `running: true|false`. It costs one local
//! HTTP request (a `rabbitmq-diagnostics cluster_status` would boot an Erlang VM for the
//! CLI every time: about a CPU-second), and RabbitMQ logs nothing for an authorised
//! request. It authenticates as the node's own internal monitoring user (see
//! [`super::ctl::MonitorUser`]), which the agent creates with the spec users.
//!
//! The client is deliberately tiny: HTTP/1.0 (the server closes the connection after the
//! response and sends no chunked encoding), Basic authentication, a size cap on the
//! answer and one timeout over the whole exchange.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer read (3 nodes × two columns is well under 1 KiB).
const MAX_RESPONSE: usize = 256 * 1024;

/// Why the member list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MgmtError {
    #[error("management API at {addr}: {error}")]
    Io {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("management API at {addr}: no answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("management API answered {status}")]
    Status { code: u16, status: String },
    #[error("management API: unexpected answer: {0}")]
    BadAnswer(String),
}

/// One entry of `/api/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeEntry {
    pub name: String,
    #[serde(default)]
    pub running: bool,
}

/// The names of the running members, sorted, as the node at `addr` sees them.
pub async fn running_nodes(
    addr: SocketAddr,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<Vec<String>, MgmtError> {
    let body = get(
        addr,
        "/api/nodes?columns=name,running",
        user,
        password,
        timeout,
    )
    .await?;
    parse_running(&body)
}

/// The running members in an `/api/nodes` answer, sorted.
pub fn parse_running(body: &[u8]) -> Result<Vec<String>, MgmtError> {
    let nodes: Vec<NodeEntry> =
        serde_json::from_slice(body).map_err(|e| MgmtError::BadAnswer(e.to_string()))?;
    let mut names: Vec<String> = nodes
        .into_iter()
        .filter(|n| n.running)
        .map(|n| n.name)
        .collect();
    names.sort();
    Ok(names)
}

/// `GET path` with Basic authentication; the body of a 200 answer.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<Vec<u8>, MgmtError> {
    request(
        addr,
        "GET",
        path,
        None,
        user,
        password,
        timeout,
        MAX_RESPONSE,
    )
    .await
}

/// `method path` with Basic authentication and an optional JSON body; the body of a
/// 200 answer of at most `max` bytes.
#[allow(clippy::too_many_arguments)]
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    user: &str,
    password: &str,
    timeout: Duration,
    max: usize,
) -> Result<Vec<u8>, MgmtError> {
    let io = |error| MgmtError::Io { addr, error };
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(io)?;
        let auth = base64(format!("{user}:{password}").as_bytes());
        let mut request = format!(
            "{method} {path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nAccept: application/json\r\n"
        )
        .into_bytes();
        if let Some(body) = body {
            request.extend_from_slice(
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    body.len()
                )
                .as_bytes(),
            );
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body.unwrap_or_default());
        stream.write_all(&request).await.map_err(io)?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(max as u64 + 1)
            .read_to_end(&mut answer)
            .await
            .map_err(io)?;
        if answer.len() > max {
            return Err(MgmtError::BadAnswer(format!("more than {max} bytes")));
        }
        split_response(&answer)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(MgmtError::Timeout { addr, timeout }),
    }
}

/// The body of a complete HTTP response whose status is 200.
pub fn split_response(answer: &[u8]) -> Result<Vec<u8>, MgmtError> {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| MgmtError::BadAnswer("no end of the response head".into()))?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") {
        return Err(MgmtError::BadAnswer("not an HTTP response".into()));
    }
    if code != "200" {
        return Err(MgmtError::Status {
            code: code.parse().unwrap_or(0),
            status: status_line.chars().take(80).collect(),
        });
    }
    Ok(answer[end + 4..].to_vec())
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(data: &[u8]) -> String {
    agent_contract::destinations::base64(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("user:pa:ss", "dXNlcjpwYTpzcw=="),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn parses_running_members() {
        let body = br#"[{"name":"rabbit@n2","running":true},{"name":"rabbit@n1","running":true},{"name":"rabbit@n3","running":false}]"#;
        assert_eq!(parse_running(body).unwrap(), ["rabbit@n1", "rabbit@n2"]);
        assert!(parse_running(b"[]").unwrap().is_empty());
        assert!(parse_running(b"{\"error\":\"x\"}").is_err());
    }

    #[test]
    fn only_200_answers_have_a_body() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n[]";
        assert_eq!(split_response(ok).unwrap(), b"[]");
        let denied = b"HTTP/1.1 401 Unauthorized\r\n\r\n{\"error\":\"not_authorized\"}";
        assert!(matches!(
            split_response(denied),
            Err(MgmtError::Status { code: 401, status }) if status.contains("401")
        ));
        assert!(split_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(split_response(b"AMQP\x00\x00\x09\x01\r\n\r\n").is_err());
    }

    /// A fake management listener: checks the request, answers `reply`, closes.
    async fn fake_mgmt(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let req = String::from_utf8_lossy(&req);
                    let authorised = req.starts_with("GET /api/nodes?columns=name,running ")
                        && req.contains(&format!("Authorization: Basic {}\r\n", base64(b"mon:pw")));
                    let answer: &[u8] = if authorised {
                        reply
                    } else {
                        b"HTTP/1.1 401 Unauthorized\r\n\r\n"
                    };
                    let _ = sock.write_all(answer).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_members_over_http() {
        let addr = fake_mgmt(
            b"HTTP/1.1 200 OK\r\n\r\n[{\"name\":\"rabbit@b\",\"running\":true},{\"name\":\"rabbit@a\",\"running\":true}]",
        )
        .await;
        let t = Duration::from_secs(2);
        assert_eq!(
            running_nodes(addr, "mon", "pw", t).await.unwrap(),
            ["rabbit@a", "rabbit@b"]
        );
        let err = running_nodes(addr, "mon", "wrong", t).await.unwrap_err();
        assert!(matches!(err, MgmtError::Status { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_silent_listener_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let err = running_nodes(addr, "mon", "pw", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, MgmtError::Timeout { .. }), "{err}");
    }
}
