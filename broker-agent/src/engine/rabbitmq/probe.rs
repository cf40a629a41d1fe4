//! RabbitMQ readiness: is the node really serving AMQP?
//!
//! A TCP connect is not enough (a listener may accept before the broker is usable, and
//! in Docker the userland proxy accepts on published ports long before the engine
//! listens). The agent speaks the first step of AMQP 0-9-1: it sends the protocol header
//! and expects a method frame on channel 0 carrying Connection.Start.
//!
//! The liveness check run every few seconds while Ready is different: RabbitMQ logs a
//! warning ("client unexpectedly closed TCP connection") for every connection that
//! sends the protocol header and goes away, which every 5 s would bury the tenant's
//! log. A connection closed before sending anything is logged at debug level only, and
//! an HTTP request to an unknown path of the Prometheus listener is answered (404) by
//! the Erlang VM without any log, so together they show that the AMQP listener is open
//! and the VM is responsive.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The AMQP 0-9-1 protocol header.
pub const AMQP_091_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// Why a handshake did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("connect to {addr} failed: {error}")]
    Connect {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("no AMQP answer from {addr} within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("I/O error talking to {addr}: {error}")]
    Io {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("{addr} answered something other than Connection.Start")]
    Unexpected { addr: SocketAddr },
}

/// Send the AMQP 0-9-1 header to `addr` and check that the reply starts with a method
/// frame (type 1) on channel 0 whose method is Connection.Start (class 10, method 10).
pub async fn amqp_handshake(addr: SocketAddr, timeout: Duration) -> Result<(), HandshakeError> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|error| HandshakeError::Connect { addr, error })?;
        stream
            .write_all(AMQP_091_HEADER)
            .await
            .map_err(|error| HandshakeError::Io { addr, error })?;
        // frame header: type(1) channel(2) size(4); payload: class(2) method(2)
        let mut buf = [0u8; 11];
        stream.read_exact(&mut buf).await.map_err(|error| {
            if error.kind() == std::io::ErrorKind::UnexpectedEof {
                HandshakeError::Unexpected { addr }
            } else {
                HandshakeError::Io { addr, error }
            }
        })?;
        if is_connection_start(&buf) {
            Ok(())
        } else {
            Err(HandshakeError::Unexpected { addr })
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::Timeout { addr, timeout }),
    }
}

/// Connect to `addr` and close again without sending anything.
pub async fn tcp_accepts(addr: SocketAddr, timeout: Duration) -> Result<(), HandshakeError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(error)) => Err(HandshakeError::Connect { addr, error }),
        Err(_) => Err(HandshakeError::Timeout { addr, timeout }),
    }
}

/// Send `GET path HTTP/1.0` to `addr` and expect any HTTP status line back.
pub async fn http_responds(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(), HandshakeError> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|error| HandshakeError::Connect { addr, error })?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|error| HandshakeError::Io { addr, error })?;
        let mut buf = [0u8; 9];
        stream
            .read_exact(&mut buf)
            .await
            .map_err(|error| HandshakeError::Io { addr, error })?;
        if buf.starts_with(b"HTTP/1.") {
            Ok(())
        } else {
            Err(HandshakeError::Unexpected { addr })
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::Timeout { addr, timeout }),
    }
}

/// Whether the first 11 bytes of a reply are a Connection.Start method frame.
pub fn is_connection_start(buf: &[u8; 11]) -> bool {
    let frame_type = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let class = u16::from_be_bytes([buf[7], buf[8]]);
    let method = u16::from_be_bytes([buf[9], buf[10]]);
    frame_type == 1 && channel == 0 && class == 10 && method == 10
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A fake broker answering the protocol header with `reply`, then closing.
    async fn fake_server(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut header = [0u8; 8];
                    if sock.read_exact(&mut header).await.is_ok() && &header == AMQP_091_HEADER {
                        let _ = sock.write_all(reply).await;
                    }
                    let _ = sock.shutdown().await;
                });
            }
        });
        addr
    }

    // type 1, channel 0, size 0x1c6, class 10, method 10, then (truncated) arguments
    const CONNECTION_START: &[u8] = b"\x01\x00\x00\x00\x00\x01\xc6\x00\x0a\x00\x0a\x00\x09";

    #[tokio::test]
    async fn accepts_connection_start() {
        let addr = fake_server(CONNECTION_START).await;
        amqp_handshake(addr, Duration::from_secs(2)).await.unwrap();
    }

    #[tokio::test]
    async fn rejects_protocol_mismatch_reply() {
        // A server that does not speak 0-9-1 answers with its own header.
        let addr = fake_server(b"AMQP\x00\x01\x00\x00").await;
        let err = amqp_handshake(addr, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, HandshakeError::Unexpected { .. }), "{err}");
    }

    #[tokio::test]
    async fn rejects_accept_then_close() {
        let addr = fake_server(b"").await;
        let err = amqp_handshake(addr, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, HandshakeError::Unexpected { .. }), "{err}");
    }

    #[tokio::test]
    async fn times_out_on_silent_listener() {
        // Accepts (like docker-proxy) but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let err = amqp_handshake(addr, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, HandshakeError::Timeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn fails_when_nothing_listens() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = amqp_handshake(addr, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, HandshakeError::Connect { .. }), "{err}");
    }

    #[tokio::test]
    async fn liveness_helpers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut req = [0u8; 16];
                    if sock.read(&mut req).await.unwrap_or(0) > 0 {
                        let _ = sock.write_all(b"HTTP/1.1 404 Not Found\r\n\r\n").await;
                    }
                });
            }
        });
        tcp_accepts(addr, Duration::from_secs(2)).await.unwrap();
        http_responds(addr, "/x", Duration::from_secs(2))
            .await
            .unwrap();
        let amqp = fake_server(CONNECTION_START).await;
        let err = http_responds(amqp, "/x", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Io { .. } | HandshakeError::Unexpected { .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn frame_check() {
        let mut buf = [0u8; 11];
        buf.copy_from_slice(&CONNECTION_START[..11]);
        assert!(is_connection_start(&buf));
        buf[10] = 11; // Connection.StartOk is not what a server sends first
        assert!(!is_connection_start(&buf));
    }
}
