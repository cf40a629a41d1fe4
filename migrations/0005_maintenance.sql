-- When the scheduler last applied pending changes in the broker's maintenance window,
-- so each weekly window is used at most once.
ALTER TABLE brokers ADD COLUMN last_maintenance_at TIMESTAMPTZ;
