//! Every client endpoint DescribeBroker reports works with a real client and the broker
//! user, and refuses a wrong password: AMQP 0-9-1 and AMQP 1.0 (same port), MQTT 3.1.1,
//! STOMP 1.2, Web-STOMP and Web-MQTT over WebSocket, and the management console's HTTP API
//! (over HTTPS). One test per RabbitMQ version of the catalogue, all sharing
//! [`every_reported_protocol_endpoint`], so a failure names the version.
//!
//! The protocol clients (STOMP frames, MQTT, WebSocket, the byte `Wire`, the endpoint
//! list) are the shared ones of `clients/`, which the TLS and ActiveMQ tests use too.

use std::time::Duration;

use berth_tests::{rabbitmq_broker_version, require_engine_image, spawn_app};
use fe2o3_amqp::connection::OpenError;
use fe2o3_amqp::types::sasl::SaslCode;
use fe2o3_amqp::Connection as Amqp10Connection;
use rumqttc::{ConnectReturnCode, Packet};
use serde_json::Value;

use crate::amqp;
use crate::clients::amqp10::{amqp10_queue_address, amqp10_round_trip};
use crate::clients::mqtt::{
    mqtt_options, mqtt_refusal, mqtt_round_trip, web_mqtt_round_trip, WsMqtt,
};
use crate::clients::stomp::{stomp_round_trip, Stomp};
use crate::clients::ws::{Closed, Wire};
use crate::clients::{authority, within, RabbitMqEndpoints, STEP};

const USER: &str = "proto-user";
const PASSWORD: &str = "pr0tocols-Passw0rd";
const WRONG: &str = "not-the-Passw0rd";

// ---------------------------------------------------------------------------------------
// The tests: one per RabbitMQ version of the catalogue.

#[tokio::test]
async fn every_reported_protocol_endpoint_serves_the_broker_user_and_refuses_a_wrong_password_on_rabbitmq_4_3(
) {
    every_reported_protocol_endpoint("4.3", "mq.m7g.medium", "4.3.6").await;
}

#[tokio::test]
async fn every_reported_protocol_endpoint_serves_the_broker_user_and_refuses_a_wrong_password_on_rabbitmq_4_0(
) {
    every_reported_protocol_endpoint("4.0", "mq.m7g.medium", "4.0.5").await;
}

#[tokio::test]
async fn every_reported_protocol_endpoint_serves_the_broker_user_and_refuses_a_wrong_password_on_rabbitmq_3_10(
) {
    every_reported_protocol_endpoint("3.10", "mq.m5.large", "3.10.8").await;
}

/// Creates a RabbitMQ `version` broker on `instance_type`, checks the endpoint list
/// (TLS first, in Amazon MQ's order), runs every protocol check against the plaintext
/// endpoints and the HTTPS console (which must report `full_version`), and deletes it.
async fn every_reported_protocol_endpoint(version: &str, instance_type: &str, full_version: &str) {
    let app = spawn_app().await;
    require_engine_image(&app.docker, &format!("berth/rabbitmq:{version}")).await;
    let name = format!(
        "protocols-{}-{}",
        version.replace('.', "-"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let id = app
        .create_broker(&rabbitmq_broker_version(
            &name,
            USER,
            PASSWORD,
            version,
            instance_type,
        ))
        .await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(180))
        .await;
    assert_eq!(v["engineVersion"], version, "{v}");
    let ep = RabbitMqEndpoints::of(&v);
    let ca_pem = app.ca_pem();

    // Independent checks (own queues, topics and client ids), run together so the ~3 s
    // refusal delays of AMQP 1.0, MQTT and Web-MQTT overlap.
    tokio::join!(
        amqp_091(&ep.amqp),
        amqp_10(&ep.amqp, version),
        mqtt(&ep.mqtt),
        stomp(&ep.stomp),
        web_stomp(&ep.web_stomp),
        web_mqtt(&ep.web_mqtt, version),
        console(&ep.console, &ca_pem, full_version),
    );

    let resp = app.delete(&format!("/v1/brokers/{id}")).await;
    assert_eq!(resp.status(), 200);
    app.wait_until_gone(&id, Duration::from_secs(60)).await;
    assert_eq!(app.docker_objects(&id).await, Vec::<String>::new());
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// AMQP 0-9-1 and 1.0.

/// AMQP 0-9-1: a confirmed persistent message round-trips; a wrong password is refused.
async fn amqp_091(endpoint: &str) {
    let conn = within(
        "AMQP 0-9-1 connect",
        amqp::connect(endpoint, USER, PASSWORD),
    )
    .await
    .expect("AMQP 0-9-1 login with the broker user");
    amqp::round_trip("AMQP 0-9-1", &conn, "proto-amqp091", b"hello 0-9-1").await;
    let _ = conn.close(200, "bye".into()).await;

    let refused = within(
        "AMQP 0-9-1 wrong password",
        amqp::connect(endpoint, USER, WRONG),
    )
    .await;
    let err = refused.expect_err("AMQP 0-9-1 accepted a wrong password");
    assert!(err.to_string().contains("ACCESS_REFUSED"), "{err}");
}

/// AMQP 1.0 on the AMQP port: a message sent to the queue's address (see
/// [`amqp10_queue_address`]; the queue is declared over 0-9-1 first) is accepted and
/// received back; a wrong password fails the SASL exchange.
async fn amqp_10(endpoint: &str, version: &str) {
    const QUEUE: &str = "proto-amqp10";
    let conn = within(
        "AMQP 0-9-1 connect",
        amqp::connect(endpoint, USER, PASSWORD),
    )
    .await
    .expect("AMQP 0-9-1 login");
    amqp::declare_durable(&conn, QUEUE).await;
    let _ = conn.close(200, "bye".into()).await;

    let hostport = authority(endpoint);
    let url = format!("amqp://{USER}:{PASSWORD}@{hostport}");
    let mut connection = within(
        "AMQP 1.0 open",
        Amqp10Connection::builder()
            .container_id("berth-protocols-test")
            .hostname("vhost:/")
            .open(url.as_str()),
    )
    .await
    .unwrap_or_else(|e| match e {
        // RabbitMQ answers an AMQP 1.0 header with its 0-9-1 one when it does not serve
        // AMQP 1.0 (3.x without the rabbitmq_amqp1_0 plugin: "amqp1_0_plugin_not_enabled").
        OpenError::ProtocolHeaderMismatch(header) => panic!(
            "AMQP 1.0 is not served on {endpoint} (RabbitMQ {version}): the broker answered \
             the AMQP 1.0 protocol header with {header:?}"
        ),
        e => panic!("AMQP 1.0 login with the broker user: {e:?}"),
    });
    let address = amqp10_queue_address(version, QUEUE);
    amqp10_round_trip("AMQP 1.0", &mut connection, &address, "hello 1.0").await;
    let _ = connection.close().await;

    let bad = format!("amqp://{USER}:{WRONG}@{hostport}");
    let refused = within(
        "AMQP 1.0 wrong password",
        Amqp10Connection::builder()
            .container_id("berth-protocols-test-bad")
            .hostname("vhost:/")
            .open(bad.as_str()),
    )
    .await;
    match refused {
        Err(OpenError::SaslError {
            code: SaslCode::Auth,
            ..
        }) => {}
        Err(e) => panic!("AMQP 1.0 wrong password: expected SASL auth failure, got {e:?}"),
        Ok(_) => panic!("AMQP 1.0 accepted a wrong password"),
    }
}

// ---------------------------------------------------------------------------------------
// MQTT 3.1.1 over TCP (rumqttc's client).

/// MQTT 3.1.1: [`mqtt_round_trip`]; a wrong password gets CONNACK 4 (bad user name or
/// password).
async fn mqtt(url: &str) {
    let opts = mqtt_options("berth-proto-mqtt", url, USER, PASSWORD);
    mqtt_round_trip("MQTT", opts, "berth/protocols/mqtt", b"hello MQTT").await;

    let bad = mqtt_options("berth-proto-mqtt-bad", url, USER, WRONG);
    let code = mqtt_refusal("MQTT with a wrong password", bad).await;
    assert_eq!(code, ConnectReturnCode::BadUserNamePassword);
}

// ---------------------------------------------------------------------------------------
// STOMP 1.2 over TCP and over WebSocket.

/// [`stomp_round_trip`] as the broker user; a second session with the wrong password
/// gets an ERROR frame ("Access refused").
async fn stomp_checks(label: &str, good: Stomp, mut bad: Stomp, queue: &str) {
    stomp_round_trip(label, good, USER, PASSWORD, queue).await;
    let reply = bad.connect("/", USER, WRONG).await;
    assert_eq!(reply.command, "ERROR", "{label} wrong password: {reply:?}");
    assert!(
        reply.body_text().contains("Access refused"),
        "{label} wrong password: {reply:?}"
    );
}

/// STOMP 1.2 over plain TCP.
async fn stomp(url: &str) {
    let session = || async { Stomp::new(Wire::tcp(authority(url)).await) };
    stomp_checks("STOMP", session().await, session().await, "proto-stomp").await;
}

/// STOMP 1.2 over WebSocket (subprotocol `v12.stomp`).
async fn web_stomp(url: &str) {
    let ws = || async { Stomp::new(Wire::ws(url, "v12.stomp").await) };
    stomp_checks("Web-STOMP", ws().await, ws().await, "proto-web-stomp").await;
}

// ---------------------------------------------------------------------------------------
// MQTT 3.1.1 over WebSocket.

/// MQTT over WebSocket (subprotocol `mqtt`): [`web_mqtt_round_trip`]; a wrong password
/// gets CONNACK 4 (bad user name or password) on RabbitMQ 4. RabbitMQ 3.10's Web-MQTT
/// sends no CONNACK on a failed login: it closes the WebSocket with 1002 (protocol
/// error) and the reason `unauthenticated` (and logs "MQTT login failed ... Refused").
async fn web_mqtt(url: &str, version: &str) {
    let good = WsMqtt::open(url).await;
    web_mqtt_round_trip(
        "Web-MQTT",
        good,
        "berth-proto-web-mqtt",
        USER,
        PASSWORD,
        "berth/protocols/web-mqtt",
        b"hello Web-MQTT",
    )
    .await;

    let mut bad = WsMqtt::open(url).await;
    match bad.connect("berth-proto-web-mqtt-bad", USER, WRONG).await {
        Ok(Packet::ConnAck(ack)) => assert_eq!(ack.code, ConnectReturnCode::BadUserNamePassword),
        Err(Closed::WebSocket(Some((1002, reason))))
            if version.starts_with("3.") && reason == "unauthenticated" => {}
        other => panic!("Web-MQTT wrong password: expected a refusing CONNACK, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The management console.

/// The management console over HTTPS, its certificate verified against the installation
/// CA (and nothing else): the HTTP API answers the broker user and reports
/// `full_version`; 401 without credentials or with a wrong password.
async fn console(base: &str, ca_pem: &str, full_version: &str) {
    assert!(base.starts_with("https://"), "{base}");
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM");
    let http = reqwest::Client::builder()
        .timeout(STEP)
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let url = format!("{base}/api/overview");
    let resp = http
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("console request");
    assert_eq!(resp.status(), 200);
    let overview: Value = resp.json().await.expect("overview JSON");
    assert_eq!(overview["rabbitmq_version"], full_version, "{overview}");
    let resp = http.get(&url).send().await.expect("console request");
    assert_eq!(resp.status(), 401);
    let resp = http
        .get(&url)
        .basic_auth(USER, Some(WRONG))
        .send()
        .await
        .expect("console request");
    assert_eq!(resp.status(), 401);
}
