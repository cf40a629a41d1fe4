-- Metric history pulled from the brokers' agents (see control-plane/src/observe).
--
-- A series is one metric of one broker with one set of dimensions (always including
-- `Node` for per-node values; `Queue`/`VirtualHost`/`Topic` for destinations). Series are
-- not tied to the broker row: history outlives the broker (retention removes it), and the
-- account id is kept so an account sees only its own.
CREATE TABLE metric_series (
    id          BIGSERIAL PRIMARY KEY,
    account_id  TEXT NOT NULL,
    broker_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    dimensions  JSONB NOT NULL DEFAULT '{}'::jsonb,
    unit        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The newest collected value (what the series list shows once raw points are gone).
    last_value  DOUBLE PRECISION,
    last_ts     TIMESTAMPTZ,
    UNIQUE (broker_id, name, dimensions)
);
CREATE INDEX metric_series_broker ON metric_series (broker_id, name);
CREATE INDEX metric_series_account ON metric_series (account_id, broker_id);

-- Raw samples, as the collector stored them (kept for hours).
CREATE TABLE metric_points (
    series_id BIGINT NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
    ts        TIMESTAMPTZ NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_id, ts)
);
CREATE INDEX metric_points_ts ON metric_points (ts);

-- Downsampled history: one row per series, resolution (60 = 1 minute, 3600 = 1 hour)
-- and bucket start, with the statistics CloudWatch offers.
CREATE TABLE metric_rollups (
    series_id      BIGINT NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
    resolution_secs INTEGER NOT NULL CHECK (resolution_secs > 0),
    ts             TIMESTAMPTZ NOT NULL,
    sample_count   BIGINT NOT NULL,
    sum            DOUBLE PRECISION NOT NULL,
    minimum        DOUBLE PRECISION NOT NULL,
    maximum        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_id, resolution_secs, ts)
);
CREATE INDEX metric_rollups_ts ON metric_rollups (resolution_secs, ts);

-- The newest report of every node (what the Prometheus targets re-serve, and how the
-- stale-collector alarm knows when a node was last collected).
CREATE TABLE metric_reports (
    broker_id    TEXT NOT NULL,
    node         INTEGER NOT NULL CHECK (node >= 0),
    account_id   TEXT NOT NULL,
    collected_at TIMESTAMPTZ NOT NULL,
    report       JSONB NOT NULL,
    PRIMARY KEY (broker_id, node)
);
