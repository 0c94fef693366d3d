-- Admin UI: session revocation, API tokens for automation, login throttling,
-- and a hash chain over the change audit log.

-- Logged-out (or otherwise ended) sessions, by token id, until they would
-- have expired anyway.
CREATE TABLE revoked_sessions (
    jti        UUID PRIMARY KEY,
    revoked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

-- API tokens for automation: user-kind JWTs whose jti is a row here; the row,
-- not the token, says which role they carry and whether they still work.
CREATE TABLE api_tokens (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'requester', 'approver', 'admin')),
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);

-- Failed logins, keyed 'account:<lower email>' or 'address:<ip>'; the
-- throttle counts recent rows per key.
CREATE TABLE login_failures (
    id  BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL,
    at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);

-- The hash chain: each row's hash covers its content and the previous row's
-- hash, in the order rows were appended (chain_seq, assigned under a lock,
-- since ids can commit out of order). Editing or deleting a row (with the
-- append-only trigger disabled) breaks the chain from there on.
ALTER TABLE change_audit ADD COLUMN chain_seq BIGINT;
ALTER TABLE change_audit ADD COLUMN prev_hash TEXT;
ALTER TABLE change_audit ADD COLUMN hash TEXT;

CREATE FUNCTION change_audit_row_hash(
    prev TEXT, id BIGINT, at TIMESTAMPTZ, actor TEXT, action TEXT,
    service TEXT, target TEXT, before JSONB, after JSONB
) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$
    -- jsonb's text form is canonical and the timestamp is rendered in UTC,
    -- so the hash does not depend on session settings.
    SELECT encode(sha256(convert_to(jsonb_build_array(
        prev, id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        actor, action, service, target, before, after)::text, 'UTF8')), 'hex')
$$;

CREATE FUNCTION change_audit_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_seq  BIGINT;
    last_hash TEXT;
BEGIN
    -- One appender at a time, so every row links to the one before it.
    PERFORM pg_advisory_xact_lock(hashtext('corsair.change_audit.chain'));
    SELECT chain_seq, hash INTO last_seq, last_hash
      FROM change_audit WHERE chain_seq IS NOT NULL
     ORDER BY chain_seq DESC LIMIT 1;
    NEW.chain_seq := coalesce(last_seq, 0) + 1;
    NEW.prev_hash := coalesce(last_hash, '');
    NEW.hash := change_audit_row_hash(NEW.prev_hash, NEW.id, NEW.at, NEW.actor, NEW.action,
                                      NEW.service, NEW.target, NEW.before, NEW.after);
    RETURN NEW;
END $$;

-- Chain the rows written before this migration, in id order.
ALTER TABLE change_audit DISABLE TRIGGER change_audit_append_only;
DO $$
DECLARE
    r    RECORD;
    prev TEXT := '';
    seq  BIGINT := 0;
BEGIN
    FOR r IN SELECT * FROM change_audit ORDER BY id LOOP
        seq := seq + 1;
        UPDATE change_audit
           SET chain_seq = seq, prev_hash = prev,
               hash = change_audit_row_hash(prev, r.id, r.at, r.actor, r.action,
                                            r.service, r.target, r.before, r.after)
         WHERE id = r.id
        RETURNING hash INTO prev;
    END LOOP;
END $$;
ALTER TABLE change_audit ENABLE TRIGGER change_audit_append_only;

CREATE UNIQUE INDEX change_audit_chain_seq ON change_audit (chain_seq);
CREATE TRIGGER change_audit_chain
    BEFORE INSERT ON change_audit
    FOR EACH ROW EXECUTE FUNCTION change_audit_chain();

-- Audit page filters.
CREATE INDEX change_audit_actor ON change_audit (actor, id DESC);
CREATE INDEX change_audit_action ON change_audit (action, id DESC);
-- Services page: last change per service.
CREATE INDEX origins_service_requested ON origins (service_id, requested_at DESC);
