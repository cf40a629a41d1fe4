//! The application layer: business rules between thin HTTP handlers and the store.
//! Handlers parse, call a function here, and render its result.

pub mod accounts;
pub mod brokers;
pub mod catalogue;
pub mod configurations;
pub mod paging;
pub mod tags;
pub mod users;

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
}

/// Who is calling: the account and region whose resources they may see.
#[derive(Clone, Debug)]
pub struct Caller {
    pub scope: Scope,
}

impl Caller {
    pub fn new(account: AccountId, region: Region) -> Self {
        Self {
            scope: Scope { account, region },
        }
    }
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
