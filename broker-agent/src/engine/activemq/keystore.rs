//! The PKCS#12 keystore ActiveMQ's TLS connectors read (`<sslContext keyStore=…>`),
//! written by the agent from the spec's PEM chain and PKCS#8 key with `p12-keystore`
//! (PBES2/AES-256 and an HMAC-SHA-256 MAC, which Java 21 reads).

use agent_contract::TlsMaterial;
use anyhow::Context;
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Alias of the broker's key entry.
pub const KEY_ALIAS: &str = "broker";

/// A PKCS#12 file holding the key and chain of `tls`, protected by `password`.
pub fn pkcs12_from_pem(tls: &TlsMaterial, password: &str) -> anyhow::Result<Vec<u8>> {
    let certs = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
        .map(|c| {
            let c = c.map_err(|_| anyhow::anyhow!("the certificate chain is not valid PEM"))?;
            Certificate::from_der(c.as_ref()).context("a certificate of the chain is not X.509")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!certs.is_empty(), "the certificate chain is empty");
    let key = match PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()) {
        Ok(PrivateKeyDer::Pkcs8(k)) => PrivateKey::from_der(k.secret_pkcs8_der())
            .context("the private key is not a usable PKCS#8 key")?,
        Ok(_) => anyhow::bail!("the private key must be PKCS#8 (BEGIN PRIVATE KEY)"),
        Err(_) => anyhow::bail!("the private key is not valid PEM"),
    };
    let chain = PrivateKeyChain::new(KEY_ALIAS.as_bytes(), key, certs);
    let mut store = KeyStore::new();
    store.add_entry(KEY_ALIAS, KeyStoreEntry::PrivateKeyChain(chain));
    store
        .writer(password)
        .write()
        .context("writing the PKCS#12 keystore")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample_tls;
    use p12_keystore::Pkcs12ImportPolicy;

    #[test]
    fn keystore_round_trips() {
        let tls = sample_tls();
        let p12 = pkcs12_from_pem(&tls, "s3cret-store").unwrap();
        let store =
            KeyStore::from_pkcs12(&p12, "s3cret-store", Pkcs12ImportPolicy::Relaxed).unwrap();
        let (alias, chain) = store.private_key_chain().unwrap();
        assert_eq!(alias, KEY_ALIAS);
        assert_eq!(chain.certs().len(), 1);
        assert!(
            chain.certs()[0].subject().contains("localhost"),
            "{}",
            chain.certs()[0].subject()
        );
        let leaf = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(chain.certs()[0].as_der(), leaf.as_ref());
        assert!(KeyStore::from_pkcs12(&p12, "wrong", Pkcs12ImportPolicy::Relaxed).is_err());
    }

    #[test]
    fn bad_material_is_refused_without_quoting_it() {
        let mut tls = sample_tls();
        tls.key_pem = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".into();
        let err = pkcs12_from_pem(&tls, "pw").unwrap_err().to_string();
        assert!(!err.contains("AAAA"), "{err}");
        let mut tls = sample_tls();
        tls.cert_pem = String::new();
        assert!(pkcs12_from_pem(&tls, "pw").is_err());
    }
}
