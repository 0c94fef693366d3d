-- Fleet scale (issue 12): the rollout notifications of 0009 ran a PL/pgSQL
-- trigger for every row, so a batch of 10,000 ACKs made 10,000 trigger
-- calls to send one notification. These statement-level triggers read the
-- statement's transition table and notify once per distinct service, at
-- commit as before.
--
-- Unlike 0009 an UPDATE notifies whatever it changed: comparing the old
-- and new transition tables (which have no statistics) planned as a nested
-- loop, quadratic in the batch, while a spurious notification costs a
-- waiting request one recount. In practice an update of agent_services is
-- an ACK or a NACK, which is what waiters wait for.

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

-- A trigger with a transition table handles one event, hence three.
CREATE TRIGGER agent_services_rollout_insert
    AFTER INSERT ON agent_services
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agent_services_rollout_notify_rows();

CREATE TRIGGER agent_services_rollout_update
    AFTER UPDATE ON agent_services
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agent_services_rollout_notify_rows();

CREATE TRIGGER agent_services_rollout_delete
    AFTER DELETE ON agent_services
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION agent_services_rollout_notify_rows();

-- Every approval rewrites one agent_services row per agent (its ACK), and
-- heartbeats rewrite agents rows. With free room on the page PostgreSQL
-- updates in place of the index (a HOT update: no new primary-key entry);
-- full pages (the default fillfactor 100) force a new index entry for
-- every ACK. Applies to pages written from now on.
ALTER TABLE agent_services SET (fillfactor = 50);
ALTER TABLE agents SET (fillfactor = 70);
