-- Rollout evidence (issue 12): a control-plane replica waiting for agents to
-- apply a revision (`?wait=applied`) must hear about ACKs and NACKs that land
-- on any replica. These triggers turn every change to what an agent holds or
-- refused, and every agent connecting, disconnecting or changing its
-- services, into `NOTIFY corsair_rollout, '<service>'`, delivered at commit.
-- Postgres folds identical notifications within one transaction, so a
-- batched write of many ACKs costs one notification per service.

CREATE FUNCTION agent_services_rollout_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('corsair_rollout', OLD.service);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('corsair_rollout', NEW.service);
    RETURN NEW;
END $$;

CREATE TRIGGER agent_services_rollout_insert
    AFTER INSERT OR DELETE ON agent_services
    FOR EACH ROW EXECUTE FUNCTION agent_services_rollout_notify();

-- An ACK of a revision already held only moves applied_at: no notification.
CREATE TRIGGER agent_services_rollout_update
    AFTER UPDATE ON agent_services
    FOR EACH ROW
    WHEN (OLD.applied_revision IS DISTINCT FROM NEW.applied_revision
          OR OLD.last_nack_revision IS DISTINCT FROM NEW.last_nack_revision
          OR OLD.last_nack_error IS DISTINCT FROM NEW.last_nack_error)
    EXECUTE FUNCTION agent_services_rollout_notify();

CREATE FUNCTION agents_rollout_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    service TEXT;
BEGIN
    FOR service IN
        SELECT DISTINCT s FROM unnest(
            CASE WHEN TG_OP = 'INSERT' THEN NEW.services ELSE OLD.services || NEW.services END
        ) AS s
    LOOP
        PERFORM pg_notify('corsair_rollout', service);
    END LOOP;
    RETURN NEW;
END $$;

CREATE TRIGGER agents_rollout_insert
    AFTER INSERT ON agents
    FOR EACH ROW EXECUTE FUNCTION agents_rollout_notify();

-- last_seen moves on every ACK and token re-check: only a change of who is
-- connected, or of what they serve, changes a rollout.
CREATE TRIGGER agents_rollout_update
    AFTER UPDATE ON agents
    FOR EACH ROW
    WHEN (OLD.connected IS DISTINCT FROM NEW.connected
          OR OLD.services IS DISTINCT FROM NEW.services)
    EXECUTE FUNCTION agents_rollout_notify();

-- The rollout query finds a service's agents with `services @> ARRAY[name]`.
CREATE INDEX agents_services ON agents USING gin (services);
