-- TLS: one certificate authority per installation (its key sealed with the master key)
-- and a certificate per broker for its advertised host, renewed before it expires.
CREATE TABLE installation_ca (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    cert_pem   TEXT NOT NULL,
    key_enc    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE broker_certificates (
    broker_id  TEXT PRIMARY KEY REFERENCES brokers (id) ON DELETE CASCADE,
    cert_pem   TEXT NOT NULL,
    key_enc    BYTEA NOT NULL,
    not_after  TIMESTAMPTZ NOT NULL,
    issued_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
