-- Change notifications for the control plane's in-memory read caches (db::cache): every
-- change that a cache could hold stale is announced with pg_notify inside the writing
-- transaction (delivered at commit), whoever the writer is — the server, the `berth`
-- CLI, a manual UPDATE.

-- Access keys: what SigV4 verification reads (secret, role, active, owner). last_used_at
-- is left out: it changes on use and no cache holds it.
CREATE FUNCTION berth_notify_access_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('berth_access_keys', OLD.access_key_id);
    ELSE
        PERFORM pg_notify('berth_access_keys', NEW.access_key_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER access_keys_notify
    AFTER UPDATE OF access_key_id, account_id, secret_enc, role, active OR DELETE
    ON access_keys
    FOR EACH ROW EXECUTE FUNCTION berth_notify_access_key();

-- Brokers with their users, ports and nodes (DescribeBroker's cache): any change of
-- any of the four tables names the broker.
CREATE FUNCTION berth_notify_broker() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'brokers' THEN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('berth_brokers', OLD.id);
        ELSE
            PERFORM pg_notify('berth_brokers', NEW.id);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('berth_brokers', OLD.broker_id);
    ELSE
        PERFORM pg_notify('berth_brokers', NEW.broker_id);
        IF TG_OP = 'UPDATE' AND OLD.broker_id IS DISTINCT FROM NEW.broker_id THEN
            PERFORM pg_notify('berth_brokers', OLD.broker_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER brokers_notify AFTER UPDATE OR DELETE ON brokers
    FOR EACH ROW EXECUTE FUNCTION berth_notify_broker();
CREATE TRIGGER broker_users_notify AFTER INSERT OR UPDATE OR DELETE ON broker_users
    FOR EACH ROW EXECUTE FUNCTION berth_notify_broker();
CREATE TRIGGER broker_ports_notify AFTER INSERT OR UPDATE OR DELETE ON broker_ports
    FOR EACH ROW EXECUTE FUNCTION berth_notify_broker();
CREATE TRIGGER broker_nodes_notify AFTER INSERT OR UPDATE OR DELETE ON broker_nodes
    FOR EACH ROW EXECUTE FUNCTION berth_notify_broker();
