//! Workflow logic of multi-node brokers on the in-memory runtime and a real database:
//! an active/standby pair is RUNNING only with one active and one standby, a silent
//! active is killed after `hung_after` (a silent standby never), a reboot rolls
//! standby first and waits for the pair to form again, and a roll resumes after a
//! control-plane restart. (The real-Docker proof with JMS/STOMP clients is in
//! `ha_activemq.rs`.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use agent_contract::{AgentSpec, Engine, EngineState, HealthReport};
use async_trait::async_trait;
use berth::agent_client::AgentClient;
use berth::app::brokers::{broker_create, broker_describe, broker_reboot, describe_view};
use berth::domain::{objects, BrokerId};
use berth::reconcile::StepOutcome;
use berth::runtime::ContainerRuntime;
use serde_json::json;

use super::reconciler::{harness_with, Harness, HUNG_AFTER};

/// What a node's agent does when asked.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Report(EngineState),
    /// A ready cluster member that sees every node of [`NodeAgents::members`] running.
    Member,
    Unreachable,
}

/// An agent per node (by host port of its base URL), scripted by the test.
#[derive(Default)]
struct NodeAgents {
    answers: Mutex<HashMap<String, Answer>>,
    specs: Mutex<Vec<String>>,
    /// The Erlang node names a [`Answer::Member`] sees running.
    members: Mutex<Vec<String>>,
}

impl NodeAgents {
    fn set(&self, base: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(base.to_owned(), answer);
    }
}

#[async_trait]
impl AgentClient for NodeAgents {
    async fn put_spec(
        &self,
        base: &str,
        token: &str,
        _spec: &AgentSpec,
    ) -> anyhow::Result<HealthReport> {
        self.specs.lock().unwrap().push(base.to_owned());
        self.health(base, token).await
    }

    async fn health(&self, base: &str, _token: &str) -> anyhow::Result<HealthReport> {
        let answer = self
            .answers
            .lock()
            .unwrap()
            .get(base)
            .copied()
            .unwrap_or(Answer::Report(EngineState::Starting));
        let report = |state, cluster_running| HealthReport {
            broker_id: String::new(),
            engine: Engine::Activemq,
            state,
            restarts: 0,
            uptime_secs: 1,
            memory_limit_bytes: None,
            last_error: None,
            cluster_running,
            alarms: Vec::new(),
        };
        match answer {
            Answer::Report(state) => Ok(report(state, None)),
            Answer::Member => Ok(report(
                EngineState::Ready,
                Some(self.members.lock().unwrap().clone()),
            )),
            Answer::Unreachable => anyhow::bail!("connection refused"),
        }
    }
}

struct Pair {
    h: Harness,
    agents: Arc<NodeAgents>,
    id: BrokerId,
    bases: [String; 2],
}

impl Pair {
    async fn new() -> Pair {
        let agents = Arc::new(NodeAgents::default());
        let h = harness_with(agents.clone()).await;
        let req = serde_json::from_value(json!({
            "brokerName": "pair",
            "engineType": "ACTIVEMQ",
            "engineVersion": "5.17",
            "deploymentMode": "ACTIVE_STANDBY_MULTI_AZ",
            "hostInstanceType": "mq.m5.large",
            "storageType": "EFS",
            "publiclyAccessible": false,
            "users": [{"username": "app", "password": "s3cret-Passw0rd-x"}],
        }))
        .unwrap();
        let row = broker_create(&h.ctx, &h.caller, req).await.unwrap();
        let id = BrokerId::parse(&row.id).unwrap();
        let ports = h.ctx.store.broker_ports(&id).await.unwrap();
        let base = |node: i32| {
            let p = ports
                .iter()
                .find(|p| p.node == node && p.protocol == "agent")
                .expect("agent port");
            format!("http://127.0.0.1:{}", p.host_port)
        };
        let bases = [base(0), base(1)];
        Pair {
            h,
            agents,
            id,
            bases,
        }
    }

    fn answer(&self, node: usize, answer: Answer) {
        self.agents.set(&self.bases[node], answer);
    }

    async fn state(&self) -> String {
        self.h.state(&self.id).await.unwrap()
    }

    async fn describe(&self) -> serde_json::Value {
        let d = broker_describe(&self.h.ctx, &self.h.caller, self.id.as_str())
            .await
            .unwrap();
        serde_json::to_value(describe_view(&self.h.ctx, &d).unwrap()).unwrap()
    }

    async fn running(&self, node: u32) -> bool {
        self.h
            .running(&objects::container_name(&self.id, node))
            .await
    }

    async fn created(&self, node: u32) -> chrono::DateTime<chrono::Utc> {
        self.h
            .runtime
            .container_status(&objects::container_name(&self.id, node))
            .await
            .unwrap()
            .and_then(|s| s.created)
            .expect("container exists")
    }

    /// Creates the pair with node `active` active and the other standby: RUNNING.
    async fn running_with_active(active: usize) -> Pair {
        let p = Pair::new().await;
        p.answer(active, Answer::Report(EngineState::Ready));
        p.answer(1 - active, Answer::Report(EngineState::Standby));
        assert_eq!(p.h.settle(&p.id).await, StepOutcome::Stable);
        assert_eq!(p.state().await, "RUNNING");
        p
    }
}

#[tokio::test]
async fn a_pair_runs_with_one_active_and_one_standby_on_one_shared_volume() {
    let p = Pair::new().await;
    // One active, the other still starting: not formed yet.
    p.answer(0, Answer::Report(EngineState::Ready));
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Waiting);
    assert_eq!(p.state().await, "CREATION_IN_PROGRESS");
    // Two actives would be a split brain: never RUNNING.
    p.answer(1, Answer::Report(EngineState::Ready));
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Waiting);
    p.answer(1, Answer::Report(EngineState::Standby));
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Stable);
    assert_eq!(p.state().await, "RUNNING");

    let spec = |n| {
        p.h.runtime
            .container_spec(&objects::container_name(&p.id, n))
            .unwrap()
    };
    let (a, b) = (spec(0), spec(1));
    assert_eq!(a.volume, b.volume, "both nodes mount the one shared volume");
    assert_eq!(a.volume.unwrap().0, objects::shared_volume_name(&p.id));
    assert_ne!(a.labels["berth.zone"], b.labels["berth.zone"], "two zones");
    assert_ne!(a.ports, b.ports, "each node has its own pinned ports");

    let d = p.describe().await;
    let instances = d["brokerInstances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{d}");
    for i in instances {
        assert!(i["ipAddress"].is_string(), "{i}");
        assert!(!i["endpoints"].as_array().unwrap().is_empty());
    }
    assert_ne!(instances[0]["endpoints"], instances[1]["endpoints"]);
    let roles: Vec<&str> = d["berthNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["ACTIVE", "STANDBY"]);
    assert_eq!(d["berthNodes"][0]["zone"], "us-east-1a");
    assert_eq!(d["berthNodes"][1]["zone"], "us-east-1b");

    // Failover: the active dies, the standby takes over; the pair stays RUNNING and
    // says which node is active now.
    p.answer(0, Answer::Report(EngineState::Restarting));
    p.answer(1, Answer::Report(EngineState::Ready));
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Stable);
    assert_eq!(p.state().await, "RUNNING");
    let d = p.describe().await;
    assert_eq!(d["berthNodes"][0]["role"], "DOWN");
    assert_eq!(d["berthNodes"][1]["role"], "ACTIVE");
}

#[tokio::test]
async fn a_silent_active_is_killed_after_hung_after_and_a_silent_standby_never() {
    let p = Pair::running_with_active(0).await;
    let mut last_answer = HashMap::new();
    // Both answer: the watchdog only listens.
    assert!(p
        .h
        .rec
        .watch_hung_actives(&mut last_answer)
        .await
        .unwrap()
        .is_empty());

    // The standby goes silent: it holds no lock, it is never killed.
    p.answer(1, Answer::Unreachable);
    let started = Instant::now();
    while started.elapsed() < HUNG_AFTER * 3 {
        let killed = p.h.rec.watch_hung_actives(&mut last_answer).await.unwrap();
        assert!(killed.is_empty(), "a silent standby was killed: {killed:?}");
    }
    assert!(p.running(1).await);
    p.answer(1, Answer::Report(EngineState::Standby));

    // The active goes silent (a paused container): killed once it has been silent for
    // hung_after since its last answer, not before.
    let last_heard = Instant::now();
    assert!(p
        .h
        .rec
        .watch_hung_actives(&mut last_answer)
        .await
        .unwrap()
        .is_empty());
    p.answer(0, Answer::Unreachable);
    let deadline = last_heard + HUNG_AFTER * 20;
    let killed = loop {
        let killed = p.h.rec.watch_hung_actives(&mut last_answer).await.unwrap();
        if !killed.is_empty() {
            break killed;
        }
        assert!(p.running(0).await, "killed outside the watchdog");
        assert!(
            Instant::now() < deadline,
            "the hung active was never killed"
        );
    };
    assert!(
        last_heard.elapsed() >= HUNG_AFTER,
        "killed before hung_after"
    );
    assert_eq!(killed, vec![objects::container_name(&p.id, 0)]);
    assert!(!p.running(0).await);
    let d = p.describe().await;
    let why = d["berthNodes"][0]["lastError"].as_str().unwrap_or_default();
    assert!(why.contains("killed by Berth"), "{d}");
    assert_eq!(d["berthNodes"][0]["role"], "DOWN");
    // While the standby takes over, the killed node stays down: its published ports
    // would catch failover clients before its engine listens.
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Waiting);
    assert!(!p.running(0).await, "started while the standby took over");
    // The standby serves: the next sweep brings the killed node back.
    p.answer(1, Answer::Report(EngineState::Ready));
    p.h.rec.step(&p.id).await.unwrap();
    assert!(p.running(0).await, "the killed node is started again");
}

#[tokio::test]
async fn a_pair_reboot_rolls_the_standby_first_and_fails_over_once() {
    // Node 1 is the active: the roll order follows roles, not indexes.
    let p = Pair::running_with_active(1).await;
    let (before0, before1) = (p.created(0).await, p.created(1).await);
    broker_reboot(&p.h.ctx, &p.h.caller, p.id.as_str())
        .await
        .unwrap();

    // First step: only the standby (node 0) is recreated.
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Waiting);
    assert!(p.created(0).await > before0, "standby recreated first");
    assert_eq!(p.created(1).await, before1, "the active is left alone");

    // While the recreated standby is not back, the active is not touched.
    p.answer(0, Answer::Report(EngineState::Starting));
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Waiting);
    assert_eq!(p.created(1).await, before1);

    // The standby is back: now the active goes (the one failover of the roll).
    p.answer(0, Answer::Report(EngineState::Standby));
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Waiting);
    assert!(!p.running(1).await, "the old active is gone");
    assert_eq!(p.state().await, "REBOOT_IN_PROGRESS");
    // It comes back only once node 0 has taken over.
    p.answer(1, Answer::Unreachable);
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Waiting);
    assert!(!p.running(1).await, "recreated before the takeover served");
    p.answer(0, Answer::Report(EngineState::Ready));
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Waiting);
    assert!(p.created(1).await > before1);

    // Node 0 took over, node 1 came back as the standby: RUNNING.
    p.answer(1, Answer::Report(EngineState::Standby));
    assert_eq!(p.h.settle(&p.id).await, StepOutcome::Stable);
    assert_eq!(p.state().await, "RUNNING");
    let d = p.describe().await;
    assert_eq!(d["berthNodes"][0]["role"], "ACTIVE");
    assert_eq!(d["berthNodes"][1]["role"], "STANDBY");
}

/// The roll keeps no state in memory: which nodes are done is read from Docker
/// (containers created after the request) each step, so a step run by a restarted
/// control plane — or retried after a failure — never reboots a node twice.
#[tokio::test]
async fn a_roll_resumes_where_it_was_and_never_reboots_a_node_twice() {
    let p = Pair::running_with_active(0).await;
    broker_reboot(&p.h.ctx, &p.h.caller, p.id.as_str())
        .await
        .unwrap();
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Waiting);
    let recreated = p.created(1).await;
    let active_before = p.created(0).await;
    // A failure in the middle of the next step, then the step again.
    p.answer(1, Answer::Report(EngineState::Standby));
    p.h.runtime.fail_next("stop_container");
    assert!(p.h.rec.step(&p.id).await.is_err());
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Waiting);
    assert_eq!(
        p.created(1).await,
        recreated,
        "the node rebooted before is not rebooted again"
    );
    assert!(!p.running(0).await, "the roll went on to the active");
    p.answer(0, Answer::Unreachable);
    p.answer(1, Answer::Report(EngineState::Ready));
    assert_eq!(p.h.rec.step(&p.id).await.unwrap(), StepOutcome::Waiting);
    assert!(p.created(0).await > active_before, "the active came back");
}

#[tokio::test]
async fn updates_a_mode_or_an_engine_cannot_take_are_refused() {
    let p = Pair::running_with_active(0).await;
    let update = |body: serde_json::Value| {
        let p = &p;
        async move {
            berth::app::brokers::broker_update(
                &p.h.ctx,
                &p.h.caller,
                p.id.as_str(),
                serde_json::from_value(body).unwrap(),
            )
            .await
        }
    };
    // Amazon MQ refuses mq.t3.micro for multi-AZ brokers, also as a resize.
    let err = update(json!({"hostInstanceType": "mq.t3.micro"}))
        .await
        .unwrap_err();
    let wire = format!("{err:?}");
    assert!(wire.contains("hostInstanceType"), "{wire}");
    assert!(p.h.row(&p.id).await.pending_host_instance_type.is_none());

    // RabbitMQ upgrades one minor at a time: 4.0 → 4.3 in place is refused with the path.
    let agents = Arc::new(NodeAgents::default());
    let h = harness_with(agents).await;
    let ring = create_ring(&h).await;
    let err = berth::app::brokers::broker_update(
        &h.ctx,
        &h.caller,
        ring.as_str(),
        serde_json::from_value(json!({"engineVersion": "4.3"})).unwrap(),
    )
    .await
    .unwrap_err();
    let wire = format!("{err:?}");
    assert!(
        wire.contains("engineVersion") && wire.contains("4.0 → 4.1"),
        "{wire}"
    );
    assert!(h.row(&ring).await.pending_engine_version.is_none());
}

/// Creates a RabbitMQ 4.0 cluster (CREATION_IN_PROGRESS).
async fn create_ring(h: &Harness) -> BrokerId {
    let req = serde_json::from_value(json!({
        "brokerName": "ring", "engineType": "RABBITMQ", "engineVersion": "4.0",
        "deploymentMode": "CLUSTER_MULTI_AZ", "hostInstanceType": "mq.m7g.large",
        "publiclyAccessible": false,
        "users": [{"username": "admin", "password": "s3cret-Passw0rd-x"}],
    }))
    .unwrap();
    let row = broker_create(&h.ctx, &h.caller, req).await.unwrap();
    BrokerId::parse(&row.id).unwrap()
}

/// A roll onto a rebuilt image (an automatic minor upgrade, an engine upgrade) ends with
/// the cluster's load balancer on the new image too; a reboot on the same image leaves
/// it, and its clients' connections, alone.
#[tokio::test]
async fn a_roll_onto_a_rebuilt_image_moves_the_load_balancer_onto_it_too() {
    let agents = Arc::new(NodeAgents::default());
    let h = harness_with(agents.clone()).await;
    let id = create_ring(&h).await;
    *agents.members.lock().unwrap() = (0..3)
        .map(|n| format!("rabbit@{}", objects::container_name(&id, n)))
        .collect();
    for p in h.ctx.store.broker_ports(&id).await.unwrap() {
        if p.protocol == "agent" {
            agents.set(&format!("http://127.0.0.1:{}", p.host_port), Answer::Member);
        }
    }
    assert_eq!(h.settle(&id).await, StepOutcome::Stable);
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));
    let status = |name: String| {
        let h = &h;
        async move { h.runtime.container_status(&name).await.unwrap().unwrap() }
    };
    let lb = objects::load_balancer_name(&id);
    let first = status(lb.clone()).await;

    broker_reboot(&h.ctx, &h.caller, id.as_str()).await.unwrap();
    assert_eq!(h.settle(&id).await, StepOutcome::Stable);
    assert!(status(objects::container_name(&id, 0)).await.created > first.created);
    assert_eq!(
        status(lb.clone()).await.created,
        first.created,
        "same image: LB kept"
    );

    h.runtime.rebuild_image(berth_tests::RABBITMQ_IMAGE);
    let newest = h
        .runtime
        .image_id(berth_tests::RABBITMQ_IMAGE)
        .await
        .unwrap()
        .unwrap();
    broker_reboot(&h.ctx, &h.caller, id.as_str()).await.unwrap();
    assert_eq!(h.settle(&id).await, StepOutcome::Stable);
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));
    for n in 0..3 {
        assert_eq!(
            status(objects::container_name(&id, n)).await.image_id,
            newest
        );
    }
    let after = status(lb).await;
    assert_eq!(
        after.image_id, newest,
        "the load balancer stayed on the old image"
    );
    assert!(after.running);
}
