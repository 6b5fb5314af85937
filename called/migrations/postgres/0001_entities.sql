-- Entities as received, with the idempotency record in the same row so that one INSERT is
-- atomic: either the entity and its key exist together, or neither does.
-- Same shape as migrations/sqlite/0001_entities.sql, with native types.
CREATE TABLE IF NOT EXISTS entities (
    id          uuid PRIMARY KEY,            -- UUIDv7: byte order = creation order
    created_at  timestamptz NOT NULL,        -- microsecond precision, served as RFC 3339 UTC
    caller      text,                        -- verified principal email, NULL with AUTH_MODE=off
    body        jsonb NOT NULL               -- the whole JSON object
                CHECK (jsonb_typeof(body) = 'object'),
    idem_scope  text,                        -- principal the key belongs to ('' when anonymous)
    idem_key    text,                        -- Idempotency-Key header
    body_hash   text                         -- SHA-256 of the canonical body, for 422 on reuse
);

-- Enforces idempotency across instances: INSERT ... ON CONFLICT (idem_scope, idem_key)
-- WHERE idem_key IS NOT NULL DO NOTHING waits for a concurrent insert of the same key.
CREATE UNIQUE INDEX IF NOT EXISTS entities_idempotency
    ON entities (idem_scope, idem_key) WHERE idem_key IS NOT NULL;
