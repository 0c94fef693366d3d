-- Four eyes on settings changes that widen what browsers are granted
-- (mode enforce -> report_only, credentials, private network, plain-http
-- origins with credentials, strict off): such a change is not applied but
-- held here until a different person (an approver) confirms it, or anyone
-- approver dismisses it. Changes that only narrow or are neutral apply at
-- once, as before, and never appear here.
--
-- `settings` is the full set of requested settings (the engine's
-- `PolicySettings` as JSON), `description` the requested description when
-- the change also sets one (NULL: unchanged). `base_settings` and
-- `base_description` are the service's as they were when the change was
-- requested: confirming refuses (409) once they differ, so a stale change
-- never silently reverts another change applied in between.
--
-- `requested_by` is the actor as audited (an email or `token:<name>`),
-- `requested_by_person` the human behind it (for an API token, its
-- creator), as for origins (0010): the four-eyes rule compares people.
CREATE TABLE settings_changes (
    id                  BIGSERIAL PRIMARY KEY,
    service_id          BIGINT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'confirmed', 'dismissed')),
    settings            JSONB NOT NULL CHECK (jsonb_typeof(settings) = 'object'),
    description         TEXT,
    base_settings       JSONB NOT NULL CHECK (jsonb_typeof(base_settings) = 'object'),
    base_description    TEXT NOT NULL,
    requested_by        TEXT NOT NULL,
    requested_by_person TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_by          TEXT,
    decided_at          TIMESTAMPTZ,
    CHECK ((status = 'pending') = (decided_by IS NULL AND decided_at IS NULL))
);
CREATE INDEX settings_changes_pending ON settings_changes (service_id, id)
    WHERE status = 'pending';
