//! Loading, validating and persisting the [`AgentSpec`](crate::spec::AgentSpec).
//!
//! The spec is the agent's only input and holds every secret of the broker, so this
//! module is strict about what it accepts (a half-valid spec would give a broker that
//! cannot be managed) and careful about what it says: error messages name fields and
//! positions, never values.

use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::spec::{AgentSpec, Engine, SPEC_PATH};

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
    if let Some(f) = spec.memory_high_watermark {
        if !(f > 0.0 && f <= 1.0) {
            return bad("memory_high_watermark must be in (0, 1]".into());
        }
    }
    if spec.engine == Engine::Rabbitmq {
        if let Some(cookie) = &spec.erlang_cookie {
            if cookie.is_empty()
                || cookie.len() > 255
                || !cookie.bytes().all(|b| b.is_ascii_graphic())
            {
                return bad("erlang_cookie must be 1-255 printable ASCII characters".into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::EngineUser;

    pub(crate) fn sample_spec() -> AgentSpec {
        AgentSpec {
            broker_id: "b-1234".into(),
            engine: Engine::Rabbitmq,
            engine_version: "4.0".into(),
            users: vec![EngineUser {
                username: "admin".into(),
                password: "s3cret-Passw0rd".into(),
                admin: true,
            }],
            agent_token: "token-0123456789abcdef".into(),
            erlang_cookie: Some("COOKIEVALUE1234".into()),
            memory_high_watermark: None,
            engine_config: None,
        }
    }

    #[test]
    fn sample_is_valid() {
        validate(&sample_spec()).unwrap();
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
        s.memory_high_watermark = Some(1.5);
        assert!(validate(&s).is_err());

        let mut s = sample_spec();
        s.agent_token = "short".into();
        let msg = validate(&s).unwrap_err().to_string();
        assert!(!msg.contains("short"));

        let mut s = sample_spec();
        s.users[0].password = "multi\nline".into();
        let msg = validate(&s).unwrap_err().to_string();
        assert!(!msg.contains("multi"));
    }

    #[test]
    fn parse_errors_do_not_quote_values() {
        let json = r#"{"broker_id":"b-1","engine":"rabbitmq","engine_version":"4.0",
            "users":[{"username":"u","password":12345678}],"agent_token":"x"}"#;
        let msg = parse(json.as_bytes()).unwrap_err().to_string();
        assert!(!msg.contains("12345678"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
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
