//! The load balancer of a CLUSTER_MULTI_AZ broker: HAProxy's configuration, as text.
//!
//! A RabbitMQ cluster has one endpoint per protocol, like Amazon MQ's: a 4th container
//! on the broker's network, run from the **same engine image** as the nodes (RabbitMQ
//! 4.x images carry Debian's `haproxy` package, see `images/README.md`) with the
//! entrypoint replaced by [`COMMAND`]. It forwards TCP (TLS ends on the nodes, which hold
//! the broker's certificate) and knows nothing about the engine.
//!
//! [`render`] is pure: node host names and ports in, the file for [`CONFIG_PATH`] out.
//! What the file says:
//! - one `frontend`/`backend` pair per [`LbPort`], `balance leastconn` (connections are
//!   long-lived, so spreading *open* connections matters more than spreading new ones);
//! - servers addressed by host name through Docker's embedded DNS (`resolvers docker`,
//!   `127.0.0.11:53`) with `init-addr none`: HAProxy starts even when no node resolves
//!   yet (a node's name exists only while its container runs; such a server waits in
//!   maintenance) and follows a node whose address changed after a restart. A name that
//!   stops resolving keeps its last address for 10 s (`hold nx` etc.), so the health
//!   checks, not DNS, take a dead node out (≤ 3 s);
//! - a TCP connect check of every server every second (`fall 2 rise 2`, connect timeout
//!   1 s); `option redispatch` plus `retries` move a new connection to another node if
//!   its first choice refuses or does not answer within `timeout connect` (1 s: a SYN on
//!   the host's bridge is answered by the kernel in well under a millisecond). That
//!   matters right after a node died: until its checks fail twice, `leastconn` *prefers*
//!   it (its connections just closed), and a connect to a vanished container address gets
//!   no answer. Measured: every new AMQP connection through the LB in the 12 s after a
//!   `docker kill` of a node succeeded (4 runs, 39–41 each), the slowest in 1.03 s;
//! - **no** `on-marked-down shutdown-sessions`. Clients of a node that crashes or is
//!   killed get the node kernel's FIN/RST and see EOF at once (0.08–0.19 s measured),
//!   without it. With it, a client whose connection was being set up to the node at the
//!   moment it was marked DOWN is not redispatched: HAProxy 3.2.26 (4.3 image) closes it
//!   (the client sees EOF during its handshake), and HAProxy 3.0.11 (4.0 image) closes
//!   only the server side and leaves the client waiting for its `timeout client`, one
//!   hour (`show sess`: `scb state=CLO`, `scf state=EST rto=59m54s`, the 8-byte AMQP
//!   header still buffered; 6 of 7 runs of the live check). What the option would buy
//!   is faster disconnection from a node that hangs without closing its sockets; there
//!   the client's heartbeat (AMQP, MQTT keep-alive) decides, as behind Amazon's NLB;
//! - `timeout client`/`server` of 1 h, far above AMQP heartbeats (60 s by default) and
//!   MQTT keep-alives, so idle but healthy connections are never cut by the LB;
//! - a health endpoint: `GET http://<lb>:8404/healthz` ([`HEALTH_PORT`],
//!   [`HEALTH_PATH`]) answers 200 as soon as HAProxy runs (`monitor-uri`), and
//!   `GET /stats;csv` ([`STATS_PATH`]) lists every server's check state (read-only).
//!
//! Logging: no `log` target, so there is no line per connection; in the foreground
//! (`-db`) HAProxy still prints its warnings and alerts to stderr (`docker logs`): a
//! server going DOWN or UP, an address change, a backend without servers. The master
//! process (`-W`, master-worker) is PID 1: it starts and reaps its worker, and a SIGTERM
//! (`docker stop`) stops both at once with exit code 0 (0.29–0.59 s measured, see
//! `broker-agent/live/README.md`).
//!
//! Health checks and engine logs: a connect-and-close on RabbitMQ's TLS listeners
//! (5671, 8883, 61614, 15671, 15673, 15676), on plaintext AMQP (5672) and MQTT (1883)
//! is not logged by RabbitMQ; plaintext STOMP (61613) logs every connection at `info`,
//! so give such a port a [`LbPort::check_port`] (e.g. 5672) when it is forwarded at all.

use std::collections::HashSet;
use std::fmt::Write as _;

/// Where the control plane uploads the rendered file (with the archive API, before the
/// container starts; the image has the directory).
pub const CONFIG_PATH: &str = "/etc/berth/haproxy.cfg";
/// The load balancer container's command, replacing the image's entrypoint (the agent):
/// master-worker mode (`-W`), in the foreground (`-db`).
pub const COMMAND: [&str; 5] = ["haproxy", "-W", "-db", "-f", CONFIG_PATH];
/// Container port of the health endpoint (HTTP).
pub const HEALTH_PORT: u16 = 8404;
/// Answers `200 OK` while HAProxy runs.
pub const HEALTH_PATH: &str = "/healthz";
/// HAProxy's statistics page (append `;csv` for machine-readable server states).
pub const STATS_PATH: &str = "/stats";
/// Connections the load balancer takes at once (global and per frontend). HAProxy needs
/// two file descriptors per connection and refuses to start when `ulimit -n` is too low
/// for its `maxconn` ("Cannot raise FD limit to 40040, limit is 20000" with 20000 in a
/// container of this host's Docker): 8000 needs about 16 100.
pub const MAX_CONNECTIONS: u32 = 8000;
/// Docker's embedded DNS server, present in every container on a user network.
pub const DOCKER_DNS: &str = "127.0.0.11:53";

/// One forwarded port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LbPort<'a> {
    /// Names the frontend and backend (`fe_<name>`, `be_<name>`), e.g. `amqps`.
    pub name: &'a str,
    /// Port the load balancer listens on (inside its container).
    pub listen: u16,
    /// Port of the same service on every node.
    pub target: u16,
    /// Port the health check connects to instead of `target` (None: `target`).
    pub check_port: Option<u16>,
}

impl<'a> LbPort<'a> {
    /// `listen` forwarded to the same port on every node, checked there.
    pub fn same(name: &'a str, port: u16) -> LbPort<'a> {
        LbPort {
            name,
            listen: port,
            target: port,
            check_port: None,
        }
    }
}

/// Why no configuration could be rendered (a bug in the caller: inputs are Berth's own).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HaproxyError {
    #[error("a load balancer needs at least one backend node")]
    NoBackends,
    #[error("a load balancer needs at least one port")]
    NoPorts,
    #[error("{0:?} is not a host name")]
    BadHost(String),
    #[error("{0:?} is not a valid port name (letters, digits, '-', '_')")]
    BadName(String),
    #[error("{0} is listed twice")]
    Duplicate(String),
    #[error("port {0} cannot be used")]
    BadPort(u16),
}

/// A DNS host name (a container name): labels of letters, digits, `-` and `_`.
fn is_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn is_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The configuration for a load balancer in front of `backends` (the nodes' host names
/// on the broker's network), forwarding `ports`. See the module docs.
pub fn render(backends: &[String], ports: &[LbPort<'_>]) -> Result<String, HaproxyError> {
    if backends.is_empty() {
        return Err(HaproxyError::NoBackends);
    }
    if ports.is_empty() {
        return Err(HaproxyError::NoPorts);
    }
    let mut hosts = HashSet::new();
    for host in backends {
        if !is_host_name(host) {
            return Err(HaproxyError::BadHost(host.clone()));
        }
        if !hosts.insert(host.as_str()) {
            return Err(HaproxyError::Duplicate(format!("host {host}")));
        }
    }
    let mut names = HashSet::new();
    let mut listens = HashSet::from([HEALTH_PORT]);
    for p in ports {
        if !is_name(p.name) {
            return Err(HaproxyError::BadName(p.name.to_string()));
        }
        if !names.insert(p.name) {
            return Err(HaproxyError::Duplicate(format!("port name {}", p.name)));
        }
        if p.listen == 0 || p.target == 0 || p.check_port == Some(0) {
            return Err(HaproxyError::BadPort(0));
        }
        if !listens.insert(p.listen) {
            return Err(HaproxyError::Duplicate(format!("listen port {}", p.listen)));
        }
    }

    let mut c = String::new();
    // Infallible: writing to a String.
    let _ = write!(
        c,
        "\
# Written by Berth: the load balancer of a CLUSTER_MULTI_AZ broker. TCP passthrough,
# TLS ends on the nodes. Regenerated by the control plane; edits are lost.
global
    maxconn {MAX_CONNECTIONS}
    user haproxy
    group haproxy
    hard-stop-after 5s

resolvers docker
    nameserver docker {DOCKER_DNS}
    accepted_payload_size 8192
    resolve_retries 2
    timeout resolve 1s
    timeout retry 1s
    hold valid 10s
    hold other 10s
    hold refused 10s
    hold nx 10s
    hold timeout 10s
    hold obsolete 10s

defaults
    mode tcp
    option redispatch 1
    retries 2
    maxconn {MAX_CONNECTIONS}
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    timeout client-fin 30s
    timeout server-fin 30s
    timeout check 1s
    default-server init-addr none resolvers docker resolve-prefer ipv4 check inter 1s fall 2 rise 2

frontend health
    mode http
    bind :{HEALTH_PORT}
    timeout client 10s
    timeout http-request 5s
    monitor-uri {HEALTH_PATH}
    stats enable
    stats uri {STATS_PATH}
    stats show-legends
"
    );
    for p in ports {
        let name = p.name;
        let _ = write!(
            c,
            "
frontend fe_{name}
    bind :{listen}
    default_backend be_{name}

backend be_{name}
    balance leastconn
",
            listen = p.listen
        );
        for host in backends {
            let _ = write!(c, "    server {host} {host}:{}", p.target);
            if let Some(check) = p.check_port {
                let _ = write!(c, " port {check}");
            }
            c.push('\n');
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<String> {
        (0..3).map(|i| format!("berth-b-1234-{i}")).collect()
    }

    /// The lines of the section that starts with `header`.
    fn section<'a>(cfg: &'a str, header: &str) -> Vec<&'a str> {
        let mut lines = cfg.lines().skip_while(|l| *l != header);
        assert!(lines.next().is_some(), "no section {header:?} in\n{cfg}");
        lines
            .take_while(|l| l.starts_with("    "))
            .map(str::trim)
            .collect()
    }

    #[test]
    fn one_frontend_and_backend_per_port() {
        let cfg = render(
            &nodes(),
            &[LbPort::same("amqps", 5671), LbPort::same("mqtts", 8883)],
        )
        .unwrap();
        assert_eq!(
            section(&cfg, "frontend fe_amqps"),
            ["bind :5671", "default_backend be_amqps"]
        );
        assert_eq!(
            section(&cfg, "backend be_amqps"),
            [
                "balance leastconn",
                "server berth-b-1234-0 berth-b-1234-0:5671",
                "server berth-b-1234-1 berth-b-1234-1:5671",
                "server berth-b-1234-2 berth-b-1234-2:5671",
            ]
        );
        assert_eq!(
            section(&cfg, "backend be_mqtts")[1],
            "server berth-b-1234-0 berth-b-1234-0:8883"
        );
        assert_eq!(cfg.matches("\nfrontend ").count(), 3, "two ports + health");
        assert_eq!(cfg.matches("\nbackend ").count(), 2);
    }

    #[test]
    fn listen_and_target_ports_may_differ_and_checks_may_go_elsewhere() {
        let cfg = render(
            &nodes(),
            &[LbPort {
                name: "stomp",
                listen: 1613,
                target: 61613,
                check_port: Some(5672),
            }],
        )
        .unwrap();
        assert_eq!(section(&cfg, "frontend fe_stomp")[0], "bind :1613");
        assert_eq!(
            section(&cfg, "backend be_stomp")[1],
            "server berth-b-1234-0 berth-b-1234-0:61613 port 5672"
        );
    }

    #[test]
    fn servers_resolve_late_through_dockers_dns_and_are_checked_every_second() {
        let cfg = render(&nodes(), &[LbPort::same("amqps", 5671)]).unwrap();
        let resolvers = section(&cfg, "resolvers docker");
        assert!(resolvers.contains(&"nameserver docker 127.0.0.11:53"));
        // a vanished name is held longer than the checks take to mark the node DOWN
        assert!(resolvers.contains(&"hold nx 10s"));
        let defaults = section(&cfg, "defaults");
        assert!(defaults.contains(&"mode tcp"));
        let server = defaults
            .iter()
            .find(|l| l.starts_with("default-server "))
            .unwrap();
        for word in [
            "init-addr none",
            "resolvers docker",
            "resolve-prefer ipv4",
            "check",
            "inter 1s",
            "fall 2",
            "rise 2",
        ] {
            assert!(server.contains(word), "{word} missing in {server}");
        }
        // see the module docs: it hangs connecting clients on HAProxy 3.0
        assert!(!cfg.contains("shutdown-sessions"));
        for line in [
            "timeout client 1h",
            "timeout server 1h",
            "timeout check 1s",
            "timeout connect 1s",
            "option redispatch 1",
        ] {
            assert!(defaults.contains(&line), "{line} missing");
        }
    }

    #[test]
    fn health_endpoint_on_a_fixed_port() {
        let cfg = render(&nodes(), &[LbPort::same("amqps", 5671)]).unwrap();
        let health = section(&cfg, "frontend health");
        assert!(health.contains(&"mode http"));
        assert!(health.contains(&"bind :8404"));
        assert!(health.contains(&"monitor-uri /healthz"));
        assert!(health.contains(&"stats uri /stats"));
        assert!(!health.iter().any(|l| l.starts_with("stats admin")));
        let global = section(&cfg, "global");
        assert!(!global.iter().any(|l| l.starts_with("log ")));
        assert!(global.contains(&"maxconn 8000"));
        assert!(section(&cfg, "defaults").contains(&"maxconn 8000"));
        assert_eq!(
            COMMAND,
            ["haproxy", "-W", "-db", "-f", "/etc/berth/haproxy.cfg"]
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        let ports = [LbPort::same("amqps", 5671), LbPort::same("stomps", 61614)];
        assert_eq!(
            render(&nodes(), &ports).unwrap(),
            render(&nodes(), &ports).unwrap()
        );
    }

    /// Not a check: renders a file for `broker-agent/live/run-rabbitmq-cluster.sh`, from
    /// `BERTH_HAPROXY_BACKENDS` (`host,host,…`) and `BERTH_HAPROXY_PORTS`
    /// (`name:listen:target,…`) into `BERTH_HAPROXY_OUT`.
    #[test]
    #[ignore = "a tool for the live cluster check"]
    fn write_live_config() {
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
        let backends: Vec<String> = var("BERTH_HAPROXY_BACKENDS")
            .split(',')
            .map(String::from)
            .collect();
        let spec = var("BERTH_HAPROXY_PORTS");
        let ports: Vec<LbPort> = spec
            .split(',')
            .map(|p| {
                let f: Vec<&str> = p.split(':').collect();
                LbPort {
                    name: f[0],
                    listen: f[1].parse().unwrap(),
                    target: f[2].parse().unwrap(),
                    check_port: f.get(3).map(|c| c.parse().unwrap()),
                }
            })
            .collect();
        std::fs::write(var("BERTH_HAPROXY_OUT"), render(&backends, &ports).unwrap()).unwrap();
    }

    #[test]
    fn refuses_what_would_make_a_broken_file() {
        let p = [LbPort::same("amqps", 5671)];
        assert_eq!(render(&[], &p), Err(HaproxyError::NoBackends));
        assert_eq!(render(&nodes(), &[]), Err(HaproxyError::NoPorts));
        for bad in ["", "a b", "x\nserver evil 1.2.3.4:1", "-lead", "a..b"] {
            assert_eq!(
                render(&[bad.to_string()], &p),
                Err(HaproxyError::BadHost(bad.into())),
                "{bad:?}"
            );
        }
        assert!(render(&["n1".into(), "n1".into()], &p).is_err());
        assert!(render(&["n1.broker-net".into()], &p).is_ok());
        for bad in ["", "has space", "a/b", "x\ny"] {
            assert_eq!(
                render(&nodes(), &[LbPort::same(bad, 5671)]),
                Err(HaproxyError::BadName(bad.into()))
            );
        }
        let twice = [LbPort::same("a", 5671), LbPort::same("b", 5671)];
        assert!(matches!(
            render(&nodes(), &twice),
            Err(HaproxyError::Duplicate(_))
        ));
        let same_name = [LbPort::same("a", 5671), LbPort::same("a", 5672)];
        assert!(matches!(
            render(&nodes(), &same_name),
            Err(HaproxyError::Duplicate(_))
        ));
        // the health port is taken
        let health = [LbPort::same("x", HEALTH_PORT)];
        assert!(matches!(
            render(&nodes(), &health),
            Err(HaproxyError::Duplicate(_))
        ));
        assert_eq!(
            render(&nodes(), &[LbPort::same("zero", 0)]),
            Err(HaproxyError::BadPort(0))
        );
    }
}
