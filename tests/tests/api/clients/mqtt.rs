//! MQTT 3.1.1: rumqttc's client over TCP or TLS, and its packet codec over a WebSocket
//! (`ws://` or `wss://`, subprotocol `mqtt`).

use std::time::Duration;

use bytes::BytesMut;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, NetworkOptions, Packet,
    QoS, SubscribeReasonCode,
};

use super::ws::{ws_connect, Closed, Wire, Ws};
use super::{host_port, within, STEP};

/// Client options for `url` (`mqtt://host:port` or `mqtt+ssl://host:port`; TLS is the
/// caller's to set) with the given credentials.
pub fn mqtt_options(client_id: &str, url: &str, user: &str, password: &str) -> MqttOptions {
    let (host, port) = host_port(url);
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_credentials(user, password);
    opts.set_keep_alive(Duration::from_secs(30));
    opts
}

fn network() -> NetworkOptions {
    let mut net = NetworkOptions::new();
    net.set_connection_timeout(STEP.as_secs());
    net
}

/// CONNACK 0, SUBSCRIBE `topic` QoS 1 granted, then a QoS 1 PUBLISH of `payload` is
/// acknowledged and delivered back.
pub async fn mqtt_round_trip(label: &str, opts: MqttOptions, topic: &str, payload: &[u8]) {
    let (client, mut events) = AsyncClient::new(opts, 10);
    events.set_network_options(network());
    client
        .subscribe(topic, QoS::AtLeastOnce)
        .await
        .expect("queue SUBSCRIBE");
    let (mut connack, mut suback, mut puback, mut received) = (false, false, false, None);
    while received.is_none() || !puback {
        let event = within(&format!("{label} event"), events.poll())
            .await
            .unwrap_or_else(|e| panic!("{label} connection: {e:?}"));
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, ConnectReturnCode::Success, "{label}");
                connack = true;
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                assert_eq!(
                    ack.return_codes,
                    vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)],
                    "{label}"
                );
                suback = true;
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
                    .await
                    .expect("queue PUBLISH");
            }
            Event::Incoming(Packet::PubAck(_)) => puback = true,
            Event::Incoming(Packet::Publish(p)) => {
                assert_eq!(p.topic, topic, "{label}");
                assert_eq!(p.qos, QoS::AtLeastOnce, "{label}");
                received = Some(p.payload.to_vec());
            }
            _ => {}
        }
    }
    assert!(connack && suback, "{label}");
    assert_eq!(received.as_deref(), Some(payload), "{label}");
    let _ = client.disconnect().await;
}

/// The CONNACK refusal code for `opts` (panics if the connection is accepted).
pub async fn mqtt_refusal(label: &str, opts: MqttOptions) -> ConnectReturnCode {
    let (_client, mut events) = AsyncClient::new(opts, 10);
    events.set_network_options(network());
    match within(&format!("{label} CONNECT"), events.poll()).await {
        Err(ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("{label}: expected a refusing CONNACK, got {other:?}"),
    }
}

const MAX_PACKET: usize = 64 * 1024;

/// An MQTT session over a WebSocket (subprotocol `mqtt`), one packet per binary message.
pub struct WsMqtt {
    wire: Wire,
    buf: BytesMut,
}

impl WsMqtt {
    /// Over an open WebSocket (`ws://` or `wss://`).
    pub fn over(ws: Ws) -> WsMqtt {
        WsMqtt {
            wire: Wire::Ws(Box::new(ws)),
            buf: BytesMut::new(),
        }
    }

    /// Over a plaintext WebSocket to `url`.
    pub async fn open(url: &str) -> WsMqtt {
        WsMqtt::over(ws_connect(url, "mqtt").await)
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.write(&mut out, MAX_PACKET).expect("encode MQTT");
        self.wire.send(out.to_vec(), false).await
    }

    /// The next packet, or how the connection ended first.
    pub async fn next(&mut self, what: &str) -> Result<Packet, Closed> {
        within(what, async {
            loop {
                match Packet::read(&mut self.buf, MAX_PACKET) {
                    Ok(p) => return Ok(p),
                    Err(rumqttc::Error::InsufficientBytes(_)) => {}
                    Err(e) => panic!("{what}: bad MQTT packet: {e:?}"),
                }
                self.buf.extend_from_slice(&self.wire.recv().await?);
            }
        })
        .await
    }

    /// CONNECT; the server's first packet, or how the connection ended first.
    pub async fn connect(
        &mut self,
        client_id: &str,
        user: &str,
        password: &str,
    ) -> Result<Packet, Closed> {
        let mut connect = rumqttc::Connect::new(client_id);
        connect.keep_alive = 30;
        connect.set_login(user, password);
        self.send(Packet::Connect(connect)).await;
        self.next("Web-MQTT CONNACK").await
    }

    pub async fn disconnect(mut self) {
        self.send(Packet::Disconnect).await;
    }
}

/// CONNACK 0, SUBSCRIBE `topic` QoS 1 granted, then a QoS 1 PUBLISH of `payload` is
/// acknowledged and delivered back (and acknowledged).
pub async fn web_mqtt_round_trip(
    label: &str,
    mut good: WsMqtt,
    client_id: &str,
    user: &str,
    password: &str,
    topic: &str,
    payload: &[u8],
) {
    match good.connect(client_id, user, password).await {
        Ok(Packet::ConnAck(ack)) => assert_eq!(ack.code, ConnectReturnCode::Success, "{label}"),
        other => panic!("{label} CONNECT: {other:?}"),
    }
    let mut subscribe = rumqttc::Subscribe::new(topic, QoS::AtLeastOnce);
    subscribe.pkid = 1;
    good.send(Packet::Subscribe(subscribe)).await;
    match good.next(&format!("{label} SUBACK")).await {
        Ok(Packet::SubAck(ack)) => {
            assert_eq!(ack.pkid, 1, "{label}");
            assert_eq!(
                ack.return_codes,
                vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)],
                "{label}"
            );
        }
        other => panic!("{label} SUBSCRIBE: {other:?}"),
    }
    let mut publish = rumqttc::Publish::new(topic, QoS::AtLeastOnce, payload.to_vec());
    publish.pkid = 2;
    good.send(Packet::Publish(publish)).await;
    let (mut puback, mut received) = (false, None);
    while !puback || received.is_none() {
        match good.next(&format!("{label} PUBACK/PUBLISH")).await {
            Ok(Packet::PubAck(ack)) => {
                assert_eq!(ack.pkid, 2, "{label}");
                puback = true;
            }
            Ok(Packet::Publish(p)) => {
                assert_eq!(p.topic, topic, "{label}");
                if p.qos != QoS::AtMostOnce {
                    good.send(Packet::PubAck(rumqttc::PubAck::new(p.pkid)))
                        .await;
                }
                received = Some(p.payload.to_vec());
            }
            other => panic!("{label}: unexpected {other:?}"),
        }
    }
    assert_eq!(received.as_deref(), Some(payload), "{label}");
    good.disconnect().await;
}
