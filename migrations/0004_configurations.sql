-- Configurations with immutable, numbered revisions; brokers run one revision and may
-- have another pending until reboot.

CREATE TABLE configurations (
    id                      TEXT PRIMARY KEY,
    account_id              TEXT NOT NULL,
    name                    TEXT NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    engine_type             TEXT NOT NULL,
    engine_version          TEXT NOT NULL,
    authentication_strategy TEXT NOT NULL,
    tags                    JSONB NOT NULL DEFAULT '{}'::jsonb,
    latest_revision         INTEGER NOT NULL DEFAULT 1,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT configurations_account_name_key UNIQUE (account_id, name)
);
CREATE INDEX configurations_account_created_idx ON configurations (account_id, created_at, id);

CREATE TABLE configuration_revisions (
    configuration_id TEXT NOT NULL REFERENCES configurations (id) ON DELETE CASCADE,
    revision         INTEGER NOT NULL,
    data             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (configuration_id, revision)
);

ALTER TABLE brokers
    ADD COLUMN configuration_id               TEXT REFERENCES configurations (id),
    ADD COLUMN configuration_revision         INTEGER,
    ADD COLUMN pending_configuration_id       TEXT REFERENCES configurations (id),
    ADD COLUMN pending_configuration_revision INTEGER,
    ADD COLUMN configuration_history          JSONB NOT NULL DEFAULT '[]'::jsonb;
