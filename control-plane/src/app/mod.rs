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
use crate::domain::AccountId;
use crate::reconcile::Nudger;

/// Everything the application layer needs, shared by all requests.
#[derive(Clone, Debug)]
pub struct AppContext {
    pub store: DataStore,
    pub secrets: SecretBox,
    pub ports: PortPool,
    pub nudger: Nudger,
    /// Default region for ARNs.
    pub region: String,
    /// Host put into broker endpoints.
    pub advertised_host: String,
}

/// Who is calling: the account whose resources they may see.
#[derive(Clone, Debug)]
pub struct Caller {
    pub account: AccountId,
    pub region: String,
}

/// Per-account quota of brokers (Amazon MQ: 200 per region).
pub const MAX_BROKERS_PER_ACCOUNT: i64 = 200;
/// Per-resource quota of tags.
pub const MAX_TAGS: usize = 50;
