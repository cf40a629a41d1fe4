//! Domain types: parsed, validated values that the rest of the control plane can trust.
//!
//! Every value that arrives on the wire is turned into one of these types at the edge
//! (parse, don't validate); the database and the reconciler only ever see valid values.

pub mod activemq_xml;
pub mod catalogue;
pub mod haproxy;
pub mod ids;
pub mod maintenance;
pub mod names;
pub mod nodes;
pub mod objects;
pub mod profile;
pub mod rabbitmq_conf;
pub mod state;
pub mod tags;
pub mod vpc;

pub use catalogue::{DeploymentMode, EngineType, EngineVersion, InstanceType, StorageType};
pub use ids::{AccountId, BrokerId, Region, Scope};
pub use names::{BrokerName, Password, Username};
pub use state::BrokerState;
pub use tags::Tags;
