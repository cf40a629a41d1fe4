//! Every client endpoint DescribeBroker reports works with a real client and the broker
//! user, and refuses a wrong password: AMQP 0-9-1 and AMQP 1.0 (same port), MQTT 3.1.1,
//! STOMP 1.2, Web-STOMP and Web-MQTT over WebSocket, and the management console's HTTP API.

use std::future::Future;
use std::time::Duration;

use berth_tests::{amqp_endpoint, rabbitmq_broker, require_image, spawn_app};
use bytes::BytesMut;
use fe2o3_amqp::connection::OpenError;
use fe2o3_amqp::types::messaging::Outcome;
use fe2o3_amqp::types::sasl::SaslCode;
use fe2o3_amqp::{Connection as Amqp10Connection, Receiver, Sender, Session};
use futures_util::{SinkExt, StreamExt};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, NetworkOptions, Packet,
    QoS,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::amqp;

const USER: &str = "proto-user";
const PASSWORD: &str = "pr0tocols-Passw0rd";
const WRONG: &str = "not-the-Passw0rd";

/// Bound on one network step (connect, a reply, a delivery). RabbitMQ answers a wrong
/// password after ~3 s on AMQP 1.0 and MQTT, so this leaves ample room.
const STEP: Duration = Duration::from_secs(20);

/// Runs `fut` with the [`STEP`] bound; panics naming `what` when it runs out.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {STEP:?}"))
}

/// The client endpoints of one broker instance, by protocol.
struct Endpoints {
    amqp: String,
    mqtt: (String, u16),
    stomp: String,
    web_stomp: String,
    web_mqtt: String,
    console: String,
}

impl Endpoints {
    fn of(describe: &Value) -> Endpoints {
        let instance = &describe["brokerInstances"][0];
        let all: Vec<&str> = instance["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for e in &all {
            assert!(
                e.contains("://127.0.0.1:"),
                "endpoint {e} is not on loopback"
            );
        }
        let one = |scheme: &str| -> String {
            let found: Vec<&&str> = all.iter().filter(|e| e.starts_with(scheme)).collect();
            assert_eq!(found.len(), 1, "one {scheme} endpoint expected in {all:?}");
            found[0].to_string()
        };
        // Web-STOMP (container port 15674) is listed before Web-MQTT (15675); both are
        // `ws://host:port/ws`, so only the order tells them apart.
        let ws: Vec<&str> = all
            .iter()
            .copied()
            .filter(|e| e.starts_with("ws://"))
            .collect();
        assert_eq!(ws.len(), 2, "Web-STOMP and Web-MQTT expected in {all:?}");
        assert!(ws.iter().all(|e| e.ends_with("/ws")), "{ws:?}");
        let mqtt = one("mqtt://");
        let (host, port) = mqtt
            .trim_start_matches("mqtt://")
            .rsplit_once(':')
            .expect("mqtt host:port");
        Endpoints {
            amqp: amqp_endpoint(describe),
            mqtt: (host.to_owned(), port.parse().expect("mqtt port")),
            stomp: one("stomp://").trim_start_matches("stomp://").to_owned(),
            web_stomp: ws[0].to_owned(),
            web_mqtt: ws[1].to_owned(),
            console: instance["consoleURL"]
                .as_str()
                .expect("consoleURL")
                .to_owned(),
        }
    }
}

#[tokio::test]
async fn every_reported_protocol_endpoint_serves_the_broker_user_and_refuses_a_wrong_password() {
    let app = spawn_app().await;
    require_image(&app.docker).await;
    let name = format!(
        "protocols-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let id = app
        .create_broker(&rabbitmq_broker(&name, USER, PASSWORD))
        .await;
    let v = app
        .wait_for_state(&id, "RUNNING", Duration::from_secs(120))
        .await;
    let ep = Endpoints::of(&v);

    // Independent checks (own queues, topics and client ids), run together so the ~3 s
    // refusal delays of AMQP 1.0, MQTT and Web-MQTT overlap.
    tokio::join!(
        amqp_091(&ep.amqp),
        amqp_10(&ep.amqp),
        mqtt(&ep.mqtt.0, ep.mqtt.1),
        stomp(&ep.stomp),
        web_stomp(&ep.web_stomp),
        web_mqtt(&ep.web_mqtt),
        console(&ep.console),
    );

    let resp = app.delete(&format!("/v1/brokers/{id}")).await;
    assert_eq!(resp.status(), 200);
    app.wait_until_gone(&id, Duration::from_secs(60)).await;
    assert_eq!(app.docker_objects(&id).await, Vec::<String>::new());
    app.stop().await;
}

/// AMQP 0-9-1: a confirmed persistent message round-trips; a wrong password is refused.
async fn amqp_091(endpoint: &str) {
    let conn = within(
        "AMQP 0-9-1 connect",
        amqp::connect(endpoint, USER, PASSWORD),
    )
    .await
    .expect("AMQP 0-9-1 login with the broker user");
    within(
        "AMQP 0-9-1 publish",
        amqp::publish_persistent(&conn, "proto-amqp091", b"hello 0-9-1"),
    )
    .await;
    assert_eq!(
        within("AMQP 0-9-1 get", amqp::get_one(&conn, "proto-amqp091"))
            .await
            .as_deref(),
        Some(&b"hello 0-9-1"[..])
    );
    let _ = conn.close(200, "bye".into()).await;

    let refused = within(
        "AMQP 0-9-1 wrong password",
        amqp::connect(endpoint, USER, WRONG),
    )
    .await;
    let err = refused.expect_err("AMQP 0-9-1 accepted a wrong password");
    assert!(err.to_string().contains("ACCESS_REFUSED"), "{err}");
}

/// AMQP 1.0 on the AMQP port: a message sent to a `/queues/NAME` address (v2 address
/// format; the queue is declared over 0-9-1 first, as such addresses never create one)
/// is accepted and received back; a wrong password fails the SASL exchange.
async fn amqp_10(endpoint: &str) {
    const QUEUE: &str = "proto-amqp10";
    let conn = within(
        "AMQP 0-9-1 connect",
        amqp::connect(endpoint, USER, PASSWORD),
    )
    .await
    .expect("AMQP 0-9-1 login");
    amqp::declare_durable(&conn, QUEUE).await;
    let _ = conn.close(200, "bye".into()).await;

    let hostport = endpoint.trim_start_matches("amqp://");
    let url = format!("amqp://{USER}:{PASSWORD}@{hostport}");
    let mut connection = within(
        "AMQP 1.0 open",
        Amqp10Connection::builder()
            .container_id("berth-protocols-test")
            .hostname("vhost:/")
            .open(url.as_str()),
    )
    .await
    .expect("AMQP 1.0 login with the broker user");
    let mut session = within("AMQP 1.0 begin", Session::begin(&mut connection))
        .await
        .expect("AMQP 1.0 session");
    let address = format!("/queues/{QUEUE}");
    let mut sender = within(
        "AMQP 1.0 sender attach",
        Sender::attach(&mut session, "proto-sender", address.as_str()),
    )
    .await
    .expect("AMQP 1.0 sender");
    let outcome: Outcome = within("AMQP 1.0 send", sender.send("hello 1.0"))
        .await
        .expect("AMQP 1.0 send");
    assert!(
        matches!(outcome, Outcome::Accepted(_)),
        "AMQP 1.0 message not accepted: {outcome:?}"
    );
    let mut receiver = within(
        "AMQP 1.0 receiver attach",
        Receiver::attach(&mut session, "proto-receiver", address.as_str()),
    )
    .await
    .expect("AMQP 1.0 receiver");
    let delivery = within("AMQP 1.0 receive", receiver.recv::<String>())
        .await
        .expect("AMQP 1.0 delivery");
    assert_eq!(delivery.body(), "hello 1.0");
    within("AMQP 1.0 accept", receiver.accept(&delivery))
        .await
        .expect("AMQP 1.0 accept");
    let _ = sender.close().await;
    let _ = receiver.close().await;
    let _ = session.end().await;
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

fn mqtt_options(client_id: &str, host: &str, port: u16, password: &str) -> MqttOptions {
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_credentials(USER, password);
    opts.set_keep_alive(Duration::from_secs(30));
    opts
}

fn mqtt_network() -> NetworkOptions {
    let mut net = NetworkOptions::new();
    net.set_connection_timeout(STEP.as_secs());
    net
}

/// MQTT 3.1.1: CONNACK 0, then a QoS 1 publish on a subscribed topic is acknowledged and
/// delivered back; a wrong password gets CONNACK 4 (bad user name or password).
async fn mqtt(host: &str, port: u16) {
    const TOPIC: &str = "berth/protocols/mqtt";
    let (client, mut events) =
        AsyncClient::new(mqtt_options("berth-proto-mqtt", host, port, PASSWORD), 10);
    events.set_network_options(mqtt_network());
    client
        .subscribe(TOPIC, QoS::AtLeastOnce)
        .await
        .expect("queue SUBSCRIBE");
    let (mut connack, mut suback, mut puback, mut received) = (false, false, false, None);
    while received.is_none() || !puback {
        let event = within("MQTT event", events.poll())
            .await
            .expect("MQTT connection");
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, ConnectReturnCode::Success);
                connack = true;
            }
            Event::Incoming(Packet::SubAck(_)) => {
                suback = true;
                client
                    .publish(TOPIC, QoS::AtLeastOnce, false, &b"hello mqtt"[..])
                    .await
                    .expect("queue PUBLISH");
            }
            Event::Incoming(Packet::PubAck(_)) => puback = true,
            Event::Incoming(Packet::Publish(p)) => {
                assert_eq!(p.topic, TOPIC);
                assert_eq!(p.qos, QoS::AtLeastOnce);
                received = Some(p.payload.to_vec());
            }
            _ => {}
        }
    }
    assert!(connack && suback);
    assert_eq!(received.as_deref(), Some(&b"hello mqtt"[..]));
    let _ = client.disconnect().await;

    let (_bad_client, mut bad_events) =
        AsyncClient::new(mqtt_options("berth-proto-mqtt-bad", host, port, WRONG), 10);
    bad_events.set_network_options(mqtt_network());
    match within("MQTT wrong password", bad_events.poll()).await {
        Err(ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, ConnectReturnCode::BadUserNamePassword)
        }
        other => panic!("MQTT with a wrong password: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// STOMP 1.2 frames over TCP or WebSocket.

/// A STOMP frame as received.
#[derive(Debug)]
struct Frame {
    command: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Frame {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn frame(command: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("{command}\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}:{v}\n"));
    }
    out.push('\n');
    out.push_str(body);
    out.push('\0');
    out.into_bytes()
}

/// Splits the first complete frame off `buf` (skipping heart-beat EOLs), if there is one.
fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    let start = buf.iter().position(|b| *b != b'\n' && *b != b'\r')?;
    buf.drain(..start);
    let head_end = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
    let command = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let body_end = match length {
        Some(n) if buf.len() > head_end + n => head_end + n,
        Some(_) => return None,
        None => head_end + buf[head_end..].iter().position(|b| *b == 0)?,
    };
    assert_eq!(buf[body_end], 0, "STOMP frame not NUL-terminated");
    let body = buf[head_end..body_end].to_vec();
    buf.drain(..=body_end);
    Some(Frame {
        command,
        headers,
        body,
    })
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `url` asking for `subprotocol`, and checks the server chose it.
async fn ws_connect(url: &str, subprotocol: &'static str) -> Ws {
    let mut request = url.into_client_request().expect("ws request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(subprotocol),
    );
    let (ws, response) = within(
        &format!("WebSocket connect {url}"),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .unwrap_or_else(|e| panic!("WebSocket connect {url}: {e}"));
    assert_eq!(
        response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok()),
        Some(subprotocol),
        "{url} did not accept subprotocol {subprotocol}"
    );
    ws
}

/// A byte pipe: a TCP stream, or a WebSocket carrying one frame/packet per message.
enum Wire {
    Tcp(TcpStream),
    Ws(Box<Ws>),
}

impl Wire {
    async fn send(&mut self, bytes: Vec<u8>, text: bool) {
        match self {
            Wire::Tcp(s) => s.write_all(&bytes).await.expect("TCP write"),
            Wire::Ws(ws) => {
                let msg = if text {
                    Message::text(String::from_utf8(bytes).expect("UTF-8 frame"))
                } else {
                    Message::binary(bytes)
                };
                ws.send(msg).await.expect("WebSocket send")
            }
        }
    }

    /// The next bytes from the peer; None once it has closed the connection.
    async fn recv(&mut self) -> Option<Vec<u8>> {
        match self {
            Wire::Tcp(s) => {
                let mut chunk = vec![0u8; 4096];
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => None,
                    Ok(n) => {
                        chunk.truncate(n);
                        Some(chunk)
                    }
                }
            }
            Wire::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => return Some(t.as_bytes().to_vec()),
                    Some(Ok(Message::Binary(b))) => return Some(b.to_vec()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                    Some(Ok(_)) => continue,
                }
            },
        }
    }
}

struct Stomp {
    wire: Wire,
    buf: Vec<u8>,
}

impl Stomp {
    fn new(wire: Wire) -> Stomp {
        Stomp {
            wire,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, frame: Vec<u8>) {
        self.wire.send(frame, true).await
    }

    /// The next frame; None when the server closed the connection first.
    async fn next(&mut self, what: &str) -> Option<Frame> {
        within(what, async {
            loop {
                if let Some(f) = take_frame(&mut self.buf) {
                    return Some(f);
                }
                self.buf.extend(self.wire.recv().await?);
            }
        })
        .await
    }

    async fn connect(&mut self, password: &str) -> Frame {
        self.send(frame(
            "CONNECT",
            &[
                ("accept-version", "1.2"),
                ("host", "/"),
                ("login", USER),
                ("passcode", password),
                ("heart-beat", "0,0"),
            ],
            "",
        ))
        .await;
        self.next("STOMP reply to CONNECT")
            .await
            .expect("STOMP connection closed without a reply to CONNECT")
    }
}

/// CONNECTED (version 1.2), then SUBSCRIBE + SEND (with receipt) on `queue` delivers the
/// MESSAGE back; a second session with the wrong password gets an ERROR frame
/// ("Access refused").
async fn stomp_checks(label: &str, mut good: Stomp, mut bad: Stomp, queue: &str) {
    let reply = good.connect(PASSWORD).await;
    assert_eq!(reply.command, "CONNECTED", "{label}: {reply:?}");
    assert_eq!(reply.header("version"), Some("1.2"), "{label}: {reply:?}");
    let destination = format!("/queue/{queue}");
    good.send(frame(
        "SUBSCRIBE",
        &[("id", "0"), ("destination", &destination), ("ack", "auto")],
        "",
    ))
    .await;
    let body = format!("hello {label}");
    good.send(frame(
        "SEND",
        &[
            ("destination", &destination),
            ("content-type", "text/plain"),
            ("receipt", "sent-1"),
        ],
        &body,
    ))
    .await;
    let (mut receipt, mut message) = (false, None);
    while !receipt || message.is_none() {
        let f = good
            .next(&format!("{label} RECEIPT/MESSAGE"))
            .await
            .unwrap_or_else(|| panic!("{label}: connection closed"));
        match f.command.as_str() {
            "RECEIPT" => {
                assert_eq!(f.header("receipt-id"), Some("sent-1"));
                receipt = true;
            }
            "MESSAGE" => {
                assert_eq!(f.header("subscription"), Some("0"), "{f:?}");
                message = Some(f.body);
            }
            _ => panic!("{label}: unexpected frame {f:?}"),
        }
    }
    assert_eq!(message.as_deref(), Some(body.as_bytes()), "{label}");
    good.send(frame("DISCONNECT", &[], "")).await;

    let reply = bad.connect(WRONG).await;
    assert_eq!(reply.command, "ERROR", "{label} wrong password: {reply:?}");
    assert!(
        String::from_utf8_lossy(&reply.body).contains("Access refused"),
        "{label} wrong password: {reply:?}"
    );
}

/// STOMP 1.2 over plain TCP.
async fn stomp(hostport: &str) {
    let tcp = || async {
        let s = within("STOMP TCP connect", TcpStream::connect(hostport))
            .await
            .expect("STOMP TCP connect");
        Stomp::new(Wire::Tcp(s))
    };
    stomp_checks("STOMP", tcp().await, tcp().await, "proto-stomp").await;
}

/// STOMP 1.2 over WebSocket (subprotocol `v12.stomp`).
async fn web_stomp(url: &str) {
    let ws = || async { Stomp::new(Wire::Ws(Box::new(ws_connect(url, "v12.stomp").await))) };
    stomp_checks("Web-STOMP", ws().await, ws().await, "proto-web-stomp").await;
}

// ---------------------------------------------------------------------------------------
// MQTT 3.1.1 packets over WebSocket (encoded with rumqttc's codec).

const MAX_PACKET: usize = 64 * 1024;

struct WsMqtt {
    wire: Wire,
    buf: BytesMut,
}

impl WsMqtt {
    async fn open(url: &str) -> WsMqtt {
        WsMqtt {
            wire: Wire::Ws(Box::new(ws_connect(url, "mqtt").await)),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.write(&mut out, MAX_PACKET).expect("encode MQTT");
        self.wire.send(out.to_vec(), false).await
    }

    /// The next packet; None when the server closed the connection first.
    async fn next(&mut self, what: &str) -> Option<Packet> {
        within(what, async {
            loop {
                match Packet::read(&mut self.buf, MAX_PACKET) {
                    Ok(p) => return Some(p),
                    Err(rumqttc::Error::InsufficientBytes(_)) => {}
                    Err(e) => panic!("{what}: bad MQTT packet: {e:?}"),
                }
                self.buf.extend_from_slice(&self.wire.recv().await?);
            }
        })
        .await
    }

    async fn connect(&mut self, client_id: &str, password: &str) -> Option<Packet> {
        let mut connect = rumqttc::Connect::new(client_id);
        connect.keep_alive = 30;
        connect.set_login(USER, password);
        self.send(Packet::Connect(connect)).await;
        self.next("Web-MQTT CONNACK").await
    }
}

/// MQTT over WebSocket (subprotocol `mqtt`): CONNACK 0, a QoS 1 publish on a subscribed
/// topic is acknowledged and delivered back; a wrong password gets CONNACK 4 (bad user
/// name or password).
async fn web_mqtt(url: &str) {
    const TOPIC: &str = "berth/protocols/web-mqtt";
    let mut good = WsMqtt::open(url).await;
    match good.connect("berth-proto-web-mqtt", PASSWORD).await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.code, ConnectReturnCode::Success),
        other => panic!("Web-MQTT CONNECT: {other:?}"),
    }
    let mut subscribe = rumqttc::Subscribe::new(TOPIC, QoS::AtLeastOnce);
    subscribe.pkid = 1;
    good.send(Packet::Subscribe(subscribe)).await;
    match good.next("Web-MQTT SUBACK").await {
        Some(Packet::SubAck(ack)) => {
            assert_eq!(ack.pkid, 1);
            assert_eq!(
                ack.return_codes,
                vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
            );
        }
        other => panic!("Web-MQTT SUBSCRIBE: {other:?}"),
    }
    let mut publish = rumqttc::Publish::new(TOPIC, QoS::AtLeastOnce, &b"hello web-mqtt"[..]);
    publish.pkid = 2;
    good.send(Packet::Publish(publish)).await;
    let (mut puback, mut received) = (false, None);
    while !puback || received.is_none() {
        match good.next("Web-MQTT PUBACK/PUBLISH").await {
            Some(Packet::PubAck(ack)) => {
                assert_eq!(ack.pkid, 2);
                puback = true;
            }
            Some(Packet::Publish(p)) => {
                assert_eq!(p.topic, TOPIC);
                if p.qos != QoS::AtMostOnce {
                    good.send(Packet::PubAck(rumqttc::PubAck::new(p.pkid)))
                        .await;
                }
                received = Some(p.payload.to_vec());
            }
            other => panic!("Web-MQTT: unexpected {other:?}"),
        }
    }
    assert_eq!(received.as_deref(), Some(&b"hello web-mqtt"[..]));
    good.send(Packet::Disconnect).await;

    let mut bad = WsMqtt::open(url).await;
    match bad.connect("berth-proto-web-mqtt-bad", WRONG).await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.code, ConnectReturnCode::BadUserNamePassword),
        other => panic!("Web-MQTT wrong password: expected a refusing CONNACK, got {other:?}"),
    }
}

/// Management console: the HTTP API answers the broker user, and 401 without
/// credentials or with a wrong password.
async fn console(base: &str) {
    let http = reqwest::Client::builder().timeout(STEP).build().unwrap();
    let url = format!("{base}/api/overview");
    let resp = http
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("console request");
    assert_eq!(resp.status(), 200);
    let overview: Value = resp.json().await.expect("overview JSON");
    assert_eq!(overview["rabbitmq_version"], "4.0.5", "{overview}");
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
