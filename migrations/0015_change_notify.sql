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
