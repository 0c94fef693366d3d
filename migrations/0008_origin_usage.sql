-- Origin usage: how often, and how lately, each approved origin pattern let a
-- cross-origin request through, from the allowed counts agents send in the
-- same idempotent telemetry batches as blocked counts (0003): a batch id
-- stored once adds its usage once. And revocation requests: the four-eyes
-- way to withdraw an origin (one person asks, another confirms).

-- Daily allowed-request counts per (service, pattern), the usage
-- counterpart of blocked_daily (0004). One row per pattern and UTC day is
-- few rows (approved patterns x retention days), so the table is not
-- partitioned: the retention job deletes the days past the blocked-event
-- retention in the same round and transaction that drops blocked partitions.
-- Keyed by the pattern's text, as the policy snapshot listed it, not by an
-- origins row: agents only know the text.
CREATE TABLE origin_usage_daily (
    day     DATE NOT NULL,
    service TEXT NOT NULL,
    pattern TEXT NOT NULL,
    count   BIGINT NOT NULL CHECK (count > 0),
    PRIMARY KEY (service, pattern, day)
);
CREATE INDEX origin_usage_daily_day ON origin_usage_daily (day);

-- The last allowed request per (service, pattern): the end of the newest
-- interval that counted one (agent clock, never after the control plane's
-- now). Not subject to retention: "unused for 90 days" must be answerable
-- with 30 days of daily counts.
CREATE TABLE origin_last_allowed (
    service         TEXT NOT NULL,
    pattern         TEXT NOT NULL,
    last_allowed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (service, pattern)
);

-- A pending revocation request on an approved origin: who asked, why, when.
-- Another approver confirms it (the origin becomes revoked, which keeps
-- these columns as the record of who asked) or dismisses it (cleared).
ALTER TABLE origins
    ADD COLUMN revocation_requested_by TEXT,
    ADD COLUMN revocation_reason       TEXT,
    ADD COLUMN revocation_requested_at TIMESTAMPTZ,
    ADD CONSTRAINT origins_revocation_request_whole CHECK (
        (revocation_requested_by IS NULL) = (revocation_reason IS NULL)
        AND (revocation_requested_by IS NULL) = (revocation_requested_at IS NULL));
