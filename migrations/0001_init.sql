-- Berth's desired state. Never edit an applied migration: add a new file.

-- One row: identifies this Berth installation, so that Docker objects it owns can be
-- told apart from another installation's on a shared daemon.
CREATE TABLE installation (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    id         TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO installation (id) VALUES (replace(gen_random_uuid()::text, '-', ''));

CREATE TABLE brokers (
    id                         TEXT PRIMARY KEY,
    account_id                 TEXT NOT NULL,
    name                       TEXT NOT NULL,
    engine_type                TEXT NOT NULL,
    engine_version             TEXT NOT NULL,
    deployment_mode            TEXT NOT NULL,
    host_instance_type         TEXT NOT NULL,
    storage_type               TEXT NOT NULL,
    authentication_strategy    TEXT NOT NULL,
    publicly_accessible        BOOLEAN NOT NULL,
    auto_minor_version_upgrade BOOLEAN NOT NULL,
    maintenance_day            TEXT NOT NULL,
    maintenance_time           TEXT NOT NULL,
    maintenance_time_zone      TEXT NOT NULL,
    logs_general               BOOLEAN NOT NULL DEFAULT FALSE,
    tags                       JSONB NOT NULL DEFAULT '{}'::jsonb,
    creator_request_id         TEXT,
    state                      TEXT NOT NULL,
    state_reason               TEXT,
    -- Secrets, AES-256-GCM sealed with the master key.
    agent_token_enc            BYTEA NOT NULL,
    erlang_cookie_enc          BYTEA NOT NULL,
    created_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    state_changed_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT brokers_account_name_key UNIQUE (account_id, name)
);
CREATE UNIQUE INDEX brokers_creator_request_id_key
    ON brokers (account_id, creator_request_id) WHERE creator_request_id IS NOT NULL;
CREATE INDEX brokers_account_created_idx ON brokers (account_id, created_at, id);

CREATE TABLE broker_users (
    broker_id      TEXT NOT NULL REFERENCES brokers (id) ON DELETE CASCADE,
    username       TEXT NOT NULL,
    password_enc   BYTEA NOT NULL,
    console_access BOOLEAN NOT NULL DEFAULT FALSE,
    groups         JSONB NOT NULL DEFAULT '[]'::jsonb,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (broker_id, username)
);

-- Host ports Berth allocated and pinned for each broker node, so endpoints stay
-- stable across container restarts.
CREATE TABLE broker_ports (
    host_port  INTEGER PRIMARY KEY CHECK (host_port BETWEEN 1 AND 65535),
    broker_id  TEXT NOT NULL REFERENCES brokers (id) ON DELETE CASCADE,
    node       INTEGER NOT NULL,
    protocol   TEXT NOT NULL,
    CONSTRAINT broker_ports_node_protocol_key UNIQUE (broker_id, node, protocol)
);
