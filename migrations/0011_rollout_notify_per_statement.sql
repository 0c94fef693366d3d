-- Fleet scale (issue 12): the rollout notifications of 0009 ran a PL/pgSQL
-- trigger for every row, so a batch of 10,000 ACKs made 10,000 trigger
-- calls to send one notification. These statement-level triggers read the
-- statement's transition tables and notify once per distinct service, at
-- commit as before. Same rule as 0009: a change of the revision an agent
-- holds, or of its last NACK, or a row added or removed.

DROP TRIGGER agent_services_rollout_insert ON agent_services;
DROP TRIGGER agent_services_rollout_update ON agent_services;
DROP FUNCTION agent_services_rollout_notify();

CREATE FUNCTION agent_services_rollout_notify_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    service TEXT;
BEGIN
    FOR service IN SELECT DISTINCT r.service FROM changed_rows r LOOP
        PERFORM pg_notify('corsair_rollout', service);
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION agent_services_rollout_notify_updates() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    service TEXT;
BEGIN
    FOR service IN
        SELECT DISTINCT n.service
          FROM new_rows n
          JOIN old_rows o ON o.agent_id = n.agent_id AND o.service = n.service
         WHERE o.applied_revision IS DISTINCT FROM n.applied_revision
            OR o.last_nack_revision IS DISTINCT FROM n.last_nack_revision
            OR o.last_nack_error IS DISTINCT FROM n.last_nack_error
    LOOP
        PERFORM pg_notify('corsair_rollout', service);
    END LOOP;
    RETURN NULL;
END $$;

-- A trigger with transition tables handles one event, hence three.
CREATE TRIGGER agent_services_rollout_insert
    AFTER INSERT ON agent_services
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agent_services_rollout_notify_rows();

CREATE TRIGGER agent_services_rollout_delete
    AFTER DELETE ON agent_services
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agent_services_rollout_notify_rows();

CREATE TRIGGER agent_services_rollout_update
    AFTER UPDATE ON agent_services
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agent_services_rollout_notify_updates();
