//! Wire shapes (lower camelCase JSON) of Amazon MQ requests and replies. They live
//! below both the HTTP layer (which parses and renders them) and the app layer (which
//! takes and builds them), so a second front end (the console) can use the app layer
//! without the HTTP one. Absent optional values
//! are omitted, never sent as `null`. Request enums arrive as plain strings so the app
//! layer can answer unknown values with a precise `errorAttribute`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserInput {
    pub username: Option<String>,
    pub password: Option<String>,
    pub console_access: Option<bool>,
    pub groups: Option<Vec<String>>,
    pub replication_user: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeeklyStartTime {
    pub day_of_week: Option<String>,
    pub time_of_day: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsInput {
    pub general: Option<bool>,
    pub audit: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionOptionsInput {
    pub use_aws_owned_key: Option<bool>,
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationIdInput {
    pub id: Option<String>,
    pub revision: Option<i64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateBrokerRequest {
    pub authentication_strategy: Option<String>,
    pub auto_minor_version_upgrade: Option<bool>,
    pub broker_name: Option<String>,
    pub configuration: Option<ConfigurationIdInput>,
    pub creator_request_id: Option<String>,
    pub deployment_mode: Option<String>,
    pub encryption_options: Option<EncryptionOptionsInput>,
    pub engine_type: Option<String>,
    pub engine_version: Option<String>,
    pub host_instance_type: Option<String>,
    pub ldap_server_metadata: Option<serde_json::Value>,
    pub logs: Option<LogsInput>,
    pub maintenance_window_start_time: Option<WeeklyStartTime>,
    pub publicly_accessible: Option<bool>,
    pub security_groups: Option<Vec<String>>,
    pub storage_size: Option<i64>,
    pub storage_type: Option<String>,
    pub subnet_ids: Option<Vec<String>>,
    pub tags: Option<BTreeMap<String, String>>,
    pub users: Option<Vec<UserInput>>,
    pub data_replication_mode: Option<String>,
    pub data_replication_primary_broker_arn: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateBrokerResponse {
    pub broker_arn: String,
    pub broker_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteBrokerResponse {
    pub broker_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerInstance {
    #[serde(rename = "consoleURL", skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
    pub endpoints: Vec<String>,
    /// ActiveMQ only, as on Amazon MQ: the address clients reach the instance at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

/// Berth's extension of DescribeBroker: every node with its zone, the role it plays
/// right now (which instance of a pair is active) and its health. AWS SDKs ignore it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BerthNode {
    pub index: u32,
    pub zone: String,
    /// ACTIVE, STANDBY, CLUSTER_NODE or DOWN.
    pub role: String,
    /// The agent's last engine state (`ready`, `standby`, `starting`, …), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The agent has not answered since then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable_since: Option<String>,
    /// Cluster members this node sees running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_running: Option<Vec<String>>,
    /// This node's own endpoints (for diagnosis; clients of a cluster use the broker's).
    pub endpoints: Vec<String>,
    #[serde(rename = "consoleURL", skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionRequired {
    pub action_required_code: String,
    pub action_required_info: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionOptions {
    pub use_aws_owned_key: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsSummary {
    pub general: bool,
    pub general_log_group: String,
    /// ActiveMQ only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_log_group: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    pub username: String,
    /// CREATE / UPDATE / DELETE until the broker has applied the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Configurations {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<ConfigurationIdView>,
    pub history: Vec<ConfigurationIdView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<ConfigurationIdView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeBrokerResponse {
    pub actions_required: Vec<ActionRequired>,
    pub authentication_strategy: String,
    pub auto_minor_version_upgrade: bool,
    pub broker_arn: String,
    pub broker_id: String,
    pub broker_instances: Vec<BrokerInstance>,
    pub broker_name: String,
    pub broker_state: String,
    pub configurations: Configurations,
    pub created: String,
    pub deployment_mode: String,
    pub encryption_options: EncryptionOptions,
    pub engine_type: String,
    pub engine_version: String,
    pub host_instance_type: String,
    pub logs: LogsSummary,
    pub maintenance_window_start_time: WeeklyStartTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_engine_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_host_instance_type: Option<String>,
    pub publicly_accessible: bool,
    pub security_groups: Vec<String>,
    pub storage_type: String,
    pub subnet_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub users: Vec<UserSummary>,
    /// Berth extension: the broker's nodes (see [`BerthNode`]).
    pub berth_nodes: Vec<BerthNode>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerSummary {
    pub broker_arn: String,
    pub broker_id: String,
    pub broker_name: String,
    pub broker_state: String,
    pub created: String,
    pub deployment_mode: String,
    pub engine_type: String,
    pub host_instance_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListBrokersResponse {
    pub broker_summaries: Vec<BrokerSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1–100, default 20.
    pub max_results: Option<String>,
    pub next_token: Option<String>,
}

/// ISO-8601 with milliseconds, as botocore expects for `created`.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Body of every error reply (status and `x-amzn-ErrorType` header name the exception).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The input field at fault, when there is one.
    pub error_attribute: Option<String>,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngineVersionView {
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerEngineType {
    pub engine_type: String,
    pub engine_versions: Vec<EngineVersionView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeBrokerEngineTypesResponse {
    pub broker_engine_types: Vec<BrokerEngineType>,
    pub max_results: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityZone {
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerInstanceOption {
    pub availability_zones: Vec<AvailabilityZone>,
    pub engine_type: String,
    pub host_instance_type: String,
    pub storage_type: String,
    pub supported_deployment_modes: Vec<String>,
    pub supported_engine_versions: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeBrokerInstanceOptionsResponse {
    pub broker_instance_options: Vec<BrokerInstanceOption>,
    pub max_results: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CatalogueQuery {
    pub engine_type: Option<String>,
    pub host_instance_type: Option<String>,
    pub storage_type: Option<String>,
    pub max_results: Option<String>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagsBody {
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBrokerRequest {
    pub authentication_strategy: Option<String>,
    pub auto_minor_version_upgrade: Option<bool>,
    pub configuration: Option<ConfigurationIdInput>,
    pub engine_version: Option<String>,
    pub host_instance_type: Option<String>,
    pub ldap_server_metadata: Option<serde_json::Value>,
    pub logs: Option<LogsInput>,
    pub maintenance_window_start_time: Option<WeeklyStartTime>,
    pub security_groups: Option<Vec<String>>,
    pub storage_size: Option<i64>,
    pub data_replication_mode: Option<String>,
    pub resource_share_arns: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsView {
    pub general: bool,
    /// ActiveMQ only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBrokerResponse {
    pub auto_minor_version_upgrade: bool,
    pub broker_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<ConfigurationIdView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_instance_type: Option<String>,
    pub logs: LogsView,
    pub maintenance_window_start_time: WeeklyStartTime,
    pub security_groups: Vec<String>,
}

/// Empty JSON object replies (RebootBroker, CreateUser, UpdateUser, DeleteUser).
#[derive(Debug, Serialize, ToSchema)]
pub struct Empty {}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRequest {
    pub console_access: Option<bool>,
    pub groups: Option<Vec<String>>,
    pub password: Option<String>,
    pub replication_user: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPendingChanges {
    pub pending_change: String,
    pub console_access: bool,
    pub groups: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeUserResponse {
    pub broker_id: String,
    pub console_access: bool,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<UserPendingChanges>,
    pub replication_user: bool,
    pub username: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListUsersResponse {
    pub broker_id: String,
    pub max_results: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub users: Vec<UserSummary>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateConfigurationRequest {
    pub authentication_strategy: Option<String>,
    pub engine_type: Option<String>,
    pub engine_version: Option<String>,
    pub name: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationRevisionView {
    pub created: String,
    pub description: String,
    pub revision: i32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationView {
    pub arn: String,
    pub authentication_strategy: String,
    pub created: String,
    pub description: String,
    pub engine_type: String,
    pub engine_version: String,
    pub id: String,
    pub latest_revision: ConfigurationRevisionView,
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateConfigurationResponse {
    pub arn: String,
    pub authentication_strategy: String,
    pub created: String,
    pub id: String,
    pub latest_revision: ConfigurationRevisionView,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListConfigurationsResponse {
    pub configurations: Vec<ConfigurationView>,
    pub max_results: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateConfigurationRequest {
    /// Base64 of the revision's `rabbitmq.conf` text.
    pub data: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SanitizationWarning {
    pub reason: String,
    pub element_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateConfigurationResponse {
    pub arn: String,
    pub created: String,
    pub id: String,
    pub latest_revision: ConfigurationRevisionView,
    pub name: String,
    pub warnings: Vec<SanitizationWarning>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteConfigurationResponse {
    pub configuration_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeConfigurationRevisionResponse {
    pub configuration_id: String,
    pub created: String,
    /// Base64 of the stored (sanitized) text.
    pub data: String,
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListConfigurationRevisionsResponse {
    pub configuration_id: String,
    pub max_results: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub revisions: Vec<ConfigurationRevisionView>,
}

#[derive(Debug, Serialize, ToSchema, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationIdView {
    pub id: String,
    pub revision: i32,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromoteRequest {
    pub mode: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeSharedResourcesResponse {
    pub shared_resources: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}
