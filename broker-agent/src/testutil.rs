//! Test fixtures shared by the unit tests: sample specs, TLS material, a fake driver.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use agent_contract::{
    ActivemqSpec, AgentSpec, Engine, EngineSpec, EngineUser, NodeSpec, RabbitmqSpec, TlsMaterial,
    Topology,
};

use crate::context::Agent;
use crate::engine::activemq::ws_bridge::TlsSwitch;
use crate::engine::{BoxFuture, EngineDriver, LiveChange, Prepared, TlsEndpoint};
use crate::supervisor::ProcessSpec;

pub(crate) const TOKEN: &str = "token-0123456789abcdef";

/// A RabbitMQ spec with one administrator.
pub(crate) fn sample_spec() -> AgentSpec {
    AgentSpec {
        broker_id: "b-1234".into(),
        engine_version: "4.0".into(),
        engine: EngineSpec::Rabbitmq(RabbitmqSpec {
            erlang_cookie: "COOKIEVALUE1234".into(),
            memory_high_watermark: None,
        }),
        node: NodeSpec::default(),
        users: vec![EngineUser {
            username: "admin".into(),
            password: "s3cret-Passw0rd".into(),
            admin: true,
            console_access: true,
            groups: vec![],
        }],
        agent_token: TOKEN.into(),
        engine_config: None,
        tls: None,
        plaintext: true,
    }
}

/// An ActiveMQ spec with an administrator and an application user in a group.
pub(crate) fn sample_activemq_spec() -> AgentSpec {
    AgentSpec {
        broker_id: "b-amq1".into(),
        engine_version: "5.17".into(),
        engine: EngineSpec::Activemq(ActivemqSpec {
            broker_name: "b-amq1".into(),
            heap_percent: None,
        }),
        node: NodeSpec::default(),
        users: vec![
            EngineUser {
                username: "admin".into(),
                password: "adm1n-Passw0rd".into(),
                admin: true,
                console_access: true,
                groups: vec![],
            },
            EngineUser {
                username: "app".into(),
                password: "app-Passw0rd-1".into(),
                admin: false,
                console_access: false,
                groups: vec!["apps".into()],
            },
        ],
        agent_token: TOKEN.into(),
        engine_config: None,
        tls: None,
        plaintext: true,
    }
}

/// A leaf certificate for localhost/127.0.0.1 signed by a throwaway test CA.
pub(crate) fn sample_tls() -> TlsMaterial {
    TlsMaterial {
        cert_pem: include_str!("testdata/leaf.pem").into(),
        key_pem: include_str!("testdata/leaf.key").into(),
        ca_pem: include_str!("testdata/ca.pem").into(),
    }
}

/// Another certificate and key for the same names (a "renewed" certificate).
pub(crate) fn second_tls() -> TlsMaterial {
    TlsMaterial {
        cert_pem: include_str!("testdata/leaf2.pem").into(),
        key_pem: include_str!("testdata/leaf2.key").into(),
        ca_pem: include_str!("testdata/ca.pem").into(),
    }
}

/// A driver that records what it is asked to do.
#[derive(Default)]
pub(crate) struct FakeDriver {
    pub reconciled: Mutex<Vec<Vec<String>>>,
    pub memory_applied: Mutex<Vec<Option<u64>>>,
    pub probe_ok: AtomicBool,
    pub fail_reconcile: AtomicBool,
    pub limit: Mutex<Option<u64>>,
    /// Answer memory changes with "at the next start" (like ActiveMQ's heap).
    pub memory_needs_restart: AtomicBool,
    /// Certificates (PEM) passed to `apply_tls`.
    pub tls_applied: Mutex<Vec<String>>,
    /// Answer `apply_tls` with "at the next start" (like ActiveMQ's keystore).
    pub tls_needs_restart: AtomicBool,
    /// The engine's TLS listener in tests, and whether `apply_tls` swaps its
    /// certificate (a RabbitMQ whose PEM cache was cleared) or not.
    pub tls_server: Mutex<Option<(Arc<TlsSwitch>, std::net::SocketAddr)>>,
    pub tls_swaps_live: AtomicBool,
    /// Probe and liveness never answer (a frozen engine).
    pub probe_hangs: AtomicBool,
    /// Users written by `stage_users` (a standby's).
    pub staged: Mutex<Vec<Vec<String>>>,
    /// An engine TLS listener that is closed (a standby's): listed by `tls_endpoints`,
    /// not by `standby_tls_endpoints` (which lists the `tls_server` only).
    pub closed_engine_tls: Mutex<Option<std::net::SocketAddr>>,
    /// What `cluster_running` answers.
    pub cluster_members: Mutex<Option<Vec<String>>>,
    /// What `engine_alarms` answers.
    pub alarms: Mutex<Vec<agent_contract::EngineAlarm>>,
}

/// The fake engine's output line that says it waits for the shared store's lock, and
/// the one that says it got it (see `FakeDriver::waits_for_lock`).
pub(crate) const FAKE_WAITING: &str = "fake: waiting for the store's lock";
pub(crate) const FAKE_LOCKED: &str = "fake: got the store's lock";

/// A TLS listener on 127.0.0.1 that completes handshakes with `switch`'s certificate.
pub(crate) async fn tls_test_server(switch: Arc<TlsSwitch>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = switch.acceptor();
            tokio::spawn(async move {
                let _ = acceptor.accept(sock).await;
            });
        }
    });
    addr
}

impl EngineDriver for FakeDriver {
    fn engine(&self) -> Engine {
        Engine::Rabbitmq
    }
    fn engine_alarms<'a>(
        &'a self,
        _spec: &'a AgentSpec,
    ) -> crate::engine::BoxFuture<'a, anyhow::Result<Vec<agent_contract::EngineAlarm>>> {
        Box::pin(async move { Ok(self.alarms.lock().unwrap().clone()) })
    }
    fn prepare(&self, _spec: &AgentSpec) -> anyhow::Result<Prepared> {
        Ok(Prepared {
            users_settled: false,
            process: ProcessSpec {
                program: "/bin/sleep".into(),
                args: vec!["30".into()],
                ..Default::default()
            },
            memory_limit: *self.limit.lock().unwrap(),
        })
    }
    fn probe(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        let ok = self.probe_ok.load(Ordering::SeqCst);
        if self.probe_hangs.load(Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                anyhow::bail!("not answering")
            }
        })
    }
    fn reconcile_users<'a>(&'a self, spec: &'a AgentSpec) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if self.fail_reconcile.load(Ordering::SeqCst) {
                anyhow::bail!("rabbitmqctl exploded");
            }
            self.reconciled
                .lock()
                .unwrap()
                .push(spec.users.iter().map(|u| u.username.clone()).collect());
            Ok(())
        })
    }
    fn apply_memory_limit<'a>(
        &'a self,
        _spec: &'a AgentSpec,
        limit: Option<u64>,
    ) -> BoxFuture<'a, anyhow::Result<LiveChange>> {
        self.memory_applied.lock().unwrap().push(limit);
        let later = self.memory_needs_restart.load(Ordering::SeqCst);
        Box::pin(async move {
            Ok(if later {
                LiveChange::AtNextStart
            } else {
                LiveChange::Applied
            })
        })
    }
    fn current_memory_limit(&self) -> Option<u64> {
        *self.limit.lock().unwrap()
    }
    fn apply_tls<'a>(
        &'a self,
        spec: &'a AgentSpec,
        _previous: &'a TlsMaterial,
    ) -> BoxFuture<'a, anyhow::Result<LiveChange>> {
        Box::pin(async move {
            let tls = spec.tls.as_ref().unwrap();
            self.tls_applied.lock().unwrap().push(tls.cert_pem.clone());
            if self.tls_swaps_live.load(Ordering::SeqCst) {
                if let Some((switch, _)) = &*self.tls_server.lock().unwrap() {
                    switch.replace(&tls.cert_pem, &tls.key_pem)?;
                }
            }
            Ok(if self.tls_needs_restart.load(Ordering::SeqCst) {
                LiveChange::AtNextStart
            } else {
                LiveChange::Applied
            })
        })
    }
    fn tls_endpoints(&self, spec: &AgentSpec) -> Vec<TlsEndpoint> {
        let mut out = self.standby_tls_endpoints(spec);
        if let (Some(_), Some(addr)) = (&spec.tls, *self.closed_engine_tls.lock().unwrap()) {
            out.push(TlsEndpoint {
                name: "closed-engine-tls",
                addr,
            });
        }
        out
    }
    fn standby_tls_endpoints(&self, spec: &AgentSpec) -> Vec<TlsEndpoint> {
        match (&spec.tls, &*self.tls_server.lock().unwrap()) {
            (Some(_), Some((_, addr))) => vec![TlsEndpoint {
                name: "test-tls",
                addr: *addr,
            }],
            _ => Vec::new(),
        }
    }
    /// Waiting if the output says [`FAKE_WAITING`] and not [`FAKE_LOCKED`] after it.
    fn waits_for_lock(&self, output: &[String]) -> bool {
        output
            .iter()
            .rev()
            .find(|l| *l == FAKE_WAITING || *l == FAKE_LOCKED)
            .is_some_and(|l| l == FAKE_WAITING)
    }
    fn cluster_running(&self) -> BoxFuture<'_, Option<Vec<String>>> {
        let members = self.cluster_members.lock().unwrap().clone();
        Box::pin(async move { members })
    }
    fn stage_users<'a>(&'a self, spec: &'a AgentSpec) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            self.staged
                .lock()
                .unwrap()
                .push(spec.users.iter().map(|u| u.username.clone()).collect());
            Ok(true)
        })
    }
    fn secrets(&self) -> Vec<String> {
        vec!["driver-internal-secret".into()]
    }
}

/// An [`Agent`] on [`sample_spec`] with a [`FakeDriver`]; the spec is persisted in `dir`.
pub(crate) fn test_agent(dir: &std::path::Path) -> (Arc<Agent>, Arc<FakeDriver>) {
    test_agent_with(dir, sample_spec())
}

/// [`test_agent`] with another spec.
pub(crate) fn test_agent_with(
    dir: &std::path::Path,
    spec: AgentSpec,
) -> (Arc<Agent>, Arc<FakeDriver>) {
    let driver = Arc::new(FakeDriver::default());
    let agent = Arc::new(Agent::new(spec, dir.join("spec.json"), driver.clone()));
    (agent, driver)
}

/// [`sample_spec`] for node `index` of an active/standby pair on shared storage.
pub(crate) fn shared_storage_spec(index: u32) -> AgentSpec {
    let mut spec = sample_spec();
    spec.node = NodeSpec {
        index,
        count: 2,
        peers: vec![format!("node-{}", 1 - index)],
        topology: Topology::SharedStorage,
        ..NodeSpec::default()
    };
    spec
}
