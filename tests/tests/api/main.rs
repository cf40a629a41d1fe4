//! One integration-test binary (one link step): real Postgres, real Docker, real
//! RabbitMQ, real AMQP client.

mod amqp;
mod auth;
mod brokers;
mod catalogue_tags;
mod compat;
mod configurations;
mod docs;
mod hardening;
mod lifecycle;
mod protocols;
mod reconciler;
mod restart;
mod validation;
