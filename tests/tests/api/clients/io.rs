//! Byte streams the protocol clients run over: TCP, or TLS over TCP.

use std::io;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{authority, within};

/// A byte stream the protocol helpers run over: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}
pub type BoxStream = Box<dyn Stream>;

/// A TCP connection to `hostport`.
pub async fn tcp(hostport: &str) -> TcpStream {
    within(
        &format!("TCP connect {hostport}"),
        TcpStream::connect(hostport),
    )
    .await
    .unwrap_or_else(|e| panic!("TCP connect {hostport}: {e}"))
}

/// TCP, then a TLS handshake with `config` for the endpoint's host (`127.0.0.1`: an IP
/// server name).
pub async fn tls_connect(url: &str, config: Arc<ClientConfig>) -> io::Result<TlsStream<TcpStream>> {
    let hostport = authority(url);
    let (host, _) = hostport.rsplit_once(':').expect("host:port");
    let name = ServerName::try_from(host.to_owned()).expect("server name");
    assert!(
        matches!(name, ServerName::IpAddress(_)),
        "{host} should be an IP address"
    );
    let tcp = tcp(hostport).await;
    within(
        &format!("TLS handshake with {url}"),
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
}
