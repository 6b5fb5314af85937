-- Issue 11: the end user on whose behalf an entity was written, idempotency scoped to
-- (principal, end user, key), and reads scoped to the principal that stored an entity.
-- Rows written before this migration keep everything; their on_behalf_of is NULL and their
-- keys belong to (principal, no end user), exactly as before.
ALTER TABLE entities ADD COLUMN on_behalf_of TEXT;  -- verified end-user email, NULL if none
ALTER TABLE entities ADD COLUMN idem_user TEXT NOT NULL DEFAULT '';  -- end user of the key ('' if none)

DROP INDEX IF EXISTS entities_idempotency;
CREATE UNIQUE INDEX IF NOT EXISTS entities_idempotency_user
    ON entities (idem_scope, idem_user, idem_key) WHERE idem_key IS NOT NULL;

-- A principal's own entities, in id order (scoped reads and pages).
CREATE INDEX IF NOT EXISTS entities_caller_id ON entities (caller, id);
