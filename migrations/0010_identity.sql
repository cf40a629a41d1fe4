-- Console identity and the audit log: roles on access keys (existing keys are admins),
-- keys that can be deactivated, console users with argon2 password hashes, their
-- sessions (revocable), the sealed session-signing key, and the audit events.

ALTER TABLE access_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'
    CHECK (role IN ('admin', 'operator', 'viewer'));
ALTER TABLE access_keys ADD COLUMN active BOOLEAN NOT NULL DEFAULT true;
ALTER TABLE access_keys ADD COLUMN last_used_at TIMESTAMPTZ;

CREATE TABLE console_users (
    id            UUID PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    username      TEXT NOT NULL,
    -- PHC string (argon2id); never the password.
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT console_users_account_username_key UNIQUE (account_id, username)
);

-- A console login. The cookie's token names the session; a revoked or expired row makes
-- every copy of the cookie useless.
CREATE TABLE console_sessions (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Absolute end of the session, however often its cookie is refreshed.
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);

-- Keys generated once per installation, sealed with the master key.
CREATE TABLE signing_keys (
    name       TEXT PRIMARY KEY,
    key_enc    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Who did what: every mutating API call, login, failed login and logout. Never a secret
-- or a request body.
CREATE TABLE audit_events (
    seq            BIGSERIAL PRIMARY KEY,
    at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    account_id     TEXT NOT NULL CHECK (account_id ~ '^[0-9]{12}$'),
    principal_kind TEXT NOT NULL CHECK (principal_kind IN ('access_key', 'console_user', 'internal', 'anonymous')),
    principal_id   TEXT NOT NULL,
    principal_name TEXT,
    operation      TEXT NOT NULL,
    resource_type  TEXT,
    resource_id    TEXT,
    source_address TEXT,
    status         INTEGER NOT NULL,
    error_code     TEXT
);
CREATE INDEX audit_events_account_seq_idx ON audit_events (account_id, seq DESC);
