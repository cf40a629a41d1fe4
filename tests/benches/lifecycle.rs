//! Lifecycle benchmark: CreateBroker → RUNNING and DeleteBroker → gone through Berth,
//! against the bare engine's start time in the same image (RabbitMQ started directly,
//! no agent, no control plane), measured the same way: until the AMQP handshake answers.
//!
//! Run with `make bench` (or `cargo bench -p berth-tests --bench lifecycle`);
//! `BERTH_BENCH_RUNS` sets the number of rounds (default 5).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use berth_tests::{rabbitmq_broker, require_image, spawn_app, wait_until, RABBITMQ_IMAGE};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// True when an AMQP 0-9-1 server answers the protocol header with Connection.Start.
async fn amqp_answers(port: u16) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    if s.write_all(b"AMQP\x00\x00\x09\x01").await.is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut b)).await, Ok(Ok(_)) if b[0] == 1)
}

const BARE_SCRIPT: &str = "set -e
printf '%s\n' 'default_user = bench-user' 'default_pass = bench-password-123' 'loopback_users = none' \
  'listeners.tcp.default = 5672' 'vm_memory_high_watermark.absolute = 1717986918' \
  'total_memory_available_override_value = 4294967296' > /etc/rabbitmq/rabbitmq.conf
printf 'benchcookie' > /var/lib/rabbitmq/.erlang.cookie
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq; chmod 0400 /var/lib/rabbitmq/.erlang.cookie
export HOME=/var/lib/rabbitmq LANG=C.UTF-8 LC_ALL=C.UTF-8
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups -- /usr/lib/rabbitmq/bin/rabbitmq-server";

/// Starts RabbitMQ directly in the engine image (same limits as mq.m7g.medium) and
/// returns the seconds until AMQP answers.
async fn bare_start(docker: &bollard::Docker, port: u16, round: usize) -> f64 {
    let name = format!("berth-bench-bare-{}-{round}", std::process::id());
    let body = ContainerCreateBody {
        image: Some(RABBITMQ_IMAGE.into()),
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), BARE_SCRIPT.into()]),
        exposed_ports: Some(vec!["5672/tcp".into()]),
        host_config: Some(HostConfig {
            memory: Some(4 << 30),
            memory_swap: Some(4 << 30),
            nano_cpus: Some(1_000_000_000),
            port_bindings: Some(HashMap::from([(
                "5672/tcp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(port.to_string()),
                }]),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t0 = Instant::now();
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .unwrap();
    docker
        .start_container(
            &name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .unwrap();
    wait_until(Duration::from_secs(120), || amqp_answers(port))
        .await
        .expect("bare RabbitMQ never answered");
    let secs = t0.elapsed().as_secs_f64();
    docker
        .remove_container(
            &name,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    secs
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BERTH_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let app = spawn_app().await;
    require_image(&app.docker).await;
    let (mut create, mut delete, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..runs {
        let t0 = Instant::now();
        let id = app
            .create_broker(&rabbitmq_broker(
                &format!("bench-{round}"),
                "bench-user",
                "bench-password-123",
            ))
            .await;
        app.wait_for_state(&id, "RUNNING", Duration::from_secs(180))
            .await;
        create.push(t0.elapsed().as_secs_f64());

        let t1 = Instant::now();
        assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
        app.wait_until_gone(&id, Duration::from_secs(120)).await;
        delete.push(t1.elapsed().as_secs_f64());
        assert!(app.docker_objects(&id).await.is_empty());

        let port = app.settings.port_range_end;
        bare.push(bare_start(&app.docker, port, round).await);
        println!(
            "round {round}: create->RUNNING {:.2} s, delete->gone {:.2} s, bare engine start {:.2} s",
            create[round], delete[round], bare[round]
        );
    }
    let (c, d, b) = (median(&mut create), median(&mut delete), median(&mut bare));
    println!("lifecycle ({runs} rounds, mq.m7g.medium = 1 vCPU / 4 GiB, RabbitMQ 4.0.5):");
    println!("  create->RUNNING median {c:.2} s");
    println!("  delete->gone    median {d:.2} s");
    println!("  bare engine start to AMQP ready median {b:.2} s");
    println!("  ratio create/bare = {:.2}", c / b);
    app.stop().await;
}
