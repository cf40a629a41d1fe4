//! ActiveMQ readiness: a real STOMP login.
//!
//! An open port proves little (docker-proxy accepts on published ports before the broker
//! listens, and a standby never binds its connectors), and a broker whose JAAS files are
//! unreadable accepts connections but no logins. So the probe logs in: a STOMP `CONNECT`
//! with the agent's internal user must be answered by `CONNECTED`. Then it sends
//! `DISCONNECT` with a receipt and waits for the `RECEIPT`, so the broker sees an orderly
//! goodbye and logs nothing.
//!
//! STOMP framing is trivial text (command line, `name:value` headers, blank line, body,
//! NUL); this module writes two frames and reads the first line of the answers. The
//! internal user's name and password are hex/ASCII, and STOMP 1.2 does not escape the
//! headers of `CONNECT`/`CONNECTED` anyway.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a login did not succeed. Never carries the password.
#[derive(Debug, thiserror::Error)]
pub enum StompProbeError {
    #[error("connect to {addr} failed: {error}")]
    Connect {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("no STOMP answer from {addr} within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("I/O error talking to {addr}: {error}")]
    Io {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("{addr} refused the login: {message}")]
    Refused { addr: SocketAddr, message: String },
    #[error("{addr} answered something other than a STOMP frame")]
    Unexpected { addr: SocketAddr },
}

/// The CONNECT frame for `login`/`passcode`.
pub fn connect_frame(login: &str, passcode: &str) -> Vec<u8> {
    format!(
        "CONNECT\naccept-version:1.2,1.1,1.0\nhost:localhost\nlogin:{login}\npasscode:{passcode}\nheart-beat:0,0\n\n\0"
    )
    .into_bytes()
}

/// Read one frame (up to its NUL, at most 64 KiB); leading heart-beat EOLs are skipped.
async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut frame = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if stream.read(&mut byte).await? == 0 {
            return Ok(None);
        }
        match byte[0] {
            0 => return Ok(Some(frame)),
            b'\n' | b'\r' if frame.is_empty() => {}
            b => frame.push(b),
        }
        if frame.len() > 64 * 1024 {
            return Ok(None);
        }
    }
}

/// The command and the `message` header of a frame.
fn command_and_message(frame: &[u8]) -> (String, Option<String>) {
    let text = String::from_utf8_lossy(frame);
    let mut lines = text.lines();
    let command = lines.next().unwrap_or("").trim().to_string();
    let message = lines
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("message:"))
        .map(|m| m.chars().take(200).collect());
    (command, message)
}

/// Log in to the STOMP listener at `addr` (see the module docs).
pub async fn stomp_login(
    addr: SocketAddr,
    login: &str,
    passcode: &str,
    timeout: Duration,
) -> Result<(), StompProbeError> {
    let io = |error| StompProbeError::Io { addr, error };
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|error| StompProbeError::Connect { addr, error })?;
        stream
            .write_all(&connect_frame(login, passcode))
            .await
            .map_err(io)?;
        let frame = read_frame(&mut stream)
            .await
            .map_err(io)?
            .ok_or(StompProbeError::Unexpected { addr })?;
        match command_and_message(&frame) {
            (c, _) if c == "CONNECTED" => {}
            (c, message) if c == "ERROR" => {
                return Err(StompProbeError::Refused {
                    addr,
                    message: message.unwrap_or_else(|| "ERROR frame".into()),
                })
            }
            _ => return Err(StompProbeError::Unexpected { addr }),
        }
        // Orderly goodbye; a broker that does not answer it is still ready.
        if stream
            .write_all(b"DISCONNECT\nreceipt:berth-probe\n\n\0")
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), read_frame(&mut stream)).await;
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(StompProbeError::Timeout { addr, timeout }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A fake STOMP server: answers CONNECT with CONNECTED if the credentials match,
    /// ERROR otherwise, and DISCONNECT with RECEIPT. Records the frames it got.
    async fn fake_broker(
        user: &'static str,
        pass: &'static str,
    ) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    while let Ok(Some(frame)) = read_frame(&mut sock).await {
                        let text = String::from_utf8_lossy(&frame).into_owned();
                        record.lock().unwrap().push(text.clone());
                        let reply: &[u8] = if text.starts_with("CONNECT\n") {
                            if text.contains(&format!("\nlogin:{user}\n"))
                                && text.contains(&format!("\npasscode:{pass}\n"))
                            {
                                b"CONNECTED\nversion:1.2\nserver:ActiveMQ/5.17.6\n\n\0\n"
                            } else {
                                b"ERROR\nmessage:User name [x] or password is invalid.\n\n\0"
                            }
                        } else if text.starts_with("DISCONNECT") {
                            b"RECEIPT\nreceipt-id:berth-probe\n\n\0"
                        } else {
                            b""
                        };
                        let _ = sock.write_all(reply).await;
                    }
                });
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn logs_in_and_says_goodbye() {
        let (addr, seen) = fake_broker("probe", "pw-123").await;
        stomp_login(addr, "probe", "pw-123", Duration::from_secs(5))
            .await
            .unwrap();
        let frames = seen.lock().unwrap().clone();
        assert!(frames[0].starts_with("CONNECT\naccept-version:1.2,1.1,1.0\n"));
        assert!(frames[1].starts_with("DISCONNECT\nreceipt:berth-probe"));
    }

    #[tokio::test]
    async fn wrong_credentials_are_refused_without_echoing_the_password() {
        let (addr, _) = fake_broker("probe", "pw-123").await;
        let err = stomp_login(addr, "probe", "not-the-password", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, StompProbeError::Refused { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("password is invalid"), "{msg}");
        assert!(!msg.contains("not-the-password"), "{msg}");
    }

    #[tokio::test]
    async fn silent_or_closed_listeners_are_not_ready() {
        // accept-then-close (docker-proxy in front of a standby)
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                drop(sock);
            }
        });
        let err = stomp_login(addr, "u", "p", Duration::from_secs(5))
            .await
            .unwrap_err();
        // EOF, or a reset because the CONNECT was never read
        assert!(
            matches!(
                err,
                StompProbeError::Unexpected { .. } | StompProbeError::Io { .. }
            ),
            "{err}"
        );

        // accepts but never answers
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let err = stomp_login(addr, "u", "p", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, StompProbeError::Timeout { .. }), "{err}");

        // nothing listening
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = stomp_login(addr, "u", "p", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, StompProbeError::Connect { .. }), "{err}");
    }

    #[test]
    fn frame_parsing() {
        assert_eq!(
            command_and_message(b"ERROR\nmessage:nope\ncontent-length:0\n\n"),
            ("ERROR".to_string(), Some("nope".to_string()))
        );
        assert_eq!(
            command_and_message(b"CONNECTED\nversion:1.2\n\n"),
            ("CONNECTED".to_string(), None)
        );
        let f = connect_frame("u", "p");
        assert!(f.ends_with(b"\n\n\0"));
    }
}
