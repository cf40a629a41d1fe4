//! The application layer: business rules between thin HTTP handlers and the store.
//! Handlers parse, call a function here, and render its result.

pub mod accounts;
pub mod alarms;
pub mod audit;
pub mod brokers;
pub mod catalogue;
pub mod configurations;
pub mod destinations;
pub mod identity;
pub mod logs;
pub mod metering;
pub mod metrics;
pub mod paging;
pub mod tags;
pub mod users;
pub mod webhooks;

use crate::crypto::SecretBox;
use crate::db::broker::PortPool;
use crate::db::DataStore;
use crate::domain::{AccountId, Region, Scope};
use crate::reconcile::Nudger;

/// Everything the application layer needs, shared by all requests.
#[derive(Clone, Debug)]
pub struct AppContext {
    pub store: DataStore,
    pub secrets: SecretBox,
    pub ports: PortPool,
    pub nudger: Nudger,
    /// The regions this installation serves; a request signed for another is refused.
    pub regions: Regions,
    /// Host put into broker endpoints.
    pub advertised_host: String,
    /// Which listeners brokers open, so which endpoints DescribeBroker lists.
    pub listeners: crate::domain::profile::Listeners,
    /// PEM certificate of the installation CA that signs broker certificates.
    pub ca_pem: std::sync::Arc<str>,
    /// The brokers' agents, for [`destinations`].
    pub agent: crate::agent_client::SharedAgentClient,
}

/// Who is calling: the account and region whose resources they may see, who they are,
/// and what their role lets them do. HTTP authentication (SigV4 or a console session)
/// builds it; [`authorize`] decides what it may do.
#[derive(Clone, Debug)]
pub struct Caller {
    pub scope: Scope,
    pub principal: Principal,
    pub role: Role,
}

impl Caller {
    /// An in-process caller with every right in `account`/`region`: CLI subcommands and
    /// tests that call the application layer directly. HTTP authentication never makes
    /// one.
    pub fn new(account: AccountId, region: Region) -> Self {
        Self {
            scope: Scope { account, region },
            principal: Principal::Internal,
            role: Role::Admin,
        }
    }
}

/// The identity behind a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A SigV4 request signed with this access key.
    AccessKey { access_key_id: String },
    /// A console user signed in with a session.
    ConsoleUser {
        user_id: uuid::Uuid,
        username: String,
        session_id: uuid::Uuid,
    },
    /// The process itself (CLI subcommands, tests).
    Internal,
}

impl Principal {
    /// `access_key`, `console_user` or `internal` (as the audit log records it).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AccessKey { .. } => "access_key",
            Self::ConsoleUser { .. } => "console_user",
            Self::Internal => "internal",
        }
    }

    /// The access key id, or the console user's id.
    pub fn id(&self) -> String {
        match self {
            Self::AccessKey { access_key_id } => access_key_id.clone(),
            Self::ConsoleUser { user_id, .. } => user_id.to_string(),
            Self::Internal => "berth".into(),
        }
    }

    /// The console user's name, if it is one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::ConsoleUser { username, .. } => Some(username),
            _ => None,
        }
    }
}

/// What a principal may do. Access keys and console users have one each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Everything, including access keys and console users.
    Admin,
    /// Brokers, broker users, configurations and tags (reads and writes), and reading
    /// the audit log; not access keys or console users.
    Operator,
    /// Reads only.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Viewer => "viewer",
        }
    }

    /// Parses `admin`, `operator` or `viewer`; anything else is a 400 on `attribute`.
    pub fn parse(s: &str, attribute: &str) -> Result<Self, crate::error::Error> {
        Self::from_db(s).map_err(|_| {
            crate::error::Error::bad_request(
                attribute,
                format!("The role must be one of admin, operator, viewer; got {s:?}."),
            )
        })
    }

    /// A role read from the database.
    pub fn from_db(s: &str) -> Result<Self, crate::error::Error> {
        match s {
            "admin" => Ok(Self::Admin),
            "operator" => Ok(Self::Operator),
            "viewer" => Ok(Self::Viewer),
            other => Err(crate::error::Error::internal(
                "stored role",
                anyhow::anyhow!("unknown role {other:?}"),
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of request the authorization rules tell apart. HTTP authentication maps
/// every request to one, so no route escapes the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reading Amazon MQ resources (brokers, users, configurations, tags, catalogue).
    Read,
    /// Changing Amazon MQ resources.
    Write,
    /// Reading the audit log.
    ReadAudit,
    /// Managing identities: access keys and console users.
    Admin,
}

impl Action {
    fn describe(self) -> &'static str {
        match self {
            Self::Read => "read resources",
            Self::Write => "change resources",
            Self::ReadAudit => "read the audit log",
            Self::Admin => "manage access keys and console users",
        }
    }
}

/// Whether `role` may perform `action`.
pub fn role_allows(role: Role, action: Action) -> bool {
    match action {
        Action::Read => true,
        Action::Write | Action::ReadAudit => matches!(role, Role::Admin | Role::Operator),
        Action::Admin => role == Role::Admin,
    }
}

/// Allows the caller's action, or refuses it with 403 `AccessDeniedException`.
pub fn authorize(caller: &Caller, action: Action) -> Result<(), crate::error::Error> {
    if role_allows(caller.role, action) {
        return Ok(());
    }
    Err(crate::error::Error::AccessDenied {
        message: format!(
            "User with role {} is not authorized to {}.",
            caller.role,
            action.describe()
        ),
    })
}

/// The set of region names an installation serves.
#[derive(Clone, Debug)]
pub struct Regions(std::sync::Arc<[Region]>);

impl Regions {
    /// Parses every name; an empty set or a malformed name is an error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        if names.is_empty() {
            return Err("an installation must serve at least one region".into());
        }
        let regions = names
            .iter()
            .map(|n| Region::parse(n.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(regions.into()))
    }

    /// AWS's commercial regions.
    pub fn aws_commercial() -> Self {
        Self::parse(crate::domain::ids::AWS_COMMERCIAL_REGIONS).expect("valid region names")
    }

    /// The first served region: the scope of console sessions.
    pub fn first(&self) -> Region {
        self.0[0].clone()
    }

    /// The served region named `name`, if any.
    pub fn get(&self, name: &str) -> Option<Region> {
        self.0.iter().find(|r| r.as_str() == name).cloned()
    }
}

/// Per-account quota of brokers (Amazon MQ: 200 per region).
pub const MAX_BROKERS_PER_ACCOUNT: i64 = 200;

/// The caller's broker, or 404.
pub(crate) async fn owned_broker(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<crate::db::model::BrokerRow, crate::error::Error> {
    let id = crate::domain::BrokerId::parse(id)?;
    ctx.store
        .broker_fetch(&caller.scope, &id)
        .await?
        .ok_or_else(|| crate::error::Error::broker_not_found(id.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_they_say() {
        use Action::*;
        for (role, read, write, audit, admin) in [
            (Role::Admin, true, true, true, true),
            (Role::Operator, true, true, true, false),
            (Role::Viewer, true, false, false, false),
        ] {
            assert_eq!(role_allows(role, Read), read, "{role}");
            assert_eq!(role_allows(role, Write), write, "{role}");
            assert_eq!(role_allows(role, ReadAudit), audit, "{role}");
            assert_eq!(role_allows(role, Admin), admin, "{role}");
        }
        for role in Role::ALL {
            assert_eq!(Role::from_db(role.as_str()).unwrap(), role);
        }
        assert_eq!(
            Role::parse("root", "role").unwrap_err().attribute(),
            Some("role")
        );
    }

    #[test]
    fn a_refusal_names_the_role() {
        let mut caller = Caller::new(
            AccountId::parse("000000000000").unwrap(),
            Region::parse("us-east-1").unwrap(),
        );
        caller.role = Role::Viewer;
        let e = authorize(&caller, Action::Write).unwrap_err();
        assert!(matches!(e, crate::error::Error::AccessDenied { .. }));
        assert!(e.to_string().contains("viewer"), "{e}");
    }
}
