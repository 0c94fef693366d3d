-- Agent identity bound to the token (issue 11): an agent token may sync and
-- report only as the agent ids first seen with it, or as fresh ones, so no
-- token can squat another agent's id (its status rows, its telemetry
-- sequence).
--
-- Tokens come in lineages: a token issued to replace another (an admin
-- action: `token issue --replaces`, or `replaces` on POST /agent-tokens)
-- joins the replaced token's lineage and may act as its agents. NULL means
-- the token is the first of its own lineage (lineage = id), so existing
-- inserts need not change.
ALTER TABLE agent_tokens
    ADD COLUMN lineage UUID REFERENCES agent_tokens (id);

-- One row per agent id: the lineage that owns it. The primary key is what
-- makes the first binding race-free (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE agent_bindings (
    agent_id  TEXT PRIMARY KEY,
    lineage   UUID NOT NULL REFERENCES agent_tokens (id),
    -- The token that first presented the id.
    token_id  UUID NOT NULL REFERENCES agent_tokens (id),
    bound_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX agent_bindings_lineage ON agent_bindings (lineage);

-- Agents already known are bound to the token they last connected with.
INSERT INTO agent_bindings (agent_id, lineage, token_id)
SELECT a.id, t.id, t.id
  FROM agents a JOIN agent_tokens t ON t.id = a.token_id
ON CONFLICT (agent_id) DO NOTHING;
