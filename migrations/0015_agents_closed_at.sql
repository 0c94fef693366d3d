-- When an agent last ended its PolicySync stream itself (a clean shutdown:
-- scaled down, replaced, stopped), as opposed to losing it (crash,
-- partition, killed). Rollout evidence counts a disconnected agent holding
-- an older revision as unreachable only when it did not close its stream
-- since it was last seen: one that left cleanly is taken as retired.
ALTER TABLE agents ADD COLUMN closed_at TIMESTAMPTZ;
