-- The person behind each origin request, for the four-eyes rule: the
-- requester's email, or for an API token the person who created it
-- (`api_tokens.created_by`). `requested_by` stays the actor as audited
-- (`token:<name>` for a token). Comparing people stops an approver from
-- approving their own request through a token they created, or a token's
-- request as its creator. NULL reads as `requested_by` (rows written by
-- other tools, which name a person there).
ALTER TABLE origins ADD COLUMN requested_by_person TEXT;

-- Existing rows: a token's request belongs to the creator of the token of
-- that name (the earliest, if several share it); anything else to the
-- requester itself.
UPDATE origins o
   SET requested_by_person = COALESCE(
       (SELECT t.created_by FROM api_tokens t
         WHERE o.requested_by = 'token:' || t.name
         ORDER BY t.created_at LIMIT 1),
       o.requested_by);

-- A revoked (or deleted) agent token must lose its open PolicySync streams
-- at once on every replica, not at the next periodic re-check: every
-- revocation, whichever path makes it, notifies the token id on
-- `corsair_agent_token_revoked`, delivered at commit to every replica that
-- LISTENs.
CREATE FUNCTION agent_tokens_notify_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('corsair_agent_token_revoked', OLD.id::text);
        RETURN OLD;
    END IF;
    IF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
        PERFORM pg_notify('corsair_agent_token_revoked', NEW.id::text);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER agent_tokens_notify_revoked
    AFTER UPDATE OR DELETE ON agent_tokens
    FOR EACH ROW EXECUTE FUNCTION agent_tokens_notify_revoked();
