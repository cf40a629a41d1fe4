-- A broker's nodes as last seen by the reconciler: zone, engine state from the agent's
-- report (NULL until the first one), its error, the cluster members it sees, and since
-- when its agent has not answered (NULL while it answers). Rows are written by the
-- reconciler only when something changes.
CREATE TABLE broker_nodes (
    broker_id         TEXT NOT NULL REFERENCES brokers (id) ON DELETE CASCADE,
    node              INTEGER NOT NULL CHECK (node >= 0),
    zone              TEXT NOT NULL,
    engine_state      TEXT,
    last_error        TEXT,
    cluster_running   JSONB,
    reported_at       TIMESTAMPTZ,
    unreachable_since TIMESTAMPTZ,
    PRIMARY KEY (broker_id, node)
);
