-- Blocked-request telemetry: what agents refused (or, in report-only mode,
-- would have refused), aggregated per agent flush interval.
-- Depends only on 0001-independent objects: no foreign keys to other tables,
-- so it applies whatever 0002 contains.

-- Idempotency: one row per batch ever stored. A batch id seen before is
-- acknowledged without inserting its counts again. Rows older than the
-- retention are deleted by the retention job together with the partitions.
CREATE TABLE telemetry_batches (
    batch_id       TEXT PRIMARY KEY,
    agent_id       TEXT NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    events         BIGINT NOT NULL,
    dropped_events BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX telemetry_batches_received ON telemetry_batches (received_at);

-- One row per (interval, service, origin, method, reason, would_block, agent).
-- Native range partitioning by day (UTC): partitions are created ahead by the
-- retention job (and on demand by ingestion), and old ones dropped whole.
CREATE TABLE blocked_events (
    id          BIGSERIAL,
    ts          TIMESTAMPTZ NOT NULL,
    service     TEXT NOT NULL,
    origin      TEXT NOT NULL,
    method      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    would_block BOOLEAN NOT NULL,
    agent_id    TEXT NOT NULL,
    count       BIGINT NOT NULL CHECK (count > 0)
) PARTITION BY RANGE (ts);

-- The query API's access paths (see BENCHMARKS.md for the plans):
-- per service over a time range (top origins, time series), covering the
-- grouped columns so the aggregate is answered from the index;
CREATE INDEX blocked_events_service_ts ON blocked_events (service, ts) INCLUDE (origin, reason, agent_id, count);
-- every service over a time range, and keyset pagination of raw rows;
CREATE INDEX blocked_events_ts_id ON blocked_events (ts, id);
-- one exact origin, and one agent, over a time range.
CREATE INDEX blocked_events_origin_ts ON blocked_events (origin, ts);
CREATE INDEX blocked_events_agent_ts ON blocked_events (agent_id, ts);

-- Creates the daily partitions for first_day..=last_day (UTC) that do not
-- exist yet; returns how many it created. Serialised by an advisory lock so
-- several replicas (and concurrent ingestion) can call it at once.
CREATE FUNCTION blocked_events_ensure_partitions(first_day DATE, last_day DATE)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    d       DATE := first_day;
    name    TEXT;
    created INTEGER := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('corsair.blocked_events.partitions'));
    WHILE d <= last_day LOOP
        name := 'blocked_events_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF blocked_events FOR VALUES FROM (%L) TO (%L)',
                name, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN created;
END
$$;

-- Drops the daily partitions that end on or before `cutoff` (UTC); returns
-- how many it dropped. Same advisory lock as above.
CREATE FUNCTION blocked_events_drop_before(cutoff DATE)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    part    RECORD;
    dropped INTEGER := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('corsair.blocked_events.partitions'));
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'blocked_events'::regclass
          AND c.relname ~ '^blocked_events_[0-9]{8}$'
          AND to_date(substring(c.relname FROM 16), 'YYYYMMDD') < cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;

SELECT blocked_events_ensure_partitions(
    (now() AT TIME ZONE 'UTC')::date - 1,
    (now() AT TIME ZONE 'UTC')::date + 3);
