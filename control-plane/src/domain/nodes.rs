//! A broker's nodes: how many, where, on which volumes, and how their health adds up.
//!
//! The deployment mode and the engine decide a broker's [`Layout`]: one node
//! (SINGLE_INSTANCE), an active/standby pair on one shared volume
//! (ACTIVE_STANDBY_MULTI_AZ, ActiveMQ) or a three-node cluster behind one load balancer
//! (CLUSTER_MULTI_AZ, RabbitMQ). Each node has an index, an availability zone (the
//! region plus `a`, `b`, `c`: today a placement label, tomorrow a host per zone) and the
//! volume its data lives on. [`assess`] turns the agents' reports into the broker's
//! health: whether it serves, whether it is fully formed, and why not.

use agent_contract::{EngineState, HealthReport, Topology};

use super::{objects, BrokerId, DeploymentMode};

/// What a node is for, as planned by the mode (the observed role comes from its report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Single,
    /// One of an active/standby pair: whichever holds the store's lock is active.
    Pair,
    ClusterMember,
}

/// One planned node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    pub index: u32,
    pub zone: String,
    pub container: String,
    pub volume: String,
}

/// Every node of a broker and what joins them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub topology: Topology,
    pub kind: NodeKind,
    pub nodes: Vec<NodePlan>,
    /// A load balancer container in front of the nodes (the cluster's one endpoint).
    pub load_balancer: bool,
}

/// Availability zone `index` of `region` (`us-east-1` → `us-east-1a`, `…b`, `…c`).
pub fn zone(region: &str, index: u32) -> String {
    let letter = char::from(b'a' + (index % 26) as u8);
    format!("{region}{letter}")
}

/// The layout of broker `id` in `mode`.
pub fn layout(id: &BrokerId, mode: DeploymentMode, region: &str) -> Layout {
    let (topology, kind, count, shared, lb) = match mode {
        DeploymentMode::SingleInstance => (Topology::Single, NodeKind::Single, 1, false, false),
        DeploymentMode::ActiveStandbyMultiAz => {
            (Topology::SharedStorage, NodeKind::Pair, 2, true, false)
        }
        DeploymentMode::ClusterMultiAz => {
            (Topology::Cluster, NodeKind::ClusterMember, 3, false, true)
        }
    };
    let nodes = (0..count)
        .map(|index| NodePlan {
            index,
            zone: zone(region, index),
            container: objects::container_name(id, index),
            volume: if shared {
                objects::shared_volume_name(id)
            } else {
                objects::volume_name(id, index)
            },
        })
        .collect();
    Layout {
        topology,
        kind,
        nodes,
        load_balancer: lb,
    }
}

impl Layout {
    pub fn indexes(&self) -> impl Iterator<Item = u32> + '_ {
        self.nodes.iter().map(|n| n.index)
    }

    pub fn node(&self, index: u32) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.index == index)
    }

    /// Host names of the nodes other than `index`.
    pub fn peers(&self, index: u32) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.index != index)
            .map(|n| n.container.clone())
            .collect()
    }
}

/// The role a node is seen in, from its last report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedRole {
    /// Serves clients (the single node, or the active of a pair).
    Active,
    /// Waits for the shared store's lock.
    Standby,
    /// A cluster member that serves.
    ClusterNode,
    /// Not serving (starting, restarting, failed, unreachable).
    Down,
}

impl ObservedRole {
    pub fn as_wire(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Standby => "STANDBY",
            Self::ClusterNode => "CLUSTER_NODE",
            Self::Down => "DOWN",
        }
    }
}

/// The role of a node of `kind` in `state`.
pub fn observed_role(kind: NodeKind, state: Option<EngineState>) -> ObservedRole {
    match (kind, state) {
        (NodeKind::ClusterMember, Some(EngineState::Ready)) => ObservedRole::ClusterNode,
        (_, Some(EngineState::Ready)) => ObservedRole::Active,
        (NodeKind::Pair, Some(EngineState::Standby)) => ObservedRole::Standby,
        _ => ObservedRole::Down,
    }
}

/// How the broker is doing, from every node's report (`Err`: its agent did not answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Clients are served: the single node, the active of a pair, or a majority of the
    /// cluster is ready.
    pub serving: bool,
    /// Every node is where it should be: a pair has one active and one standby, every
    /// cluster member is ready and sees all members running. Creation and reboots wait
    /// for this.
    pub formed: bool,
    /// Nodes that failed for a reason a restart will not fix, with their errors
    /// (`node N: …`), in node order.
    pub failed: Vec<(u32, String)>,
    /// Why the broker is not formed, for state reasons (empty when formed).
    pub detail: String,
    /// Engine alarms the answering nodes raised, in node order.
    pub alarms: Vec<(u32, agent_contract::EngineAlarm)>,
    /// A pair's standby is taking over: no node serves, and one waits for the store's
    /// lock or starts with it. A dead node is then not started until the new active
    /// serves: starting its container publishes its ports at once, and a failover client
    /// that tries them before the engine inside listens waits in the TLS handshake
    /// (Docker's proxy accepts, and its own connect to a container whose network is not
    /// up yet waits for a SYN retransmission, about 1 s) instead of reaching the new
    /// active.
    pub taking_over: bool,
    /// Every node's agent answered (each is its container's PID 1, so every container
    /// runs).
    pub all_answered: bool,
}

/// One node's report, as the reconciler got it.
pub type NodeReport<'a> = (u32, Result<&'a HealthReport, &'a str>);

/// Adds up the nodes' reports for `layout`.
pub fn assess(layout: &Layout, reports: &[NodeReport<'_>]) -> Assessment {
    let state = |r: &Result<&HealthReport, &str>| r.as_ref().ok().map(|h| h.state);
    let ready = reports
        .iter()
        .filter(|(_, r)| state(r) == Some(EngineState::Ready))
        .count();
    let standby = reports
        .iter()
        .filter(|(_, r)| state(r) == Some(EngineState::Standby))
        .count();
    let total = layout.nodes.len();
    let failed = reports
        .iter()
        .filter_map(|(n, r)| match r {
            Ok(h) if h.state == EngineState::Failed => Some((
                *n,
                format!(
                    "node {n}: {}",
                    h.last_error.as_deref().unwrap_or("the engine failed")
                ),
            )),
            _ => None,
        })
        .collect();
    let (serving, formed) = match layout.kind {
        NodeKind::Single => (ready == 1, ready == 1),
        NodeKind::Pair => (ready == 1, ready == 1 && standby == total - 1),
        NodeKind::ClusterMember => {
            let members: Vec<String> = layout
                .nodes
                .iter()
                .map(|n| format!("rabbit@{}", n.container))
                .collect();
            let sees_all = |h: &HealthReport| {
                h.cluster_running
                    .as_ref()
                    .is_some_and(|running| members.iter().all(|m| running.contains(m)))
            };
            let all_see_all = reports
                .iter()
                .all(|(_, r)| r.as_ref().is_ok_and(|h| sees_all(h)));
            (ready > total / 2, ready == total && all_see_all)
        }
    };
    let detail = if formed {
        String::new()
    } else {
        let mut parts = Vec::new();
        for (n, r) in reports {
            match r {
                Ok(h) if h.state == EngineState::Ready => {
                    if layout.kind == NodeKind::ClusterMember && h.cluster_running.is_some() {
                        let running = h.cluster_running.as_deref().unwrap_or_default();
                        parts.push(format!(
                            "node {n}: ready, sees {} of {total} members",
                            running.len()
                        ));
                    }
                }
                Ok(h) if h.state == EngineState::Standby && layout.kind == NodeKind::Pair => {}
                Ok(h) => parts.push(match &h.last_error {
                    Some(e) => format!("node {n}: engine state {:?}: {e}", h.state),
                    None => format!("node {n}: engine state {:?}", h.state),
                }),
                Err(e) => parts.push(format!("node {n}: agent unreachable: {e}")),
            }
        }
        if layout.kind == NodeKind::Pair && ready != 1 {
            parts.push(format!("{ready} of {total} nodes active"));
        }
        parts.join("; ")
    };
    let alarms = reports
        .iter()
        .filter_map(|(n, r)| r.as_ref().ok().map(|h| (*n, h)))
        .flat_map(|(n, h)| h.alarms.iter().map(move |a| (n, a.clone())))
        .collect();
    let taking_over = layout.kind == NodeKind::Pair
        && ready == 0
        && reports
            .iter()
            .any(|(_, r)| matches!(state(r), Some(EngineState::Standby | EngineState::Starting)));
    Assessment {
        serving,
        formed,
        failed,
        detail,
        alarms,
        taking_over,
        all_answered: reports.iter().all(|(_, r)| r.is_ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_contract::Engine;

    fn report(state: EngineState, running: Option<Vec<String>>) -> HealthReport {
        HealthReport {
            broker_id: "b-1".into(),
            engine: Engine::Activemq,
            state,
            restarts: 0,
            uptime_secs: 1,
            memory_limit_bytes: None,
            last_error: None,
            cluster_running: running,
            alarms: Vec::new(),
        }
    }

    fn id() -> BrokerId {
        BrokerId::from_db("b-0123".into())
    }

    #[test]
    fn layouts_per_mode() {
        let single = layout(&id(), DeploymentMode::SingleInstance, "eu-west-1");
        assert_eq!(single.nodes.len(), 1);
        assert_eq!(single.nodes[0].zone, "eu-west-1a");
        assert!(!single.load_balancer);

        let pair = layout(&id(), DeploymentMode::ActiveStandbyMultiAz, "eu-west-1");
        assert_eq!(pair.topology, Topology::SharedStorage);
        assert_eq!(pair.nodes.len(), 2);
        assert_eq!(
            pair.nodes[0].volume, pair.nodes[1].volume,
            "one shared volume"
        );
        assert_ne!(pair.nodes[0].zone, pair.nodes[1].zone);
        assert_eq!(pair.peers(0), vec![pair.nodes[1].container.clone()]);

        let cluster = layout(&id(), DeploymentMode::ClusterMultiAz, "eu-west-1");
        assert_eq!(cluster.nodes.len(), 3);
        assert!(cluster.load_balancer);
        let zones: std::collections::HashSet<_> = cluster.nodes.iter().map(|n| &n.zone).collect();
        assert_eq!(zones.len(), 3, "three zones");
        let volumes: std::collections::HashSet<_> =
            cluster.nodes.iter().map(|n| &n.volume).collect();
        assert_eq!(volumes.len(), 3, "a volume per node");
    }

    #[test]
    fn a_pair_is_formed_with_one_active_and_one_standby() {
        let l = layout(&id(), DeploymentMode::ActiveStandbyMultiAz, "us-east-1");
        let ready = report(EngineState::Ready, None);
        let standby = report(EngineState::Standby, None);
        let starting = report(EngineState::Starting, None);
        let a = assess(&l, &[(0, Ok(&ready)), (1, Ok(&standby))]);
        assert!(a.serving && a.formed, "{a:?}");
        let a = assess(&l, &[(0, Ok(&standby)), (1, Ok(&ready))]);
        assert!(a.serving && a.formed);
        let a = assess(&l, &[(0, Err("timed out")), (1, Ok(&ready))]);
        assert!(a.serving && !a.formed);
        assert!(
            a.detail.contains("node 0: agent unreachable"),
            "{}",
            a.detail
        );
        let a = assess(&l, &[(0, Ok(&standby)), (1, Ok(&starting))]);
        assert!(!a.serving && !a.formed);
        assert!(a.detail.contains("0 of 2 nodes active"), "{}", a.detail);
        // two actives would be a split brain: never formed, never "serving"
        let a = assess(&l, &[(0, Ok(&ready)), (1, Ok(&ready))]);
        assert!(!a.serving && !a.formed);
        assert_eq!(
            observed_role(NodeKind::Pair, Some(EngineState::Standby)),
            ObservedRole::Standby
        );
        assert_eq!(
            observed_role(NodeKind::Single, Some(EngineState::Standby)),
            ObservedRole::Down
        );
    }

    #[test]
    fn a_pair_takes_over_while_no_node_serves_and_one_has_or_waits_for_the_lock() {
        let l = layout(&id(), DeploymentMode::ActiveStandbyMultiAz, "us-east-1");
        let ready = report(EngineState::Ready, None);
        let standby = report(EngineState::Standby, None);
        let starting = report(EngineState::Starting, None);
        let failed = report(EngineState::Failed, None);
        let dead = Err("connection refused");
        for survivor in [&standby, &starting] {
            let a = assess(&l, &[(0, dead), (1, Ok(survivor))]);
            assert!(a.taking_over, "{a:?}");
        }
        // Someone serves, nobody is left to take over, or the survivor failed: no hold.
        for reports in [
            [(0, dead), (1, Ok(&ready))],
            [(0, Ok(&standby)), (1, Ok(&ready))],
            [(0, dead), (1, dead)],
            [(0, dead), (1, Ok(&failed))],
        ] {
            let a = assess(&l, &reports);
            assert!(!a.taking_over, "{reports:?}: {a:?}");
        }
        // Only a pair has a lock to take over.
        let single = layout(&id(), DeploymentMode::SingleInstance, "us-east-1");
        assert!(!assess(&single, &[(0, Ok(&starting))]).taking_over);
    }

    #[test]
    fn a_cluster_serves_with_a_majority_and_is_formed_when_all_see_all() {
        let l = layout(&id(), DeploymentMode::ClusterMultiAz, "us-east-1");
        let all: Vec<String> = l
            .nodes
            .iter()
            .map(|n| format!("rabbit@{}", n.container))
            .collect();
        let full = report(EngineState::Ready, Some(all.clone()));
        let partial = report(EngineState::Ready, Some(all[..1].to_vec()));
        let a = assess(&l, &[(0, Ok(&full)), (1, Ok(&full)), (2, Ok(&full))]);
        assert!(a.serving && a.formed && a.detail.is_empty());
        let a = assess(&l, &[(0, Ok(&full)), (1, Ok(&partial)), (2, Ok(&full))]);
        assert!(a.serving && !a.formed);
        assert!(
            a.detail.contains("node 1: ready, sees 1 of 3"),
            "{}",
            a.detail
        );
        let a = assess(&l, &[(0, Ok(&full)), (1, Err("refused")), (2, Ok(&full))]);
        assert!(a.serving && !a.formed);
        let a = assess(
            &l,
            &[(0, Ok(&full)), (1, Err("refused")), (2, Err("refused"))],
        );
        assert!(!a.serving, "one of three is no quorum");
    }

    #[test]
    fn a_failed_node_is_named() {
        let l = layout(&id(), DeploymentMode::SingleInstance, "us-east-1");
        let mut failed = report(EngineState::Failed, None);
        failed.last_error = Some("bad config".into());
        let a = assess(&l, &[(0, Ok(&failed))]);
        assert_eq!(a.failed, vec![(0, "node 0: bad config".to_owned())]);
        assert!(!a.serving);
    }
}
