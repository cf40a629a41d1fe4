//! Workflow logic of the reconciler on an in-memory runtime and a real database:
//! convergence, idempotence of every step, recovery from a failure at any step,
//! teardown, and garbage collection of orphans. (The real-Docker proof is in
//! `brokers.rs` and `restart.rs`.)

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth::agent_client::AgentProbe;
use berth::app::brokers::{broker_create, broker_delete};
use berth::app::{AppContext, Caller, Regions};
use berth::crypto::SecretBox;
use berth::db::broker::PortPool;
use berth::db::DataStore;
use berth::domain::{engine, AccountId, BrokerId, Region};
use berth::reconcile::broker::ReconcilerConfig;
use berth::reconcile::{BrokerReconciler, Nudger, StepOutcome};
use berth::runtime::fake::FakeRuntime;
use berth::runtime::ContainerRuntime;
use broker_agent::spec::{AgentSpec, Engine, EngineState, HealthReport};
use tokio_util::sync::CancellationToken;

use berth_tests::{fresh_database, port_range, rabbitmq_broker, RABBITMQ_IMAGE};

/// An agent that always reports the engine ready.
pub struct ReadyAgent;

#[async_trait]
impl AgentProbe for ReadyAgent {
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
        })
    }
}

struct Harness {
    ctx: AppContext,
    caller: Caller,
    runtime: Arc<FakeRuntime>,
    rec: BrokerReconciler,
}

async fn harness() -> Harness {
    harness_with(Arc::new(ReadyAgent)).await
}

async fn harness_with(agent: Arc<dyn AgentProbe>) -> Harness {
    let store = DataStore::connect(&fresh_database().await).await.unwrap();
    let secrets = SecretBox::from_key(&[7; 32]);
    let (start, end) = port_range();
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
    };
    let caller = Caller::new(
        AccountId::parse("000000000000").unwrap(),
        Region::parse("us-east-1").unwrap(),
    );
    let runtime = Arc::new(FakeRuntime::with_images(&[RABBITMQ_IMAGE]));
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
            host_cpus: 2,
            host_memory_bytes: 8 << 30,
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

    async fn row(&self, id: &BrokerId) -> berth::db::model::BrokerRow {
        self.ctx
            .store
            .broker_fetch_unscoped(id)
            .await
            .unwrap()
            .expect("broker row")
    }

    async fn state(&self, id: &BrokerId) -> Option<String> {
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
        let name = engine::container_name(&id, 0);
        assert!(
            h.runtime
                .container_status(&name)
                .await
                .unwrap()
                .unwrap()
                .running
        );
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
        .container_spec(&engine::container_name(&id, 0))
        .unwrap();
    assert_eq!(spec.memory_bytes, 4 << 30); // mq.m7g.medium: 4 GiB
    assert_eq!(spec.nano_cpus, 1_000_000_000); // 1 vCPU
    assert_eq!(spec.image, RABBITMQ_IMAGE);
    assert_eq!(spec.labels["berth.broker-id"], id.as_str());
    let ports = h.ctx.store.broker_ports(&id).await.unwrap();
    assert_eq!(spec.ports.len(), ports.len());
    for (cport, hport) in &spec.ports {
        assert!(
            ports.iter().any(|p| p.host_port == i32::from(*hport)),
            "{cport}->{hport} not pinned"
        );
    }
    let file = &spec.files[0];
    assert_eq!(file.path, broker_agent::spec::SPEC_PATH);
    assert_eq!(file.mode, 0o600);
    let agent_spec: broker_agent::spec::AgentSpec = serde_json::from_slice(&file.contents).unwrap();
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
    let name = engine::container_name(&id, 0);
    h.runtime.kill(&name);
    h.rec.step(&id).await.unwrap();
    assert!(
        h.runtime
            .container_status(&name)
            .await
            .unwrap()
            .unwrap()
            .running
    );
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
        .container_status(&engine::container_name(&keep, 0))
        .await
        .unwrap()
        .is_some());
    assert!(h
        .runtime
        .container_status(&engine::container_name(&orphan, 0))
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
    let name = engine::container_name(&id, 0);
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
    assert_eq!(h.rec.step(&id).await.unwrap(), StepOutcome::Stable);
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

/// An agent whose engine can be switched between ready and starting.
#[derive(Default)]
struct SwitchableAgent {
    down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl AgentProbe for SwitchableAgent {
    async fn put_spec(
        &self,
        base: &str,
        token: &str,
        _spec: &AgentSpec,
    ) -> anyhow::Result<HealthReport> {
        self.health(base, token).await
    }

    async fn health(&self, base: &str, token: &str) -> anyhow::Result<HealthReport> {
        let mut report = ReadyAgent.health(base, token).await?;
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            report.state = EngineState::Restarting;
        }
        Ok(report)
    }
}

#[tokio::test]
async fn an_unhealthy_engine_makes_the_broker_critical_until_it_recovers() {
    let agent = Arc::new(SwitchableAgent::default());
    let h = harness_with(agent.clone()).await;
    let id = h.create("health").await;
    h.rec.step(&id).await.unwrap();
    assert_eq!(h.state(&id).await.as_deref(), Some("RUNNING"));
    agent.down.store(true, std::sync::atomic::Ordering::SeqCst);
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
    agent.down.store(false, std::sync::atomic::Ordering::SeqCst);
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
