-- Since when a RUNNING broker's engine has failed its health check (NULL = healthy).
ALTER TABLE brokers ADD COLUMN unhealthy_since TIMESTAMPTZ;
