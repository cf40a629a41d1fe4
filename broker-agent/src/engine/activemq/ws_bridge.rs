//! WebSocket for ActiveMQ, served by the agent.
//!
//! Debian does not build ActiveMQ's `ws` transport (`activemq-http`), so the agent
//! accepts WebSocket connections itself (`ws` on [`ports::activemq::WS`], `wss` with
//! rustls on [`ports::activemq::WSS`]) and pipes each one to a fresh TCP connection to
//! the broker's own listener, chosen by the requested subprotocol like ActiveMQ's
//! WebSocket servlet does:
//!
//! - `mqtt` / `mqttv3.1` → the MQTT listener; binary messages carry MQTT bytes both ways
//!   (MQTT over WebSocket does not align packets with messages);
//! - `v12.stomp` / `v11.stomp` / `v10.stomp` / `stomp` → the STOMP listener; client
//!   messages (text or binary) are written as they come, and the broker's byte stream is
//!   cut into frames so that every WebSocket message holds exactly one STOMP frame (or
//!   one heart-beat EOL), as STOMP-over-WebSocket clients expect: text when the frame is
//!   UTF-8, binary otherwise;
//! - no subprotocol → STOMP (ActiveMQ's default); only unknown ones → HTTP 400.
//!
//! The chosen subprotocol (the client's first known one, in its spelling) is echoed in
//! the handshake response. Each direction holds at most one read buffer (64 KiB) plus,
//! for STOMP, one partial frame; messages and frames above [`MAX_MESSAGE`] close the
//! connection. Either side's close or error closes both: a WebSocket close shuts the TCP
//! connection down, a broker EOF sends a WebSocket close. Connections come from
//! 127.0.0.1 as far as the broker is concerned; authentication is the broker's (the
//! STOMP CONNECT / MQTT CONNECT carry the credentials).
//!
//! [`ports::activemq::WS`]: agent_contract::ports::activemq::WS
//! [`ports::activemq::WSS`]: agent_contract::ports::activemq::WSS

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::tlsutil;

/// Subprotocols that select the STOMP listener.
pub const STOMP_SUBPROTOCOLS: &[&str] = &["v12.stomp", "v11.stomp", "v10.stomp", "stomp"];
/// Subprotocols that select the MQTT listener.
pub const MQTT_SUBPROTOCOLS: &[&str] = &["mqtt", "mqttv3.1"];
/// Largest WebSocket message and STOMP frame the bridge carries.
pub const MAX_MESSAGE: usize = 16 << 20;
const READ_CHUNK: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which broker listener a connection goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Stomp,
    Mqtt,
}

/// Where the bridge connects to.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub stomp: SocketAddr,
    pub mqtt: SocketAddr,
    pub max_message: usize,
    pub connect_timeout: Duration,
}

impl BridgeConfig {
    fn backend_addr(&self, backend: Backend) -> SocketAddr {
        match backend {
            Backend::Stomp => self.stomp,
            Backend::Mqtt => self.mqtt,
        }
    }
}

/// The client offered subprotocols, none of which the bridge speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedSubprotocol;

/// Pick the backend for the offered subprotocols (in the client's order of preference).
/// `Ok((Some(p), b))`: echo `p`; `Ok((None, Stomp))`: none offered.
pub fn choose_subprotocol<'a>(
    offered: impl IntoIterator<Item = &'a str>,
) -> Result<(Option<String>, Backend), UnsupportedSubprotocol> {
    let mut any = false;
    for p in offered {
        any = true;
        let known = |list: &[&str]| list.iter().any(|k| k.eq_ignore_ascii_case(p));
        if known(MQTT_SUBPROTOCOLS) {
            return Ok((Some(p.to_string()), Backend::Mqtt));
        }
        if known(STOMP_SUBPROTOCOLS) {
            return Ok((Some(p.to_string()), Backend::Stomp));
        }
    }
    if any {
        Err(UnsupportedSubprotocol)
    } else {
        Ok((None, Backend::Stomp))
    }
}

/// The tokens of every `Sec-WebSocket-Protocol` header of `req`.
fn offered_subprotocols(req: &Request) -> Vec<String> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Why the broker's STOMP stream could not be cut into frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("STOMP frame larger than {0} bytes")]
    TooLarge(usize),
    #[error("STOMP frame body does not end with NUL after content-length bytes")]
    Malformed,
}

/// Cuts a STOMP byte stream into frames (`command EOL headers EOL EOL body NUL *EOL`) and
/// heart-beats (a lone EOL). The body ends after `content-length` bytes when the header
/// is present (bodies may contain NUL), else at the first NUL.
#[derive(Debug)]
pub struct StompSplitter {
    buf: Vec<u8>,
    max: usize,
    /// End of the current frame's headers (after the blank line), once found.
    header_end: Option<usize>,
    /// The current frame's content-length, once its headers are known.
    content_length: Option<usize>,
    /// Where to resume scanning for the blank line / NUL.
    scan_from: usize,
}

impl StompSplitter {
    pub fn new(max: usize) -> StompSplitter {
        StompSplitter {
            buf: Vec::new(),
            max,
            header_end: None,
            content_length: None,
            scan_from: 0,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn take(&mut self, end: usize) -> Vec<u8> {
        self.header_end = None;
        self.content_length = None;
        self.scan_from = 0;
        self.buf.drain(..end).collect()
    }

    /// The next complete frame or heart-beat, if the buffer holds one.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.header_end.is_none() {
            match self.buf.as_slice() {
                [] => return Ok(None),
                [b'\n', ..] => return Ok(Some(self.take(1))),
                [b'\r', b'\n', ..] => return Ok(Some(self.take(2))),
                [b'\r'] => return Ok(None),
                _ => {}
            }
            // The blank line ending the headers: "\n\n" or "\n\r\n".
            let from = self.scan_from.saturating_sub(2);
            let found = self.buf[from..]
                .windows(2)
                .enumerate()
                .find_map(|(i, w)| match w {
                    [b'\n', b'\n'] => Some(from + i + 2),
                    [b'\n', b'\r'] if self.buf.get(from + i + 2) == Some(&b'\n') => {
                        Some(from + i + 3)
                    }
                    _ => None,
                });
            match found {
                Some(end) => {
                    self.header_end = Some(end);
                    self.content_length = content_length(&self.buf[..end]);
                    self.scan_from = end;
                }
                None => {
                    self.scan_from = self.buf.len();
                    if self.buf.len() > self.max {
                        return Err(FrameError::TooLarge(self.max));
                    }
                    return Ok(None);
                }
            }
        }
        let header_end = self.header_end.unwrap_or_default();
        let mut end = match self.content_length {
            Some(n) => {
                let total = header_end.saturating_add(n).saturating_add(1);
                if total > self.max {
                    return Err(FrameError::TooLarge(self.max));
                }
                if self.buf.len() < total {
                    return Ok(None);
                }
                if self.buf[total - 1] != 0 {
                    return Err(FrameError::Malformed);
                }
                total
            }
            None => match self.buf[self.scan_from..].iter().position(|&b| b == 0) {
                Some(i) => self.scan_from + i + 1,
                None => {
                    self.scan_from = self.buf.len();
                    if self.buf.len() > self.max {
                        return Err(FrameError::TooLarge(self.max));
                    }
                    return Ok(None);
                }
            },
        };
        // Trailing EOLs belong to the frame.
        loop {
            match &self.buf[end..] {
                [b'\n', ..] => end += 1,
                [b'\r', b'\n', ..] => end += 2,
                _ => break,
            }
        }
        Ok(Some(self.take(end)))
    }
}

/// The first `content-length` header of a frame's header block.
fn content_length(headers: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(headers).ok()?;
    text.lines()
        .skip(1)
        .map(|l| l.trim_end_matches('\r'))
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
}

fn stomp_message(frame: Vec<u8>) -> Message {
    match String::from_utf8(frame) {
        Ok(text) => Message::text(text),
        Err(e) => Message::binary(e.into_bytes()),
    }
}

fn close_frame(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }))
}

/// Pipe one upgraded WebSocket to one broker connection until either side closes.
pub async fn pipe<S>(ws: WebSocketStream<S>, tcp: TcpStream, backend: Backend, max: usize)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut tcp_rx, mut tcp_tx) = tcp.into_split();

    let client_to_broker = async {
        while let Some(msg) = ws_rx.next().await {
            match msg {
                Ok(Message::Binary(b)) => tcp_tx.write_all(&b).await?,
                Ok(Message::Text(t)) => tcp_tx.write_all(t.as_bytes()).await?,
                Ok(Message::Close(_)) => break,
                Ok(_) => {} // ping/pong are answered by tungstenite
                Err(e) => return Err(anyhow::anyhow!("WebSocket: {e}")),
            }
        }
        Ok::<Option<Message>, anyhow::Error>(None)
    };
    let broker_to_client = async {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut splitter = (backend == Backend::Stomp).then(|| StompSplitter::new(max));
        loop {
            let n = tcp_rx.read(&mut buf).await?;
            if n == 0 {
                return Ok(Some(close_frame(
                    CloseCode::Normal,
                    "broker closed the connection",
                )));
            }
            match &mut splitter {
                None => ws_tx.send(Message::binary(buf[..n].to_vec())).await?,
                Some(s) => {
                    s.push(&buf[..n]);
                    loop {
                        match s.next_frame() {
                            Ok(Some(frame)) => ws_tx.send(stomp_message(frame)).await?,
                            Ok(None) => break,
                            Err(e @ FrameError::TooLarge(_)) => {
                                return Ok(Some(close_frame(CloseCode::Size, &e.to_string())))
                            }
                            Err(e) => {
                                return Ok(Some(close_frame(CloseCode::Protocol, &e.to_string())))
                            }
                        }
                    }
                }
            }
        }
    };
    let outcome: anyhow::Result<Option<Message>> = tokio::select! {
        r = client_to_broker => r,
        r = broker_to_client => r,
    };
    match outcome {
        Ok(Some(close)) => {
            let _ = ws_tx.send(close).await;
        }
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "WebSocket bridge connection ended"),
    }
    let _ = ws_tx.close().await;
    let _ = tcp_tx.shutdown().await;
}

/// Handshake on `stream` (plain or TLS), connect the chosen backend, pipe.
async fn bridge<S>(stream: S, config: &BridgeConfig) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let chosen = Mutex::new(None::<Backend>);
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let offered = offered_subprotocols(req);
        match choose_subprotocol(offered.iter().map(String::as_str)) {
            Ok((protocol, backend)) => {
                if let Some(p) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
                    resp.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, p);
                }
                *chosen.lock().unwrap_or_else(|e| e.into_inner()) = Some(backend);
                Ok(resp)
            }
            Err(UnsupportedSubprotocol) => {
                let mut r = ErrorResponse::new(Some(format!(
                    "unsupported WebSocket subprotocol; use one of: {}, {}\n",
                    STOMP_SUBPROTOCOLS.join(", "),
                    MQTT_SUBPROTOCOLS.join(", ")
                )));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                Err(r)
            }
        }
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message))
        .max_frame_size(Some(config.max_message));
    let mut ws = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config)),
    )
    .await
    .context("WebSocket handshake timed out")?
    .context("WebSocket handshake")?;
    let backend = chosen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(Backend::Stomp);
    let addr = config.backend_addr(backend);
    let tcp = match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        _ => {
            let _ = ws
                .send(close_frame(CloseCode::Again, "broker not available"))
                .await;
            let _ = ws.close(None).await;
            anyhow::bail!("backend {addr} not available");
        }
    };
    let _ = tcp.set_nodelay(true);
    pipe(ws, tcp, backend, config.max_message).await;
    Ok(())
}

/// Accept connections on `listener` until `shutdown`; each is bridged in its own task.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<TlsSwitch>>,
    config: Arc<BridgeConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (sock, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "WebSocket bridge: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let tls = tls.as_ref().map(|t| t.acceptor());
        let config = config.clone();
        tokio::spawn(async move {
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(stream)) => bridge(stream, &config).await,
                        Ok(Err(e)) => Err(anyhow::anyhow!("TLS handshake: {e}")),
                        Err(_) => Err(anyhow::anyhow!("TLS handshake timed out")),
                    }
                }
                None => bridge(sock, &config).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %format!("{e:#}"), "WebSocket bridge connection refused");
            }
        });
    }
}

/// A rustls acceptor for the PEM chain and PKCS#8 key (ring provider, TLS 1.2 and 1.3).
pub fn tls_acceptor(cert_pem: &str, key_pem: &str) -> anyhow::Result<TlsAcceptor> {
    Ok(TlsAcceptor::from(Arc::new(tlsutil::server_config(
        cert_pem, key_pem,
    )?)))
}

/// The `wss` certificate, replaceable while the bridge runs (a renewal): every accepted
/// connection takes the config current at that moment, so connections already open
/// keep theirs and nothing is dropped.
#[derive(Debug)]
pub struct TlsSwitch {
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl TlsSwitch {
    /// A switch serving the PEM chain and key (see [`tls_acceptor`]).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> anyhow::Result<TlsSwitch> {
        Ok(TlsSwitch {
            current: RwLock::new(Arc::new(tlsutil::server_config(cert_pem, key_pem)?)),
        })
    }

    /// Serve `cert_pem`/`key_pem` to the next connections; on error nothing changes.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        let config = Arc::new(tlsutil::server_config(cert_pem, key_pem)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// An acceptor for the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    #[test]
    fn subprotocol_choice() {
        assert_eq!(choose_subprotocol([]), Ok((None, Backend::Stomp)));
        assert_eq!(
            choose_subprotocol(["mqtt"]),
            Ok((Some("mqtt".into()), Backend::Mqtt))
        );
        assert_eq!(
            choose_subprotocol(["mqttv3.1"]),
            Ok((Some("mqttv3.1".into()), Backend::Mqtt))
        );
        for p in ["v12.stomp", "v11.stomp", "v10.stomp", "stomp", "V12.STOMP"] {
            assert_eq!(
                choose_subprotocol([p]),
                Ok((Some(p.into()), Backend::Stomp)),
                "{p}"
            );
        }
        // the client's first known one wins, unknown ones are skipped
        assert_eq!(
            choose_subprotocol(["wamp", "v11.stomp", "mqtt"]),
            Ok((Some("v11.stomp".into()), Backend::Stomp))
        );
        assert_eq!(
            choose_subprotocol(["amqp", "wamp"]),
            Err(UnsupportedSubprotocol)
        );
    }

    fn frames(splitter: &mut StompSplitter) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(f) = splitter.next_frame().unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn splits_frames_and_heartbeats() {
        let stream: &[u8] = b"\nCONNECTED\nversion:1.2\n\n\0\nMESSAGE\ndestination:/queue/a\n\nhello\0\n\n\r\nERROR\r\nmessage:x\r\n\r\nbad\0";
        let mut s = StompSplitter::new(1024);
        s.push(stream);
        let got = frames(&mut s);
        assert_eq!(
            got,
            vec![
                b"\n".to_vec(),
                b"CONNECTED\nversion:1.2\n\n\0\n".to_vec(),
                b"MESSAGE\ndestination:/queue/a\n\nhello\0\n\n\r\n".to_vec(),
                b"ERROR\r\nmessage:x\r\n\r\nbad\0".to_vec(),
            ]
        );
        // the same stream fed byte by byte gives frames with the same content
        let mut s = StompSplitter::new(1024);
        let mut joined = Vec::new();
        let mut count = 0;
        for b in stream {
            s.push(&[*b]);
            while let Some(f) = s.next_frame().unwrap() {
                joined.extend_from_slice(&f);
                count += 1;
            }
        }
        assert_eq!(joined, stream);
        assert!(count >= 4, "{count}");
    }

    #[test]
    fn content_length_bodies_may_hold_nul() {
        let mut s = StompSplitter::new(1024);
        s.push(b"MESSAGE\ncontent-length:5\n\na\0b\0c");
        assert_eq!(s.next_frame().unwrap(), None);
        s.push(b"\0MESSAGE\n\nnext\0");
        assert_eq!(
            frames(&mut s),
            vec![
                b"MESSAGE\ncontent-length:5\n\na\0b\0c\0".to_vec(),
                b"MESSAGE\n\nnext\0".to_vec()
            ]
        );
        // content-length pointing at a non-NUL byte is a protocol error
        let mut s = StompSplitter::new(1024);
        s.push(b"MESSAGE\ncontent-length:1\n\nab\0");
        assert_eq!(s.next_frame(), Err(FrameError::Malformed));
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut s = StompSplitter::new(64);
        s.push(b"MESSAGE\n\n");
        s.push(&[b'x'; 100]);
        assert_eq!(s.next_frame(), Err(FrameError::TooLarge(64)));
        let mut s = StompSplitter::new(64);
        s.push(b"MESSAGE\ncontent-length:1000\n\n");
        assert_eq!(s.next_frame(), Err(FrameError::TooLarge(64)));
        let mut s = StompSplitter::new(64);
        s.push(&[b'H'; 100]);
        assert_eq!(s.next_frame(), Err(FrameError::TooLarge(64)));
    }

    /// A TCP echo server that writes back byte by byte (so frames arrive split).
    async fn echo_backend() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        for b in &buf[..n] {
                            if sock.write_all(&[*b]).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// A backend that records what it receives and reports its EOF.
    async fn recording_backend() -> (SocketAddr, tokio::sync::mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            if let Ok((mut sock, _)) = listener.accept().await {
                let mut all = Vec::new();
                let _ = sock.read_to_end(&mut all).await;
                let _ = tx.send(all).await;
            }
        });
        (addr, rx)
    }

    async fn start_bridge(
        stomp: SocketAddr,
        mqtt: SocketAddr,
        tls: Option<Arc<TlsSwitch>>,
    ) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        let config = Arc::new(BridgeConfig {
            stomp,
            mqtt,
            max_message: 1 << 20,
            connect_timeout: Duration::from_secs(2),
        });
        tokio::spawn(serve(listener, tls, config, rx));
        (addr, tx)
    }

    fn request(addr: SocketAddr, protocols: Option<&str>) -> Request {
        let mut req = format!("ws://{addr}/").into_client_request().unwrap();
        if let Some(p) = protocols {
            req.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(p).unwrap(),
            );
        }
        req
    }

    async fn next_data(ws: &mut WebSocketStream<TcpStream>) -> Message {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("no message in 5 s")
                .expect("stream ended")
                .unwrap();
            if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
                return m;
            }
        }
    }

    #[tokio::test]
    async fn stomp_frames_are_piped_one_per_message() {
        let echo = echo_backend().await;
        let unused = SocketAddr::from(([127, 0, 0, 1], 9));
        let (bridge, _stop) = start_bridge(echo, unused, None).await;
        let tcp = TcpStream::connect(bridge).await.unwrap();
        let (mut ws, resp) =
            tokio_tungstenite::client_async(request(bridge, Some("v12.stomp, v11.stomp")), tcp)
                .await
                .unwrap();
        assert_eq!(
            resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL).unwrap(),
            "v12.stomp"
        );
        // two frames in one client message come back as two messages
        ws.send(Message::text(
            "SEND\ndestination:/queue/a\n\none\0SEND\ndestination:/queue/a\n\ntwo\0",
        ))
        .await
        .unwrap();
        assert_eq!(
            next_data(&mut ws).await,
            Message::text("SEND\ndestination:/queue/a\n\none\0")
        );
        assert_eq!(
            next_data(&mut ws).await,
            Message::text("SEND\ndestination:/queue/a\n\ntwo\0")
        );
        // a binary body that is not UTF-8 comes back as a binary message
        let mut frame = b"SEND\ncontent-length:3\n\n".to_vec();
        frame.extend_from_slice(&[0xff, 0x00, 0xfe, 0x00]);
        ws.send(Message::binary(frame.clone())).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::binary(frame));
        // heart-beat
        ws.send(Message::text("\n")).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::text("\n"));
        ws.close(None).await.unwrap();
    }

    #[tokio::test]
    async fn no_subprotocol_means_stomp() {
        let echo = echo_backend().await;
        let unused = SocketAddr::from(([127, 0, 0, 1], 9));
        let (bridge, _stop) = start_bridge(echo, unused, None).await;
        let tcp = TcpStream::connect(bridge).await.unwrap();
        let (mut ws, resp) = tokio_tungstenite::client_async(request(bridge, None), tcp)
            .await
            .unwrap();
        assert!(resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL).is_none());
        ws.send(Message::text("CONNECT\n\n\0")).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::text("CONNECT\n\n\0"));
    }

    #[tokio::test]
    async fn mqtt_bytes_are_piped_and_closes_propagate() {
        let (mqtt, mut received) = recording_backend().await;
        let unused = SocketAddr::from(([127, 0, 0, 1], 9));
        let (bridge, _stop) = start_bridge(unused, mqtt, None).await;
        let tcp = TcpStream::connect(bridge).await.unwrap();
        let (mut ws, resp) = tokio_tungstenite::client_async(request(bridge, Some("mqtt")), tcp)
            .await
            .unwrap();
        assert_eq!(
            resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL).unwrap(),
            "mqtt"
        );
        // an MQTT CONNECT packet, split over two messages
        let connect = [
            0x10u8, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
        ];
        ws.send(Message::binary(connect[..5].to_vec()))
            .await
            .unwrap();
        ws.send(Message::binary(connect[5..].to_vec()))
            .await
            .unwrap();
        // the client's close reaches the broker as EOF
        ws.close(None).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, connect);
    }

    #[tokio::test]
    async fn broker_eof_closes_the_websocket() {
        // a backend that sends an ERROR frame and hangs up
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stomp = listener.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut sock, _)) = listener.accept().await {
                let _ = sock.write_all(b"ERROR\nmessage:bye\n\n\0").await;
            }
        });
        let unused = SocketAddr::from(([127, 0, 0, 1], 9));
        let (bridge, _stop) = start_bridge(stomp, unused, None).await;
        let tcp = TcpStream::connect(bridge).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(request(bridge, Some("stomp")), tcp)
            .await
            .unwrap();
        assert_eq!(
            next_data(&mut ws).await,
            Message::text("ERROR\nmessage:bye\n\n\0")
        );
        match next_data(&mut ws).await {
            Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Normal),
            other => panic!("expected a close, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unknown_subprotocols_and_missing_backends_are_refused() {
        let unused = SocketAddr::from(([127, 0, 0, 1], 9));
        let (bridge, _stop) = start_bridge(unused, unused, None).await;
        let tcp = TcpStream::connect(bridge).await.unwrap();
        let err = tokio_tungstenite::client_async(request(bridge, Some("amqp")), tcp)
            .await
            .unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                assert_eq!(resp.status(), StatusCode::BAD_REQUEST)
            }
            other => panic!("{other:?}"),
        }
        // known subprotocol but nothing listening behind: close 1013 (try again later)
        let tcp = TcpStream::connect(bridge).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(request(bridge, Some("stomp")), tcp)
            .await
            .unwrap();
        match next_data(&mut ws).await {
            Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Again),
            other => panic!("expected a close, got {other:?}"),
        }
    }

    /// A wss client (trusting any certificate: the test checks which one it gets).
    async fn wss_connect(
        bridge: SocketAddr,
        roots: Option<&str>,
    ) -> WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap();
        let client = match roots {
            Some(ca) => {
                let mut store = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    store.add(c.unwrap()).unwrap();
                }
                builder.with_root_certificates(store).with_no_client_auth()
            }
            None => {
                #[derive(Debug)]
                struct Any(Arc<rustls::crypto::CryptoProvider>);
                impl rustls::client::danger::ServerCertVerifier for Any {
                    fn verify_server_cert(
                        &self,
                        _: &CertificateDer<'_>,
                        _: &[CertificateDer<'_>],
                        _: &rustls_pki_types::ServerName<'_>,
                        _: &[u8],
                        _: rustls_pki_types::UnixTime,
                    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error>
                    {
                        Ok(rustls::client::danger::ServerCertVerified::assertion())
                    }
                    fn verify_tls12_signature(
                        &self,
                        m: &[u8],
                        c: &CertificateDer<'_>,
                        d: &rustls::DigitallySignedStruct,
                    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error>
                    {
                        rustls::crypto::verify_tls12_signature(
                            m,
                            c,
                            d,
                            &self.0.signature_verification_algorithms,
                        )
                    }
                    fn verify_tls13_signature(
                        &self,
                        m: &[u8],
                        c: &CertificateDer<'_>,
                        d: &rustls::DigitallySignedStruct,
                    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error>
                    {
                        rustls::crypto::verify_tls13_signature(
                            m,
                            c,
                            d,
                            &self.0.signature_verification_algorithms,
                        )
                    }
                    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
                        self.0.signature_verification_algorithms.supported_schemes()
                    }
                }
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Any(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))))
                    .with_no_client_auth()
            }
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = TcpStream::connect(bridge).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let stream = connector.connect(name, tcp).await.unwrap();
        let mut req = "wss://localhost/".into_client_request().unwrap();
        req.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v12.stomp"),
        );
        let (ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
        ws
    }

    fn peer_leaf(ws: &WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>) -> Vec<u8> {
        let (_, conn) = ws.get_ref().get_ref();
        conn.peer_certificates().unwrap()[0].as_ref().to_vec()
    }

    async fn echo_once(ws: &mut WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>) {
        ws.send(Message::text("CONNECT\n\n\0")).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m, Message::text("CONNECT\n\n\0"));
    }

    #[tokio::test]
    async fn wss_with_the_spec_certificate() {
        let tls = crate::testutil::sample_tls();
        let switch = Arc::new(TlsSwitch::from_pem(&tls.cert_pem, &tls.key_pem).unwrap());
        let echo = echo_backend().await;
        let unused = SocketAddr::from(([127, 0, 0, 1], 9));
        let (bridge, _stop) = start_bridge(echo, unused, Some(switch)).await;
        // verified against the spec's CA
        let mut ws = wss_connect(bridge, Some(&tls.ca_pem)).await;
        echo_once(&mut ws).await;
    }

    #[tokio::test]
    async fn a_renewed_certificate_is_served_without_dropping_connections() {
        let (one, two) = (crate::testutil::sample_tls(), crate::testutil::second_tls());
        let switch = Arc::new(TlsSwitch::from_pem(&one.cert_pem, &one.key_pem).unwrap());
        let echo = echo_backend().await;
        let unused = SocketAddr::from(([127, 0, 0, 1], 9));
        let (bridge, _stop) = start_bridge(echo, unused, Some(switch.clone())).await;
        let leaf = |pem: &str| crate::tlsutil::leaf_der(pem).unwrap();

        let mut before = wss_connect(bridge, None).await;
        assert_eq!(peer_leaf(&before), leaf(&one.cert_pem));
        echo_once(&mut before).await;

        // bad material changes nothing
        assert!(switch.replace(&two.cert_pem, &one.key_pem).is_err());
        let mut same = wss_connect(bridge, None).await;
        assert_eq!(peer_leaf(&same), leaf(&one.cert_pem));
        echo_once(&mut same).await;

        switch.replace(&two.cert_pem, &two.key_pem).unwrap();
        let mut after = wss_connect(bridge, None).await;
        assert_eq!(peer_leaf(&after), leaf(&two.cert_pem));
        echo_once(&mut after).await;
        // the connection opened before the renewal still works
        echo_once(&mut before).await;
        echo_once(&mut same).await;
    }

    #[test]
    fn bad_pem_is_refused() {
        let tls = crate::testutil::sample_tls();
        assert!(tls_acceptor(&tls.cert_pem, "nope").is_err());
        assert!(tls_acceptor("nope", &tls.key_pem).is_err());
        // a key that does not match the certificate
        assert!(tls_acceptor(&tls.ca_pem, &tls.key_pem).is_err());
    }
}
