-- Brokers and configurations belong to the region they were created in and are
-- invisible from other regions, as on AWS. Rows from before regions were kept apart
-- were all served as the default region, us-east-1.
ALTER TABLE brokers ADD COLUMN region TEXT NOT NULL DEFAULT 'us-east-1';
ALTER TABLE brokers ALTER COLUMN region DROP DEFAULT;
ALTER TABLE brokers DROP CONSTRAINT brokers_account_name_key;
ALTER TABLE brokers ADD CONSTRAINT brokers_account_region_name_key UNIQUE (account_id, region, name);
DROP INDEX brokers_creator_request_id_key;
CREATE UNIQUE INDEX brokers_creator_request_id_key
    ON brokers (account_id, region, creator_request_id) WHERE creator_request_id IS NOT NULL;
DROP INDEX brokers_account_created_idx;
CREATE INDEX brokers_account_region_created_idx ON brokers (account_id, region, created_at, id);

ALTER TABLE configurations ADD COLUMN region TEXT NOT NULL DEFAULT 'us-east-1';
ALTER TABLE configurations ALTER COLUMN region DROP DEFAULT;
ALTER TABLE configurations DROP CONSTRAINT configurations_account_name_key;
ALTER TABLE configurations ADD CONSTRAINT configurations_account_region_name_key UNIQUE (account_id, region, name);
DROP INDEX configurations_account_created_idx;
CREATE INDEX configurations_account_region_created_idx ON configurations (account_id, region, created_at, id);

-- CreateBroker's subnetIds and securityGroups are kept and described back.
ALTER TABLE brokers ADD COLUMN subnet_ids JSONB NOT NULL DEFAULT '[]'::jsonb;
