//! Workflow logic of the reconciler on an in-memory runtime and a real database:
//! convergence, idempotence of every step, recovery from a failure at any step,
//! teardown, and garbage collection of orphans. (The real-Docker proof is in
//! `brokers.rs` and `restart.rs`.)

use std::sync::Arc;
use std::time::Duration;

use agent_contract::{alarm_codes, AgentSpec, Engine, EngineAlarm, EngineState, HealthReport};
use async_trait::async_trait;
use berth::agent_client::AgentClient;
use berth::app::brokers::{broker_create, broker_delete};
use berth::app::{AppContext, Caller, Regions};
use berth::crypto::SecretBox;
use berth::db::broker::PortPool;
use berth::db::DataStore;
use berth::domain::profile::Listeners;
use berth::domain::{objects, AccountId, BrokerId, Region};
use berth::reconcile::broker::ReconcilerConfig;
use berth::reconcile::{BrokerReconciler, Nudger, StepOutcome};
use berth::runtime::fake::FakeRuntime;
use berth::runtime::ContainerRuntime;
use tokio_util::sync::CancellationToken;

use berth_tests::{fresh_database, port_range, rabbitmq_broker, ACTIVEMQ_IMAGE, RABBITMQ_IMAGE};

/// An agent that always reports the engine ready.
pub struct ReadyAgent;

#[async_trait]
impl AgentClient for ReadyAgent {
    async fn put_spec(
        &self,
        base: &str,
        token: &str,
        _spec: &AgentSpec,
    ) -> anyhow::Result<HealthReport> {
        self.health(base, token).await
    }

    async fn health(&self, _base: &str, _token: &str) -> anyhow::Result<HealthReport> {
        Ok(HealthReport {
            broker_id: String::new(),
            engine: Engine::Rabbitmq,
            state: EngineState::Ready,
            restarts: 0,
            uptime_secs: 1,
            memory_limit_bytes: None,
            last_error: None,
            cluster_running: None,
            alarms: Vec::new(),
        })
    }
}

/// How long the harness lets a pair's active stay silent before killing it.
pub(crate) const HUNG_AFTER: Duration = Duration::from_millis(300);

const LISTENERS: Listeners = Listeners {
    tls: false,
    plaintext: true,
};

pub(crate) struct Harness {
    pub(crate) ctx: AppContext,
    pub(crate) caller: Caller,
    pub(crate) runtime: Arc<FakeRuntime>,
    pub(crate) rec: BrokerReconciler,
}

async fn harness() -> Harness {
    harness_with(Arc::new(ReadyAgent)).await
}

pub(crate) async fn harness_with(agent: Arc<dyn AgentClient>) -> Harness {
    let store = DataStore::connect(&fresh_database().await).await.unwrap();
    let secrets = SecretBox::from_key(&[7; 32]);
    let (start, end) = port_range();
    let ca = Arc::new(
        berth::tls::CertificateAuthority::generate("test", std::time::SystemTime::now()).unwrap(),
    );
    let ctx = AppContext {
        store: store.clone(),
        secrets: secrets.clone(),
        ports: PortPool {
            publish_host: "127.0.0.1".into(),
            start,
            end,
        },
        nudger: Nudger::default(),
        regions: Regions::aws_commercial(),
        advertised_host: "127.0.0.1".into(),
        listeners: LISTENERS,
        ca_pem: ca.cert_pem().into(),
        agent: berth::agent_client::SharedAgentClient(agent.clone()),
    };
    let caller = Caller::new(
        AccountId::parse("000000000000").unwrap(),
        Region::parse("us-east-1").unwrap(),
    );
    let runtime = Arc::new(FakeRuntime::with_images(&[RABBITMQ_IMAGE, ACTIVEMQ_IMAGE]));
    let rec = BrokerReconciler::new(
        store.clone(),
        runtime.clone(),
        agent,
        secrets,
        store.installation_id().await.unwrap(),
        ReconcilerConfig {
            publish_host: "127.0.0.1".into(),
            create_timeout: Duration::from_secs(300),
            unhealthy_after: Duration::ZERO,
            poll: Duration::from_millis(10),
            hung_after: HUNG_AFTER,
            health_timeout: Duration::from_millis(300),
            host_cpus: 2,
            host_memory_bytes: 8 << 30,
            listeners: LISTENERS,
            ports: ctx.ports.clone(),
            advertised_host: "127.0.0.1".into(),
            ca,
            renew_before: berth::tls::DEFAULT_RENEW_BEFORE,
            images: None,
            image_prefix: None,
        },
        CancellationToken::new(),
    );
    Harness {
        ctx,
        caller,
        runtime,
        rec,
    }
}

impl Harness {
    async fn create(&self, name: &str) -> BrokerId {
        let req = serde_json::from_value(rabbitmq_broker(name, "admin-user", "s3cret-Passw0rd-x"))
            .unwrap();
        BrokerId::parse(
            &broker_create(&self.ctx, &self.caller, req)
                .await
                .unwrap()
                .id,
        )
        .unwrap()
    }

    pub(crate) async fn row(&self, id: &BrokerId) -> berth::db::model::BrokerRow {
        self.ctx
            .store
            .broker_fetch_unscoped(id)
            .await
            .unwrap()
            .expect("broker row")
    }

    /// Steps until the broker is no longer in transition (a reboot rolls node by node,
    /// one step per node and one to finish); at most 10 steps.
    pub(crate) async fn settle(&self, id: &BrokerId) -> StepOutcome {
        for _ in 0..10 {
            match self.rec.step(id).await.unwrap() {
                StepOutcome::Waiting => continue,
                done => return done,
            }
        }
        panic!("broker {id} still in transition after 10 steps");
    }

    /// Whether `container` exists and runs.
    pub(crate) async fn running(&self, container: &str) -> bool {
        self.runtime
            .container_status(container)
            .await
            .unwrap()
            .is_some_and(|s| s.running)
    }

    pub(crate) async fn state(&self, id: &BrokerId) -> Option<String> {
        self.ctx
            .store
            .broker_fetch_unscoped(id)
            .await
            .unwrap()
            .map(|r| r.state)
    }
}

#[tokio::test]
async fn a_failure_at_any_step_heals_on_the_next_pass() {
    let h = harness().await;
    let ops = [
        "ensure_network",
        "ensure_volume",
        "ensure_container",
        "container_status",
        "start_container",
    ];
    for (i, op) in ops.iter().enumerate() {
        let id = h.create(&format!("heal-{i}")).await;
        h.runtime.fail_next(op);
        assert!(
            h.rec.step(&id).await.is_err(),
            "injected failure in {op} must surface"
        );
        assert_eq!(h.state(&id).await.as_deref(), Some("CREATION_IN_PROGRESS"));
        assert_eq!(
            h.rec.step(&id).await.unwrap(),
            StepOutcome::Stable,
            "after failing {op}"
        );
        assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));
        let name = objects::container_name(&id, 0);
        assert!(h.running(&name).await);
        // Stepping again changes nothing.
        let before = h.runtime.counts();
        assert_eq!(h.rec.step(&id).await.unwrap(), StepOutcome::Stable);
        assert_eq!(h.runtime.counts(), before);
    }
}

#[tokio::test]
async fn container_gets_limits_ports_labels_and_a_secret_spec_file() {
    let h = harness().await;
    let id = h.create("shape").await;
    h.rec.step(&id).await.unwrap();
    let spec = h
        .runtime
        .container_spec(&objects::container_name(&id, 0))
        .unwrap();
    assert_eq!(spec.memory_bytes, 4 << 30); // mq.m7g.medium: 4 GiB
    assert_eq!(spec.nano_cpus, 1_000_000_000); // 1 vCPU
    assert_eq!(spec.image, RABBITMQ_IMAGE);
    assert_eq!(spec.labels["berth.broker-id"], id.as_str());
    let ports = h.ctx.store.broker_ports(&id).await.unwrap();
    // Every listener has a pinned port; only those of the installation's listeners
    // (here plaintext) are published, the agent's always.
    let profile = berth::domain::profile::profile(berth::domain::EngineType::Rabbitmq);
    assert_eq!(ports.len(), profile.node_ports().len());
    let published: Vec<u16> = spec.ports.iter().map(|(c, _)| *c).collect();
    let expected: Vec<u16> = profile
        .published_ports(LISTENERS)
        .iter()
        .map(|(_, c)| *c)
        .collect();
    assert_eq!(published, expected);
    assert!(published.contains(&5672) && !published.contains(&5671));
    assert!(published.contains(&agent_contract::AGENT_PORT));
    for (cport, hport) in &spec.ports {
        assert!(
            ports.iter().any(|p| p.host_port == i32::from(*hport)),
            "{cport}->{hport} not pinned"
        );
    }
    let file = &spec.files[0];
    assert_eq!(file.path, agent_contract::SPEC_PATH);
    assert_eq!(file.mode, 0o600);
    let agent_spec: agent_contract::AgentSpec = serde_json::from_slice(&file.contents).unwrap();
    assert_eq!(agent_spec.users[0].username, "admin-user");
    assert_eq!(agent_spec.users[0].password, "s3cret-Passw0rd-x");
    // The database holds no clear-text password.
    let raw: Vec<u8> =
        sqlx::query_scalar("SELECT password_enc FROM broker_users WHERE broker_id = $1")
            .bind(id.as_str())
            .fetch_one(h.ctx.store.pool())
            .await
            .unwrap();
    assert!(!raw.windows(6).any(|w| w == b"s3cret"));
}

#[tokio::test]
async fn a_stopped_container_of_a_running_broker_is_started_again() {
    let h = harness().await;
    let id = h.create("drift").await;
    h.rec.step(&id).await.unwrap();
    let name = objects::container_name(&id, 0);
    h.runtime.kill(&name);
    h.rec.step(&id).await.unwrap();
    assert!(h.running(&name).await);
}

#[tokio::test]
async fn deletion_tears_everything_down_even_after_a_failure() {
    let h = harness().await;
    let id = h.create("teardown").await;
    h.rec.step(&id).await.unwrap();
    assert_eq!(h.runtime.counts(), (1, 1, 1));
    broker_delete(&h.ctx, &h.caller, id.as_str()).await.unwrap();
    h.runtime.fail_next("remove_volume");
    assert!(h.rec.step(&id).await.is_err());
    assert_eq!(h.state(&id).await.as_deref(), Some("DELETION_IN_PROGRESS"));
    assert_eq!(h.rec.step(&id).await.unwrap(), StepOutcome::Gone);
    assert_eq!(h.state(&id).await, None);
    assert_eq!(h.runtime.counts(), (0, 0, 0));
    assert!(h.ctx.store.broker_ports(&id).await.unwrap().is_empty());
}

#[tokio::test]
async fn garbage_collection_removes_only_orphans_of_this_installation() {
    let h = harness().await;
    let keep = h.create("keep").await;
    let orphan = h.create("orphan").await;
    h.rec.step(&keep).await.unwrap();
    h.rec.step(&orphan).await.unwrap();
    // The orphan's row disappears behind the reconciler's back.
    sqlx::query("DELETE FROM brokers WHERE id = $1")
        .bind(orphan.as_str())
        .execute(h.ctx.store.pool())
        .await
        .unwrap();
    h.rec.collect_garbage().await.unwrap();
    assert!(h
        .runtime
        .container_status(&objects::container_name(&keep, 0))
        .await
        .unwrap()
        .is_some());
    assert!(h
        .runtime
        .container_status(&objects::container_name(&orphan, 0))
        .await
        .unwrap()
        .is_none());
    assert_eq!(h.runtime.counts(), (1, 1, 1));
}

#[tokio::test]
async fn reboot_applies_pending_instance_type_by_recreating_the_container_once() {
    let h = harness().await;
    let id = h.create("resize").await;
    h.rec.step(&id).await.unwrap();
    let name = objects::container_name(&id, 0);
    let before = h
        .runtime
        .container_status(&name)
        .await
        .unwrap()
        .unwrap()
        .created;
    let req =
        serde_json::from_value(serde_json::json!({"hostInstanceType": "mq.m7g.large"})).unwrap();
    berth::app::brokers::broker_update(&h.ctx, &h.caller, id.as_str(), req)
        .await
        .unwrap();
    let row = h.row(&id).await;
    assert_eq!(
        row.pending_host_instance_type.as_deref(),
        Some("mq.m7g.large")
    );
    // Pending changes do not touch the running container.
    h.rec.step(&id).await.unwrap();
    assert_eq!(
        h.runtime.container_spec(&name).unwrap().memory_bytes,
        4 << 30
    );

    berth::app::brokers::broker_reboot(&h.ctx, &h.caller, id.as_str())
        .await
        .unwrap();
    assert_eq!(h.state(&id).await.as_deref(), Some("REBOOT_IN_PROGRESS"));
    // A second reboot while one is under way is refused.
    assert!(
        berth::app::brokers::broker_reboot(&h.ctx, &h.caller, id.as_str())
            .await
            .is_err()
    );
    h.runtime.fail_next("start_container");
    assert!(h.rec.step(&id).await.is_err());
    let recreated = h
        .runtime
        .container_status(&name)
        .await
        .unwrap()
        .unwrap()
        .created;
    assert!(recreated > before, "the container must be recreated");
    assert_eq!(h.rec.step(&id).await.unwrap(), StepOutcome::Stable);
    // The retry reused the container this reboot created.
    assert_eq!(
        h.runtime
            .container_status(&name)
            .await
            .unwrap()
            .unwrap()
            .created,
        recreated
    );
    let row = h.row(&id).await;
    assert_eq!(
        (row.state.as_str(), row.host_instance_type.as_str()),
        ("RUNNING", "mq.m7g.large")
    );
    assert_eq!(row.pending_host_instance_type, None);
    let spec = h.runtime.container_spec(&name).unwrap();
    assert_eq!(spec.memory_bytes, 8 << 30);
    assert_eq!(spec.nano_cpus, 2_000_000_000);
}

#[tokio::test]
async fn user_changes_stay_pending_until_the_agent_confirms() {
    let h = harness().await;
    let id = h.create("users").await;
    h.rec.step(&id).await.unwrap();
    let req = serde_json::from_value(serde_json::json!({"password": "an0ther-Passw0rd"})).unwrap();
    berth::app::users::user_create(&h.ctx, &h.caller, id.as_str(), "second-user", req)
        .await
        .unwrap();
    let u = berth::app::users::user_describe(&h.ctx, &h.caller, id.as_str(), "second-user")
        .await
        .unwrap();
    assert_eq!(u.pending.unwrap().pending_change, "CREATE");
    h.rec.step(&id).await.unwrap();
    let u = berth::app::users::user_describe(&h.ctx, &h.caller, id.as_str(), "second-user")
        .await
        .unwrap();
    assert!(u.pending.is_none());
    berth::app::users::user_delete(&h.ctx, &h.caller, id.as_str(), "second-user")
        .await
        .unwrap();
    let list = berth::app::users::user_list(&h.ctx, &h.caller, id.as_str(), None, None)
        .await
        .unwrap();
    assert_eq!(
        list.users
            .iter()
            .find(|u| u.username == "second-user")
            .unwrap()
            .pending_change
            .as_deref(),
        Some("DELETE")
    );
    h.rec.step(&id).await.unwrap();
    assert!(
        berth::app::users::user_describe(&h.ctx, &h.caller, id.as_str(), "second-user")
            .await
            .is_err()
    );
    // The last user cannot go.
    assert!(
        berth::app::users::user_delete(&h.ctx, &h.caller, id.as_str(), "admin-user")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_maintenance_window_applies_pending_changes_once() {
    let h = harness().await;
    let id = h.create("window").await;
    h.rec.step(&id).await.unwrap();
    // A window that opened five minutes ago in Tokyo time, and a pending resize.
    let tokyo: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
    let opened = chrono::Utc::now().with_timezone(&tokyo) - chrono::Duration::minutes(5);
    let day = berth::domain::maintenance::day_name(chrono::Datelike::weekday(&opened));
    let req = serde_json::from_value(serde_json::json!({
        "hostInstanceType": "mq.m7g.large",
        "maintenanceWindowStartTime": {"dayOfWeek": day, "timeOfDay": opened.format("%H:%M").to_string(), "timeZone": "Asia/Tokyo"},
    }))
    .unwrap();
    berth::app::brokers::broker_update(&h.ctx, &h.caller, id.as_str(), req)
        .await
        .unwrap();

    let started = h
        .rec
        .schedule_maintenance(chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(started, vec![id.clone()]);
    assert_eq!(h.state(&id).await.as_deref(), Some("REBOOT_IN_PROGRESS"));
    assert_eq!(h.settle(&id).await, StepOutcome::Stable);
    let row = h.row(&id).await;
    assert_eq!(
        (row.state.as_str(), row.host_instance_type.as_str()),
        ("RUNNING", "mq.m7g.large")
    );

    // Another pending change in the same window waits for next week's.
    let req =
        serde_json::from_value(serde_json::json!({"hostInstanceType": "mq.m7g.xlarge"})).unwrap();
    berth::app::brokers::broker_update(&h.ctx, &h.caller, id.as_str(), req)
        .await
        .unwrap();
    assert!(h
        .rec
        .schedule_maintenance(chrono::Utc::now())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));
    // A week later the window opens again.
    let next_week = chrono::Utc::now() + chrono::Duration::days(7);
    assert_eq!(
        h.rec.schedule_maintenance(next_week).await.unwrap(),
        vec![id.clone()]
    );
}

#[tokio::test]
async fn with_auto_minor_upgrade_the_window_rolls_a_broker_onto_a_rebuilt_image() {
    let h = harness().await;
    let auto = h.create("auto-minor").await;
    let manual = h.create("manual-minor").await;
    for id in [&auto, &manual] {
        h.rec.step(id).await.unwrap();
    }
    // Both in a window that opened five minutes ago; only `auto` upgrades by itself.
    let opened = chrono::Utc::now() - chrono::Duration::minutes(5);
    let window = |auto_minor: bool| {
        serde_json::from_value(serde_json::json!({
            "autoMinorVersionUpgrade": auto_minor,
            "maintenanceWindowStartTime": {
                "dayOfWeek": berth::domain::maintenance::day_name(chrono::Datelike::weekday(&opened)),
                "timeOfDay": opened.format("%H:%M").to_string(),
                "timeZone": "UTC",
            },
        }))
        .unwrap()
    };
    for (id, auto_minor) in [(&auto, true), (&manual, false)] {
        berth::app::brokers::broker_update(&h.ctx, &h.caller, id.as_str(), window(auto_minor))
            .await
            .unwrap();
    }
    // Nothing newer yet: the window passes both by (and stays unused).
    let now = chrono::Utc::now();
    assert!(h.rec.schedule_maintenance(now).await.unwrap().is_empty());

    h.runtime.rebuild_image(RABBITMQ_IMAGE);
    let container = objects::container_name(&auto, 0);
    let before = h
        .runtime
        .container_status(&container)
        .await
        .unwrap()
        .unwrap();
    let started = h.rec.schedule_maintenance(now).await.unwrap();
    assert_eq!(
        started,
        vec![auto.clone()],
        "only the broker with autoMinorVersionUpgrade"
    );
    assert_eq!(h.state(&auto).await.as_deref(), Some("REBOOT_IN_PROGRESS"));
    assert_eq!(h.settle(&auto).await, StepOutcome::Stable);
    assert_eq!(h.state(&auto).await.as_deref(), Some("RUNNING"));
    let after = h
        .runtime
        .container_status(&container)
        .await
        .unwrap()
        .unwrap();
    let newest = h.runtime.image_id(RABBITMQ_IMAGE).await.unwrap().unwrap();
    assert_ne!(before.image_id, after.image_id);
    assert_eq!(after.image_id, newest);
    // Upgraded: the next pass finds nothing to do, and the manual broker stays behind.
    assert!(h.rec.schedule_maintenance(now).await.unwrap().is_empty());
    let manual_node = objects::container_name(&manual, 0);
    let manual_status = h
        .runtime
        .container_status(&manual_node)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(manual_status.image_id, newest);
    assert_eq!(h.state(&manual).await.as_deref(), Some("RUNNING"));
}

/// An agent whose engine reports what the test sets (Ready by default), with an error.
#[derive(Default)]
struct ScriptedAgent {
    report: std::sync::Mutex<Option<(EngineState, Option<String>)>>,
    alarms: std::sync::Mutex<Vec<EngineAlarm>>,
    /// Does not answer at all (its container is gone or not started).
    silent: std::sync::atomic::AtomicBool,
}

impl ScriptedAgent {
    fn set_alarms(&self, alarms: Vec<EngineAlarm>) {
        *self.alarms.lock().unwrap() = alarms;
    }

    fn set(&self, state: EngineState, last_error: Option<&str>) {
        *self.report.lock().unwrap() = Some((state, last_error.map(str::to_owned)));
    }
}

#[async_trait]
impl AgentClient for ScriptedAgent {
    async fn put_spec(
        &self,
        base: &str,
        token: &str,
        _: &AgentSpec,
    ) -> anyhow::Result<HealthReport> {
        self.health(base, token).await
    }

    async fn health(&self, base: &str, token: &str) -> anyhow::Result<HealthReport> {
        if self.silent.load(std::sync::atomic::Ordering::SeqCst) {
            anyhow::bail!("connection refused");
        }
        let mut report = ReadyAgent.health(base, token).await?;
        if let Some((state, error)) = self.report.lock().unwrap().clone() {
            report.state = state;
            report.last_error = error;
        }
        report.alarms = self.alarms.lock().unwrap().clone();
        Ok(report)
    }
}

#[tokio::test]
async fn an_engine_alarm_makes_the_broker_critical_at_once_with_its_code_per_node() {
    let agent = Arc::new(ScriptedAgent::default());
    let h = harness_with(agent.clone()).await;
    let id = h.create("alarmed").await;
    h.rec.step(&id).await.unwrap();
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));
    let describe = || async {
        let d = berth::app::brokers::broker_describe(&h.ctx, &h.caller, id.as_str())
            .await
            .unwrap();
        berth::app::brokers::describe_view(&h.ctx, &d).unwrap()
    };
    assert!(describe().await.actions_required.is_empty());
    agent.set_alarms(vec![EngineAlarm {
        code: alarm_codes::RABBITMQ_MEMORY_ALARM.into(),
        message: "memory used 900 MB of a 800 MB high watermark: publishers are blocked".into(),
    }]);
    // One pass: an alarm does not wait for `unhealthy_after`.
    h.rec.step(&id).await.unwrap();
    let row = h.row(&id).await;
    assert_eq!(row.state, "CRITICAL_ACTION_REQUIRED");
    assert!(
        row.state_reason
            .as_deref()
            .unwrap()
            .contains("RABBITMQ_MEMORY_ALARM"),
        "{:?}",
        row.state_reason
    );
    let view = describe().await;
    assert_eq!(
        view.actions_required.len(),
        1,
        "{:?}",
        view.actions_required
    );
    let action = &view.actions_required[0];
    assert_eq!(action.action_required_code, "RABBITMQ_MEMORY_ALARM");
    assert!(
        action
            .action_required_info
            .starts_with("Node 0 (us-east-1a): memory used 900 MB"),
        "{}",
        action.action_required_info
    );
    // A steady alarm writes nothing new and keeps the state.
    h.rec.step(&id).await.unwrap();
    assert_eq!(
        h.state(&id).await.as_deref(),
        Some("CRITICAL_ACTION_REQUIRED")
    );
    agent.set_alarms(Vec::new());
    h.rec.step(&id).await.unwrap();
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));
    assert!(describe().await.actions_required.is_empty());
}

#[tokio::test]
async fn an_unhealthy_engine_makes_the_broker_critical_until_it_recovers() {
    let agent = Arc::new(ScriptedAgent::default());
    let h = harness_with(agent.clone()).await;
    let id = h.create("health").await;
    h.rec.step(&id).await.unwrap();
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));
    agent.set(EngineState::Restarting, None);
    h.rec.step(&id).await.unwrap();
    // (The harness allows zero seconds of ill health.)
    h.rec.step(&id).await.unwrap();
    let row = h.row(&id).await;
    assert_eq!(row.state, "CRITICAL_ACTION_REQUIRED");
    assert!(row.state_reason.unwrap().contains("health check"));
    let d = berth::app::brokers::broker_describe(&h.ctx, &h.caller, id.as_str())
        .await
        .unwrap();
    let view = berth::app::brokers::describe_view(&h.ctx, &d).unwrap();
    assert_eq!(
        view.actions_required[0].action_required_code,
        "BROKER_UNHEALTHY"
    );
    agent.set(EngineState::Ready, None);
    h.rec.step(&id).await.unwrap();
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));
}

#[tokio::test]
async fn a_steady_broker_costs_no_docker_write_per_sweep() {
    let h = harness().await;
    let id = h.create("steady").await;
    h.rec.step(&id).await.unwrap();
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));
    let before = h.runtime.calls().len();
    for _ in 0..5 {
        assert_eq!(h.rec.step(&id).await.unwrap(), StepOutcome::Stable);
    }
    let sweeps: Vec<String> = h.runtime.calls()[before..].to_vec();
    assert_eq!(sweeps.len(), 5, "one inspect per sweep: {sweeps:?}");
    assert!(
        sweeps.iter().all(|c| c == "container_status"),
        "only reads in the steady state: {sweeps:?}"
    );
}

#[tokio::test]
async fn a_broker_in_creation_asks_docker_only_while_an_agent_does_not_answer() {
    let agent = Arc::new(ScriptedAgent::default());
    agent.set(EngineState::Starting, None);
    let h = harness_with(agent.clone()).await;
    let id = h.create("booting").await;
    let node = objects::container_name(&id, 0);
    assert_eq!(h.rec.step(&id).await.unwrap(), StepOutcome::Waiting);
    assert!(h.running(&node).await);
    // The engine boots, its agent answers: the polls ask the agent, not Docker.
    let before = h.runtime.calls().len();
    for _ in 0..5 {
        assert_eq!(h.rec.step(&id).await.unwrap(), StepOutcome::Waiting);
    }
    let polls: Vec<String> = h.runtime.calls()[before..].to_vec();
    assert!(
        polls.is_empty(),
        "no Docker call while every agent answers: {polls:?}"
    );
    // The container dies: its agent is silent, and the next poll starts it again.
    h.runtime.kill(&node);
    agent
        .silent
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(h.rec.step(&id).await.unwrap(), StepOutcome::Waiting);
    assert_eq!(h.rec.step(&id).await.unwrap(), StepOutcome::Waiting);
    assert!(h.running(&node).await);
    agent
        .silent
        .store(false, std::sync::atomic::Ordering::SeqCst);
    agent.set(EngineState::Ready, None);
    assert_eq!(h.rec.step(&id).await.unwrap(), StepOutcome::Stable);
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));
}

#[tokio::test]
async fn a_corrupt_row_is_an_error_for_that_broker_only() {
    let h = harness().await;
    let bad = h.create("corrupt").await;
    let good = h.create("healthy").await;
    for (column, value) in [("state", "MELTING"), ("engine_version", "9.9")] {
        sqlx::query(&format!("UPDATE brokers SET {column} = $2 WHERE id = $1"))
            .bind(bad.as_str())
            .bind(value)
            .execute(h.ctx.store.pool())
            .await
            .unwrap();
        let err = h.rec.step(&bad).await.unwrap_err();
        assert!(format!("{err:#}").contains(value), "{err:#}");
        // The API answers a clean error (or the raw value) for that broker, never panics.
        let d = berth::app::brokers::broker_describe(&h.ctx, &h.caller, bad.as_str())
            .await
            .unwrap();
        let view = berth::app::brokers::describe_view(&h.ctx, &d);
        assert_eq!(view.is_err(), column == "state", "{column}");
        sqlx::query(
            "UPDATE brokers SET state = 'CREATION_IN_PROGRESS', engine_version = '4.0' WHERE id = $1",
        )
        .bind(bad.as_str())
        .execute(h.ctx.store.pool())
        .await
        .unwrap();
    }
    // Others were never affected, and the repaired one converges.
    assert_eq!(h.rec.step(&good).await.unwrap(), StepOutcome::Stable);
    assert_eq!(h.rec.step(&bad).await.unwrap(), StepOutcome::Stable);
    assert_eq!(h.state(&bad).await.as_deref(), Some("RUNNING"));
}

/// Ready, and remembers every spec pushed to it.
#[derive(Default)]
struct RecordingAgent {
    pushed: std::sync::Mutex<Vec<AgentSpec>>,
}

#[async_trait]
impl AgentClient for RecordingAgent {
    async fn put_spec(
        &self,
        base: &str,
        token: &str,
        spec: &AgentSpec,
    ) -> anyhow::Result<HealthReport> {
        self.pushed.lock().unwrap().push(spec.clone());
        ReadyAgent.health(base, token).await
    }

    async fn health(&self, base: &str, token: &str) -> anyhow::Result<HealthReport> {
        ReadyAgent.health(base, token).await
    }
}

#[tokio::test]
async fn tls_brokers_get_a_certificate_renewed_and_pushed_when_due() {
    let h = harness().await;
    let ca = Arc::new(
        berth::tls::CertificateAuthority::generate("tls-test", std::time::SystemTime::now())
            .unwrap(),
    );
    let agent = Arc::new(RecordingAgent::default());
    let installation = h.ctx.store.installation_id().await.unwrap();
    let reconciler = |renew_before: Duration| {
        BrokerReconciler::new(
            h.ctx.store.clone(),
            h.runtime.clone(),
            agent.clone(),
            SecretBox::from_key(&[7; 32]),
            installation.clone(),
            ReconcilerConfig {
                publish_host: "127.0.0.1".into(),
                create_timeout: Duration::from_secs(300),
                unhealthy_after: Duration::from_secs(60),
                poll: Duration::from_millis(10),
                hung_after: Duration::from_secs(3),
                health_timeout: Duration::from_secs(1),
                host_cpus: 2,
                host_memory_bytes: 8 << 30,
                listeners: Listeners {
                    tls: true,
                    plaintext: false,
                },
                ports: h.ctx.ports.clone(),
                advertised_host: "127.0.0.1".into(),
                ca: ca.clone(),
                renew_before,
                images: None,
                image_prefix: None,
            },
            CancellationToken::new(),
        )
    };
    let month = Duration::from_secs(30 * 86400);
    let rec = reconciler(month);
    let id = h.create("tls").await;
    assert_eq!(rec.step(&id).await.unwrap(), StepOutcome::Stable);
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));

    // The node got TLS material signed by the CA for the advertised host, and only the
    // TLS listeners are published.
    let name = objects::container_name(&id, 0);
    let spec = h.runtime.container_spec(&name).unwrap();
    let agent_spec: AgentSpec = serde_json::from_slice(&spec.files[0].contents).unwrap();
    assert!(!agent_spec.plaintext);
    let tls = agent_spec.tls.expect("TLS material");
    assert_eq!(tls.ca_pem, ca.cert_pem());
    assert!(tls.key_pem.contains("PRIVATE KEY"));
    let hosts = vec!["127.0.0.1".to_owned(), "localhost".to_owned(), name.clone()];
    let now = std::time::SystemTime::now();
    assert!(ca
        .needs_reissue(&tls.cert_pem, &hosts, now, month)
        .unwrap()
        .is_none());
    let published: Vec<u16> = spec.ports.iter().map(|(c, _)| *c).collect();
    assert!(
        published.contains(&5671) && !published.contains(&5672),
        "{published:?}"
    );
    // The key is sealed at rest.
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT key_enc FROM broker_certificates WHERE broker_id = $1")
            .bind(id.as_str())
            .fetch_one(h.ctx.store.pool())
            .await
            .unwrap();
    assert!(!sealed.windows(11).any(|w| w == b"PRIVATE KEY"));

    // Not due: a pass changes nothing and pushes nothing.
    rec.step(&id).await.unwrap();
    assert!(agent.pushed.lock().unwrap().is_empty());

    // Due (a renewal window longer than the certificate's life): a new certificate is
    // issued and pushed to the running node, without recreating the container.
    let created = h
        .runtime
        .container_status(&name)
        .await
        .unwrap()
        .unwrap()
        .created;
    reconciler(Duration::from_secs(365 * 86400))
        .step(&id)
        .await
        .unwrap();
    let pushed = agent.pushed.lock().unwrap().clone();
    assert_eq!(pushed.len(), 1);
    let renewed = pushed[0].tls.clone().unwrap();
    assert_ne!(renewed.cert_pem, tls.cert_pem);
    assert!(ca
        .needs_reissue(&renewed.cert_pem, &hosts, now, month)
        .unwrap()
        .is_none());
    let stored: String =
        sqlx::query_scalar("SELECT cert_pem FROM broker_certificates WHERE broker_id = $1")
            .bind(id.as_str())
            .fetch_one(h.ctx.store.pool())
            .await
            .unwrap();
    assert_eq!(stored, renewed.cert_pem);
    assert_eq!(
        h.runtime
            .container_status(&name)
            .await
            .unwrap()
            .unwrap()
            .created,
        created
    );
}

#[tokio::test]
async fn an_engine_that_fails_after_a_reboot_says_why_and_a_second_reboot_recovers() {
    let agent = Arc::new(ScriptedAgent::default());
    let failing = || {
        agent.set(
            EngineState::Failed,
            Some("BeanCreationException: bad policyEntry"),
        )
    };
    let h = harness_with(agent.clone()).await;
    let id = h.create("bad-config").await;
    h.rec.step(&id).await.unwrap();
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));

    // Rebooted into a revision the engine rejects: CRITICAL as soon as the recreated
    // node reports, with the reason.
    failing();
    berth::app::brokers::broker_reboot(&h.ctx, &h.caller, id.as_str())
        .await
        .unwrap();
    assert_eq!(h.settle(&id).await, StepOutcome::Stable);
    let row = h.row(&id).await;
    assert_eq!(row.state, "CRITICAL_ACTION_REQUIRED");
    let reason = row.state_reason.unwrap();
    assert!(reason.contains("bad policyEntry"), "{reason}");
    assert!(
        reason.contains("previous configuration revision"),
        "{reason}"
    );

    // The operator reboots (with the previous revision). The old node's failure is
    // not this reboot's: the node is recreated instead of the reboot failing at once.
    berth::app::brokers::broker_reboot(&h.ctx, &h.caller, id.as_str())
        .await
        .unwrap();
    let name = objects::container_name(&id, 0);
    let before = h
        .runtime
        .container_status(&name)
        .await
        .unwrap()
        .unwrap()
        .created;
    assert_eq!(h.rec.step(&id).await.unwrap(), StepOutcome::Waiting);
    assert_eq!(h.state(&id).await.as_deref(), Some("REBOOT_IN_PROGRESS"));
    let after = h
        .runtime
        .container_status(&name)
        .await
        .unwrap()
        .unwrap()
        .created;
    assert!(after > before, "the failed node is recreated");
    agent.set(EngineState::Ready, None);
    h.settle(&id).await;
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));

    // At creation, the reason is the creation failure's.
    failing();
    let other = h.create("bad-at-birth").await;
    h.rec.step(&other).await.unwrap();
    let row = h.row(&other).await;
    assert_eq!(row.state, "CREATION_FAILED");
    assert!(row.state_reason.unwrap().contains("bad policyEntry"));
}

/// RabbitMQ's program directories come from one read-only volume per image, shared by
/// every node created from it; a rebuilt image gets volumes of its own, and the old
/// ones go once no container mounts them.
#[tokio::test]
async fn program_directories_are_shared_read_only_volumes_per_image() {
    let h = harness().await;
    // Filled ahead of the first broker, for the images present (only RabbitMQ has
    // program directories); a second pass changes nothing.
    h.rec.prepare_program_volumes().await.unwrap();
    let prepared = h.runtime.volumes();
    let image = h.runtime.image_id(RABBITMQ_IMAGE).await.unwrap().unwrap();
    let prepared_names: Vec<&str> = prepared.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        prepared_names,
        [
            objects::program_volume_name(&image, "/usr/lib/erlang"),
            objects::program_volume_name(&image, "/usr/lib/rabbitmq"),
        ],
        "{prepared:?}"
    );
    h.rec.prepare_program_volumes().await.unwrap();
    assert_eq!(h.runtime.volumes(), prepared);
    let a = h.create("prog-a").await;
    let b = h.create("prog-b").await;
    h.rec.step(&a).await.unwrap();
    h.rec.step(&b).await.unwrap();
    let mounts = |id: &BrokerId| {
        h.runtime
            .container_spec(&objects::container_name(id, 0))
            .unwrap()
            .program_volumes
    };
    let first = mounts(&a);
    let dirs: Vec<&str> = first.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(dirs, ["/usr/lib/erlang", "/usr/lib/rabbitmq"]);
    assert_eq!(mounts(&b), first, "one set of volumes per image");
    let mounted: Vec<&str> = first.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        mounted, prepared_names,
        "the prepared volumes are the ones mounted"
    );
    let volumes = h.runtime.volumes();
    for (name, _) in &first {
        let labels = &volumes.iter().find(|(n, _)| n == name).expect("created").1;
        assert_eq!(labels["berth.program-image"], image);
        assert!(!labels.contains_key("berth.broker-id"), "not a broker's");
    }

    // A rebuilt image: a reboot moves `a` onto new volumes; `b` keeps the old ones,
    // which garbage collection leaves while it mounts them.
    h.runtime.rebuild_image(RABBITMQ_IMAGE);
    berth::app::brokers::broker_reboot(&h.ctx, &h.caller, a.as_str())
        .await
        .unwrap();
    assert_eq!(h.settle(&a).await, StepOutcome::Stable);
    let second = mounts(&a);
    assert_ne!(second, first);
    h.rec.collect_garbage().await.unwrap();
    let names = |v: Vec<(String, std::collections::HashMap<String, String>)>| -> Vec<String> {
        v.into_iter().map(|(n, _)| n).collect()
    };
    let left = names(h.runtime.volumes());
    for (name, _) in first.iter().chain(&second) {
        assert!(left.contains(name), "{name} removed while in use");
    }
    // Once `b` is rolled too, nothing mounts the old ones: they go.
    berth::app::brokers::broker_reboot(&h.ctx, &h.caller, b.as_str())
        .await
        .unwrap();
    assert_eq!(h.settle(&b).await, StepOutcome::Stable);
    h.rec.collect_garbage().await.unwrap();
    let left = names(h.runtime.volumes());
    for (name, _) in &first {
        assert!(!left.contains(name), "{name} outlived its image");
    }
    for (name, _) in &second {
        assert!(left.contains(name));
    }
}

/// On real Docker: filling program volumes creates them with their labels and the
/// image's files in them, leaves no container behind, and leaves an existing volume
/// alone (a second fill creates nothing).
#[tokio::test]
async fn program_volumes_are_filled_from_the_image_on_real_docker() {
    use berth_tests::docker_cli;
    let runtime = berth::runtime::docker::DockerRuntime::connect()
        .await
        .unwrap();
    let image = "berth/rabbitmq:4.3";
    berth_tests::require_engine_image(runtime.client(), image).await;
    let name = format!(
        "berthtest-fill-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    // `args` run in a throwaway container of the image with the volume on /mnt/v.
    let run = |mount: &'static str, args: &'static [&'static str]| {
        let name = name.clone();
        async move {
            let volume = format!("{name}:/mnt/v{mount}");
            let mut all = vec!["run", "--rm", "--network", "none", "-v", &volume];
            all.extend(["--entrypoint", args[0], image]);
            all.extend(&args[1..]);
            docker_cli(&all).await
        }
    };
    let volumes = [(name.clone(), "/usr/lib/rabbitmq".to_owned())];
    let labels = std::collections::HashMap::from([
        ("berth.managed".to_owned(), "true".to_owned()),
        ("berth.program-image".to_owned(), "test".to_owned()),
    ]);
    runtime
        .fill_program_volumes(image, &volumes, &labels)
        .await
        .unwrap();
    let label = docker_cli(&[
        "volume",
        "inspect",
        "-f",
        "{{index .Labels \"berth.program-image\"}}",
        &name,
    ])
    .await;
    assert_eq!(label, "test");
    let files = run(":ro", &["/bin/ls", "/mnt/v/bin"]).await;
    assert!(
        files.lines().any(|l| l.trim() == "rabbitmq-server"),
        "the image's /usr/lib/rabbitmq/bin is in the volume: {files:?}"
    );
    let by_name = format!("name={name}");
    let list = ["ps", "-a", "-q", "--filter", by_name.as_str()];
    let fillers = || docker_cli(&list);
    assert_eq!(fillers().await, "", "the filler container is gone");
    // A filler a killed process left behind goes at the next fill, even with nothing
    // to fill.
    docker_cli(&["create", "--name", &format!("{name}-filler"), image]).await;
    assert_ne!(fillers().await, "");
    runtime
        .fill_program_volumes(image, &volumes, &labels)
        .await
        .unwrap();
    assert_eq!(fillers().await, "", "a leftover filler is removed");
    // An existing volume is left alone: one emptied stays empty.
    run("", &["/bin/rm", "-rf", "/mnt/v/bin"]).await;
    runtime
        .fill_program_volumes(image, &volumes, &labels)
        .await
        .unwrap();
    let after = run(":ro", &["/bin/ls", "/mnt/v"]).await;
    assert!(!after.lines().any(|l| l.trim() == "bin"), "{after:?}");
    docker_cli(&["volume", "rm", &name]).await;
}
