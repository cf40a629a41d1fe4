//! How Berth names the Docker objects of a broker: deterministic, so every reconcile
//! step can be retried and a crashed control plane finds what it made. A broker has
//! one network and, per node, one container and a data volume (an active/standby pair
//! shares one volume; a cluster also has a load balancer container).

use super::BrokerId;

/// The most nodes any deployment mode runs (CLUSTER_MULTI_AZ: three). Teardown removes
/// this many, so it never depends on a row that may be half-updated.
pub const MAX_NODES: u32 = 3;

/// `broker_ports.node` of the ports a cluster's load balancer publishes (the broker's
/// one endpoint), next to each node's own.
pub const LOAD_BALANCER_PORTS: i32 = -1;

pub fn network_name(id: &BrokerId) -> String {
    format!("berth-{id}")
}

pub fn volume_name(id: &BrokerId, node: u32) -> String {
    format!("berth-{id}-{node}-data")
}

pub fn container_name(id: &BrokerId, node: u32) -> String {
    format!("berth-{id}-{node}")
}

/// The one data volume both nodes of an active/standby pair mount.
pub fn shared_volume_name(id: &BrokerId) -> String {
    format!("berth-{id}-shared-data")
}

/// The read-only volume holding program directory `dir` of the image whose id is
/// `image_id` (`sha256:…`), shared by every node created from that image.
pub fn program_volume_name(image_id: &str, dir: &str) -> String {
    let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    let short: String = hex.chars().take(12).collect();
    let slug = dir.trim_matches('/').replace('/', "-");
    format!("berth-program-{short}-{slug}")
}

/// (volume name, mount path) of each of `dirs` for the image `image_id`.
pub fn program_volumes(image_id: &str, dirs: &[&str]) -> Vec<(String, String)> {
    dirs.iter()
        .map(|dir| (program_volume_name(image_id, dir), (*dir).to_owned()))
        .collect()
}

/// The load balancer in front of a cluster's nodes.
pub fn load_balancer_name(id: &BrokerId) -> String {
    format!("berth-{id}-lb")
}
