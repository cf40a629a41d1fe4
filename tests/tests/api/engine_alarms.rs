//! Engine alarms on real RabbitMQ 4.0 brokers, end to end: something really goes wrong
//! inside the broker's container (the kernel OOM-kills a process of its memory cgroup;
//! RabbitMQ raises its memory alarm), the agent puts the alarm in its health report, the
//! reconciler turns it into CRITICAL_ACTION_REQUIRED, and DescribeBroker names it with
//! Amazon MQ's code, per node.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use berth_tests::{amqp_endpoint, rabbitmq_broker, require_image, spawn_app, wait_until, TestApp};

use crate::amqp;

const USER: &str = "app-user";
const PASSWORD: &str = "s3cret-Passw0rd-x";
/// The agent checks alarms every 15 s and the reconciler passes every 0.5 s: an alarm
/// shows within ~16 s; this leaves room for a loaded machine.
const ALARM_WITHIN: Duration = Duration::from_secs(60);

fn container(id: &str) -> String {
    format!("berth-{id}-0")
}

/// Runs `sh -c script` in `container` as `user` and waits for it: its exit code and
/// its output (stdout and stderr).
async fn exec(
    docker: &bollard::Docker,
    container: &str,
    user: &str,
    script: &str,
) -> (i64, String) {
    let created = docker
        .create_exec(
            container,
            CreateExecOptions::<String> {
                cmd: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                user: Some(user.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("docker exec create in {container}: {e}"));
    let mut out = String::new();
    if let StartExecResults::Attached { mut output, .. } = docker
        .start_exec(&created.id, None)
        .await
        .unwrap_or_else(|e| panic!("docker exec in {container}: {e}"))
    {
        while let Some(chunk) = output.next().await {
            let chunk = chunk.unwrap_or_else(|e| panic!("docker exec output: {e}"));
            out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
    }
    let code = docker
        .inspect_exec(&created.id)
        .await
        .expect("docker exec inspect")
        .exit_code
        .expect("the exec finished");
    (code, out)
}

/// `rabbitmqctl ARGS` in the broker's container as the engine user, as the agent runs it
/// (HOME = the data directory, where the agent wrote the Erlang cookie; the node name
/// defaults to `rabbit@<container hostname>`, the single node's name). Panics unless it
/// succeeds.
async fn rabbitmqctl(docker: &bollard::Docker, id: &str, args: &str) -> String {
    let (code, out) = exec(
        docker,
        &container(id),
        "rabbitmq",
        &format!("HOME=/var/lib/rabbitmq rabbitmqctl -q {args}"),
    )
    .await;
    assert_eq!(code, 0, "rabbitmqctl {args}: {out}");
    out
}

/// DescribeBroker's state and its `(code, info)` actions required.
async fn state_and_actions(app: &TestApp, id: &str) -> (String, Vec<(String, String)>) {
    let (status, v) = app.describe(id).await;
    assert_eq!(status, 200, "DescribeBroker: {v}");
    let actions = v["actionsRequired"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["actionRequiredCode"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        x["actionRequiredInfo"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (
        v["brokerState"].as_str().unwrap_or_default().to_owned(),
        actions,
    )
}

/// Waits until DescribeBroker says CRITICAL_ACTION_REQUIRED with an action `code`; the
/// actions then. Panics with the last answer on timeout.
async fn wait_for_action(app: &TestApp, id: &str, code: &str) -> Vec<(String, String)> {
    let started = Instant::now();
    let last = Mutex::new((String::new(), Vec::new()));
    let found = wait_until(ALARM_WITHIN, || async {
        let now = state_and_actions(app, id).await;
        let hit = now.0 == "CRITICAL_ACTION_REQUIRED" && now.1.iter().any(|(c, _)| c == code);
        *last.lock().unwrap() = now;
        hit
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(
        found.is_some(),
        "no CRITICAL_ACTION_REQUIRED with {code} within {ALARM_WITHIN:?}; last: {last:?}"
    );
    eprintln!(
        "{code} shown after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    last.1
}

/// The one pid of the engine (`beam.smp`) in the container.
async fn engine_pid(docker: &bollard::Docker, id: &str) -> String {
    let (code, out) = exec(docker, &container(id), "root", "pgrep -x beam.smp").await;
    let pid = out.trim().to_owned();
    assert!(
        code == 0 && !pid.is_empty() && !pid.contains('\n'),
        "one beam.smp expected: {out:?}"
    );
    pid
}

/// The container's cgroup OOM-kill counter (cgroup v1 `memory.oom_control`, the file the
/// agent reads).
async fn oom_kills(docker: &bollard::Docker, id: &str) -> u64 {
    let (code, out) = exec(
        docker,
        &container(id),
        "root",
        "cat /sys/fs/cgroup/memory/memory.oom_control",
    )
    .await;
    assert_eq!(code, 0, "memory.oom_control: {out}");
    out.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no oom_kill in memory.oom_control: {out}"))
}

#[tokio::test]
async fn an_oom_kill_in_the_container_shows_broker_oom_for_the_node() {
    let app = spawn_app().await;
    require_image(&app.docker).await;
    let id = app
        .create_broker(&rabbitmq_broker("oom", USER, PASSWORD))
        .await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(120))
        .await;
    assert_eq!(state_and_actions(&app, &id).await.1, Vec::new());
    let name = container(&id);

    // The instance type (mq.m7g.medium: 4 GiB) is the container's memory limit, with no
    // swap on top: a process of the container that asks for more is OOM-killed by the
    // kernel inside the container's cgroup (the host has memory to spare).
    let inspect = app.docker.inspect_container(&name, None).await.unwrap();
    let host = inspect.host_config.expect("host config");
    let limit = host.memory.expect("a memory limit");
    assert_eq!(limit, 4 << 30, "mq.m7g.medium's memory limit");
    assert_eq!(host.memory_swap, Some(limit), "no swap above the limit");
    let engine_before = engine_pid(&app.docker, &id).await;
    let kills_before = oom_kills(&app.docker, &id).await;

    // `tail` keeps the last line of its input in memory, and /dev/zero has no newline:
    // it grows until the kernel kills it. The engine and the agent use a few hundred MB,
    // so the OOM killer picks the hog, by far the biggest process.
    let hog = limit + (512 << 20);
    let (code, out) = exec(
        &app.docker,
        &name,
        "root",
        &format!("head -c {hog} /dev/zero | tail > /dev/null"),
    )
    .await;
    assert_eq!(code, 137, "the hog should die of SIGKILL: {out}");
    assert_eq!(
        oom_kills(&app.docker, &id).await,
        kills_before + 1,
        "the cgroup should count the hog's OOM kill"
    );

    let actions = wait_for_action(&app, &id, "BROKER_OOM").await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    let info = &actions[0].1;
    assert!(
        info.starts_with(
            "Node 0 (us-east-1a): the kernel killed 1 process(es) of this node for memory"
        ),
        "{info}"
    );

    // The kernel killed the hog, not the engine: the same beam.smp still runs, and the
    // broker still serves clients while it is flagged (the alarm holds for OOM_HOLD,
    // 600 s, after the kill; this test does not wait for it to clear).
    assert_eq!(engine_pid(&app.docker, &id).await, engine_before);
    let conn = amqp::connect(&amqp_endpoint(&v), USER, PASSWORD)
        .await
        .expect("AMQP connection after the OOM kill");
    amqp::round_trip("amqp after OOM", &conn, "after-oom", b"still here").await;
    conn.close(200, "bye".into()).await.ok();
    assert_eq!(
        state_and_actions(&app, &id).await.0,
        "CRITICAL_ACTION_REQUIRED"
    );
}

#[tokio::test]
async fn a_rabbitmq_memory_alarm_shows_until_it_clears() {
    let app = spawn_app().await;
    require_image(&app.docker).await;
    let id = app
        .create_broker(&rabbitmq_broker("memalarm", USER, PASSWORD))
        .await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(120))
        .await;
    assert_eq!(state_and_actions(&app, &id).await.1, Vec::new());

    // The watermark the agent configured (an absolute one: RabbitMQ does not see the
    // cgroup limit), to put back afterwards.
    let (_, conf) = exec(
        &app.docker,
        &container(&id),
        "root",
        "cat /etc/rabbitmq/rabbitmq.conf",
    )
    .await;
    let configured: u64 = conf
        .lines()
        .find_map(|l| l.strip_prefix("vm_memory_high_watermark.absolute = "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no absolute watermark in rabbitmq.conf:\n{conf}"));

    // A 1 MB watermark: the node uses far more, so RabbitMQ raises its memory alarm (and
    // blocks publishers).
    rabbitmqctl(
        &app.docker,
        &id,
        "set_vm_memory_high_watermark absolute 1000000",
    )
    .await;
    let actions = wait_for_action(&app, &id, "RABBITMQ_MEMORY_ALARM").await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    let info = &actions[0].1;
    assert!(
        info.starts_with("Node 0 (us-east-1a): RabbitMQ memory alarm on rabbit@"),
        "{info}"
    );
    assert!(info.contains("publishers are blocked"), "{info}");

    // The configured watermark back: the alarm clears, the broker returns to RUNNING
    // with no action required, and publishers are served again.
    rabbitmqctl(
        &app.docker,
        &id,
        &format!("set_vm_memory_high_watermark absolute {configured}"),
    )
    .await;
    let started = Instant::now();
    let last = Mutex::new((String::new(), Vec::new()));
    let cleared = wait_until(ALARM_WITHIN, || async {
        let now = state_and_actions(&app, &id).await;
        let hit = now.0 == "RUNNING" && now.1.is_empty();
        *last.lock().unwrap() = now;
        hit
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(
        cleared.is_some(),
        "the alarm did not clear within {ALARM_WITHIN:?}; last: {last:?}"
    );
    eprintln!(
        "alarm cleared after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let conn = amqp::connect(&amqp_endpoint(&v), USER, PASSWORD)
        .await
        .expect("AMQP connection");
    amqp::round_trip("amqp after the alarm", &conn, "after-alarm", b"unblocked").await;
    conn.close(200, "bye".into()).await.ok();
}
