//! WebSocket over any [`BoxStream`] (plain TCP for `ws://`, TLS for `wss://`), and the
//! byte [`Wire`] the STOMP and MQTT clients share: a stream, or a WebSocket carrying one
//! frame/packet per message.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::io::{tcp, BoxStream};
use super::{authority, within};

pub type Ws = WebSocketStream<BoxStream>;

/// The WebSocket handshake for `url` over `io` (plain TCP for `ws://`, TLS for
/// `wss://`) asking for `subprotocol`; checks the server chose it.
pub async fn ws_over(io: BoxStream, url: &str, subprotocol: &'static str) -> Ws {
    let mut request = url.into_client_request().expect("ws request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(subprotocol),
    );
    let (ws, response) = within(
        &format!("WebSocket handshake {url}"),
        tokio_tungstenite::client_async(request, io),
    )
    .await
    .unwrap_or_else(|e| panic!("WebSocket handshake {url}: {e}"));
    assert_eq!(
        response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok()),
        Some(subprotocol),
        "{url} did not accept subprotocol {subprotocol}"
    );
    ws
}

/// A plaintext WebSocket (`ws://`) to `url` asking for `subprotocol`.
pub async fn ws_connect(url: &str, subprotocol: &'static str) -> Ws {
    assert!(url.starts_with("ws://"), "{url}");
    ws_over(Box::new(tcp(authority(url)).await), url, subprotocol).await
}

/// A byte pipe: a stream, or a WebSocket carrying one frame/packet per message.
pub enum Wire {
    Stream(BoxStream),
    Ws(Box<Ws>),
}

impl Wire {
    /// A plain TCP connection to `hostport`.
    pub async fn tcp(hostport: &str) -> Wire {
        Wire::Stream(Box::new(tcp(hostport).await))
    }

    /// A plaintext WebSocket (`ws://`) to `url` with `subprotocol`.
    pub async fn ws(url: &str, subprotocol: &'static str) -> Wire {
        Wire::Ws(Box::new(ws_connect(url, subprotocol).await))
    }

    /// Sends `bytes`; on a WebSocket as one text (`text`) or binary message.
    pub async fn send(&mut self, bytes: Vec<u8>, text: bool) {
        match self {
            Wire::Stream(s) => s.write_all(&bytes).await.expect("stream write"),
            Wire::Ws(ws) => {
                let msg = if text {
                    Message::text(String::from_utf8(bytes).expect("UTF-8 frame"))
                } else {
                    Message::binary(bytes)
                };
                ws.send(msg).await.expect("WebSocket send")
            }
        }
    }

    /// The next bytes from the peer, or how the connection ended.
    pub async fn recv(&mut self) -> Result<Vec<u8>, Closed> {
        match self {
            Wire::Stream(s) => {
                let mut chunk = vec![0u8; 4096];
                match s.read(&mut chunk).await {
                    Ok(0) => Err(Closed::Eof),
                    Err(e) => Err(Closed::Error(e.to_string())),
                    Ok(n) => {
                        chunk.truncate(n);
                        Ok(chunk)
                    }
                }
            }
            Wire::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => return Ok(t.as_bytes().to_vec()),
                    Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
                    Some(Ok(Message::Close(frame))) => {
                        return Err(Closed::WebSocket(
                            frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())),
                        ))
                    }
                    Some(Err(e)) => return Err(Closed::Error(e.to_string())),
                    None => return Err(Closed::Eof),
                    Some(Ok(_)) => continue,
                }
            },
        }
    }
}

/// How a connection ended before the expected frame or packet arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed the stream.
    Eof,
    /// A WebSocket close (code and reason, if the peer sent them).
    WebSocket(Option<(u16, String)>),
    /// A read error.
    Error(String),
}
