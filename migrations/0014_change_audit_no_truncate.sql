-- The change audit log's append-only trigger covered UPDATE and DELETE row
-- by row; TRUNCATE fires no row trigger, so the table's owner (the role the
-- control plane migrates with) could empty the log without disabling any
-- trigger, and no delete was counted. Refuse it as well: emptying the log
-- now takes disabling a trigger, as deleting a row always did.
CREATE TRIGGER change_audit_no_truncate
    BEFORE TRUNCATE ON change_audit
    FOR EACH STATEMENT EXECUTE FUNCTION change_audit_append_only();
