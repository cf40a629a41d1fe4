//! STOMP 1.2 frames over a [`Wire`] (TCP, TLS, or a WebSocket over either).

use super::within;
use super::ws::{Closed, Wire};

/// A STOMP frame as received.
#[derive(Debug)]
pub struct Frame {
    pub command: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Encodes a frame (header values are used as given: no escaping needed for the tests).
pub fn frame(command: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("{command}\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}:{v}\n"));
    }
    out.push('\n');
    out.push_str(body);
    out.push('\0');
    out.into_bytes()
}

/// Splits the first complete frame off `buf` (skipping heart-beat EOLs; LF or CRLF
/// headers), if there is one.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    let start = buf.iter().position(|b| *b != b'\n' && *b != b'\r')?;
    buf.drain(..start);
    let head_end = match buf.windows(2).position(|w| w == b"\n\n") {
        Some(i) => i + 2,
        None => buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4,
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
    let command = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let body_end = match length {
        Some(n) if buf.len() > head_end + n => head_end + n,
        Some(_) => return None,
        None => head_end + buf[head_end..].iter().position(|b| *b == 0)?,
    };
    assert_eq!(buf[body_end], 0, "STOMP frame not NUL-terminated");
    let body = buf[head_end..body_end].to_vec();
    buf.drain(..=body_end);
    Some(Frame {
        command,
        headers,
        body,
    })
}

/// A STOMP session on a [`Wire`].
pub struct Stomp {
    wire: Wire,
    buf: Vec<u8>,
}

impl Stomp {
    pub fn new(wire: Wire) -> Stomp {
        Stomp {
            wire,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, frame: Vec<u8>) {
        self.wire.send(frame, true).await
    }

    /// The next frame, or how the connection ended first.
    pub async fn next(&mut self, what: &str) -> Result<Frame, Closed> {
        within(what, async {
            loop {
                if let Some(f) = take_frame(&mut self.buf) {
                    return Ok(f);
                }
                self.buf.extend(self.wire.recv().await?);
            }
        })
        .await
    }

    /// The next frame; panics naming `what` if the connection ended first.
    async fn expect_frame(&mut self, what: &str) -> Frame {
        self.next(what)
            .await
            .unwrap_or_else(|e| panic!("{what}: connection ended: {e:?}"))
    }

    /// CONNECT (STOMP 1.2, virtual host `host`, no heart-beats); the server's reply.
    pub async fn connect(&mut self, host: &str, user: &str, password: &str) -> Frame {
        self.send(frame(
            "CONNECT",
            &[
                ("accept-version", "1.2"),
                ("host", host),
                ("login", user),
                ("passcode", password),
                ("heart-beat", "0,0"),
            ],
            "",
        ))
        .await;
        self.next("STOMP reply to CONNECT")
            .await
            .unwrap_or_else(|e| panic!("STOMP connection ended without a reply to CONNECT: {e:?}"))
    }

    /// Waits for RECEIPT `id`; panics on any other frame.
    pub async fn receipt(&mut self, what: &str, id: &str) {
        let f = self.expect_frame(what).await;
        assert_eq!(f.command, "RECEIPT", "{what}: {f:?}");
        assert_eq!(f.header("receipt-id"), Some(id), "{what}: {f:?}");
    }

    /// SUBSCRIBE `destination` as `id` (auto ack), confirmed by a RECEIPT.
    pub async fn subscribe(&mut self, destination: &str, id: &str) {
        let receipt = format!("sub-{id}");
        self.send(frame(
            "SUBSCRIBE",
            &[
                ("id", id),
                ("destination", destination),
                ("ack", "auto"),
                ("receipt", &receipt),
            ],
            "",
        ))
        .await;
        self.receipt(&format!("SUBSCRIBE {destination}"), &receipt)
            .await;
    }

    /// SEND `body` to `destination` (persistent), confirmed by a RECEIPT.
    pub async fn send_message(&mut self, destination: &str, body: &str) {
        let receipt = format!("send-{}", uuid::Uuid::new_v4().simple());
        self.send(frame(
            "SEND",
            &[
                ("destination", destination),
                ("content-type", "text/plain"),
                ("persistent", "true"),
                ("receipt", &receipt),
            ],
            body,
        ))
        .await;
        self.receipt(&format!("SEND {destination}"), &receipt).await;
    }

    /// The next MESSAGE frame; panics on anything else.
    pub async fn message(&mut self, what: &str) -> Frame {
        let f = self.expect_frame(what).await;
        assert_eq!(f.command, "MESSAGE", "{what}: {f:?}");
        f
    }

    pub async fn disconnect(mut self) {
        self.send(frame("DISCONNECT", &[], "")).await;
    }
}

/// CONNECTED (version 1.2, virtual host `/`), then SUBSCRIBE + SEND (with receipt) on
/// `/queue/{queue}` delivers the MESSAGE back.
pub async fn stomp_round_trip(
    label: &str,
    mut good: Stomp,
    user: &str,
    password: &str,
    queue: &str,
) {
    let reply = good.connect("/", user, password).await;
    assert_eq!(reply.command, "CONNECTED", "{label}: {reply:?}");
    assert_eq!(reply.header("version"), Some("1.2"), "{label}: {reply:?}");
    let destination = format!("/queue/{queue}");
    good.send(frame(
        "SUBSCRIBE",
        &[("id", "0"), ("destination", &destination), ("ack", "auto")],
        "",
    ))
    .await;
    let body = format!("hello {label}");
    good.send(frame(
        "SEND",
        &[
            ("destination", &destination),
            ("content-type", "text/plain"),
            ("receipt", "sent-1"),
        ],
        &body,
    ))
    .await;
    let (mut receipt, mut message) = (false, None);
    while !receipt || message.is_none() {
        let f = good.expect_frame(&format!("{label} RECEIPT/MESSAGE")).await;
        match f.command.as_str() {
            "RECEIPT" => {
                assert_eq!(f.header("receipt-id"), Some("sent-1"), "{label}: {f:?}");
                receipt = true;
            }
            "MESSAGE" => {
                assert_eq!(f.header("subscription"), Some("0"), "{label}: {f:?}");
                message = Some(f.body);
            }
            _ => panic!("{label}: unexpected frame {f:?}"),
        }
    }
    assert_eq!(message.as_deref(), Some(body.as_bytes()), "{label}");
    good.disconnect().await;
}
