-- UpdateBroker records pending changes; RebootBroker (or the maintenance window)
-- applies them. Users carry their own pending change until the agent confirms it.

ALTER TABLE brokers
    ADD COLUMN pending_host_instance_type TEXT,
    ADD COLUMN pending_engine_version     TEXT,
    ADD COLUMN security_groups            JSONB NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN reboot_requested_at        TIMESTAMPTZ;

ALTER TABLE broker_users
    ADD COLUMN pending_change TEXT CHECK (pending_change IN ('CREATE', 'UPDATE', 'DELETE'));

-- Orders user changes, so a confirmation from the agent only clears the changes it saw.
CREATE SEQUENCE user_change_seq;
ALTER TABLE broker_users
    ADD COLUMN change_seq BIGINT NOT NULL DEFAULT nextval('user_change_seq');
