-- Engine alarms each node's agent reports (memory, disk, OOM kill …) as a JSON array of
-- {code, message}; empty when the node has none. Parsed fallibly: unreadable → none.
ALTER TABLE broker_nodes ADD COLUMN alarms JSONB NOT NULL DEFAULT '[]'::jsonb;
