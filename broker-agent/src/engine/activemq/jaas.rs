//! ActiveMQ users: JAAS `PropertiesLoginModule` files, rendered from the spec.
//!
//! - `users.properties`: `username=password` for every spec user plus the agent's
//!   internal probe user ([`InternalUser`]);
//! - `groups.properties`: `group=user1,user2`: group [`ADMINS_GROUP`] holds the spec's
//!   administrators and the internal user; every other group comes from the users'
//!   `groups` (authorization entries in activemq.xml grant rights to groups; see the
//!   `xml` module);
//! - `login.config`: the `activemq` configuration with `reload=true`.
//!
//! Users are applied live: `PropertiesLoginModule` re-reads a file on the next login when
//! its mtime (milliseconds) is *later than the time of its last load*. A rewrite within
//! the same millisecond as a load would be missed, so the files get an mtime a few
//! seconds in the future: every load before that instant sees "modified since" and
//! reloads (harmless), and the next rewrite again lies in the future of every load.
//! Open connections of a removed user stay open (ActiveMQ does not re-check them).
//!
//! Values are escaped per `java.util.Properties` rules (the module loads the files with
//! `Properties.load(InputStream)`, i.e. ISO-8859-1 with `\uXXXX` escapes), so any password
//! survives: separators, `#`/`!`, backslashes, blanks and non-Latin-1 characters. (The
//! `java-properties` crate's writer is not used: it writes windows-1252 and unpadded
//! `\u` escapes, which Java rejects.)

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use agent_contract::EngineUser;

use super::xml::{ADMINS_GROUP, JAAS_CONFIGURATION};
use crate::engine::INTERNAL_USER_PREFIX;
use crate::fsutil::{self, Owner};

/// Name of the agent's own user (readiness probe); never listed anywhere else.
pub const INTERNAL_USER: &str = "berth-internal-probe";
/// How far in the future the JAAS files' mtime is set (see the module docs).
pub const MTIME_LEAD: Duration = Duration::from_secs(2);

/// The agent's internal ActiveMQ user. Its password is generated once and kept in the
/// agent's state directory (0600, root), never reported or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct InternalUser {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for InternalUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl InternalUser {
    /// Load the internal user's password from `path`, or create it (mode 0600).
    pub fn load_or_create(path: &Path) -> anyhow::Result<InternalUser> {
        let existing = std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| s.len() >= 32 && s.bytes().all(|b| b.is_ascii_hexdigit()));
        let password = match existing {
            Some(p) => p,
            None => {
                let p = fsutil::random_hex(24)?;
                fsutil::write_atomic(path, p.as_bytes(), 0o600, None)?;
                p
            }
        };
        debug_assert!(INTERNAL_USER.starts_with(INTERNAL_USER_PREFIX));
        Ok(InternalUser {
            username: INTERNAL_USER.into(),
            password,
        })
    }
}

/// Escape `s` as a `java.util.Properties` key or value. Blanks are escaped everywhere
/// (Java would eat a key's blanks and a value's leading ones; escaping the rest is valid
/// and keeps every reader honest).
pub fn escape_properties(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            ' ' => out.push_str("\\ "),
            '!'..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04X}"));
                }
            }
        }
    }
    out
}

fn properties(header: &str, entries: impl IntoIterator<Item = (String, String)>) -> String {
    let mut out = format!("# {header}\n# Written by the Berth broker agent; edits are lost.\n");
    for (k, v) in entries {
        out.push_str(&escape_properties(&k));
        out.push('=');
        out.push_str(&escape_properties(&v));
        out.push('\n');
    }
    out
}

/// `users.properties`: the spec's users, then the internal user.
pub fn render_users(users: &[EngineUser], internal: &InternalUser) -> String {
    properties(
        "ActiveMQ users (JAAS PropertiesLoginModule)",
        users
            .iter()
            .map(|u| (u.username.clone(), u.password.clone()))
            .chain([(internal.username.clone(), internal.password.clone())]),
    )
}

/// Group → members: `admins` = administrators + the internal user, plus every group
/// named in a user's `groups`.
pub fn group_members(
    users: &[EngineUser],
    internal: &InternalUser,
) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |g: &str, u: &str| {
        let members = groups.entry(g.to_string()).or_default();
        if !members.iter().any(|m| m == u) {
            members.push(u.to_string());
        }
    };
    for u in users {
        if u.admin {
            add(ADMINS_GROUP, &u.username);
        }
        for g in &u.groups {
            add(g, &u.username);
        }
    }
    add(ADMINS_GROUP, &internal.username);
    groups
}

/// `groups.properties`.
pub fn render_groups(users: &[EngineUser], internal: &InternalUser) -> String {
    properties(
        "ActiveMQ groups (JAAS PropertiesLoginModule)",
        group_members(users, internal)
            .into_iter()
            .map(|(g, members)| (g, members.join(","))),
    )
}

/// `login.config` (files are relative to its directory).
pub fn render_login_config() -> String {
    format!(
        "{JAAS_CONFIGURATION} {{\n    org.apache.activemq.jaas.PropertiesLoginModule required\n        org.apache.activemq.jaas.properties.user=\"users.properties\"\n        org.apache.activemq.jaas.properties.group=\"groups.properties\"\n        reload=true;\n}};\n"
    )
}

/// Write the three JAAS files into `conf_dir`, readable by `owner` (mode 0640), with an
/// mtime in the future (see the module docs).
pub fn write_jaas_files(
    conf_dir: &Path,
    users: &[EngineUser],
    internal: &InternalUser,
    owner: Option<Owner>,
) -> anyhow::Result<()> {
    let mtime = Some(SystemTime::now() + MTIME_LEAD);
    fsutil::write_atomic(
        &conf_dir.join("login.config"),
        render_login_config().as_bytes(),
        0o640,
        owner,
    )?;
    // Groups first: a login between the two writes then sees the new users with groups
    // that already know them (never a new user's rights before their password).
    fsutil::write_atomic_with_mtime(
        &conf_dir.join("groups.properties"),
        render_groups(users, internal).as_bytes(),
        0o640,
        owner,
        mtime,
    )?;
    fsutil::write_atomic_with_mtime(
        &conf_dir.join("users.properties"),
        render_users(users, internal).as_bytes(),
        0o640,
        owner,
        mtime,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample_activemq_spec;

    fn internal() -> InternalUser {
        InternalUser {
            username: INTERNAL_USER.into(),
            password: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    /// Read back with an independent implementation of the Properties format.
    fn read_back(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        java_properties::PropertiesIter::new(text.as_bytes())
            .read_into(|k, v| out.push((k, v)))
            .unwrap();
        out
    }

    #[test]
    fn escaping_follows_java_properties_rules() {
        assert_eq!(escape_properties("plain-Pw_1.~"), "plain-Pw_1.~");
        assert_eq!(escape_properties("a=b:c#d!e"), "a\\=b\\:c\\#d\\!e");
        assert_eq!(escape_properties(" lead mid "), "\\ lead\\ mid\\ ");
        assert_eq!(escape_properties("k ey"), "k\\ ey");
        assert_eq!(escape_properties("back\\slash"), "back\\\\slash");
        assert_eq!(escape_properties("tab\tnl\ncr\r"), "tab\\tnl\\ncr\\r");
        assert_eq!(escape_properties("é€"), "\\u00E9\\u20AC");
        // outside the BMP: a surrogate pair, as Java's char-based escapes need
        assert_eq!(escape_properties("😀"), "\\uD83D\\uDE00");
        assert_eq!(escape_properties("\x01"), "\\u0001");
        // only printable ASCII goes out unescaped (ISO-8859-1 safe)
        assert!(escape_properties("ü\u{7f}\u{80}").is_ascii());
    }

    #[test]
    fn hostile_passwords_round_trip() {
        let hostile = [
            "p=w:d#x!y",
            " leading and trailing ",
            "back\\slash\\",
            "new\nline",
            "tab\there",
            "ünïcödé-€-密码",
            "#comment-like",
            "!bang",
            "a\\u0041b",
            "admins=evil",
        ];
        let mut spec = sample_activemq_spec();
        spec.users.truncate(1);
        for (i, pw) in hostile.iter().enumerate() {
            let mut u = spec.users[0].clone();
            u.username = format!("user{i}");
            u.password = pw.to_string();
            u.admin = false;
            spec.users.push(u);
        }
        let text = render_users(&spec.users, &internal());
        assert!(text.is_ascii());
        let back = read_back(&text);
        assert_eq!(back.len(), spec.users.len() + 1);
        for (i, pw) in hostile.iter().enumerate() {
            let (k, v) = &back[i + 1];
            assert_eq!(k, &format!("user{i}"));
            assert_eq!(v, pw, "password {i} changed in transit");
        }
        // every line is one entry: no injected users or groups
        let names: Vec<_> = back.iter().map(|(k, _)| k.as_str()).collect();
        assert!(!names.contains(&"admins"));
    }

    #[test]
    fn users_and_groups_files() {
        let spec = sample_activemq_spec();
        let users = read_back(&render_users(&spec.users, &internal()));
        assert_eq!(
            users,
            [
                ("admin".to_string(), "adm1n-Passw0rd".to_string()),
                ("app".to_string(), "app-Passw0rd-1".to_string()),
                (INTERNAL_USER.to_string(), internal().password),
            ]
        );
        let groups = read_back(&render_groups(&spec.users, &internal()));
        assert_eq!(
            groups,
            [
                ("admins".to_string(), format!("admin,{INTERNAL_USER}")),
                ("apps".to_string(), "app".to_string()),
            ]
        );
    }

    #[test]
    fn explicit_admins_group_is_not_duplicated() {
        let mut spec = sample_activemq_spec();
        spec.users[0].groups = vec!["admins".into(), "ops".into()];
        let groups = group_members(&spec.users, &internal());
        assert_eq!(groups["admins"], ["admin", INTERNAL_USER]);
        assert_eq!(groups["ops"], ["admin"]);
    }

    #[test]
    fn login_config_reloads() {
        let c = render_login_config();
        assert!(c.starts_with("activemq {"));
        assert!(c.contains("PropertiesLoginModule required"));
        assert!(c.contains("reload=true;"));
        assert!(c.contains("properties.user=\"users.properties\""));
        assert!(c.contains("properties.group=\"groups.properties\""));
    }

    #[test]
    fn files_have_mode_and_a_future_mtime() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let spec = sample_activemq_spec();
        let before = SystemTime::now();
        write_jaas_files(dir.path(), &spec.users, &internal(), Some(Owner::current())).unwrap();
        for f in ["users.properties", "groups.properties", "login.config"] {
            let meta = std::fs::metadata(dir.path().join(f)).unwrap();
            assert_eq!(meta.mode() & 0o777, 0o640, "{f}");
        }
        for f in ["users.properties", "groups.properties"] {
            let mtime = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .modified()
                .unwrap();
            assert!(mtime >= before + MTIME_LEAD, "{f}");
        }
        // a second write moves the mtime forward again
        let first = std::fs::metadata(dir.path().join("users.properties"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        write_jaas_files(dir.path(), &spec.users, &internal(), None).unwrap();
        let second = std::fs::metadata(dir.path().join("users.properties"))
            .unwrap()
            .modified()
            .unwrap();
        assert!(second > first);
    }

    #[test]
    fn internal_user_is_created_once_and_kept_private() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/activemq-probe.secret");
        let a = InternalUser::load_or_create(&path).unwrap();
        assert_eq!(a.username, INTERNAL_USER);
        assert!(a.password.len() >= 32);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let b = InternalUser::load_or_create(&path).unwrap();
        assert_eq!(a, b);
        assert!(!format!("{a:?}").contains(&a.password));
        // a damaged file is replaced
        std::fs::write(&path, "short").unwrap();
        let c = InternalUser::load_or_create(&path).unwrap();
        assert_ne!(c.password, "short");
    }
}
