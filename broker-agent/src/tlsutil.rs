//! TLS helpers shared by the drivers and the renewal path: a rustls server config from
//! the spec's PEM material (the ActiveMQ WebSocket bridge serves with it, and every
//! renewal is checked with it before anything is written), the leaf certificate of a
//! chain, and [`served_leaf`], which connects to a listener and returns the certificate
//! it presents, so that the agent reports a renewal only once the new certificate is
//! really being served.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server config for the PEM chain and PKCS#8 key (ring provider, TLS 1.2 and
/// 1.3, ALPN `http/1.1`). Fails without quoting the material when the PEM is invalid or
/// the key does not belong to the leaf.
pub fn server_config(cert_pem: &str, key_pem: &str) -> anyhow::Result<rustls::ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow::anyhow!("the TLS certificate chain is not valid PEM"))?;
    anyhow::ensure!(!certs.is_empty(), "the TLS certificate chain is empty");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| anyhow::anyhow!("the TLS private key is not valid PEM"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not form a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The DER of the first certificate (the leaf) of a PEM chain.
pub fn leaf_der(cert_pem: &str) -> anyhow::Result<Vec<u8>> {
    CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()
        .context("the TLS certificate chain is empty")?
        .map(|c| c.as_ref().to_vec())
        .map_err(|_| anyhow::anyhow!("the TLS certificate chain is not valid PEM"))
}

/// Accepts any server certificate and remembers the leaf (signatures are still
/// checked, so the server holds the key of what it presents). Only used to ask a local
/// listener which certificate it serves, never to trust it.
#[derive(Debug)]
struct Capture {
    leaf: Mutex<Option<Vec<u8>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.leaf.lock().unwrap_or_else(|e| e.into_inner()) = Some(end_entity.as_ref().to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connect to `addr`, complete a TLS handshake and return the leaf certificate the
/// listener presented (DER). The connection is closed right after.
pub async fn served_leaf(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Vec<u8>> {
    let provider = provider();
    let capture = Arc::new(Capture {
        leaf: Mutex::new(None),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let attempt = async {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let name = ServerName::IpAddress(addr.ip().into());
        let mut tls = connector
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {addr}"))?;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| anyhow::anyhow!("no TLS handshake with {addr} within {timeout:?}"))??;
    let leaf = capture
        .leaf
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    leaf.with_context(|| format!("{addr} presented no certificate"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sample_tls, second_tls};
    use tokio::net::TcpListener;

    async fn tls_server(cert: &str, key: &str) -> SocketAddr {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(cert, key).unwrap()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(sock).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_the_served_leaf() {
        let tls = sample_tls();
        let addr = tls_server(&tls.cert_pem, &tls.key_pem).await;
        let got = served_leaf(addr, Duration::from_secs(5)).await.unwrap();
        assert_eq!(got, leaf_der(&tls.cert_pem).unwrap());
        let other = second_tls();
        assert_ne!(got, leaf_der(&other.cert_pem).unwrap());
    }

    #[tokio::test]
    async fn fails_on_a_plain_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let _ =
                    tokio::io::AsyncWriteExt::write_all(&mut sock, b"AMQP\x00\x00\x09\x01").await;
            }
        });
        assert!(served_leaf(addr, Duration::from_secs(2)).await.is_err());
    }

    #[test]
    fn material_is_checked() {
        let tls = sample_tls();
        assert!(server_config(&tls.cert_pem, &tls.key_pem).is_ok());
        assert!(server_config(&tls.cert_pem, "nope").is_err());
        assert!(server_config("nope", &tls.key_pem).is_err());
        assert!(server_config("", &tls.key_pem).is_err());
        // a key that does not belong to the leaf
        let other = second_tls();
        let err = server_config(&tls.cert_pem, &other.key_pem).unwrap_err();
        assert!(!format!("{err:#}").contains("PRIVATE"), "{err:#}");
        assert!(leaf_der("").is_err());
    }
}
