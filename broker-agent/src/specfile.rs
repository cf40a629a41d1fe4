//! Loading, validating and persisting the [`AgentSpec`].
//!
//! The spec is the agent's only input and holds every secret of the broker, so this
//! module is strict about what it accepts (a half-valid spec would give a broker that
//! cannot be managed) and careful about what it says: error messages name fields and
//! positions, never values.

use std::path::{Path, PathBuf};

use agent_contract::{AgentSpec, EngineSpec, SPEC_PATH};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::engine::INTERNAL_USER_PREFIX;
use crate::fsutil;

/// Environment variable that overrides [`SPEC_PATH`] (tests, local runs).
pub const SPEC_PATH_ENV: &str = "BERTH_AGENT_SPEC";

/// Why a spec was rejected. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("spec is not valid JSON for an AgentSpec ({0})")]
    Parse(String),
    #[error("invalid spec: {0}")]
    Invalid(String),
}

/// The spec path: `$BERTH_AGENT_SPEC` or [`SPEC_PATH`].
pub fn spec_path() -> PathBuf {
    std::env::var_os(SPEC_PATH_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SPEC_PATH))
}

/// Parse a spec from JSON bytes. The error keeps serde's category and position but not
/// its message, which can quote values (e.g. a password of the wrong type).
pub fn parse(bytes: &[u8]) -> Result<AgentSpec, SpecError> {
    serde_json::from_slice::<AgentSpec>(bytes).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "missing field or wrong type",
            serde_json::error::Category::Eof => "unexpected end of input",
        };
        SpecError::Parse(format!("{kind} at line {} column {}", e.line(), e.column()))
    })
}

/// Read, parse and validate the spec at `path`.
pub fn load(path: &Path) -> Result<AgentSpec, SpecError> {
    let bytes = std::fs::read(path).map_err(|error| SpecError::Read {
        path: path.to_owned(),
        error,
    })?;
    let spec = parse(&bytes)?;
    validate(&spec)?;
    Ok(spec)
}

/// Persist `spec` at `path` (mode 0600, atomically).
pub fn persist(path: &Path, spec: &AgentSpec) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(spec)?;
    fsutil::write_atomic(path, &json, 0o600, None)
}

/// Reject specs the agent cannot run a manageable broker from.
pub fn validate(spec: &AgentSpec) -> Result<(), SpecError> {
    let bad = |msg: String| Err(SpecError::Invalid(msg));
    if spec.broker_id.trim().is_empty() {
        return bad("broker_id is empty".into());
    }
    if spec.agent_token.len() < 16 {
        return bad("agent_token must be at least 16 characters".into());
    }
    if spec.users.is_empty() {
        return bad("users is empty: at least one (administrator) user is required".into());
    }
    let mut seen = std::collections::HashSet::new();
    for (i, user) in spec.users.iter().enumerate() {
        if user.username.is_empty() || user.username.chars().any(char::is_control) {
            return bad(format!(
                "users[{i}].username is empty or has control characters"
            ));
        }
        if user.username.starts_with(INTERNAL_USER_PREFIX) {
            return bad(format!(
                "users[{i}].username starts with {INTERNAL_USER_PREFIX}, which is reserved for Berth"
            ));
        }
        if user.password.is_empty() {
            return bad(format!(
                "users[{i}] ({}) has an empty password",
                user.username
            ));
        }
        if user.password.contains(['\n', '\r', '\0']) {
            return bad(format!(
                "users[{i}] ({}) has a password with line breaks or NUL",
                user.username
            ));
        }
        if !seen.insert(user.username.as_str()) {
            return bad(format!("user {} appears twice", user.username));
        }
    }
    if !spec.plaintext && spec.tls.is_none() {
        return bad("plaintext is false and there is no tls material: no listener at all".into());
    }
    if let Some(tls) = &spec.tls {
        validate_tls(tls).map_err(SpecError::Invalid)?;
    }
    match &spec.engine {
        EngineSpec::Rabbitmq(r) => {
            if let Some(f) = r.memory_high_watermark {
                if !(f > 0.0 && f <= 1.0) {
                    return bad("memory_high_watermark must be in (0, 1]".into());
                }
            }
            let cookie = &r.erlang_cookie;
            if cookie.is_empty()
                || cookie.len() > 255
                || !cookie.bytes().all(|b| b.is_ascii_graphic())
            {
                return bad("erlang_cookie must be 1-255 printable ASCII characters".into());
            }
        }
        EngineSpec::Activemq(a) => {
            let name_ok = !a.broker_name.is_empty()
                && a.broker_name.len() <= 200
                && !a.broker_name.starts_with('.')
                && a.broker_name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !name_ok {
                // It names directories on the data volume.
                return bad("broker_name must be 1-200 characters of A-Z a-z 0-9 . _ - (not starting with .)".into());
            }
            if let Some(p) = a.heap_percent {
                if !(10..=90).contains(&p) {
                    return bad("heap_percent must be between 10 and 90".into());
                }
            }
            // groups.properties lists members comma-separated, and activemq.xml names
            // groups comma-separated: neither may contain a comma or blanks.
            let listable = |s: &str| !s.chars().any(|c| c == ',' || c.is_whitespace());
            for (i, user) in spec.users.iter().enumerate() {
                if !listable(&user.username) {
                    return bad(format!(
                        "users[{i}].username must not contain commas or blanks (ActiveMQ)"
                    ));
                }
                for group in &user.groups {
                    if group.is_empty()
                        || group == "*"
                        || !listable(group)
                        || group.chars().any(char::is_control)
                    {
                        return bad(format!(
                            "users[{i}] ({}) has a group that is empty, \"*\" or contains commas, blanks or control characters",
                            user.username
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The TLS material must be PEM the engines can load: at least one certificate in the
/// chain and in the CA, and one private key.
fn validate_tls(tls: &agent_contract::TlsMaterial) -> Result<(), String> {
    let certs = |pem: &str, field: &str| -> Result<(), String> {
        let n = CertificateDer::pem_slice_iter(pem.as_bytes())
            .map(|c| c.map(|_| ()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("tls.{field} is not valid PEM"))?
            .len();
        if n == 0 {
            return Err(format!("tls.{field} holds no certificate"));
        }
        Ok(())
    };
    certs(&tls.cert_pem, "cert_pem")?;
    certs(&tls.ca_pem, "ca_pem")?;
    PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|_| "tls.key_pem holds no PEM private key".to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sample_activemq_spec, sample_spec};

    #[test]
    fn samples_are_valid() {
        validate(&sample_spec()).unwrap();
        validate(&sample_activemq_spec()).unwrap();
    }

    #[test]
    fn rejects_bad_specs_without_echoing_secrets() {
        let mut s = sample_spec();
        s.users.clear();
        assert!(validate(&s).is_err());

        let mut s = sample_spec();
        s.users.push(s.users[0].clone());
        assert!(validate(&s).unwrap_err().to_string().contains("twice"));

        let mut s = sample_spec();
        if let EngineSpec::Rabbitmq(r) = &mut s.engine {
            r.memory_high_watermark = Some(1.5);
        }
        assert!(validate(&s).is_err());

        let mut s = sample_spec();
        s.agent_token = "short".into();
        let msg = validate(&s).unwrap_err().to_string();
        assert!(!msg.contains("short"));

        let mut s = sample_spec();
        s.users[0].password = "multi\nline".into();
        let msg = validate(&s).unwrap_err().to_string();
        assert!(!msg.contains("multi"));

        let mut s = sample_spec();
        if let EngineSpec::Rabbitmq(r) = &mut s.engine {
            r.erlang_cookie = "has space".into();
        }
        let msg = validate(&s).unwrap_err().to_string();
        assert!(
            msg.contains("erlang_cookie") && !msg.contains("has space"),
            "{msg}"
        );

        let mut s = sample_spec();
        s.users[0].username = format!("{INTERNAL_USER_PREFIX}probe");
        assert!(validate(&s).unwrap_err().to_string().contains("reserved"));

        let mut s = sample_spec();
        s.plaintext = false;
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("no listener"));
    }

    #[test]
    fn activemq_specific_rules() {
        let mut s = sample_activemq_spec();
        s.users[0].username = "a,b".into();
        assert!(validate(&s).is_err());

        let mut s = sample_activemq_spec();
        s.users[0].groups = vec!["ok".into(), "two words".into()];
        assert!(validate(&s).is_err());
        s.users[0].groups = vec!["*".into()];
        assert!(validate(&s).is_err());

        for name in ["", "../x", ".hidden", "a/b"] {
            let mut s = sample_activemq_spec();
            if let EngineSpec::Activemq(a) = &mut s.engine {
                a.broker_name = name.into();
            }
            assert!(validate(&s).is_err(), "{name:?}");
        }

        let mut s = sample_activemq_spec();
        if let EngineSpec::Activemq(a) = &mut s.engine {
            a.heap_percent = Some(95);
        }
        assert!(validate(&s).is_err());
    }

    #[test]
    fn tls_material_must_be_pem() {
        let mut s = sample_activemq_spec();
        s.tls = Some(crate::testutil::sample_tls());
        validate(&s).unwrap();
        s.plaintext = false;
        validate(&s).unwrap();

        let mut broken = crate::testutil::sample_tls();
        broken.key_pem = "-----BEGIN NOTHING-----\nsecret-material\n".into();
        s.tls = Some(broken);
        let msg = validate(&s).unwrap_err().to_string();
        assert!(
            msg.contains("key_pem") && !msg.contains("secret-material"),
            "{msg}"
        );

        let mut broken = crate::testutil::sample_tls();
        broken.cert_pem = String::new();
        s.tls = Some(broken);
        assert!(validate(&s).unwrap_err().to_string().contains("cert_pem"));
    }

    #[test]
    fn parse_errors_do_not_quote_values() {
        let json = r#"{"broker_id":"b-1","engine":{"kind":"rabbitmq","erlang_cookie":"c"},
            "engine_version":"4.0",
            "users":[{"username":"u","password":12345678}],"agent_token":"x"}"#;
        let msg = parse(json.as_bytes()).unwrap_err().to_string();
        assert!(!msg.contains("12345678"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn old_flat_format_is_rejected() {
        // The pre-agent-contract format (engine as a plain string) is no longer accepted.
        let json = r#"{"broker_id":"b-1","engine":"rabbitmq","engine_version":"4.0",
            "users":[{"username":"u","password":"p-123456789"}],"agent_token":"token-0123456789abcdef",
            "erlang_cookie":"COOKIE"}"#;
        assert!(matches!(parse(json.as_bytes()), Err(SpecError::Parse(_))));
    }

    #[test]
    fn persist_and_load_roundtrip() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spec.json");
        persist(&path, &sample_spec()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let back = load(&path).unwrap();
        assert_eq!(back.users, sample_spec().users);
        assert!(matches!(
            load(&dir.path().join("missing.json")),
            Err(SpecError::Read { .. })
        ));
    }
}
