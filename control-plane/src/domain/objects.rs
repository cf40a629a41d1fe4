//! How Berth names the Docker objects of a broker: deterministic, so every reconcile
//! step can be retried and a crashed control plane finds what it made. A broker has
//! one network and, per node, one container and one data volume.

use super::BrokerId;

/// The most nodes any deployment mode runs (CLUSTER_MULTI_AZ: three). Teardown removes
/// this many, so it never depends on a row that may be half-updated.
pub const MAX_NODES: u32 = 3;

pub fn network_name(id: &BrokerId) -> String {
    format!("berth-{id}")
}

pub fn volume_name(id: &BrokerId, node: u32) -> String {
    format!("berth-{id}-{node}-data")
}

pub fn container_name(id: &BrokerId, node: u32) -> String {
    format!("berth-{id}-{node}")
}
