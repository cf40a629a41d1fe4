//! Talking to the running RabbitMQ node through `rabbitmqctl`, mainly to reconcile users.
//!
//! `default_user` in rabbitmq.conf only creates a user on a *virgin* node, so users added,
//! removed or re-passworded after the first boot must be applied to the running node.
//! The agent does that with the CLI (authenticated by the Erlang cookie, so it works even
//! when the administrator's password is the thing that changed):
//!
//! 1. `list_users --formatter json` to see what exists;
//! 2. one `import_definitions` call with every spec user (password, tags) and its
//!    permissions on `/`: it creates missing users and updates existing ones. The
//!    definitions travel in a short-lived file readable only by the engine user (mode
//!    0400, removed right after), so passwords never appear in argv or logs. (Reading
//!    them from stdin is documented but hangs forever in 4.0.5: the CLI never sees EOF.)
//! 3. `delete_user` for every user that is no longer in the spec but that Berth created
//!    (tagged [`MANAGED_TAG`]), plus `guest` and the bootstrap user. Users a tenant made
//!    in the management UI or with their own tools are left alone, as are internal ones
//!    (prefix [`INTERNAL_USER_PREFIX`]).
//!
//! **Clusters.** Users live in the cluster's metadata store, so the three agents of a
//! cluster reconcile the same users concurrently (the control plane PUTs a new spec to
//! every node at once). Every step is idempotent: the import creates or overwrites (the
//! same values from the same spec), and a user that another agent deleted between our
//! `list_users` and our `delete_user` counts as deleted ([`is_no_such_user`]). One race
//! is RabbitMQ's own: the import looks a user up, then creates it, and on 4.3.6 (Khepri)
//! the node that loses a concurrent creation fails the whole import with
//! `{user_already_exists,<<"app2">>}` (seen live, 1 of 3 agents). The user exists then,
//! so the import is simply run again ([`is_concurrent_create`], up to
//! [`IMPORT_ATTEMPTS`] times); the second run updates it. Each cluster node's agent also puts its own
//! [`MonitorUser`] (`berth-internal-monitor-<host>`, tag `monitoring`, read and write
//! but no configure permission on `/`) into the same import: one per node, so an agent that restarts with a
//! new password never breaks another node's, and no agent ever deletes one (internal
//! prefix).
//!
//! The CLI runs as the `rabbitmq` user (via `setpriv`) so it reads that user's cookie, and
//! its output is scrubbed of every secret before it can reach a log line or an error.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use agent_contract::{AgentSpec, EngineSpec};

pub use crate::engine::INTERNAL_USER_PREFIX;
use crate::fsutil::{self, Owner};
use crate::reaper::{run_captured, Captured, Reaper, RunError};

/// Name used for the bootstrap user when the first spec user cannot be written into
/// rabbitmq.conf; it is deleted by the first reconciliation.
pub const BOOTSTRAP_USER: &str = "berth-bootstrap";

/// RabbitMQ user tag marking users that came from the spec (and may be removed with it).
pub const MANAGED_TAG: &str = "berth-managed";

/// A user as `list_users` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExistingUser {
    #[serde(rename = "user")]
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A cluster node's own internal user, for the management API
/// ([`super::mgmt`]): a random password that lives as long as the agent process.
#[derive(Clone, PartialEq, Eq)]
pub struct MonitorUser {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for MonitorUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorUser")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl MonitorUser {
    /// `berth-internal-monitor-<short host>` with a fresh random password.
    pub fn generate(hostname: &str) -> anyhow::Result<MonitorUser> {
        let short = hostname.split('.').next().unwrap_or(hostname);
        Ok(MonitorUser {
            name: format!("{INTERNAL_USER_PREFIX}monitor-{short}"),
            password: fsutil::random_hex(24)?,
        })
    }
}

/// How often [`RabbitCtl::reconcile_users`] runs the import when it lost a race to
/// create a user (see the module docs).
pub const IMPORT_ATTEMPTS: usize = 3;

/// Whether a failed `import_definitions` lost a race with another node creating the
/// same object (`user_already_exists`, `vhost_already_exists`, …).
pub fn is_concurrent_create(err: &CtlError) -> bool {
    match err {
        CtlError::Failed { output, .. } => output.contains("_already_exists"),
        _ => false,
    }
}

/// Whether a failed `delete_user` says the user is not there (anymore). The CLIs of
/// 4.0.5 and 4.3.6 exit 0 for a user that does not exist (checked in the images); this
/// covers CLIs that report it as an error instead.
pub fn is_no_such_user(err: &CtlError) -> bool {
    match err {
        CtlError::Failed { output, .. } => {
            output.contains("no_such_user") || output.contains("does not exist")
        }
        _ => false,
    }
}

/// The vhost every spec user gets full permissions on.
pub const DEFAULT_VHOST: &str = "/";

/// Failure of one CLI call. Output is already redacted and truncated.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("rabbitmqctl {command} failed ({status}): {output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
    #[error("rabbitmqctl {command}: unexpected output: {detail}")]
    BadOutput { command: String, detail: String },
    #[error("cannot write the definitions file: {0:#}")]
    Scratch(anyhow::Error),
}

/// How to invoke `rabbitmqctl` as the broker's user.
#[derive(Debug, Clone)]
pub struct RabbitCtl {
    pub setpriv: PathBuf,
    pub ctl: PathBuf,
    pub run_as: String,
    pub node: String,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub timeout: Duration,
    /// Directory for the short-lived definitions file.
    pub scratch_dir: PathBuf,
    /// Owner of that file (the engine user); None keeps the agent's.
    pub file_owner: Option<Owner>,
}

impl RabbitCtl {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.setpriv);
        cmd.arg(format!("--reuid={}", self.run_as))
            .arg(format!("--regid={}", self.run_as))
            .arg("--init-groups")
            .arg("--")
            .arg(&self.ctl)
            .args(["-q", "-n", &self.node])
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }

    /// Run one command; non-zero exit is an error. `secrets` are scrubbed from output.
    pub async fn run(
        &self,
        args: &[&str],
        stdin: Option<Vec<u8>>,
        secrets: &[&str],
    ) -> Result<String, CtlError> {
        let command = args.first().copied().unwrap_or("").to_string();
        let Captured {
            status,
            stdout,
            stderr,
        } = run_captured(
            Reaper::global(),
            &mut self.command(args),
            stdin,
            self.timeout,
        )
        .await?;
        if status.success() {
            return Ok(stdout);
        }
        let output = truncate(
            &redact(&format!("{} {}", stdout.trim(), stderr.trim()), secrets),
            600,
        );
        Err(CtlError::Failed {
            command,
            status: status.to_string(),
            output,
        })
    }

    /// All users in the node's internal database, with their tags.
    pub async fn list_users(&self) -> Result<Vec<ExistingUser>, CtlError> {
        let out = self
            .run(&["list_users", "--formatter", "json"], None, &[])
            .await?;
        parse_list_users(&out).map_err(|detail| CtlError::BadOutput {
            command: "list_users".into(),
            detail,
        })
    }

    /// Make the node's users match `spec.users` (see the module docs), plus `monitor`
    /// on a cluster node.
    pub async fn reconcile_users(
        &self,
        spec: &AgentSpec,
        monitor: Option<&MonitorUser>,
    ) -> Result<UserChanges, CtlError> {
        let mut secrets = secrets_of(spec);
        secrets.extend(monitor.map(|m| m.password.clone()));
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let before = self.list_users().await?;
        let defs = serde_json::to_vec(&users_definitions(spec, monitor)).map_err(|e| {
            CtlError::BadOutput {
                command: "import_definitions".into(),
                detail: e.to_string(),
            }
        })?;
        let mut attempt = 1;
        loop {
            match self.import_definitions(&defs, &secrets).await {
                Ok(()) => break,
                Err(e) if attempt < IMPORT_ATTEMPTS && is_concurrent_create(&e) => {
                    tracing::info!(attempt, error = %e, "another node created a user at the same time; importing again");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let delete = users_to_delete(&before, spec);
        for name in &delete {
            match self.run(&["delete_user", name], None, &secrets).await {
                Ok(_) => {}
                // Another cluster node's agent was faster.
                Err(e) if is_no_such_user(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let added = spec
            .users
            .iter()
            .filter(|u| !before.iter().any(|b| b.name == u.username))
            .map(|u| u.username.clone())
            .collect();
        Ok(UserChanges {
            added,
            deleted: delete,
        })
    }

    /// `import_definitions FILE` with `defs` in a private file that exists only for the
    /// duration of the call.
    async fn import_definitions(&self, defs: &[u8], secrets: &[&str]) -> Result<(), CtlError> {
        let path = self.scratch_dir.join("definitions-import.json");
        fsutil::write_atomic(&path, defs, 0o400, self.file_owner).map_err(CtlError::Scratch)?;
        let arg = path.to_string_lossy().into_owned();
        let result = self.run(&["import_definitions", &arg], None, secrets).await;
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(error = %e, path = %path.display(), "cannot remove the definitions file");
        }
        result.map(|_| ())
    }

    /// `eval 'ssl:clear_pem_cache().'`: the node forgets the PEM files it read, so the
    /// next TLS handshake of every listener reads them again.
    pub async fn clear_pem_cache(&self) -> Result<(), CtlError> {
        let out = self
            .run(&["eval", "ssl:clear_pem_cache()."], None, &[])
            .await?;
        if out.trim() != "ok" {
            return Err(CtlError::BadOutput {
                command: "eval ssl:clear_pem_cache()".into(),
                detail: truncate(out.trim(), 200),
            });
        }
        Ok(())
    }

    /// `set_vm_memory_high_watermark`: absolute bytes, or a fraction of total memory.
    pub async fn set_watermark(
        &self,
        absolute: Option<u64>,
        fraction: f64,
    ) -> Result<(), CtlError> {
        match absolute {
            Some(bytes) => {
                self.run(
                    &[
                        "set_vm_memory_high_watermark",
                        "absolute",
                        &bytes.to_string(),
                    ],
                    None,
                    &[],
                )
                .await?
            }
            None => {
                self.run(
                    &["set_vm_memory_high_watermark", &fraction.to_string()],
                    None,
                    &[],
                )
                .await?
            }
        };
        Ok(())
    }
}

/// What a reconciliation changed (user names only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub added: Vec<String>,
    pub deleted: Vec<String>,
}

/// Definitions JSON (users + permissions on `/`) for `import_definitions`. The first
/// user is always an administrator; others are when `admin` is set. `monitor` (a
/// cluster node's internal user) gets the `monitoring` tag and no permissions.
pub fn users_definitions(spec: &AgentSpec, monitor: Option<&MonitorUser>) -> serde_json::Value {
    let mut users: Vec<_> = spec
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let tags = if i == 0 || u.admin {
                format!("administrator,{MANAGED_TAG}")
            } else {
                MANAGED_TAG.to_owned()
            };
            json!({ "name": u.username, "password": u.password, "tags": tags })
        })
        .collect();
    users.extend(
        monitor.map(|m| json!({ "name": m.name, "password": m.password, "tags": "monitoring" })),
    );
    let permissions: Vec<_> = spec
        .users
        .iter()
        .map(|u| {
            json!({
                "user": u.username, "vhost": DEFAULT_VHOST,
                "configure": ".*", "write": ".*", "read": ".*"
            })
        })
        .chain(monitor.map(|m| {
            // Read and write (the destinations API's peek and test message), never
            // configure: it declares and deletes nothing.
            json!({
                "user": m.name, "vhost": DEFAULT_VHOST,
                "configure": "^$", "write": ".*", "read": ".*"
            })
        }))
        .collect();
    json!({ "users": users, "permissions": permissions })
}

/// The definitions a cluster node imports at every boot ([`super::conf`]): every spec
/// user and `monitor` as in [`users_definitions`], plus the vhost they have permissions
/// on (with definitions to load, RabbitMQ creates no default vhost itself).
pub fn boot_definitions(spec: &AgentSpec, monitor: Option<&MonitorUser>) -> serde_json::Value {
    let mut defs = users_definitions(spec, monitor);
    defs["vhosts"] = json!([{ "name": DEFAULT_VHOST }]);
    defs
}

/// Existing users that must go: not in the spec, not internal, and either made by Berth
/// (tagged [`MANAGED_TAG`]) or one of `guest` and the bootstrap user.
pub fn users_to_delete(existing: &[ExistingUser], spec: &AgentSpec) -> Vec<String> {
    existing
        .iter()
        .filter(|u| !u.name.starts_with(INTERNAL_USER_PREFIX))
        .filter(|u| !spec.users.iter().any(|s| s.username == u.name))
        .filter(|u| {
            u.name == "guest" || u.name == BOOTSTRAP_USER || u.tags.iter().any(|t| t == MANAGED_TAG)
        })
        .map(|u| u.name.clone())
        .collect()
}

/// Parse `rabbitmqctl -q list_users --formatter json`.
pub fn parse_list_users(out: &str) -> Result<Vec<ExistingUser>, String> {
    let start = out.find('[').ok_or_else(|| "no JSON array".to_string())?;
    serde_json::from_str(out[start..].trim()).map_err(|e| e.to_string())
}

/// Every secret in the spec, for scrubbing.
pub fn secrets_of(spec: &AgentSpec) -> Vec<String> {
    let mut s: Vec<String> = spec.users.iter().map(|u| u.password.clone()).collect();
    s.push(spec.agent_token.clone());
    if let EngineSpec::Rabbitmq(r) = &spec.engine {
        s.push(r.erlang_cookie.clone());
    }
    s
}

/// Replace every occurrence of a (non-empty) secret with `<redacted>`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    let mut sorted: Vec<&&str> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        out = out.replace(*s, "<redacted>");
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample_spec;
    use agent_contract::EngineUser;

    fn two_users() -> AgentSpec {
        let mut spec = sample_spec();
        spec.users.push(EngineUser {
            username: "app".into(),
            password: "app-pass-123456".into(),
            admin: false,
            console_access: false,
            groups: vec![],
        });
        spec
    }

    #[test]
    fn definitions_cover_every_user() {
        let defs = users_definitions(&two_users(), None);
        let users = defs["users"].as_array().unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0]["name"], "admin");
        assert_eq!(users[0]["tags"], "administrator,berth-managed");
        assert_eq!(users[1]["name"], "app");
        assert_eq!(users[1]["tags"], "berth-managed");
        assert_eq!(users[1]["password"], "app-pass-123456");
        let perms = defs["permissions"].as_array().unwrap();
        assert_eq!(perms.len(), 2);
        for p in perms {
            assert_eq!(p["vhost"], "/");
            assert_eq!(p["configure"], ".*");
            assert_eq!(p["write"], ".*");
            assert_eq!(p["read"], ".*");
        }
    }

    #[test]
    fn first_user_is_always_admin() {
        let mut spec = two_users();
        spec.users[0].admin = false;
        spec.users[1].admin = true;
        let defs = users_definitions(&spec, None);
        assert_eq!(defs["users"][0]["tags"], "administrator,berth-managed");
        assert_eq!(defs["users"][1]["tags"], "administrator,berth-managed");
    }

    #[test]
    fn deletes_guest_and_former_spec_users_but_not_tenant_or_internal_users() {
        let user = |name: &str, tags: &[&str]| ExistingUser {
            name: name.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        let existing = vec![
            user("admin", &["administrator", MANAGED_TAG]),
            user("guest", &["administrator"]),
            user("old", &[MANAGED_TAG]),
            user("tenant-made", &["monitoring"]),
            user("berth-bootstrap", &["administrator"]),
            user("berth-internal-monitor", &[MANAGED_TAG]),
        ];
        assert_eq!(
            users_to_delete(&existing, &two_users()),
            vec!["guest", "old", "berth-bootstrap"]
        );
    }

    #[test]
    fn a_nodes_monitor_user_is_internal_and_cannot_configure() {
        let monitor = MonitorUser::generate("berth-b-1234-2.net").unwrap();
        assert_eq!(monitor.name, "berth-internal-monitor-berth-b-1234-2");
        assert_eq!(monitor.password.len(), 48);
        assert!(!format!("{monitor:?}").contains(&monitor.password));
        assert_ne!(
            MonitorUser::generate("h").unwrap().password,
            MonitorUser::generate("h").unwrap().password
        );
        let defs = users_definitions(&two_users(), Some(&monitor));
        let users = defs["users"].as_array().unwrap();
        assert_eq!(users.len(), 3);
        assert_eq!(users[2]["name"], monitor.name.as_str());
        assert_eq!(users[2]["password"], monitor.password.as_str());
        assert_eq!(users[2]["tags"], "monitoring");
        let perms = defs["permissions"].as_array().unwrap();
        // read and write for the destinations API, never configure
        let mine: Vec<_> = perms
            .iter()
            .filter(|p| p["user"] == monitor.name.as_str())
            .collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0]["configure"], "^$");
        assert_eq!(mine[0]["read"], ".*");
        // no agent deletes another node's monitor user, whatever its tags
        let existing = vec![
            ExistingUser {
                name: "berth-internal-monitor-berth-b-1234-0".into(),
                tags: vec!["monitoring".into()],
            },
            ExistingUser {
                name: monitor.name.clone(),
                tags: vec![MANAGED_TAG.into()],
            },
        ];
        assert!(users_to_delete(&existing, &two_users()).is_empty());
    }

    #[test]
    fn boot_definitions_declare_the_vhost_too() {
        let monitor = MonitorUser::generate("n1").unwrap();
        let defs = boot_definitions(&two_users(), Some(&monitor));
        assert_eq!(defs["vhosts"], json!([{ "name": "/" }]));
        assert_eq!(defs["users"].as_array().unwrap().len(), 3);
        assert_eq!(defs["permissions"].as_array().unwrap().len(), 3);
        assert_eq!(defs["permissions"][2]["configure"], "^$");
    }

    #[test]
    fn a_lost_creation_race_is_retried_other_failures_are_not() {
        let failed = |output: &str| CtlError::Failed {
            command: "import_definitions".into(),
            status: "exit status: 69".into(),
            output: output.into(),
        };
        // what 4.3.6 printed when another node created "app2" first
        assert!(is_concurrent_create(&failed(
            "Error:\n{user_already_exists,<<\"app2\">>}"
        )));
        assert!(is_concurrent_create(&failed(
            "{vhost_already_exists,<<\"/\">>}"
        )));
        assert!(!is_concurrent_create(&failed("Error: {badarg, ...}")));
        assert!(!is_concurrent_create(&CtlError::Scratch(anyhow::anyhow!(
            "user_already_exists"
        ))));
        const { assert!(IMPORT_ATTEMPTS >= 2) };
    }

    #[test]
    fn a_user_deleted_by_another_node_counts_as_deleted() {
        let failed = |output: &str| CtlError::Failed {
            command: "delete_user".into(),
            status: "exit status: 70".into(),
            output: output.into(),
        };
        // a CLI that reports it: the message or the error term
        assert!(is_no_such_user(&failed(
            "Error:\nUser \"old\" does not exist"
        )));
        assert!(is_no_such_user(&failed("{no_such_user,<<\"old\">>}")));
        assert!(!is_no_such_user(&failed(
            "Error: unable to perform an operation on node"
        )));
        assert!(!is_no_such_user(&CtlError::BadOutput {
            command: "delete_user".into(),
            detail: "does not exist".into(),
        }));
    }

    #[test]
    fn parses_list_users_json() {
        let out = r#"[
{"user":"admin","tags":["administrator"]}
,{"user":"guest","tags":["administrator"]}
]"#;
        let names: Vec<String> = parse_list_users(out)
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, vec!["admin", "guest"]);
        assert!(parse_list_users("[]\n").unwrap().is_empty());
        assert!(parse_list_users("Error: boom").is_err());
    }

    #[test]
    fn redaction_scrubs_secrets() {
        let spec = two_users();
        let secrets = secrets_of(&spec);
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let text = "bad input {\"password\":\"s3cret-Passw0rd\"} cookie COOKIEVALUE1234";
        let out = redact(text, &refs);
        assert!(!out.contains("s3cret"));
        assert!(!out.contains("COOKIEVALUE1234"));
        assert_eq!(redact("x", &[""]), "x");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }

    #[test]
    fn command_line_never_carries_passwords() {
        let ctl = RabbitCtl {
            setpriv: "/usr/bin/setpriv".into(),
            ctl: "/usr/lib/rabbitmq/bin/rabbitmqctl".into(),
            run_as: "rabbitmq".into(),
            node: "rabbit@host".into(),
            env: vec![],
            cwd: "/".into(),
            timeout: Duration::from_secs(1),
            scratch_dir: "/run/berth".into(),
            file_owner: None,
        };
        let cmd = ctl.command(&["import_definitions"]);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            vec![
                "--reuid=rabbitmq",
                "--regid=rabbitmq",
                "--init-groups",
                "--",
                "/usr/lib/rabbitmq/bin/rabbitmqctl",
                "-q",
                "-n",
                "rabbit@host",
                "import_definitions"
            ]
        );
    }
}
