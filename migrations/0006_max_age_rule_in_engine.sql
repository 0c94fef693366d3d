-- The preflight max-age range (0..=86400 seconds) is the CORS engine's rule
-- (`Policy::compile`), which every write goes through; the database no longer
-- keeps a second copy of it (issue 11: one judge of a policy's validity).
-- The column stays INTEGER and NOT NULL.
ALTER TABLE services DROP CONSTRAINT IF EXISTS services_max_age_secs_check;
