//! A real AMQP 0-9-1 client (lapin) against brokers Berth created.

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// `amqp://host:port` + credentials → a lapin URI on the default vhost.
pub fn uri(endpoint: &str, user: &str, password: &str) -> String {
    let hostport = endpoint.trim_start_matches("amqp://");
    format!("amqp://{user}:{password}@{hostport}/%2f")
}

pub async fn connect(endpoint: &str, user: &str, password: &str) -> lapin::Result<Connection> {
    Connection::connect(
        &uri(endpoint, user, password),
        ConnectionProperties::default(),
    )
    .await
}

/// Declares the durable queue `queue` on a fresh channel, which it returns.
pub async fn declare_durable(conn: &Connection, queue: &str) -> lapin::Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch
}

/// Publishes `body` persistently to durable queue `queue` and waits for the confirm.
pub async fn publish_persistent(conn: &Connection, queue: &str, body: &[u8]) {
    let ch = declare_durable(conn, queue).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "publish was not confirmed");
}

/// Gets one message from `queue` and acks it.
pub async fn get_one(conn: &Connection, queue: &str) -> Option<Vec<u8>> {
    let ch = conn.create_channel().await.unwrap();
    let msg = ch
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .unwrap()?;
    let data = msg.delivery.data.clone();
    msg.delivery.ack(BasicAckOptions::default()).await.unwrap();
    Some(data)
}

/// A confirmed persistent message to `queue` comes back intact on the same connection
/// (each step bounded by `clients::within`); `label` names the endpoint in failures.
pub async fn round_trip(label: &str, conn: &Connection, queue: &str, body: &[u8]) {
    use crate::clients::within;
    within(
        &format!("{label} publish"),
        publish_persistent(conn, queue, body),
    )
    .await;
    assert_eq!(
        within(&format!("{label} get"), get_one(conn, queue))
            .await
            .as_deref(),
        Some(body),
        "{label}: the message did not come back intact"
    );
}
