//! AMQP 1.0 (fe2o3) over an open connection: RabbitMQ's queue addresses and a message
//! round trip.

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::types::messaging::Outcome;
use fe2o3_amqp::{Receiver, Sender, Session};

use super::within;
/// The AMQP 1.0 address of the existing queue `queue` on RabbitMQ `version`, in a form
/// that never creates it: RabbitMQ 4 speaks AMQP 1.0 natively with the v2 address format
/// (`/queues/NAME`); 3.x has the `rabbitmq_amqp1_0` plugin, which knows only the v1
/// formats, where `/amq/queue/NAME` is the existing queue (`/queue/NAME` would declare).
pub fn amqp10_queue_address(version: &str, queue: &str) -> String {
    if version.starts_with("3.") {
        format!("/amq/queue/{queue}")
    } else {
        format!("/queues/{queue}")
    }
}

/// Over an open AMQP 1.0 connection: a message sent to `address` is accepted and
/// received back from it.
pub async fn amqp10_round_trip(
    label: &str,
    connection: &mut ConnectionHandle<()>,
    address: &str,
    body: &str,
) {
    let mut session = within(&format!("{label} begin"), Session::begin(connection))
        .await
        .unwrap_or_else(|e| panic!("{label} session: {e:?}"));
    let mut sender = within(
        &format!("{label} sender attach"),
        Sender::attach(&mut session, "proto-sender", address),
    )
    .await
    .unwrap_or_else(|e| panic!("{label} sender to {address}: {e:?}"));
    let outcome: Outcome = within(&format!("{label} send"), sender.send(body))
        .await
        .unwrap_or_else(|e| panic!("{label} send: {e:?}"));
    assert!(
        matches!(outcome, Outcome::Accepted(_)),
        "{label}: message to {address} not accepted: {outcome:?}"
    );
    let mut receiver = within(
        &format!("{label} receiver attach"),
        Receiver::attach(&mut session, "proto-receiver", address),
    )
    .await
    .unwrap_or_else(|e| panic!("{label} receiver from {address}: {e:?}"));
    let delivery = within(&format!("{label} receive"), receiver.recv::<String>())
        .await
        .unwrap_or_else(|e| panic!("{label} delivery: {e:?}"));
    assert_eq!(delivery.body(), body, "{label}");
    within(&format!("{label} accept"), receiver.accept(&delivery))
        .await
        .unwrap_or_else(|e| panic!("{label} accept: {e:?}"));
    let _ = sender.close().await;
    let _ = receiver.close().await;
    let _ = session.end().await;
}
