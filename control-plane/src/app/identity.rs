//! Console users, console sessions and access-key management: the rules.
//!
//! Passwords are kept only as argon2id PHC strings. A login checks the failed-login
//! limits first (per username and per source address), then the password — against a
//! dummy hash when the user does not exist, so both failures take as long and say the
//! same. A session is a row (revocable); HTTP carries it in a signed cookie
//! (`http::session`). Every identity change is admin-only ([`Action::Admin`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::accounts::{self, IssuedKey};
use super::audit::{self, AuditRecord};
use super::{authorize, Action, AppContext, Caller, Principal, Role};
use crate::db::account::AccessKeyInfoRow;
use crate::db::identity::{ConsoleUserRow, SessionRow, UserChange};
use crate::domain::{AccountId, Region};
use crate::error::Error;

/// The one message of every failed login, whatever failed.
pub const LOGIN_FAILED: &str = "Incorrect username or password.";

/// Shortest console password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
const MAX_PASSWORD_LEN: usize = 128;

/// A console username: 1–64 of letters, digits and `. _ - @`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsoleUsername(String);

impl ConsoleUsername {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::bad_request(
                "username",
                "A console username must be 1-64 characters of letters, digits and . _ - @.",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConsoleUsername {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A console password that meets the policy: 12–128 characters, at least 4 distinct
/// ones, not the username. Never printed (its `Debug` is redacted).
#[derive(Clone)]
pub struct ConsolePassword(String);

impl std::fmt::Debug for ConsolePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsolePassword(<redacted>)")
    }
}

impl ConsolePassword {
    pub fn parse(s: &str, username: &ConsoleUsername) -> Result<Self, Error> {
        let chars = s.chars().count();
        let distinct = s.chars().collect::<std::collections::BTreeSet<_>>().len();
        if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&chars) {
            return Err(Error::bad_request(
                "password",
                format!(
                    "The password must be {MIN_PASSWORD_LEN}-{MAX_PASSWORD_LEN} characters long."
                ),
            ));
        }
        if distinct < 4 || s == username.as_str() {
            return Err(Error::bad_request(
                "password",
                "The password is too easy to guess: use at least 4 different characters and not the username.",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The argon2id PHC string of `password`.
pub fn hash_password(password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal("hashing password", anyhow::anyhow!("{e}")))
}

/// Whether `password` matches the PHC string; a malformed stored hash never matches.
pub fn verify_password(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// Console settings (from `Settings`).
#[derive(Clone, Debug)]
pub struct ConsoleSettings {
    /// Lifetime of one session token; a request past half of it gets a fresh one.
    pub session_ttl: Duration,
    /// Longest a session lives however often it is refreshed.
    pub session_max_lifetime: Duration,
    /// Failed logins allowed per username and per source address within the window.
    pub login_max_failures: usize,
    pub login_failure_window: Duration,
    /// Account a login without `account` signs in to.
    pub default_account: AccountId,
    /// Region of console sessions' scope.
    pub region: Region,
}

/// Counts failed logins per key within a sliding window (in memory, per process).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// `Some(wait)` when any of `keys` has used up its failures.
    fn blocked(&self, keys: &[String], max: usize, window: Duration) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = None;
        for key in keys {
            if let Some(q) = map.get_mut(key) {
                while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
                    q.pop_front();
                }
                if q.len() >= max {
                    let until = q[q.len() - max] + window;
                    let w = until.saturating_duration_since(now);
                    wait = Some(wait.map_or(w, |x: Duration| x.max(w)));
                }
            }
        }
        wait
    }

    fn fail(&self, keys: &[String]) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // Bounded memory under a spray of names: forget the oldest state.
            map.clear();
        }
        for key in keys {
            map.entry(key.clone()).or_default().push_back(now);
        }
    }

    fn clear(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }
}

/// Identity state shared by requests: settings, the failed-login limiter, and the dummy
/// hash unknown users are checked against.
#[derive(Debug)]
pub struct Identity {
    pub settings: ConsoleSettings,
    limiter: LoginLimiter,
    dummy_hash: String,
}

impl Identity {
    pub fn new(settings: ConsoleSettings) -> Result<Self, Error> {
        let dummy = crate::crypto::random_token();
        Ok(Self {
            settings,
            limiter: LoginLimiter::default(),
            dummy_hash: hash_password(&dummy)?,
        })
    }
}

/// A console user as the API shows it.
#[derive(Clone, Debug)]
pub struct ConsoleUser {
    pub id: Uuid,
    pub account: AccountId,
    pub username: ConsoleUsername,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<&ConsoleUserRow> for ConsoleUser {
    type Error = Error;
    fn try_from(r: &ConsoleUserRow) -> Result<Self, Error> {
        Ok(Self {
            id: r.id,
            account: stored_account(&r.account_id)?,
            username: ConsoleUsername::parse(&r.username)
                .map_err(|e| Error::internal("stored console username", anyhow::anyhow!("{e}")))?,
            role: Role::from_db(&r.role)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn stored_account(s: &str) -> Result<AccountId, Error> {
    AccountId::parse(s).map_err(|e| Error::internal("stored account id", anyhow::anyhow!(e)))
}

/// An active console session.
#[derive(Clone, Debug)]
pub struct ActiveSession {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub account: AccountId,
    pub role: Role,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    /// Absolute end of the session.
    pub expires_at: DateTime<Utc>,
}

impl ActiveSession {
    fn from_row(r: SessionRow) -> Result<Self, Error> {
        Ok(Self {
            session_id: r.id,
            user_id: r.user_id,
            username: r.username,
            account: stored_account(&r.account_id)?,
            role: Role::from_db(&r.role)?,
            csrf_token: r.csrf_token,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }

    /// The caller this session acts as.
    pub fn caller(&self, region: Region) -> Caller {
        Caller {
            scope: crate::domain::Scope {
                account: self.account.clone(),
                region,
            },
            principal: Principal::ConsoleUser {
                user_id: self.user_id,
                username: self.username.clone(),
                session_id: self.session_id,
            },
            role: self.role,
        }
    }
}

/// A login attempt.
#[derive(Debug)]
pub struct LoginAttempt<'a> {
    /// Absent: the default account.
    pub account: Option<&'a str>,
    pub username: &'a str,
    pub password: &'a str,
    pub source: Option<IpAddr>,
}

/// Checks the credentials and starts a session. Every outcome is audited.
pub async fn login(
    ctx: &AppContext,
    identity: &Identity,
    attempt: LoginAttempt<'_>,
) -> Result<ActiveSession, Error> {
    let s = &identity.settings;
    let account = match attempt.account {
        None | Some("") => s.default_account.clone(),
        Some(a) => AccountId::parse(a).map_err(|e| Error::bad_request("account", e))?,
    };
    let user_key = format!("user:{account}/{}", attempt.username.to_ascii_lowercase());
    let mut keys = vec![user_key.clone()];
    if let Some(ip) = attempt.source {
        keys.push(format!("addr:{ip}"));
    }
    let mut record = AuditRecord {
        account: account.clone(),
        principal_kind: "console_user",
        principal_id: String::new(),
        principal_name: None,
        operation: "Login".into(),
        resource_type: Some("ConsoleSession".into()),
        resource_id: None,
        source: attempt.source,
        status: 200,
        error_code: None,
    };
    if let Some(wait) =
        identity
            .limiter
            .blocked(&keys, s.login_max_failures, s.login_failure_window)
    {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        record.status = 429;
        record.error_code = Some("TooManyRequestsException".into());
        audit::record(ctx, record).await;
        return Err(Error::TooManyRequests {
            message: "Too many failed sign-in attempts. Try again later.".into(),
            retry_after_secs: secs.max(1),
        });
    }
    let user = match ConsoleUsername::parse(attempt.username) {
        Ok(name) => {
            ctx.store
                .console_user_by_name(account.as_str(), name.as_str())
                .await?
        }
        Err(_) => None,
    };
    let ok = match &user {
        Some(u) => verify_password(&u.password_hash, attempt.password),
        None => {
            // As slow as a real check, and then refused.
            let _ = verify_password(&identity.dummy_hash, attempt.password);
            false
        }
    };
    let user = match (ok, user) {
        (true, Some(u)) => u,
        (_, u) => {
            identity.limiter.fail(&keys);
            if let Some(u) = u {
                // A known user: who was targeted. (An unknown name is not recorded: it
                // is often a password typed into the wrong field.)
                record.principal_id = u.id.to_string();
                record.principal_name = Some(u.username);
            }
            record.status = 401;
            record.error_code = Some("UnauthorizedException".into());
            audit::record(ctx, record).await;
            return Err(Error::Unauthorized {
                message: LOGIN_FAILED.into(),
            });
        }
    };
    identity.limiter.clear(&user_key);
    let session_id = Uuid::new_v4();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(s.session_max_lifetime)
            .map_err(|e| Error::internal("session lifetime", e))?;
    ctx.store
        .session_create(
            session_id,
            user.id,
            &crate::crypto::random_token(),
            expires_at,
        )
        .await?;
    let session = session_active(ctx, session_id, user.id)
        .await?
        .ok_or_else(|| Error::internal("new session", anyhow::anyhow!("not found")))?;
    record.principal_id = user.id.to_string();
    record.principal_name = Some(user.username.clone());
    record.resource_id = Some(session_id.to_string());
    audit::record(ctx, record).await;
    tracing::info!(user = %user.username, account = %account, "console login");
    Ok(session)
}

/// The session `id` of user `user_id`, if it is neither revoked nor past its end.
pub async fn session_active(
    ctx: &AppContext,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<ActiveSession>, Error> {
    let Some(row) = ctx.store.session_fetch(id).await? else {
        return Ok(None);
    };
    if row.user_id != user_id || row.revoked_at.is_some() || row.expires_at <= Utc::now() {
        return Ok(None);
    }
    ActiveSession::from_row(row).map(Some)
}

/// Ends a session: its cookie stops working everywhere at once. Audited.
pub async fn logout(
    ctx: &AppContext,
    session: &ActiveSession,
    source: Option<IpAddr>,
) -> Result<(), Error> {
    ctx.store.session_revoke(session.session_id).await?;
    audit::record(
        ctx,
        AuditRecord {
            account: session.account.clone(),
            principal_kind: "console_user",
            principal_id: session.user_id.to_string(),
            principal_name: Some(session.username.clone()),
            operation: "Logout".into(),
            resource_type: Some("ConsoleSession".into()),
            resource_id: Some(session.session_id.to_string()),
            source,
            status: 200,
            error_code: None,
        },
    )
    .await;
    Ok(())
}

/// 12+ random letters and digits (first console password).
pub fn random_password() -> String {
    accounts::random_chars(
        b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789",
        24,
    )
}

/// Creates a console user in `account` (created if needed). No authorization check:
/// for the CLI and first start; the API goes through [`console_user_create`].
pub async fn console_user_create_unchecked(
    ctx: &AppContext,
    account: &AccountId,
    username: &str,
    password: &str,
    role: Role,
) -> Result<ConsoleUser, Error> {
    let username = ConsoleUsername::parse(username)?;
    let password = ConsolePassword::parse(password, &username)?;
    ctx.store
        .account_ensure(account.as_str(), "created with a console user")
        .await?;
    let id = Uuid::new_v4();
    let hash = hash_password(password.expose())?;
    ctx.store
        .console_user_create(
            id,
            account.as_str(),
            username.as_str(),
            &hash,
            role.as_str(),
        )
        .await?;
    tracing::info!(user = %username, account = %account, role = %role, "console user created");
    let row = ctx
        .store
        .console_user_by_name(account.as_str(), username.as_str())
        .await?
        .ok_or_else(|| Error::internal("new console user", anyhow::anyhow!("not found")))?;
    ConsoleUser::try_from(&row)
}

/// On first start (no console user at all): creates `admin` in `account` with a random
/// password, returned once.
pub async fn console_bootstrap(
    ctx: &AppContext,
    account: &AccountId,
) -> Result<Option<String>, Error> {
    if ctx.store.console_user_count().await? > 0 {
        return Ok(None);
    }
    let password = random_password();
    console_user_create_unchecked(ctx, account, "admin", &password, Role::Admin).await?;
    Ok(Some(password))
}

/// CreateConsoleUser (admin).
pub async fn console_user_create(
    ctx: &AppContext,
    caller: &Caller,
    username: &str,
    password: &str,
    role: &str,
) -> Result<ConsoleUser, Error> {
    authorize(caller, Action::Admin)?;
    let role = Role::parse(role, "role")?;
    console_user_create_unchecked(ctx, &caller.scope.account, username, password, role).await
}

/// ListConsoleUsers (admin).
pub async fn console_user_list(
    ctx: &AppContext,
    caller: &Caller,
) -> Result<Vec<ConsoleUser>, Error> {
    authorize(caller, Action::Admin)?;
    ctx.store
        .console_user_list(caller.scope.account.as_str())
        .await?
        .iter()
        .map(ConsoleUser::try_from)
        .collect()
}

fn console_user_not_found(username: &str) -> Error {
    Error::not_found(
        "username",
        format!("Can't find the console user [{username}]."),
    )
}

fn last_admin(username: &str) -> Error {
    Error::conflict(
        "username",
        format!("{username} is the account's last admin: make another admin first."),
    )
}

fn apply_change(change: UserChange, username: &str) -> Result<(), Error> {
    match change {
        UserChange::Done => Ok(()),
        UserChange::NotFound => Err(console_user_not_found(username)),
        UserChange::LastAdmin => Err(last_admin(username)),
    }
}

/// UpdateConsoleUser (admin): a new role and/or password (which ends the user's
/// sessions). The account's last admin keeps its role.
pub async fn console_user_update(
    ctx: &AppContext,
    caller: &Caller,
    username: &str,
    role: Option<&str>,
    password: Option<&str>,
) -> Result<ConsoleUser, Error> {
    authorize(caller, Action::Admin)?;
    console_user_update_unchecked(ctx, &caller.scope.account, username, role, password).await
}

/// [`console_user_update`] without the authorization check (CLI).
pub async fn console_user_update_unchecked(
    ctx: &AppContext,
    account: &AccountId,
    username: &str,
    role: Option<&str>,
    password: Option<&str>,
) -> Result<ConsoleUser, Error> {
    let name = ConsoleUsername::parse(username)?;
    let role = role.map(|r| Role::parse(r, "role")).transpose()?;
    let hash = match password {
        Some(p) => Some(hash_password(ConsolePassword::parse(p, &name)?.expose())?),
        None => None,
    };
    if role.is_none() && hash.is_none() {
        return Err(Error::bad_request(
            "role",
            "Give a new role, a new password, or both.",
        ));
    }
    let change = ctx
        .store
        .console_user_update(
            account.as_str(),
            name.as_str(),
            role.map(Role::as_str),
            hash.as_deref(),
        )
        .await?;
    apply_change(change, username)?;
    let row = ctx
        .store
        .console_user_by_name(account.as_str(), name.as_str())
        .await?
        .ok_or_else(|| console_user_not_found(username))?;
    ConsoleUser::try_from(&row)
}

/// DeleteConsoleUser (admin): never the account's last admin.
pub async fn console_user_delete(
    ctx: &AppContext,
    caller: &Caller,
    username: &str,
) -> Result<(), Error> {
    authorize(caller, Action::Admin)?;
    let name = ConsoleUsername::parse(username)?;
    let change = ctx
        .store
        .console_user_delete(caller.scope.account.as_str(), name.as_str())
        .await?;
    apply_change(change, username)
}

/// An access key as the API lists it: never the secret.
#[derive(Clone, Debug)]
pub struct AccessKeyInfo {
    pub access_key_id: String,
    pub account: AccountId,
    pub description: String,
    pub role: Role,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<&AccessKeyInfoRow> for AccessKeyInfo {
    type Error = Error;
    fn try_from(r: &AccessKeyInfoRow) -> Result<Self, Error> {
        Ok(Self {
            access_key_id: r.access_key_id.clone(),
            account: stored_account(&r.account_id)?,
            description: r.description.clone(),
            role: Role::from_db(&r.role)?,
            active: r.active,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        })
    }
}

fn parse_description(d: Option<&str>) -> Result<String, Error> {
    let d = d.unwrap_or("");
    if d.chars().count() > 256 || d.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "description",
            "The description must be at most 256 printable characters.",
        ));
    }
    Ok(d.to_owned())
}

/// CreateAccessKey (admin): a key of the caller's account; the secret is in the result
/// only.
pub async fn access_key_create(
    ctx: &AppContext,
    caller: &Caller,
    description: Option<&str>,
    role: Option<&str>,
) -> Result<(IssuedKey, AccessKeyInfo), Error> {
    authorize(caller, Action::Admin)?;
    let description = parse_description(description)?;
    let role = role
        .map(|r| Role::parse(r, "role"))
        .transpose()?
        .unwrap_or(Role::Admin);
    let key = accounts::access_key_issue_with_role(ctx, &caller.scope.account, &description, role)
        .await?;
    let info = access_key_get(ctx, caller, &key.access_key_id).await?;
    Ok((key, info))
}

/// ListAccessKeys (admin).
pub async fn access_key_list(
    ctx: &AppContext,
    caller: &Caller,
) -> Result<Vec<AccessKeyInfo>, Error> {
    authorize(caller, Action::Admin)?;
    access_key_list_unchecked(ctx, &caller.scope.account).await
}

/// [`access_key_list`] without the authorization check (CLI).
pub async fn access_key_list_unchecked(
    ctx: &AppContext,
    account: &AccountId,
) -> Result<Vec<AccessKeyInfo>, Error> {
    ctx.store
        .access_key_list(account.as_str())
        .await?
        .iter()
        .map(AccessKeyInfo::try_from)
        .collect()
}

fn access_key_not_found(id: &str) -> Error {
    Error::not_found(
        "access-key-id",
        format!("Can't find the access key [{id}]."),
    )
}

async fn access_key_get(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<AccessKeyInfo, Error> {
    let row = ctx
        .store
        .access_key_info(caller.scope.account.as_str(), id)
        .await?
        .ok_or_else(|| access_key_not_found(id))?;
    AccessKeyInfo::try_from(&row)
}

/// ActivateAccessKey / DeactivateAccessKey (admin): takes effect on the next request.
pub async fn access_key_set_active(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    active: bool,
) -> Result<AccessKeyInfo, Error> {
    authorize(caller, Action::Admin)?;
    access_key_set_active_unchecked(ctx, &caller.scope.account, id, active).await?;
    access_key_get(ctx, caller, id).await
}

/// [`access_key_set_active`] without the authorization check (CLI).
pub async fn access_key_set_active_unchecked(
    ctx: &AppContext,
    account: &AccountId,
    id: &str,
    active: bool,
) -> Result<(), Error> {
    if !ctx
        .store
        .access_key_set_active(account.as_str(), id, active)
        .await?
    {
        return Err(access_key_not_found(id));
    }
    tracing::info!(access_key_id = %id, account = %account, active, "access key changed");
    Ok(())
}

/// DeleteAccessKey (admin).
pub async fn access_key_delete(ctx: &AppContext, caller: &Caller, id: &str) -> Result<(), Error> {
    authorize(caller, Action::Admin)?;
    access_key_delete_unchecked(ctx, &caller.scope.account, id).await
}

/// [`access_key_delete`] without the authorization check (CLI).
pub async fn access_key_delete_unchecked(
    ctx: &AppContext,
    account: &AccountId,
    id: &str,
) -> Result<(), Error> {
    if !ctx.store.access_key_delete(account.as_str(), id).await? {
        return Err(access_key_not_found(id));
    }
    tracing::info!(access_key_id = %id, account = %account, "access key deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_to_phc_and_verify() {
        let h = hash_password("correct-horse-battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("horse"));
        assert!(verify_password(&h, "correct-horse-battery"));
        assert!(!verify_password(&h, "correct-horse-batterx"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn the_password_policy() {
        let u = ConsoleUsername::parse("alice").unwrap();
        assert!(ConsolePassword::parse("short", &u).is_err());
        assert!(ConsolePassword::parse("aaaaaaaaaaaaaaaa", &u).is_err());
        assert!(ConsolePassword::parse("a-good-passphrase", &u).is_ok());
        let long = ConsoleUsername::parse("alice-the-admin").unwrap();
        assert!(ConsolePassword::parse("alice-the-admin", &long).is_err());
        assert!(!format!("{:?}", ConsolePassword::parse("a-good-passphrase", &u)).contains("good"));
        for bad in ["", "with space", "x/y", &"a".repeat(65)] {
            assert_eq!(
                ConsoleUsername::parse(bad).unwrap_err().attribute(),
                Some("username")
            );
        }
    }

    #[test]
    fn the_limiter_blocks_after_max_failures_within_the_window() {
        let l = LoginLimiter::default();
        let keys = vec!["user:a".to_owned(), "addr:1".to_owned()];
        let w = Duration::from_secs(300);
        for _ in 0..4 {
            l.fail(&keys);
            assert!(l.blocked(&keys, 5, w).is_none());
        }
        l.fail(&keys);
        let wait = l.blocked(&keys, 5, w).expect("blocked");
        assert!(wait <= w && wait > Duration::from_secs(290), "{wait:?}");
        // Another user from the same address is blocked too; clearing the user is not
        // enough while the address is.
        assert!(l
            .blocked(&["user:b".into(), "addr:1".into()], 5, w)
            .is_some());
        l.clear("user:a");
        assert!(l.blocked(&["user:a".into()], 5, w).is_none());
        // A zero window forgets at once.
        assert!(l.blocked(&keys, 5, Duration::ZERO).is_none());
    }
}
