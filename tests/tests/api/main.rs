//! One integration-test binary (one link step): real Postgres, real Docker, real
//! RabbitMQ, real AMQP client.

mod activemq;
mod agent_observability;
mod alarms;
mod amqp;
mod auth;
mod brokers;
mod catalogue_tags;
mod clients;
mod compat;
mod configurations;
mod console;
mod console_alarms;
mod cost;
mod destinations;
mod docs;
mod engine_alarms;
mod ha_activemq;
mod ha_rabbitmq;
mod hardening;
mod identity;
mod lifecycle;
mod logs;
mod metrics;
mod protocols;
mod reconciler;
mod reconciler_ha;
mod restart;
mod slow_clients;
mod tls;
mod validation;
