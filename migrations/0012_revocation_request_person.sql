-- Four eyes on revocation requests compares people, as 0010 made it for
-- origin requests: the person behind whoever asked for an approved origin
-- to be revoked (the requester's email, or for an API token the person who
-- created it). Without it, a revocation filed through someone's token
-- could be confirmed by that same person. NULL reads as
-- `revocation_requested_by` (rows written by other tools).
ALTER TABLE origins ADD COLUMN revocation_requested_by_person TEXT;

UPDATE origins o
   SET revocation_requested_by_person = COALESCE(
       (SELECT t.created_by FROM api_tokens t
         WHERE o.revocation_requested_by = 'token:' || t.name
         ORDER BY t.created_at LIMIT 1),
       o.revocation_requested_by)
 WHERE o.revocation_requested_by IS NOT NULL;
