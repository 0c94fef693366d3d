-- Corsair initial schema. Migrations are numbered and never edited once landed.

-- Revisions come from one global sequence: a service's revision only ever
-- grows, even across delete and re-create, so an agent holding revision N can
-- never mistake a different policy for the one it has.
CREATE SEQUENCE policy_revision_seq;

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'requester', 'approver', 'admin')),
    disabled      BOOLEAN NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE services (
    id                    BIGSERIAL PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE
                          CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    description           TEXT NOT NULL DEFAULT '',
    allow_methods         TEXT[] NOT NULL DEFAULT '{}',
    allow_headers         TEXT[] NOT NULL DEFAULT '{}',
    expose_headers        TEXT[] NOT NULL DEFAULT '{}',
    allow_credentials     BOOLEAN NOT NULL DEFAULT false,
    max_age_secs          INTEGER NOT NULL DEFAULT 0 CHECK (max_age_secs BETWEEN 0 AND 86400),
    allow_private_network BOOLEAN NOT NULL DEFAULT false,
    mode                  TEXT NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'report_only')),
    strict                BOOLEAN NOT NULL DEFAULT false,
    allow_insecure_http   BOOLEAN NOT NULL DEFAULT false,
    revision              BIGINT NOT NULL DEFAULT nextval('policy_revision_seq'),
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE origins (
    id           BIGSERIAL PRIMARY KEY,
    service_id   BIGINT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    pattern      TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'approved', 'rejected', 'revoked')),
    requested_by TEXT NOT NULL,
    reason       TEXT NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_by   TEXT,
    decided_at   TIMESTAMPTZ,
    note         TEXT,
    expires_at   TIMESTAMPTZ
);
-- One live (pending or approved) row per pattern and service; history stays.
CREATE UNIQUE INDEX origins_live_pattern ON origins (service_id, pattern)
    WHERE status IN ('pending', 'approved');
CREATE INDEX origins_service_status ON origins (service_id, status);

-- Agent tokens are JWTs; this table makes them listable and revocable (jti = id).
CREATE TABLE agent_tokens (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    services   TEXT[] NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);

CREATE TABLE agents (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    token_id   UUID,
    services   TEXT[] NOT NULL DEFAULT '{}',
    version    TEXT NOT NULL DEFAULT '',
    connected  BOOLEAN NOT NULL DEFAULT false,
    first_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Per agent and service: what it applied, and the last snapshot it refused.
CREATE TABLE agent_services (
    agent_id            TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    service             TEXT NOT NULL,
    applied_revision    BIGINT,
    applied_at          TIMESTAMPTZ,
    last_nack_revision  BIGINT,
    last_nack_error     TEXT,
    last_nack_at        TIMESTAMPTZ,
    PRIMARY KEY (agent_id, service)
);

-- The change audit log: one row per write, append-only.
CREATE TABLE change_audit (
    id      BIGSERIAL PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    service TEXT,
    target  TEXT NOT NULL,
    before  JSONB,
    after   JSONB
);
CREATE INDEX change_audit_service ON change_audit (service, id DESC);

CREATE FUNCTION change_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'change_audit is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER change_audit_append_only
    BEFORE UPDATE OR DELETE ON change_audit
    FOR EACH ROW EXECUTE FUNCTION change_audit_append_only();

-- Every change to what agents enforce bumps services.revision (in the same
-- transaction as the change); this trigger turns that into a notification,
-- delivered at commit to every control-plane replica that LISTENs.
CREATE FUNCTION services_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('corsair_policy', OLD.name);
        RETURN OLD;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.revision IS DISTINCT FROM OLD.revision THEN
        PERFORM pg_notify('corsair_policy', NEW.name);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER services_notify
    AFTER INSERT OR UPDATE OR DELETE ON services
    FOR EACH ROW EXECUTE FUNCTION services_notify();
