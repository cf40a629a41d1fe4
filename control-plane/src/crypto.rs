//! Secrets at rest: AES-256-GCM with a master key Berth keeps outside the database.
//!
//! Broker passwords, agent tokens and Erlang cookies are stored as
//! `nonce (12 bytes) || ciphertext+tag`. The key comes from configuration
//! (`BERTH_MASTER_KEY`, base64) or from `data_dir/master.key`, created with mode 0600
//! on first start. Losing the key makes stored secrets unreadable by design.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use anyhow::Context;
use base64::Engine as _;
use rand::RngCore;

const NONCE_LEN: usize = 12;

/// Encrypts and decrypts secrets with the master key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key redacted>)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
        }
    }

    /// Loads the key from base64 config, or from (creating if needed) `dir/master.key`.
    pub fn load_or_create(configured: Option<&str>, dir: &Path) -> anyhow::Result<Self> {
        if let Some(b64) = configured {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .context("master_key is not valid base64")?;
            let key: [u8; 32] = raw
                .try_into()
                .map_err(|_| anyhow::anyhow!("master_key must decode to exactly 32 bytes"))?;
            return Ok(Self::from_key(&key));
        }
        let path = dir.join("master.key");
        if !path.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut key = [0u8; 32];
            OsRng.fill_bytes(&mut key);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(
                base64::engine::general_purpose::STANDARD
                    .encode(key)
                    .as_bytes(),
            )?;
            f.sync_all()?;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::load_or_create(Some(&text), dir)
    }

    pub fn seal(&self, plaintext: &str) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("AES-GCM encryption of a short secret cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> anyhow::Result<String> {
        anyhow::ensure!(sealed.len() > NONCE_LEN, "sealed secret is too short");
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let pt = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| anyhow::anyhow!("secret does not decrypt with this master key"))?;
        String::from_utf8(pt).context("secret is not UTF-8")
    }
}

/// A random URL-safe token with 256 bits of entropy (agent tokens, Erlang cookies).
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let sb = SecretBox::load_or_create(None, dir.path()).unwrap();
        let sealed = sb.seal("correct-horse-battery");
        assert!(!sealed.windows(5).any(|w| w == b"horse"));
        assert_eq!(sb.open(&sealed).unwrap(), "correct-horse-battery");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(sb.open(&bad).is_err());
        // The same key file is reused.
        let again = SecretBox::load_or_create(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "correct-horse-battery");
        let mode = std::fs::metadata(dir.path().join("master.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn another_key_cannot_open() {
        let a = SecretBox::from_key(&[1; 32]);
        let b = SecretBox::from_key(&[2; 32]);
        assert!(b.open(&a.seal("secret-value-1")).is_err());
    }
}
