//! High-availability benchmark (`make bench` runs it after the lifecycle one):
//!
//! - ActiveMQ ACTIVE_STANDBY_MULTI_AZ: CreateBroker → pair formed; the JMS producer's
//!   gap (client-observed, `failover:(ssl://a,ssl://b)`, synchronous persistent sends)
//!   over `BERTH_BENCH_KILLS` (default 10) `docker kill`s of the active, and over
//!   `BERTH_BENCH_PAUSES` (default 3) `docker pause`s of it (a hung active: Berth must
//!   notice and kill it); RebootBroker → RUNNING (a rolling reboot) and its gap.
//! - RabbitMQ CLUSTER_MULTI_AZ, for each cluster version (4.0 on Mnesia, 4.3 on
//!   Khepri), `BERTH_BENCH_FORMATIONS` times (default 2): CreateBroker → three members
//!   running, next to the same three nodes started bare in the same run (same image,
//!   limits, host names and the configuration Berth's agents rendered, the engine
//!   exec'd directly, no agent and no control plane); on 4.3 the confirm gap of a
//!   lapin publisher through the load balancer when one node is killed (3 kills) and
//!   RebootBroker → RUNNING.
//!
//! Goals (issue 10): failover gap max ≤ 1.5 s, pause → standby serving ≤ 5 s, cluster
//! formed ≤ 20 s, cluster confirm gap on node loss ≤ 1 s. Every round also checks that
//! no confirmed message was lost.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

use berth_tests::ha::{
    cluster_request, drain, instance_endpoints, pair_request, publish_until, wait_cluster_formed,
    wait_pair_formed, JmsLoad, PASSWORD, USER,
};
use berth_tests::{docker_cli, spawn_app, TestApp};

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn stats(label: &str, unit: &str, v: &[f64]) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return;
    }
    println!(
        "  {label:<52} n={:<3} min {:>7.2} {unit}  median {:>7.2} {unit}  max {:>7.2} {unit}",
        s.len(),
        s[0],
        s[s.len() / 2],
        s[s.len() - 1]
    );
}

async fn reboot(app: &TestApp, id: &str) -> f64 {
    let t = Instant::now();
    let resp = app
        .post_json(&format!("/v1/brokers/{id}/reboot"), &json!({}))
        .await;
    assert_eq!(resp.status(), 200);
    app.wait_for_state(id, "RUNNING", Duration::from_secs(600))
        .await;
    t.elapsed().as_secs_f64()
}

async fn delete(app: &TestApp, id: &str) {
    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(id, Duration::from_secs(180)).await;
}

async fn pair(app: &TestApp) {
    let kills = count("BERTH_BENCH_KILLS", 10);
    let pauses = count("BERTH_BENCH_PAUSES", 3);
    let t = Instant::now();
    let id = app.create_broker(&pair_request("bench-pair")).await;
    let mut active = wait_pair_formed(app, &id, Duration::from_secs(300)).await;
    let created = t.elapsed().as_secs_f64();
    let v = app.describe(&id).await.1;
    let url = format!(
        "failover:({})?randomize=false&initialReconnectDelay=100&maxReconnectDelay=200&useExponentialBackOff=false",
        instance_endpoints(&v, "ssl").join(",")
    );
    let ca = app.settings.data_dir.join("ca.pem").display().to_string();
    let warmup = Duration::from_secs(2);
    let round = Duration::from_secs(8);

    let mut kill_gaps = Vec::new();
    for k in 0..kills {
        let load = JmsLoad::start(&url, &ca, &format!("bench.kill.{k}"), round, warmup).await;
        docker_cli(&["kill", &format!("berth-{id}-{active}")]).await;
        kill_gaps.push(load.check(&format!("kill {k}")).await as f64 / 1000.0);
        active = wait_pair_formed(app, &id, Duration::from_secs(120)).await;
    }
    let mut pause_gaps = Vec::new();
    for k in 0..pauses {
        let load = JmsLoad::start(&url, &ca, &format!("bench.pause.{k}"), round, warmup).await;
        docker_cli(&["pause", &format!("berth-{id}-{active}")]).await;
        pause_gaps.push(load.check(&format!("pause {k}")).await as f64 / 1000.0);
        active = wait_pair_formed(app, &id, Duration::from_secs(120)).await;
    }
    let load = JmsLoad::start(&url, &ca, "bench.roll", Duration::from_secs(40), warmup).await;
    let rolled = reboot(app, &id).await;
    wait_pair_formed(app, &id, Duration::from_secs(120)).await;
    let roll_gap = load.check("rolling reboot").await as f64 / 1000.0;
    delete(app, &id).await;

    println!("\nActiveMQ 5.17 ACTIVE_STANDBY_MULTI_AZ (mq.m5.large, EFS)");
    stats("CreateBroker -> one ACTIVE + one STANDBY", "s", &[created]);
    stats("docker kill active -> JMS producer gap", "s", &kill_gaps);
    println!("  goal: max <= 1.5 s");
    stats("docker pause active -> JMS producer gap", "s", &pause_gaps);
    println!("  goal: <= 5 s (Berth kills a silent active after BERTH_HUNG_AFTER_MS=2000)");
    stats("RebootBroker (rolling) -> RUNNING", "s", &[rolled]);
    stats("rolling reboot -> JMS producer gap", "s", &[roll_gap]);
}

/// The three nodes of a RUNNING Berth cluster, bare: the agent-rendered `/etc/rabbitmq`
/// and the cookie of each node copied out, then the engine exec'd directly in new
/// containers with the same host names, limits, image and program volumes on a network
/// of their own.
/// Returns seconds from `docker start` to three members running.
async fn bare_cluster(id: &str, image: &str) -> f64 {
    let scratch = tempfile::tempdir().unwrap();
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let net = format!("benchha-{run}");
    docker_cli(&["network", "create", "--label", "berth-bench.run=ha", &net]).await;
    let mut names = Vec::new();
    for i in 0..3 {
        let node = format!("berth-{id}-{i}");
        let dir = scratch.path().join(i.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        docker_cli(&[
            "cp",
            &format!("{node}:/etc/rabbitmq"),
            dir.to_str().unwrap(),
        ])
        .await;
        let cookie = docker_cli(&["exec", &node, "cat", "/var/lib/rabbitmq/.erlang.cookie"]).await;
        let memory = docker_cli(&["inspect", "-f", "{{.HostConfig.Memory}}", &node]).await;
        let cpus = docker_cli(&["inspect", "-f", "{{.HostConfig.NanoCpus}}", &node]).await;
        let cpus = format!("{}", cpus.parse::<f64>().unwrap_or(1e9) / 1e9);
        // The read-only program volumes Berth mounts (the engine's files read past the
        // storage driver): the same for the bare nodes.
        let program = docker_cli(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{if not .RW}}{{.Name}}:{{.Destination}}:ro {{end}}{{end}}",
            &node,
        ])
        .await;
        // The Erlang flags the agent gives the server, read from the running engine's
        // environment, so the bare nodes run the same VM settings.
        let erl_args = docker_cli(&[
            "exec",
            &node,
            "sh",
            "-c",
            "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null | grep '^RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=' && break; done; true",
        ])
        .await;
        let name = format!("benchha-{run}-{i}");
        let script = "set -e
printf %s \"$BENCH_COOKIE\" > /var/lib/rabbitmq/.erlang.cookie
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq
chmod 0400 /var/lib/rabbitmq/.erlang.cookie
cd /var/lib/rabbitmq
exec /usr/bin/setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups -- /usr/lib/rabbitmq/bin/rabbitmq-server";
        let mut args = vec![
            "create".to_owned(),
            "--name".into(),
            name.clone(),
            "--hostname".into(),
            node.clone(),
            "--network".into(),
            net.clone(),
            "--network-alias".into(),
            node.clone(),
            "--label".into(),
            "berth-bench.run=ha".into(),
            "--memory".into(),
            memory.clone(),
            "--memory-swap".into(),
            memory,
            "--cpus".into(),
            cpus,
            "-e".into(),
            format!("BENCH_COOKIE={cookie}"),
            "-e".into(),
            format!("RABBITMQ_NODENAME=rabbit@{node}"),
            "-e".into(),
            "HOME=/var/lib/rabbitmq".into(),
            "--entrypoint".into(),
            "/bin/sh".into(),
        ];
        for mount in program.split_whitespace() {
            args.extend(["-v".into(), mount.to_owned()]);
        }
        if let Some(line) = erl_args.lines().next().filter(|l| !l.is_empty()) {
            args.extend(["-e".into(), line.to_owned()]);
        }
        if i == 0 {
            args.extend(["-p".into(), "127.0.0.1::15672".into()]);
        }
        args.extend([image.to_owned(), "-c".into(), script.into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_cli(&args).await;
        docker_cli(&[
            "cp",
            dir.join("rabbitmq").to_str().unwrap(),
            &format!("{name}:/etc/"),
        ])
        .await;
        names.push(name);
    }
    let t = Instant::now();
    let starts = names.iter().map(|n| async move {
        docker_cli(&["start", n]).await;
    });
    futures_util::future::join_all(starts).await;
    let mgmt_port = docker_cli(&["port", &names[0], "15672/tcp"]).await;
    let http = reqwest::Client::new();
    let formed = loop {
        let nodes: Option<Value> = async {
            http.get(format!("http://{mgmt_port}/api/nodes?columns=name,running"))
                .basic_auth(USER, Some(PASSWORD))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()
        }
        .await;
        let running = nodes
            .as_ref()
            .and_then(Value::as_array)
            .map_or(0, |a| a.iter().filter(|n| n["running"] == true).count());
        if running == 3 {
            break t.elapsed().as_secs_f64();
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "bare cluster never formed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for n in &names {
        docker_cli(&["rm", "-f", n]).await;
    }
    docker_cli(&["network", "rm", &net]).await;
    formed
}

/// CreateBroker → RUNNING with three members for a cluster of `version`, and the same
/// three nodes bare right after; returns the broker's id, its DescribeBroker and both
/// times.
async fn cluster_formation(app: &TestApp, version: &str) -> (String, Value, f64, f64) {
    let mut request = cluster_request(&format!("bench-ring-{}", version.replace('.', "-")));
    request["engineVersion"] = json!(version);
    let t = Instant::now();
    let id = app.create_broker(&request).await;
    let v = wait_cluster_formed(app, &id, Duration::from_secs(300)).await;
    let created = t.elapsed().as_secs_f64();
    let bare = bare_cluster(&id, &format!("berth/rabbitmq:{version}")).await;
    (id, v, created, bare)
}

async fn cluster(app: &TestApp) {
    // Formation `BERTH_BENCH_FORMATIONS` times (default 2) for every cluster version,
    // each next to its bare run; faults and the roll on the last 4.3 cluster. The first
    // cluster of a version may run while Berth, just started, still fills program
    // volumes (the first version's does), so it is printed on its own too.
    let rounds = count("BERTH_BENCH_FORMATIONS", 2).max(1);
    let mut formed: Vec<(&str, Vec<f64>, Vec<f64>)> = Vec::new();
    let mut last = None;
    for version in ["4.0", "4.3"] {
        let (mut created, mut bare) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let (id, v, c, b) = cluster_formation(app, version).await;
            println!("{version} formation {round}: Berth {c:.2} s, bare {b:.2} s");
            created.push(c);
            bare.push(b);
            if version == "4.3" && round + 1 == rounds {
                last = Some((id, v));
            } else {
                delete(app, &id).await;
            }
        }
        formed.push((version, created, bare));
    }
    let (id, v) = last.expect("a 4.3 cluster");
    let url = v["brokerInstances"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|e| e.starts_with("amqps://"))
        .unwrap()
        .to_owned();
    let ca = app.ca_pem();
    let mut gaps = Vec::new();
    for k in 0..3 {
        let (stop_tx, stop_rx) = watch::channel(false);
        let publisher = tokio::spawn(publish_until(url.clone(), ca.clone(), stop_rx));
        tokio::time::sleep(Duration::from_secs(2)).await; // load before the fault
        docker_cli(&["kill", &format!("berth-{id}-{}", k % 3)]).await;
        tokio::time::sleep(Duration::from_secs(4)).await; // load after it
        stop_tx.send(true).unwrap();
        let published = publisher.await.unwrap();
        let (seen, _) = drain(&url, &ca).await;
        let lost: BTreeSet<_> = published.confirmed.difference(&seen).collect();
        assert!(
            lost.is_empty(),
            "cluster kill {k}: confirmed but lost {lost:?}"
        );
        println!(
            "cluster kill {k}: {} confirmed, 0 lost, longest confirm gap {} ms",
            published.confirmed.len(),
            published.max_gap.as_millis()
        );
        gaps.push(published.max_gap.as_secs_f64());
        wait_cluster_formed(app, &id, Duration::from_secs(180)).await;
    }
    let rolled = reboot(app, &id).await;
    wait_cluster_formed(app, &id, Duration::from_secs(180)).await;
    delete(app, &id).await;

    println!("\nRabbitMQ CLUSTER_MULTI_AZ (mq.m7g.large, three nodes + HAProxy)");
    for (version, created, bare) in formed {
        stats(
            &format!("{version}: CreateBroker -> RUNNING, 3 members running"),
            "s",
            &created,
        );
        stats(
            &format!("{version}: bare: 3 nodes docker start -> 3 members running"),
            "s",
            &bare,
        );
        let median = |v: &[f64]| {
            let mut s = v.to_vec();
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        };
        println!(
            "  first cluster of the version after Berth started {:.2} s; ratio Berth/bare (medians) {:.2} (goal: formed <= 20 s)",
            created[0],
            median(&created) / median(&bare)
        );
    }
    println!("4.3:");
    stats("docker kill of a node -> longest confirm gap", "s", &gaps);
    println!("  goal: <= 1 s");
    stats("RebootBroker (rolling) -> RUNNING", "s", &[rolled]);
}

#[tokio::main]
async fn main() {
    let app = spawn_app().await;
    println!(
        "HA benchmark (2-vCPU host, Docker {}):",
        docker_cli(&["version", "-f", "{{.Server.Version}}"]).await
    );
    let which = std::env::var("BERTH_BENCH_HA").unwrap_or_else(|_| "pair,cluster".into());
    if which.contains("pair") {
        pair(&app).await;
    }
    if which.contains("cluster") {
        cluster(&app).await;
    }
}
