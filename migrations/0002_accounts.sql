-- Accounts own brokers; access keys sign API requests (SigV4).

CREATE TABLE accounts (
    id         TEXT PRIMARY KEY CHECK (id ~ '^[0-9]{12}$'),
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- SigV4 needs the secret itself to recompute signatures: sealed with the master key.
    secret_enc    BYTEA NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX access_keys_account_idx ON access_keys (account_id);
