//! Certificate statements: the installation CA (key sealed) and broker certificates.

use super::DataStore;
use crate::domain::BrokerId;
use crate::error::{Error, ResultExt};
use crate::tls::StoredCa;

/// A broker's current certificate (key sealed).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CertificateRow {
    pub cert_pem: String,
    pub key_enc: Vec<u8>,
    pub not_after: chrono::DateTime<chrono::Utc>,
}

impl DataStore {
    /// The installation CA: the stored one, or `generate()`'s, stored first. Two
    /// processes starting at once agree on one CA (the first insert wins).
    pub async fn ca_load_or_insert(
        &self,
        generate: impl FnOnce() -> anyhow::Result<StoredCa>,
    ) -> Result<StoredCa, Error> {
        if let Some(ca) = self.ca_fetch().await? {
            return Ok(ca);
        }
        let new = generate().map_err(|e| Error::internal("generating the installation CA", e))?;
        sqlx::query(
            "INSERT INTO installation_ca (cert_pem, key_enc) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&new.cert_pem)
        .bind(&new.key_sealed)
        .execute(&self.pool)
        .await
        .context_internal("storing the installation CA")?;
        self.ca_fetch().await?.ok_or_else(|| {
            Error::internal("installation CA", anyhow::anyhow!("vanished after insert"))
        })
    }

    async fn ca_fetch(&self) -> Result<Option<StoredCa>, Error> {
        let row: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT cert_pem, key_enc FROM installation_ca")
                .fetch_optional(&self.pool)
                .await
                .context_internal("reading the installation CA")?;
        Ok(row.map(|(cert_pem, key_sealed)| StoredCa {
            cert_pem,
            key_sealed,
        }))
    }

    pub async fn certificate_fetch(&self, id: &BrokerId) -> Result<Option<CertificateRow>, Error> {
        sqlx::query_as(
            "SELECT cert_pem, key_enc, not_after FROM broker_certificates WHERE broker_id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .context_internal("reading a broker certificate")
    }

    /// Stores (or replaces) a broker's certificate.
    pub async fn certificate_store(
        &self,
        id: &BrokerId,
        cert: &CertificateRow,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO broker_certificates (broker_id, cert_pem, key_enc, not_after) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (broker_id) DO UPDATE SET \
             cert_pem = EXCLUDED.cert_pem, key_enc = EXCLUDED.key_enc, \
             not_after = EXCLUDED.not_after, issued_at = now()",
        )
        .bind(id.as_str())
        .bind(&cert.cert_pem)
        .bind(&cert.key_enc)
        .bind(cert.not_after)
        .execute(&self.pool)
        .await
        .context_internal("storing a broker certificate")?;
        Ok(())
    }
}
