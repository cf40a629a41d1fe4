-- Engine logs collected from the brokers' agents (see control-plane/src/observe/logs.rs).
--
-- `logs.audit` (Amazon MQ's audit log, ActiveMQ only) is stored next to `logs_general`.
-- Only the streams a broker turned on are collected.
ALTER TABLE brokers ADD COLUMN logs_audit BOOLEAN NOT NULL DEFAULT FALSE;

-- Where collection of one stream of one node stands: the agent's numbering (`epoch`),
-- the last sequence number stored, and how many lines the agent's cap dropped before
-- they were collected. Moved in the same transaction as the lines it covers.
--
-- Lines and cursors go with their broker (ON DELETE CASCADE): a deleted broker cannot
-- be described any more, so nothing could show its lines; Amazon MQ keeps CloudWatch
-- log groups after a deletion, Berth does not.
CREATE TABLE log_cursors (
    broker_id     TEXT NOT NULL REFERENCES brokers (id) ON DELETE CASCADE,
    node          INTEGER NOT NULL CHECK (node >= 0),
    stream        TEXT NOT NULL CHECK (stream IN ('general', 'audit')),
    epoch         TEXT NOT NULL,
    last_seq      BIGINT NOT NULL CHECK (last_seq >= 0),
    dropped_lines BIGINT NOT NULL DEFAULT 0 CHECK (dropped_lines >= 0),
    collected_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (broker_id, node, stream)
);

-- One line of a node's log. `id` orders lines as they were stored (within one node and
-- stream that is their sequence order); API pages and tokens use it.
CREATE TABLE log_lines (
    id        BIGSERIAL PRIMARY KEY,
    broker_id TEXT NOT NULL REFERENCES brokers (id) ON DELETE CASCADE,
    node      INTEGER NOT NULL CHECK (node >= 0),
    stream    TEXT NOT NULL CHECK (stream IN ('general', 'audit')),
    epoch     TEXT NOT NULL,
    seq       BIGINT NOT NULL CHECK (seq > 0),
    ts        TIMESTAMPTZ NOT NULL,
    message   TEXT NOT NULL,
    UNIQUE (broker_id, node, stream, epoch, seq)
);
CREATE INDEX log_lines_broker ON log_lines (broker_id, id);
CREATE INDEX log_lines_ts ON log_lines (ts);
