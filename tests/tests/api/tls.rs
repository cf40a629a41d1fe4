//! Every TLS endpoint DescribeBroker lists, for RabbitMQ (the default version) and
//! ActiveMQ: the handshake verifies against the installation CA (and only that CA: a
//! client trusting another CA is refused), the broker certificate names `127.0.0.1` and
//! `localhost` and chains to the CA, and a real client carries a message over it
//! (AMQPS with lapin, AMQP 1.0 over TLS with fe2o3, MQTT+SSL with rumqttc, STOMP+SSL and
//! WSS with the shared STOMP/MQTT clients of `clients/`, the HTTPS console with reqwest,
//! ActiveMQ's OpenWire `ssl://` up to its WireFormatInfo). The plaintext endpoints keep
//! working next to them, and `GET /ca.pem` serves the CA unsigned.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth::tls::CertificateAuthority;
use berth_tests::{rabbitmq_broker, require_engine_image, spawn_app, TestApp};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::Connection as Amqp10Connection;
use lapin::tcp::OwnedTLSConfig;
use lapin::{Connection, ConnectionProperties};
use rumqttc::{TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, ClientConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use x509_parser::extensions::GeneralName;

use crate::amqp;
use crate::clients::amqp10::{amqp10_queue_address, amqp10_round_trip};
use crate::clients::io::{client_config, tcp, tls_connect};
use crate::clients::mqtt::{mqtt_options, mqtt_round_trip, web_mqtt_round_trip, WsMqtt};
use crate::clients::stomp::{stomp_round_trip, Stomp};
use crate::clients::ws::{ws_over, Wire, Ws};
use crate::clients::{
    assert_endpoint_layout, authority, endpoint_list, within, RabbitMqEndpoints, STEP,
};

const USER: &str = "tls-user";
const PASSWORD: &str = "tls-Passw0rd-42";

/// ActiveMQ's endpoints in DescribeBroker's order: OpenWire, STOMP, MQTT, WebSocket
/// (STOMP or MQTT by subprotocol, no path), TLS first.
const ACTIVEMQ_SCHEMES: [&str; 8] = [
    "ssl",
    "stomp+ssl",
    "mqtt+ssl",
    "wss",
    "tcp",
    "stomp",
    "mqtt",
    "ws",
];

// ---------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn the_installation_ca_is_served_unsigned_at_ca_pem() {
    let app = spawn_app().await;
    let resp = reqwest::Client::new()
        .get(format!("{}/ca.pem", app.address))
        .send()
        .await
        .expect("GET /ca.pem");
    assert_eq!(resp.status(), 200);
    let served = resp.text().await.unwrap();
    assert_eq!(
        served,
        app.ca_pem(),
        "GET /ca.pem differs from data_dir/ca.pem"
    );
    let der = CertificateDer::from_pem_slice(served.as_bytes()).expect("a PEM certificate");
    let (_, ca) = x509_parser::parse_x509_certificate(&der).expect("X.509");
    assert!(ca.is_ca(), "{}", ca.subject());
    assert!(
        ca.subject().to_string().contains(&app.installation),
        "CA subject {} does not name installation {}",
        ca.subject(),
        app.installation
    );
    app.stop().await;
}

#[tokio::test]
async fn every_rabbitmq_tls_endpoint_verifies_against_the_installation_ca_and_carries_messages() {
    let app = spawn_app().await;
    require_engine_image(&app.docker, "berth/rabbitmq:4.3").await;
    // No engineVersion: the default, RabbitMQ 4.3.
    let mut body = rabbitmq_broker(&broker_name("tls-rmq"), USER, PASSWORD);
    body.as_object_mut().unwrap().remove("engineVersion");
    let id = app.create_broker(&body).await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(180))
        .await;
    assert_eq!(v["engineVersion"], "4.3", "{v}");
    let ep = RabbitMqEndpoints::of(&v);
    let trust = Trust::new(&app);

    // Every TLS endpoint, the console included, serves one certificate for the broker.
    let tls_endpoints = [
        ("AMQPS", &ep.amqps),
        ("MQTT+SSL", &ep.mqtts),
        ("STOMP+SSL", &ep.stomps),
        ("Web-STOMP wss", &ep.web_stomps),
        ("Web-MQTT wss", &ep.web_mqtts),
        ("console https", &ep.console),
    ];
    let leaves = futures_util::future::join_all(
        tls_endpoints
            .iter()
            .map(|(label, url)| check_certificate(label, url, &trust)),
    )
    .await;
    assert_one_certificate(&tls_endpoints, &leaves);

    // A message over each TLS endpoint with the real protocol, and over the plaintext
    // ones (own queues, topics and client ids; run together).
    tokio::join!(
        amqps(&ep.amqps, &trust),
        amqp10_over_tls(&ep.amqps, &ep.amqp, &trust),
        mqtts("MQTT+SSL", &ep.mqtts, "berth-tls-mqtts", &trust),
        stomps("STOMP+SSL", &ep.stomps, "tls-stomps", &trust),
        wss_stomp("Web-STOMP wss", &ep.web_stomps, "tls-web-stomps", &trust),
        wss_mqtt("Web-MQTT wss", &ep.web_mqtts, "berth-tls-wss-mqtt", &trust),
        console(&ep.console, &trust),
        plaintext_amqp(&ep.amqp),
        plaintext_mqtt("MQTT", &ep.mqtt, "berth-tls-plain-mqtt"),
        plaintext_stomp("STOMP", &ep.stomp, "tls-plain-stomp"),
        plaintext_ws_stomp("Web-STOMP ws", &ep.web_stomp, "tls-plain-web-stomp"),
        plaintext_ws_mqtt("Web-MQTT ws", &ep.web_mqtt, "berth-tls-plain-ws-mqtt"),
    );

    delete_broker(app, &id).await;
}

#[tokio::test]
async fn every_activemq_tls_endpoint_verifies_against_the_installation_ca_and_carries_messages() {
    let app = spawn_app().await;
    require_engine_image(&app.docker, "berth/activemq:5.17").await;
    let id = app
        .create_broker(&activemq_broker(&broker_name("tls-amq")))
        .await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(240))
        .await;
    assert_eq!(v["engineVersion"], "5.17", "{v}");
    let all = endpoint_list(&v);
    assert_endpoint_layout(&all, &ACTIVEMQ_SCHEMES, "");
    let console = &v["brokerInstances"][0]["consoleURL"];
    assert!(
        console.is_null(),
        "ActiveMQ has no web console, yet consoleURL is {console}"
    );
    let all: [String; 8] = all.try_into().unwrap();
    let [ssl_url, stomps_url, mqtts_url, wss_url, tcp_url, stomp_url, mqtt_url, ws_url] = all;
    let trust = Trust::new(&app);

    let tls_endpoints = [
        ("OpenWire ssl", &ssl_url),
        ("STOMP+SSL", &stomps_url),
        ("MQTT+SSL", &mqtts_url),
        ("WebSocket wss", &wss_url),
    ];
    let leaves = futures_util::future::join_all(
        tls_endpoints
            .iter()
            .map(|(label, url)| check_certificate(label, url, &trust)),
    )
    .await;
    assert_one_certificate(&tls_endpoints, &leaves);

    tokio::join!(
        openwire_ssl(&ssl_url, &trust),
        stomps("STOMP+SSL", &stomps_url, "tls-stomps", &trust),
        mqtts("MQTT+SSL", &mqtts_url, "berth-tls-mqtts", &trust),
        wss_stomp("WebSocket wss (STOMP)", &wss_url, "tls-wss-stomp", &trust),
        wss_mqtt(
            "WebSocket wss (MQTT)",
            &wss_url,
            "berth-tls-wss-mqtt",
            &trust
        ),
        openwire_tcp(&tcp_url),
        plaintext_stomp("STOMP", &stomp_url, "tls-plain-stomp"),
        plaintext_mqtt("MQTT", &mqtt_url, "berth-tls-plain-mqtt"),
        plaintext_ws_stomp("WebSocket ws (STOMP)", &ws_url, "tls-plain-ws-stomp"),
        plaintext_ws_mqtt("WebSocket ws (MQTT)", &ws_url, "berth-tls-plain-ws-mqtt"),
    );

    delete_broker(app, &id).await;
}

// ---------------------------------------------------------------------------------------
// Brokers.

fn broker_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A single-instance ActiveMQ 5.17 broker with one user.
fn activemq_broker(name: &str) -> Value {
    json!({
        "brokerName": name,
        "engineType": "ACTIVEMQ",
        "engineVersion": "5.17",
        "deploymentMode": "SINGLE_INSTANCE",
        "hostInstanceType": "mq.m5.large",
        "publiclyAccessible": false,
        "autoMinorVersionUpgrade": true,
        "users": [{ "username": USER, "password": PASSWORD }],
        "creatorRequestId": uuid::Uuid::new_v4().to_string(),
    })
}

/// DeleteBroker, then: gone, no Docker object left.
async fn delete_broker(app: TestApp, id: &str) {
    let resp = app.delete(&format!("/v1/brokers/{id}")).await;
    assert_eq!(resp.status(), 200);
    app.wait_until_gone(id, Duration::from_secs(60)).await;
    assert_eq!(app.docker_objects(id).await, Vec::<String>::new());
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// TLS clients and the certificate.

/// Client TLS configurations: one trusting only the installation CA, one trusting only
/// another CA (made here, as another installation would have).
struct Trust {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    trusted: Arc<ClientConfig>,
    other_pem: String,
    other: Arc<ClientConfig>,
}

impl Trust {
    fn new(app: &TestApp) -> Trust {
        let ca_pem = app.ca_pem();
        let other = CertificateAuthority::generate("another-installation", SystemTime::now())
            .expect("another CA");
        let other_pem = other.cert_pem().to_owned();
        Trust {
            ca_der: CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM"),
            trusted: client_config(&ca_pem),
            other: client_config(&other_pem),
            ca_pem,
            other_pem,
        }
    }
}

/// [`tls_connect`] trusting the installation CA; panics naming the endpoint on failure.
async fn tls(label: &str, url: &str, trust: &Trust) -> TlsStream<TcpStream> {
    tls_connect(url, trust.trusted.clone())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{label} ({url}): TLS handshake verified against the installation CA failed: {e}"
            )
        })
}

/// On the endpoint `url`: the handshake trusting the installation CA succeeds; the leaf
/// is a server certificate signed by the CA, valid now, naming `127.0.0.1` (IP SAN) and
/// `localhost` (DNS SAN); anything the server sends after it is the CA itself; a client
/// trusting another CA fails the handshake on an unknown issuer. Returns the leaf (DER).
async fn check_certificate(label: &str, url: &str, trust: &Trust) -> Vec<u8> {
    let stream = tls(label, url, trust).await;
    let chain = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")
        .to_vec();
    drop(stream);
    let leaf_der = chain[0].to_vec();
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der)
        .unwrap_or_else(|e| panic!("{label}: unreadable certificate: {e}"));
    let (_, ca) = x509_parser::parse_x509_certificate(&trust.ca_der).unwrap();
    assert!(!leaf.is_ca(), "{label}: the server certificate is a CA");
    assert_eq!(
        leaf.issuer().to_string(),
        ca.subject().to_string(),
        "{label}: issuer"
    );
    leaf.verify_signature(Some(ca.public_key()))
        .unwrap_or_else(|e| panic!("{label}: certificate not signed by the installation CA: {e}"));
    assert!(leaf.validity().is_valid(), "{label}: {:?}", leaf.validity());
    let sans = leaf
        .subject_alternative_name()
        .unwrap_or_else(|e| panic!("{label}: bad subjectAltName: {e}"))
        .unwrap_or_else(|| panic!("{label}: no subjectAltName"));
    let names = &sans.value.general_names;
    assert!(
        names
            .iter()
            .any(|n| matches!(n, GeneralName::IPAddress(ip) if *ip == [127, 0, 0, 1])),
        "{label}: no IP SAN 127.0.0.1 in {names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName("localhost"))),
        "{label}: no DNS SAN localhost in {names:?}"
    );
    for extra in &chain[1..] {
        assert_eq!(
            extra.as_ref(),
            trust.ca_der.as_ref(),
            "{label}: the chain holds a certificate other than the leaf and the CA"
        );
    }

    match tls_connect(url, trust.other.clone()).await {
        Ok(_) => panic!("{label} ({url}): a client trusting another CA completed the handshake"),
        Err(e) => {
            let cause = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            assert!(
                matches!(
                    cause,
                    Some(rustls::Error::InvalidCertificate(
                        CertificateError::UnknownIssuer
                    ))
                ),
                "{label} ({url}): trusting another CA should fail on an unknown issuer, got {e:?}"
            );
        }
    }
    leaf_der
}

/// All TLS endpoints of a broker present the same certificate (one per broker).
fn assert_one_certificate(endpoints: &[(&str, &String)], leaves: &[Vec<u8>]) {
    for ((label, url), leaf) in endpoints.iter().zip(leaves) {
        assert!(
            leaf == &leaves[0],
            "{label} ({url}) presents another certificate than {} ({})",
            endpoints[0].0,
            endpoints[0].1
        );
    }
}

// ---------------------------------------------------------------------------------------
// Protocols over TLS.

/// AMQP 0-9-1 over TLS with lapin (`amqps://`, only the installation CA trusted): a
/// confirmed persistent message round-trips. lapin trusting another CA cannot connect.
async fn amqps(url: &str, trust: &Trust) {
    assert!(url.starts_with("amqps://"), "{url}");
    let uri = format!("amqps://{USER}:{PASSWORD}@{}/%2f", authority(url));
    let connect = |ca_pem: &str| {
        Connection::connect_with_config(
            &uri,
            ConnectionProperties::default(),
            OwnedTLSConfig {
                identity: None,
                cert_chain: Some(ca_pem.to_owned()),
            },
            lapin::runtime::default_runtime().unwrap(),
        )
    };
    let conn = within("AMQPS connect", connect(&trust.ca_pem))
        .await
        .unwrap_or_else(|e| panic!("AMQPS ({url}) login with the broker user: {e}"));
    amqp::round_trip("AMQPS", &conn, "tls-amqps", b"hello amqps").await;
    let _ = conn.close(200, "bye".into()).await;

    let refused = within("AMQPS trusting another CA", connect(&trust.other_pem)).await;
    let err = refused.expect_err("lapin trusting another CA connected over AMQPS");
    assert!(
        format!("{err:?}").contains("UnknownIssuer"),
        "AMQPS trusting another CA: {err:?}"
    );
}

/// AMQP 1.0 over TLS on the AMQPS port (RabbitMQ 4 speaks it natively): a message to an
/// existing queue (declared over plaintext 0-9-1) is accepted and received back.
async fn amqp10_over_tls(amqps_url: &str, amqp_url: &str, trust: &Trust) {
    const QUEUE: &str = "tls-amqp10";
    let conn = within(
        "AMQP 0-9-1 connect",
        amqp::connect(amqp_url, USER, PASSWORD),
    )
    .await
    .expect("AMQP 0-9-1 login");
    amqp::declare_durable(&conn, QUEUE).await;
    let _ = conn.close(200, "bye".into()).await;

    let stream = tls("AMQP 1.0 over TLS", amqps_url, trust).await;
    let mut connection = within(
        "AMQP 1.0 over TLS open",
        Amqp10Connection::builder()
            .container_id("berth-tls-test")
            .hostname("vhost:/")
            .sasl_profile(SaslProfile::Plain {
                username: USER.into(),
                password: PASSWORD.into(),
            })
            .open_with_stream(stream),
    )
    .await
    .expect("AMQP 1.0 over TLS login with the broker user");
    amqp10_round_trip(
        "AMQP 1.0 over TLS",
        &mut connection,
        &amqp10_queue_address("4.3", QUEUE),
        "hello amqps 1.0",
    )
    .await;
    let _ = connection.close().await;
}

/// MQTT over TLS with rumqttc (its rustls transport, only the installation CA trusted).
async fn mqtts(label: &str, url: &str, client_id: &str, trust: &Trust) {
    assert!(url.starts_with("mqtt+ssl://"), "{url}");
    let mut opts = mqtt_options(client_id, url, USER, PASSWORD);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        trust.trusted.clone(),
    )));
    let body = format!("hello {label}");
    mqtt_round_trip(
        label,
        opts,
        &format!("berth/tls/{client_id}"),
        body.as_bytes(),
    )
    .await;
}

/// STOMP 1.2 over a TLS stream.
async fn stomps(label: &str, url: &str, queue: &str, trust: &Trust) {
    assert!(url.starts_with("stomp+ssl://"), "{url}");
    let stream = tls(label, url, trust).await;
    let session = Stomp::new(Wire::Stream(Box::new(stream)));
    stomp_round_trip(label, session, USER, PASSWORD, queue).await;
}

/// A WebSocket over TLS (`wss://`) asking for `subprotocol`.
async fn wss(label: &str, url: &str, subprotocol: &'static str, trust: &Trust) -> Ws {
    assert!(url.starts_with("wss://"), "{url}");
    let stream = tls(label, url, trust).await;
    ws_over(Box::new(stream), url, subprotocol).await
}

/// STOMP 1.2 over `wss://` (subprotocol `v12.stomp`).
async fn wss_stomp(label: &str, url: &str, queue: &str, trust: &Trust) {
    let ws = wss(label, url, "v12.stomp", trust).await;
    let session = Stomp::new(Wire::Ws(Box::new(ws)));
    stomp_round_trip(label, session, USER, PASSWORD, queue).await;
}

/// MQTT over `wss://` (subprotocol `mqtt`).
async fn wss_mqtt(label: &str, url: &str, client_id: &str, trust: &Trust) {
    let ws = wss(label, url, "mqtt", trust).await;
    let topic = format!("berth/tls/{client_id}");
    let body = format!("hello {label}");
    let good = WsMqtt::over(ws);
    web_mqtt_round_trip(
        label,
        good,
        client_id,
        USER,
        PASSWORD,
        &topic,
        body.as_bytes(),
    )
    .await;
}

/// The RabbitMQ management console over HTTPS: reqwest trusting only the installation CA
/// gets the overview as the broker user; trusting only another CA, no connection.
async fn console(base: &str, trust: &Trust) {
    assert!(base.starts_with("https://"), "{base}");
    let client = |pem: &str| {
        reqwest::Client::builder()
            .timeout(STEP)
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    };
    let url = format!("{base}/api/overview");
    let resp = client(&trust.ca_pem)
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap_or_else(|e| panic!("console {url}: {e:?}"));
    assert_eq!(resp.status(), 200);
    let overview: Value = resp.json().await.expect("overview JSON");
    assert_eq!(overview["rabbitmq_version"], "4.3.6", "{overview}");

    let err = client(&trust.other_pem)
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect_err("the console answered a client trusting another CA");
    assert!(
        format!("{err:?}").contains("UnknownIssuer"),
        "console trusting another CA: {err:?}"
    );
}

/// ActiveMQ's first bytes on an OpenWire connection: the WireFormatInfo command (a 4-byte
/// size, type 1, then the magic `ActiveMQ`).
async fn openwire_hello(label: &str, mut stream: impl AsyncRead + Unpin) {
    let mut head = [0u8; 13];
    within(
        &format!("{label} WireFormatInfo"),
        stream.read_exact(&mut head),
    )
    .await
    .unwrap_or_else(|e| panic!("{label}: no WireFormatInfo: {e}"));
    assert_eq!(
        head[4], 1,
        "{label}: first command is not WireFormatInfo: {head:?}"
    );
    assert_eq!(&head[5..], b"ActiveMQ", "{label}: {head:?}");
}

/// OpenWire over TLS (`ssl://`): the broker speaks first, with its WireFormatInfo.
async fn openwire_ssl(url: &str, trust: &Trust) {
    assert!(url.starts_with("ssl://"), "{url}");
    let stream = tls("OpenWire ssl", url, trust).await;
    openwire_hello("OpenWire ssl", stream).await;
}

// ---------------------------------------------------------------------------------------
// The plaintext endpoints, next to the TLS ones.

async fn plaintext_amqp(url: &str) {
    assert!(url.starts_with("amqp://"), "{url}");
    let conn = within("AMQP connect", amqp::connect(url, USER, PASSWORD))
        .await
        .expect("AMQP login with the broker user");
    amqp::round_trip("AMQP", &conn, "tls-plain-amqp", b"hello amqp").await;
    let _ = conn.close(200, "bye".into()).await;
}

async fn plaintext_mqtt(label: &str, url: &str, client_id: &str) {
    assert!(url.starts_with("mqtt://"), "{url}");
    let opts = mqtt_options(client_id, url, USER, PASSWORD);
    let body = format!("hello {label}");
    mqtt_round_trip(
        label,
        opts,
        &format!("berth/tls/{client_id}"),
        body.as_bytes(),
    )
    .await;
}

async fn plaintext_stomp(label: &str, url: &str, queue: &str) {
    assert!(url.starts_with("stomp://"), "{url}");
    let session = Stomp::new(Wire::tcp(authority(url)).await);
    stomp_round_trip(label, session, USER, PASSWORD, queue).await;
}

async fn plaintext_ws_stomp(label: &str, url: &str, queue: &str) {
    let session = Stomp::new(Wire::ws(url, "v12.stomp").await);
    stomp_round_trip(label, session, USER, PASSWORD, queue).await;
}

async fn plaintext_ws_mqtt(label: &str, url: &str, client_id: &str) {
    let topic = format!("berth/tls/{client_id}");
    let body = format!("hello {label}");
    let good = WsMqtt::open(url).await;
    web_mqtt_round_trip(
        label,
        good,
        client_id,
        USER,
        PASSWORD,
        &topic,
        body.as_bytes(),
    )
    .await;
}

/// OpenWire in plaintext (`tcp://`).
async fn openwire_tcp(url: &str) {
    assert!(url.starts_with("tcp://"), "{url}");
    openwire_hello("OpenWire tcp", tcp(authority(url)).await).await;
}
