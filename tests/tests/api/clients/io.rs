//! Byte streams the protocol clients run over: TCP, or TLS over TCP.

use std::io;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
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

/// A rustls client (ring) whose only root is the CA in `ca_pem`.
pub fn client_config(ca_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    assert_eq!(roots.len(), 1, "one CA certificate expected");
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    Arc::new(config)
}
