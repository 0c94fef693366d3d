-- Hourly and daily rollups of blocked_events, so that queries over days and weeks
-- aggregate thousands of rows instead of hundreds of thousands (see
-- BENCHMARKS.md, "Blocked-request telemetry").
--
-- One row per (UTC hour, service, origin, reason, agent): the columns every
-- grouping and filter of the query API uses. The method is not queried and
-- would_block is kept as a count, so neither is part of the key. first_seen
-- and last_seen are the exact min/max of the raw rows' ts, so a rollup
-- answer equals the raw-table answer, not an approximation of it.
--
-- Maintained by a statement-level trigger on blocked_events: whatever
-- inserts raw rows (ingestion's COPY, an older replica's UNNEST during a
-- rolling upgrade, a bench seed) updates the rollup in the same transaction,
-- so idempotency covers both: a duplicate batch adds to neither.
CREATE TABLE blocked_hourly (
    hour        TIMESTAMPTZ NOT NULL,
    service     TEXT NOT NULL,
    origin      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    count       BIGINT NOT NULL,
    would_block BIGINT NOT NULL,
    first_seen  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    -- Leading service: the per-service queries (the UI's common case) read
    -- one contiguous index range per partition.
    PRIMARY KEY (service, hour, origin, reason, agent_id)
) PARTITION BY RANGE (hour);
-- Every service over a range; one origin; one agent.
CREATE INDEX blocked_hourly_hour ON blocked_hourly (hour);
CREATE INDEX blocked_hourly_origin_hour ON blocked_hourly (origin, hour);
CREATE INDEX blocked_hourly_agent_hour ON blocked_hourly (agent_id, hour);

-- The same per UTC day, for week- and month-long ranges: an hour holds as
-- many distinct keys as a day when origins are many (thousands per hour in
-- the bench), so only a coarser bucket makes "top origins, all services,
-- 7 days" cheap. No agent index: a day's rows are few enough to filter.
CREATE TABLE blocked_daily (
    day         TIMESTAMPTZ NOT NULL,
    service     TEXT NOT NULL,
    origin      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    count       BIGINT NOT NULL,
    would_block BIGINT NOT NULL,
    first_seen  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (service, day, origin, reason, agent_id)
) PARTITION BY RANGE (day);
CREATE INDEX blocked_daily_day ON blocked_daily (day);
CREATE INDEX blocked_daily_origin_day ON blocked_daily (origin, day);

-- Adds the statement's new raw rows to both rollups, pre-aggregated per key.
-- Keys are upserted in key order so that two concurrent batches touching
-- the same keys lock them in the same order and cannot deadlock.
CREATE FUNCTION blocked_hourly_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blocked_hourly AS h
           (hour, service, origin, reason, agent_id, count, would_block, first_seen, last_seen)
    SELECT date_trunc('hour', ts, 'UTC'), service, origin, reason, agent_id,
           sum(count), coalesce(sum(count) FILTER (WHERE would_block), 0), min(ts), max(ts)
      FROM new_rows
     GROUP BY 1, 2, 3, 4, 5
     ORDER BY 2, 1, 3, 4, 5
    ON CONFLICT (service, hour, origin, reason, agent_id) DO UPDATE
       SET count       = h.count + EXCLUDED.count,
           would_block = h.would_block + EXCLUDED.would_block,
           first_seen  = least(h.first_seen, EXCLUDED.first_seen),
           last_seen   = greatest(h.last_seen, EXCLUDED.last_seen);
    INSERT INTO blocked_daily AS d
           (day, service, origin, reason, agent_id, count, would_block, first_seen, last_seen)
    SELECT date_trunc('day', ts, 'UTC'), service, origin, reason, agent_id,
           sum(count), coalesce(sum(count) FILTER (WHERE would_block), 0), min(ts), max(ts)
      FROM new_rows
     GROUP BY 1, 2, 3, 4, 5
     ORDER BY 2, 1, 3, 4, 5
    ON CONFLICT (service, day, origin, reason, agent_id) DO UPDATE
       SET count       = d.count + EXCLUDED.count,
           would_block = d.would_block + EXCLUDED.would_block,
           first_seen  = least(d.first_seen, EXCLUDED.first_seen),
           last_seen   = greatest(d.last_seen, EXCLUDED.last_seen);
    RETURN NULL;
END
$$;

-- Rollup partitions leave 30% of each page free: ingestion updates the
-- current hour's and day's rows over and over, and with room on the page
-- those updates are HOT (no index entries written).
--
-- Partitions of the three tables are created and dropped together, by day, under
-- the advisory lock 0003 uses, so the rollup never covers a day the raw
-- table does not (retention included).
CREATE OR REPLACE FUNCTION blocked_events_ensure_partitions(first_day DATE, last_day DATE)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    d       DATE := first_day;
    created INTEGER := 0;
    lo      TIMESTAMPTZ;
    hi      TIMESTAMPTZ;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('corsair.blocked_events.partitions'));
    WHILE d <= last_day LOOP
        lo := d::timestamp AT TIME ZONE 'UTC';
        hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
        IF to_regclass('blocked_events_' || to_char(d, 'YYYYMMDD')) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF blocked_events FOR VALUES FROM (%L) TO (%L)',
                'blocked_events_' || to_char(d, 'YYYYMMDD'), lo, hi);
            created := created + 1;
        END IF;
        IF to_regclass('blocked_hourly_' || to_char(d, 'YYYYMMDD')) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF blocked_hourly FOR VALUES FROM (%L) TO (%L) WITH (fillfactor = 70)',
                'blocked_hourly_' || to_char(d, 'YYYYMMDD'), lo, hi);
        END IF;
        IF to_regclass('blocked_daily_' || to_char(d, 'YYYYMMDD')) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF blocked_daily FOR VALUES FROM (%L) TO (%L) WITH (fillfactor = 70)',
                'blocked_daily_' || to_char(d, 'YYYYMMDD'), lo, hi);
        END IF;
        d := d + 1;
    END LOOP;
    RETURN created;
END
$$;

-- Drops the daily partitions of the three tables that end on or before `cutoff`
-- (UTC); returns how many raw partitions it dropped.
CREATE OR REPLACE FUNCTION blocked_events_drop_before(cutoff DATE)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    part    RECORD;
    dropped INTEGER := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('corsair.blocked_events.partitions'));
    FOR part IN
        SELECT c.relname, i.inhparent = 'blocked_events'::regclass AS raw
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent IN ('blocked_events'::regclass, 'blocked_hourly'::regclass,
                              'blocked_daily'::regclass)
          AND c.relname ~ '^blocked_(events|hourly|daily)_[0-9]{8}$'
          AND to_date(right(c.relname, 8), 'YYYYMMDD') < cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        IF part.raw THEN
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END
$$;

-- The trigger first: its lock on blocked_events holds off concurrent
-- inserts until this migration commits, and every insert after it is
-- rolled up, so the backfill below and the trigger together miss nothing.
CREATE TRIGGER blocked_events_rollup
    AFTER INSERT ON blocked_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION blocked_hourly_add();

-- Rollup partitions for every existing raw partition, then the backfill.
DO $$
DECLARE
    part RECORD;
BEGIN
    FOR part IN
        SELECT to_date(substring(c.relname FROM 16), 'YYYYMMDD') AS day
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'blocked_events'::regclass
          AND c.relname ~ '^blocked_events_[0-9]{8}$'
    LOOP
        PERFORM blocked_events_ensure_partitions(part.day, part.day);
    END LOOP;
END
$$;

INSERT INTO blocked_hourly
       (hour, service, origin, reason, agent_id, count, would_block, first_seen, last_seen)
SELECT date_trunc('hour', ts, 'UTC'), service, origin, reason, agent_id,
       sum(count), coalesce(sum(count) FILTER (WHERE would_block), 0), min(ts), max(ts)
  FROM blocked_events
 GROUP BY 1, 2, 3, 4, 5;

INSERT INTO blocked_daily
       (day, service, origin, reason, agent_id, count, would_block, first_seen, last_seen)
SELECT date_trunc('day', hour, 'UTC'), service, origin, reason, agent_id,
       sum(count), sum(would_block), min(first_seen), max(last_seen)
  FROM blocked_hourly
 GROUP BY 1, 2, 3, 4, 5;
