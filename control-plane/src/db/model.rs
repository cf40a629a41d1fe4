//! Database row types. They are not API views: secrets stay sealed here and never
//! reach a response.

use chrono::{DateTime, Utc};

use crate::domain::{
    BrokerId, BrokerState, DeploymentMode, EngineType, EngineVersion, InstanceType,
};
use crate::error::Error;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BrokerRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub engine_type: String,
    pub engine_version: String,
    pub deployment_mode: String,
    pub host_instance_type: String,
    pub storage_type: String,
    pub authentication_strategy: String,
    pub publicly_accessible: bool,
    pub auto_minor_version_upgrade: bool,
    pub maintenance_day: String,
    pub maintenance_time: String,
    pub maintenance_time_zone: String,
    pub logs_general: bool,
    pub logs_audit: bool,
    pub tags: sqlx::types::Json<std::collections::BTreeMap<String, String>>,
    pub creator_request_id: Option<String>,
    pub state: String,
    pub state_reason: Option<String>,
    pub agent_token_enc: Vec<u8>,
    pub erlang_cookie_enc: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub state_changed_at: DateTime<Utc>,
    pub pending_host_instance_type: Option<String>,
    pub pending_engine_version: Option<String>,
    pub security_groups: sqlx::types::Json<Vec<String>>,
    pub reboot_requested_at: Option<DateTime<Utc>>,
    pub configuration_id: Option<String>,
    pub configuration_revision: Option<i32>,
    pub pending_configuration_id: Option<String>,
    pub pending_configuration_revision: Option<i32>,
    pub configuration_history: sqlx::types::Json<Vec<ConfigurationRef>>,
    pub region: String,
    pub subnet_ids: sqlx::types::Json<Vec<String>>,
}

/// A configuration revision a broker runs or ran.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigurationRef {
    pub id: String,
    pub revision: i32,
}

impl BrokerRow {
    pub fn broker_id(&self) -> BrokerId {
        BrokerId::from_db(self.id.clone())
    }

    /// The lifecycle state; a value this build does not know is an error for this
    /// broker alone.
    pub fn state(&self) -> Result<BrokerState, Error> {
        BrokerState::from_db(&self.state)
    }

    pub fn engine(&self) -> Result<EngineType, Error> {
        EngineType::from_db(&self.engine_type)
    }

    pub fn version(&self) -> Result<EngineVersion, Error> {
        EngineVersion::from_db(self.engine()?, &self.engine_version)
    }

    pub fn mode(&self) -> Result<DeploymentMode, Error> {
        DeploymentMode::from_db(&self.deployment_mode)
    }

    pub fn instance(&self) -> Result<InstanceType, Error> {
        InstanceType::from_db(&self.host_instance_type)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub broker_id: String,
    pub username: String,
    pub password_enc: Vec<u8>,
    pub console_access: bool,
    pub groups: sqlx::types::Json<Vec<String>>,
    /// `CREATE` / `UPDATE` / `DELETE` until the agent has applied it.
    pub pending_change: Option<String>,
    pub change_seq: i64,
}

/// Settings UpdateBroker changes; `None` leaves a column alone.
#[derive(Debug, Clone, Default)]
pub struct BrokerUpdate {
    pub pending_host_instance_type: Option<Option<String>>,
    pub pending_engine_version: Option<Option<String>>,
    pub auto_minor_version_upgrade: Option<bool>,
    pub maintenance: Option<(String, String, String)>,
    pub logs_general: Option<bool>,
    pub logs_audit: Option<bool>,
    pub security_groups: Option<Vec<String>>,
    pub pending_configuration: Option<Option<ConfigurationRef>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PortRow {
    pub host_port: i32,
    pub node: i32,
    pub protocol: String,
}

/// Everything needed to insert a broker (secrets already sealed).
#[derive(Debug, Clone)]
pub struct NewBroker {
    pub id: BrokerId,
    pub scope: crate::domain::Scope,
    pub name: String,
    pub engine_type: String,
    pub engine_version: String,
    pub deployment_mode: String,
    pub host_instance_type: String,
    pub storage_type: String,
    pub authentication_strategy: String,
    pub publicly_accessible: bool,
    pub auto_minor_version_upgrade: bool,
    pub maintenance_day: String,
    pub maintenance_time: String,
    pub maintenance_time_zone: String,
    pub logs_general: bool,
    pub logs_audit: bool,
    pub tags: std::collections::BTreeMap<String, String>,
    pub creator_request_id: Option<String>,
    pub agent_token_enc: Vec<u8>,
    pub erlang_cookie_enc: Vec<u8>,
    pub users: Vec<NewUser>,
    pub configuration: Option<ConfigurationRef>,
    pub subnet_ids: Vec<String>,
    pub security_groups: Vec<String>,
    /// (node, protocol) pairs that need a pinned host port.
    pub ports: Vec<(i32, &'static str)>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password_enc: Vec<u8>,
    pub console_access: bool,
    pub groups: Vec<String>,
}

/// A broker with its users, pinned host ports and nodes: what DescribeBroker shows,
/// read as one (and cached as one, see [`super::cache`]).
#[derive(Debug, Clone)]
pub struct BrokerBundle {
    pub row: BrokerRow,
    pub users: Vec<UserRow>,
    pub ports: Vec<PortRow>,
    pub nodes: Vec<super::nodes::NodeRow>,
}
