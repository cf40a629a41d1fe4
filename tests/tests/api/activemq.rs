//! ActiveMQ brokers created through the API on real Docker, checked with real clients
//! through the endpoints DescribeBroker lists: JMS over OpenWire (tests/jms/BerthJms.java),
//! STOMP 1.2, MQTT 3.1.1, STOMP and MQTT over WebSocket; the default revision's DLQ and
//! redelivery; users, groups and authorization applied live; a revision and a resize
//! applied at reboot without losing persistent messages; and ActiveMQ's bad input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{ConnectReturnCode, Packet};
use serde_json::{json, Value};

use berth_tests::{
    activemq_broker, docker_cli as docker, endpoint_with_scheme, jms, require_activemq_image,
    spawn_app, spawn_app_on, wait_until, JmsOutcome, TestApp, ACTIVEMQ_IMAGE,
};

use crate::clients::endpoint_list;
use crate::clients::mqtt::{
    mqtt_options, mqtt_refusal, mqtt_round_trip, web_mqtt_round_trip, WsMqtt,
};
use crate::clients::stomp::Stomp;
use crate::clients::ws::Wire;

const ADMIN: &str = "amq-admin";
const ADMIN_PW: &str = "amq-Adm1n-Passw0rd";
/// Amazon MQ allows `~` in ActiveMQ user names (not in RabbitMQ's).
const TILDE_USER: &str = "app~user";
const TILDE_PW: &str = "app-T1lde-Passw0rd";
const WRONG: &str = "not-the-Passw0rd";

/// Bound on one ordinary JMS client run (JVM start included).
const JMS_RUN: Duration = Duration::from_secs(60);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(s: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

/// Runs the JMS client and panics, with its output, unless the mode's check passed.
async fn jms_ok(url: &str, user: &str, password: &str, mode: &str, args: &[&str]) -> JmsOutcome {
    let out = jms(url, user, password, mode, args, JMS_RUN).await;
    assert!(out.ok, "JMS {mode} {args:?} as {user} failed: {out:?}");
    out
}

/// The client endpoints of one ActiveMQ broker instance.
struct Endpoints {
    openwire: String,
    stomp: String,
    mqtt: String,
    ws: String,
}

impl Endpoints {
    /// Every endpoint must be on loopback ([`endpoint_list`]).
    fn of(describe: &Value) -> Endpoints {
        endpoint_list(describe);
        let stomp = endpoint_with_scheme(describe, "stomp");
        Endpoints {
            openwire: endpoint_with_scheme(describe, "tcp"),
            stomp: stomp.trim_start_matches("stomp://").to_owned(),
            mqtt: endpoint_with_scheme(describe, "mqtt"),
            ws: endpoint_with_scheme(describe, "ws"),
        }
    }
}

/// CreateConfiguration (ACTIVEMQ 5.17); its id. Revision 1 is Berth's default.
async fn create_configuration(app: &TestApp) -> String {
    let resp = app
        .post_json(
            "/v1/configurations",
            &json!({"name": unique("amq-conf"), "engineType": "ACTIVEMQ", "engineVersion": "5.17"}),
        )
        .await;
    let status = resp.status();
    let c: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "CreateConfiguration: {c}");
    assert_eq!(c["latestRevision"]["revision"], 1, "{c}");
    c["id"].as_str().unwrap().to_owned()
}

/// CreateBroker, then waits for RUNNING.
async fn start_broker(app: &TestApp, body: &Value) -> (String, Value) {
    let id = app.create_broker(body).await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(180))
        .await;
    assert_eq!(v["engineType"], "ACTIVEMQ", "{v}");
    assert_eq!(v["engineVersion"], "5.17", "{v}");
    (id, v)
}

/// DeleteBroker; then nothing of the broker is left in Docker.
async fn delete_broker(app: &TestApp, id: &str) {
    assert_eq!(app.delete(&format!("/v1/brokers/{id}")).await.status(), 200);
    app.wait_until_gone(id, Duration::from_secs(90)).await;
    assert_eq!(app.docker_objects(id).await, Vec::<String>::new());
}

fn container(id: &str) -> String {
    format!("berth-{id}-0")
}

/// The container's start time and the engine's (java's) pid: both change on a restart.
async fn engine_incarnation(id: &str) -> (String, String) {
    let c = container(id);
    let started = docker(&["inspect", "-f", "{{.State.StartedAt}}", &c]).await;
    let pid = docker(&["exec", &c, "pgrep", "-x", "java"]).await;
    assert!(!pid.is_empty() && !pid.contains('\n'), "one java: {pid:?}");
    (started, pid)
}

async fn memory_limit(id: &str) -> i64 {
    docker(&["inspect", "-f", "{{.HostConfig.Memory}}", &container(id)])
        .await
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------

/// One broker (Berth's default revision), every client endpoint, all checks at once: the
/// default revision's dead-lettering takes ~63 s of broker-scheduled redeliveries, and
/// the other checks overlap it.
#[tokio::test]
async fn activemq_serves_jms_stomp_mqtt_and_websockets_and_dead_letters_by_default() {
    let app = spawn_app().await;
    require_activemq_image(&app.docker).await;
    let mut body = activemq_broker(
        &unique("amq-proto"),
        json!([
            {"username": ADMIN, "password": ADMIN_PW, "groups": ["admins"], "consoleAccess": true},
            {"username": TILDE_USER, "password": TILDE_PW},
        ]),
    );
    // Revision 1 of a new configuration is Berth's default.
    let cid = create_configuration(&app).await;
    body["configuration"] = json!({"id": cid, "revision": 1});
    let t0 = Instant::now();
    let (id, v) = start_broker(&app, &body).await;
    eprintln!("[activemq] broker RUNNING after {:.1?}", t0.elapsed());
    assert_eq!(v["hostInstanceType"], "mq.t3.micro");
    assert_eq!(v["storageType"], "EBS", "{v}");
    assert_eq!(
        v["configurations"]["current"],
        json!({"id": cid, "revision": 1}),
        "{v}"
    );
    let ep = Endpoints::of(&v);

    tokio::join!(
        jms_checks(&ep.openwire),
        default_dlq(&ep.openwire),
        stomp_checks("STOMP", &ep, false),
        stomp_checks("STOMP over WebSocket", &ep, true),
        mqtt_tcp(&ep),
        mqtt_ws(&ep),
    );
    eprintln!("[activemq] protocol checks done after {:.1?}", t0.elapsed());

    delete_broker(&app, &id).await;
    app.stop().await;
}

/// JMS: persistent queue round trip and topic fan-out to 2 subscribers; the `~` user
/// logs in; a wrong password is a JMSSecurityException.
async fn jms_checks(url: &str) {
    let rt = jms_ok(url, ADMIN, ADMIN_PW, "roundtrip", &[]).await;
    assert_eq!(rt.int("topic_subscribers_reached"), 2, "{rt:?}");
    jms_ok(url, TILDE_USER, TILDE_PW, "login", &[]).await;
    let refused = jms(url, ADMIN, WRONG, "login", &[], JMS_RUN).await;
    assert!(!refused.ok && refused.flag("security"), "{refused:?}");
    assert!(
        refused.result["error"]
            .as_str()
            .unwrap()
            .contains("password is invalid"),
        "{refused:?}"
    );
}

/// Berth's default revision: a message rolled back on every delivery is redelivered 6
/// times by the broker, with exponential back-off from 1 s, then lands in DLQ.<queue>.
async fn default_dlq(url: &str) {
    let queue = "berth.poison";
    let out = jms(
        url,
        ADMIN,
        ADMIN_PW,
        "dlq",
        &["--dest", queue, "--timeout", "150"],
        Duration::from_secs(180),
    )
    .await;
    eprintln!("[activemq] default DLQ: {}", out.result);
    assert!(out.ok, "{out:?}");
    assert!(out.flag("in_dlq"), "{out:?}");
    assert_eq!(out.result["dlq"], format!("DLQ.{queue}"));
    assert_eq!(
        out.int("deliveries"),
        7,
        "1 + maximumRedeliveries (6): {out:?}"
    );
    assert_eq!(out.result["delivery_counts"], json!([1, 2, 3, 4, 5, 6, 7]));
    let times: Vec<i64> = out.result["delivery_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    for (i, pair) in times.windows(2).enumerate() {
        let expected = 1000 << i; // initialRedeliveryDelay 1000 ms, backOffMultiplier 2
        assert!(
            pair[1] - pair[0] >= expected * 9 / 10,
            "redelivery {} came {} ms after the previous one, expected ≥ {expected} ms: {times:?}",
            i + 1,
            pair[1] - pair[0]
        );
    }
    assert!(!out.flag("after_dlq"), "{out:?}");
    assert_eq!(
        out.result["original_destination"],
        format!("queue://{queue}")
    );
    assert!(
        out.result["cause"]
            .as_str()
            .is_some_and(|c| c.contains("exceeds redelivery policy limit")),
        "{out:?}"
    );
}

/// STOMP 1.2 over TCP or over the WebSocket endpoint (subprotocol `v12.stomp`): a
/// persistent queue message sent by one connection reaches a subscriber on another; a
/// topic message reaches two subscribers; a wrong password gets an ERROR frame.
async fn stomp_checks(label: &'static str, ep: &Endpoints, websocket: bool) {
    let open = || async {
        let wire = if websocket {
            Wire::ws(&ep.ws, "v12.stomp").await
        } else {
            Wire::tcp(&ep.stomp).await
        };
        Stomp::new(wire)
    };
    let login = || async {
        let mut s = open().await;
        let reply = s.connect("/", ADMIN, ADMIN_PW).await;
        assert_eq!(reply.command, "CONNECTED", "{label}: {reply:?}");
        assert_eq!(reply.header("version"), Some("1.2"), "{label}: {reply:?}");
        s
    };
    let tag = if websocket { "ws" } else { "tcp" };

    // Queue: sent before anyone subscribes, so it is stored and then delivered.
    let queue = format!("/queue/berth.stomp.{tag}");
    let body = format!("hello {label} queue");
    let mut producer = login().await;
    producer.send_message(&queue, &body).await;
    let mut consumer = login().await;
    consumer.subscribe(&queue, "q").await;
    let m = consumer.message(&format!("{label} queue MESSAGE")).await;
    assert_eq!(m.header("subscription"), Some("q"), "{label}: {m:?}");
    assert_eq!(m.body_text(), body, "{label}");

    // Topic: two subscribers, one SEND.
    let topic = format!("/topic/berth.stomp.{tag}");
    let tbody = format!("hello {label} topic");
    let mut sub2 = login().await;
    consumer.subscribe(&topic, "t1").await;
    sub2.subscribe(&topic, "t2").await;
    producer.send_message(&topic, &tbody).await;
    for (s, id) in [(&mut consumer, "t1"), (&mut sub2, "t2")] {
        let m = s.message(&format!("{label} topic MESSAGE ({id})")).await;
        assert_eq!(m.header("subscription"), Some(id), "{label}: {m:?}");
        assert_eq!(m.body_text(), tbody, "{label}");
    }
    for s in [producer, consumer, sub2] {
        s.disconnect().await;
    }

    let mut bad = open().await;
    let reply = bad.connect("/", ADMIN, WRONG).await;
    assert_eq!(reply.command, "ERROR", "{label} wrong password: {reply:?}");
    let text = format!(
        "{} {}",
        reply.header("message").unwrap_or(""),
        reply.body_text()
    );
    assert!(
        text.contains("password is invalid"),
        "{label} wrong password: {reply:?}"
    );
}

/// MQTT 3.1.1 over TCP: QoS 1 publish/subscribe; a wrong password is refused at CONNACK.
async fn mqtt_tcp(ep: &Endpoints) {
    let opts = mqtt_options("berth-amq-mqtt", &ep.mqtt, ADMIN, ADMIN_PW);
    mqtt_round_trip("MQTT", opts, "berth/amq/mqtt", b"hello mqtt").await;
    let bad = mqtt_options("berth-amq-mqtt-bad", &ep.mqtt, ADMIN, WRONG);
    let code = mqtt_refusal("MQTT, wrong password", bad).await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
}

/// MQTT over the WebSocket endpoint (subprotocol `mqtt`): CONNACK 0 and QoS 1
/// publish/subscribe; a wrong password gets a refusing CONNACK.
async fn mqtt_ws(ep: &Endpoints) {
    let good = WsMqtt::open(&ep.ws).await;
    web_mqtt_round_trip(
        "MQTT over WebSocket",
        good,
        "berth-amq-ws-mqtt",
        ADMIN,
        ADMIN_PW,
        "berth/amq/ws-mqtt",
        b"hello ws mqtt",
    )
    .await;

    let mut bad = WsMqtt::open(&ep.ws).await;
    match bad.connect("berth-amq-ws-mqtt-bad", ADMIN, WRONG).await {
        Ok(Packet::ConnAck(ack)) => assert_eq!(ack.code, ConnectReturnCode::NotAuthorized),
        other => panic!(
            "MQTT over WebSocket, wrong password: expected a refusing CONNACK, got {other:?}"
        ),
    }
}

// ---------------------------------------------------------------------------------------

/// Revision 2: group `readers` may only read queues; `admins` may do everything.
const AUTHZ_REVISION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<broker xmlns="http://activemq.apache.org/schema/core" schedulerSupport="true">
  <plugins>
    <authorizationPlugin>
      <map>
        <authorizationMap>
          <authorizationEntries>
            <authorizationEntry queue="&gt;" read="admins,readers" write="admins" admin="admins"/>
            <authorizationEntry topic="&gt;" read="admins" write="admins" admin="admins"/>
          </authorizationEntries>
        </authorizationMap>
      </map>
    </authorizationPlugin>
  </plugins>
</broker>
"#;

/// Revision 3: the same authorization, plus queues `custom.>` dead-letter to `DEAD.<queue>`
/// after one broker redelivery.
const POLICY_REVISION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<broker xmlns="http://activemq.apache.org/schema/core" schedulerSupport="true">
  <destinationPolicy>
    <policyMap>
      <policyEntries>
        <policyEntry queue="&gt;">
          <deadLetterStrategy>
            <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>
          </deadLetterStrategy>
        </policyEntry>
        <policyEntry queue="custom.&gt;">
          <deadLetterStrategy>
            <individualDeadLetterStrategy queuePrefix="DEAD." useQueueForQueueMessages="true"/>
          </deadLetterStrategy>
        </policyEntry>
      </policyEntries>
    </policyMap>
  </destinationPolicy>
  <plugins>
    <authorizationPlugin>
      <map>
        <authorizationMap>
          <authorizationEntries>
            <authorizationEntry queue="&gt;" read="admins,readers" write="admins" admin="admins"/>
            <authorizationEntry topic="&gt;" read="admins" write="admins" admin="admins"/>
          </authorizationEntries>
        </authorizationMap>
      </map>
    </authorizationPlugin>
    <redeliveryPlugin fallbackToDeadLetter="true" sendToDlqIfMaxRetriesExceeded="true">
      <redeliveryPolicyMap>
        <redeliveryPolicyMap>
          <defaultEntry>
            <redeliveryPolicy initialRedeliveryDelay="1000" maximumRedeliveries="1" redeliveryDelay="1000"/>
          </defaultEntry>
        </redeliveryPolicyMap>
      </redeliveryPolicyMap>
    </redeliveryPlugin>
  </plugins>
</broker>
"#;

/// A new configuration revision (UpdateConfiguration); returns its number.
async fn add_revision(app: &TestApp, cid: &str, xml: &str) -> i64 {
    let resp = app
        .put_json(
            &format!("/v1/configurations/{cid}"),
            &json!({"data": b64(xml), "description": "activemq test"}),
        )
        .await;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "UpdateConfiguration: {v}");
    assert_eq!(v["warnings"], json!([]), "nothing removed from {xml}: {v}");
    v["latestRevision"]["revision"].as_i64().unwrap()
}

/// JMS login as `user`: Ok, or the client's error (a JMSSecurityException expected).
async fn login(url: &str, user: &str, password: &str) -> Result<(), JmsOutcome> {
    let out = jms(url, user, password, "login", &[], JMS_RUN).await;
    if out.ok {
        Ok(())
    } else {
        Err(out)
    }
}

/// Waits (briefly) until `user`/`password` logs in.
async fn wait_login(url: &str, user: &str, password: &str) -> Duration {
    let t = Instant::now();
    wait_until(Duration::from_secs(15), || async {
        login(url, user, password).await.is_ok()
    })
    .await
    .unwrap_or_else(|| panic!("{user} cannot log in with its new password"));
    t.elapsed()
}

async fn assert_refused(url: &str, user: &str, password: &str, why: &str) {
    match login(url, user, password).await {
        Ok(()) => panic!("{user} still logs in: {why}"),
        Err(out) => assert!(out.flag("security"), "{why}: {out:?}"),
    }
}

/// A broker created with an authorization revision; users and groups changed live; then
/// a revision with a custom dead-letter policy and a bigger instance type, both applied
/// by one reboot, on the same volume: no persistent message lost.
#[tokio::test]
async fn activemq_users_and_groups_apply_live_and_revision_and_resize_apply_at_reboot() {
    let app = spawn_app().await;
    require_activemq_image(&app.docker).await;
    let t0 = Instant::now();

    // A configuration: revision 1 is Berth's default, revision 2 adds authorization.
    let cid = create_configuration(&app).await;
    let rev1: Value = app
        .get(&format!("/v1/configurations/{cid}/revisions/1"))
        .await
        .json()
        .await
        .unwrap();
    let default_xml = unb64(rev1["data"].as_str().unwrap());
    assert!(
        default_xml.contains(
            r#"<individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>"#
        ) && default_xml.contains("<redeliveryPlugin"),
        "revision 1 is Berth's default: {default_xml}"
    );
    assert_eq!(add_revision(&app, &cid, AUTHZ_REVISION).await, 2);

    // The broker runs revision 2 from the start (Amazon MQ applies revisions at boot).
    let mut body = activemq_broker(
        &unique("amq-users"),
        json!([{"username": ADMIN, "password": ADMIN_PW, "groups": ["admins"]}]),
    );
    body["configuration"] = json!({"id": cid, "revision": 2});
    body["storageType"] = json!("EFS"); // the other test's broker is on EBS
    let (id, v) = start_broker(&app, &body).await;
    eprintln!("[activemq] users broker RUNNING after {:.1?}", t0.elapsed());
    assert_eq!(v["configurations"]["current"]["revision"], 2, "{v}");
    assert_eq!(v["storageType"], "EFS", "{v}");
    let url = endpoint_with_scheme(&v, "tcp");
    let before = engine_incarnation(&id).await;
    assert_eq!(memory_limit(&id).await, 1 << 30, "mq.t3.micro: 1 GiB");

    jms_ok(
        &url,
        ADMIN,
        ADMIN_PW,
        "send",
        &["--dest", "shared.q", "--count", "5"],
    )
    .await;

    // CreateUser: `reader` (group readers) logs in without a reboot, may consume, may
    // not send.
    let resp = app
        .post_json(
            &format!("/v1/brokers/{id}/users/reader"),
            &json!({"password": "reader-Passw0rd-1", "groups": ["readers"]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    app.wait_user_applied(&id, "reader").await;
    let user: Value = app
        .get(&format!("/v1/brokers/{id}/users/reader"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["groups"], json!(["readers"]), "{user}");
    let got = jms_ok(
        &url,
        "reader",
        "reader-Passw0rd-1",
        "receive",
        &["--dest", "shared.q", "--count", "5", "--timeout", "10"],
    )
    .await;
    assert_eq!(got.int("distinct"), 5);
    let denied = jms_ok(
        &url,
        "reader",
        "reader-Passw0rd-1",
        "write-denied",
        &["--dest", "shared.q"],
    )
    .await;
    assert!(
        denied.result["error"]
            .as_str()
            .is_some_and(|e| e.contains("not authorized to write")),
        "{denied:?}"
    );
    // ... while admins may still write anywhere.
    jms_ok(
        &url,
        ADMIN,
        ADMIN_PW,
        "send",
        &["--dest", "shared.q", "--count", "1"],
    )
    .await;

    // UpdateUser: the new password works within a short wait, the old one is refused.
    let resp = app
        .put_json(
            &format!("/v1/brokers/{id}/users/reader"),
            &json!({"password": "reader-Passw0rd-2"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    app.wait_user_applied(&id, "reader").await;
    let took = wait_login(&url, "reader", "reader-Passw0rd-2").await;
    eprintln!("[activemq] new password accepted {took:.1?} after the change was applied");
    assert_refused(
        &url,
        "reader",
        "reader-Passw0rd-1",
        "old password after UpdateUser",
    )
    .await;

    // DeleteUser: gone from the API once applied, and refused by the broker.
    assert_eq!(
        app.delete(&format!("/v1/brokers/{id}/users/reader"))
            .await
            .status(),
        200
    );
    wait_until(Duration::from_secs(60), || async {
        app.get(&format!("/v1/brokers/{id}/users/reader"))
            .await
            .status()
            == 404
    })
    .await
    .expect("reader deleted");
    assert_refused(&url, "reader", "reader-Passw0rd-2", "after DeleteUser").await;
    assert_eq!(
        engine_incarnation(&id).await,
        before,
        "users were applied without restarting the engine"
    );
    eprintln!("[activemq] users checks done after {:.1?}", t0.elapsed());

    // 100 persistent messages, then revision 3 and mq.m5.large: pending until reboot.
    jms_ok(
        &url,
        ADMIN,
        ADMIN_PW,
        "send",
        &["--dest", "durable.q", "--count", "100"],
    )
    .await;
    assert_eq!(add_revision(&app, &cid, POLICY_REVISION).await, 3);
    let resp = app
        .put_json(
            &format!("/v1/brokers/{id}"),
            &json!({"hostInstanceType": "mq.m5.large", "configuration": {"id": cid, "revision": 3}}),
        )
        .await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "UpdateBroker: {text}");
    let (_, v) = app.describe(&id).await;
    assert_eq!(v["hostInstanceType"], "mq.t3.micro", "{v}");
    assert_eq!(v["pendingHostInstanceType"], "mq.m5.large", "{v}");
    assert_eq!(v["configurations"]["current"]["revision"], 2, "{v}");
    assert_eq!(v["configurations"]["pending"]["revision"], 3, "{v}");
    assert_eq!(
        memory_limit(&id).await,
        1 << 30,
        "nothing changes before the reboot"
    );
    assert_eq!(engine_incarnation(&id).await, before);

    // RebootBroker applies both on the same volume.
    let t_reboot = Instant::now();
    assert_eq!(
        app.post_json(&format!("/v1/brokers/{id}/reboot"), &json!({}))
            .await
            .status(),
        200
    );
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(180))
        .await;
    eprintln!("[activemq] reboot took {:.1?}", t_reboot.elapsed());
    assert_eq!(v["hostInstanceType"], "mq.m5.large", "{v}");
    assert!(v.get("pendingHostInstanceType").is_none(), "{v}");
    assert_eq!(v["configurations"]["current"]["revision"], 3, "{v}");
    assert_eq!(memory_limit(&id).await, 8 << 30, "mq.m5.large: 8 GiB");
    assert_ne!(
        engine_incarnation(&id).await.0,
        before.0,
        "the container restarted"
    );
    assert_eq!(
        endpoint_with_scheme(&v, "tcp"),
        url,
        "endpoints are stable across reboots"
    );

    let got = jms_ok(
        &url,
        ADMIN,
        ADMIN_PW,
        "receive",
        &["--dest", "durable.q", "--count", "100", "--timeout", "10"],
    )
    .await;
    assert_eq!(
        got.int("distinct"),
        100,
        "messages survive the reboot and the resize"
    );

    // Revision 3 is live: its policyEntry for `custom.>` dead-letters to DEAD.<queue>
    // after one redelivery (its redeliveryPlugin), and the rendered activemq.xml has it.
    let dlq = jms(
        &url,
        ADMIN,
        ADMIN_PW,
        "dlq",
        &[
            "--dest",
            "custom.x",
            "--dlq",
            "DEAD.custom.x",
            "--timeout",
            "60",
        ],
        Duration::from_secs(90),
    )
    .await;
    eprintln!("[activemq] revision 3 DLQ: {}", dlq.result);
    assert!(dlq.ok && dlq.flag("in_dlq"), "{dlq:?}");
    assert_eq!(
        dlq.int("deliveries"),
        2,
        "1 + maximumRedeliveries (1): {dlq:?}"
    );
    assert_eq!(dlq.result["original_destination"], "queue://custom.x");
    let rendered = docker(&[
        "exec",
        &container(&id),
        "cat",
        "/etc/activemq/instances-enabled/berth/activemq.xml",
    ])
    .await;
    assert!(
        rendered.contains(r#"queue="custom.&gt;""#) && rendered.contains(r#"queuePrefix="DEAD.""#),
        "rendered activemq.xml lacks revision 3's policyEntry:\n{rendered}"
    );
    assert!(
        rendered.contains(r#"maximumRedeliveries="1""#),
        "{rendered}"
    );
    assert!(
        rendered.contains("readers"),
        "authorization entries kept: {rendered}"
    );
    eprintln!("[activemq] revision checks done after {:.1?}", t0.elapsed());

    delete_broker(&app, &id).await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------

async fn expect_400(resp: reqwest::Response, attribute: &str) -> String {
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["errorAttribute"], attribute, "{v}");
    v["message"].as_str().unwrap_or_default().to_owned()
}

/// What ActiveMQ brokers and configurations refuse, and what they accept that RabbitMQ's
/// do not (API only: an in-memory runtime, no containers).
#[tokio::test]
async fn activemq_bad_input_is_refused_and_revisions_are_sanitized() {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        ACTIVEMQ_IMAGE,
        berth_tests::RABBITMQ_IMAGE,
    ]));
    let app = spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), |_| {}).await;
    let good = || {
        activemq_broker(
            &unique("amq-input"),
            json!([{"username": ADMIN, "password": ADMIN_PW}]),
        )
    };

    let mut b = good();
    b["deploymentMode"] = json!("CLUSTER_MULTI_AZ");
    expect_400(app.post_json("/v1/brokers", &b).await, "deploymentMode").await;

    let mut b = good();
    b["hostInstanceType"] = json!("mq.m7g.medium");
    let msg = expect_400(app.post_json("/v1/brokers", &b).await, "hostInstanceType").await;
    for t in ["mq.t3.micro", "mq.m5.large"] {
        assert!(msg.contains(t), "supported instance types listed: {msg}");
    }

    let mut b = good();
    b["engineVersion"] = json!("5.18");
    let msg = expect_400(app.post_json("/v1/brokers", &b).await, "engineVersion").await;
    assert!(msg.contains("5.17"), "supported version named: {msg}");

    // `~` in a user name: fine for ActiveMQ, refused for RabbitMQ.
    let mut b = good();
    b["users"] = json!([{"username": TILDE_USER, "password": TILDE_PW}]);
    let id = app.create_broker(&b).await;
    let users: Value = app
        .get(&format!("/v1/brokers/{id}/users"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users["users"][0]["username"], TILDE_USER, "{users}");
    let rabbit = berth_tests::rabbitmq_broker(&unique("rmq-input"), TILDE_USER, TILDE_PW);
    let resp = app.post_json("/v1/brokers", &rabbit).await;
    assert_eq!(resp.status(), 400, "RabbitMQ refuses `~` in user names");

    // Configurations: revision 1 is Berth's default; bad XML is a 400 on `data` and adds
    // no revision; a disallowed element is removed with a warning.
    let resp = app
        .post_json(
            "/v1/configurations",
            &json!({"name": unique("amq-input"), "engineType": "ACTIVEMQ"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let c: Value = resp.json().await.unwrap();
    let cid = c["id"].as_str().unwrap().to_owned();
    let d: Value = app
        .get(&format!("/v1/configurations/{cid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&d["engineType"], &d["engineVersion"]),
        (&json!("ACTIVEMQ"), &json!("5.17")),
        "engineVersion defaults to 5.17: {d}"
    );
    let put = |xml: &'static str| {
        let app = &app;
        let cid = cid.clone();
        async move {
            app.put_json(
                &format!("/v1/configurations/{cid}"),
                &json!({"data": b64(xml)}),
            )
            .await
        }
    };
    expect_400(
        put("<broker xmlns=\"http://activemq.apache.org/schema/core\"><plugins></broker>").await,
        "data",
    )
    .await;
    expect_400(
        put("<?xml version=\"1.0\"?>\n<!DOCTYPE broker [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n\
             <broker xmlns=\"http://activemq.apache.org/schema/core\">&x;</broker>")
        .await,
        "data",
    )
    .await;
    let resp = put(
        "<broker xmlns=\"http://activemq.apache.org/schema/core\" schedulerSupport=\"true\">\
         <managementContext><managementContext createConnector=\"true\"/></managementContext>\
         <destinationPolicy><policyMap><policyEntries>\
         <policyEntry queue=\"limited.&gt;\" maxPageSize=\"50\"/>\
         </policyEntries></policyMap></destinationPolicy></broker>",
    )
    .await;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["latestRevision"]["revision"], 2,
        "the bad ones added none: {v}"
    );
    assert_eq!(
        v["warnings"],
        json!([{"reason": "DISALLOWED_ELEMENT_REMOVED", "elementName": "managementContext"}]),
        "{v}"
    );
    let rev: Value = app
        .get(&format!("/v1/configurations/{cid}/revisions/2"))
        .await
        .json()
        .await
        .unwrap();
    let data = unb64(rev["data"].as_str().unwrap());
    assert!(!data.contains("managementContext"), "{data}");
    assert!(data.contains(r#"maxPageSize="50""#), "{data}");
    app.stop().await;
}
