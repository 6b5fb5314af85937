-- Entities as received, with the idempotency record in the same row so that one INSERT is
-- atomic: either the entity and its key exist together, or neither does.
CREATE TABLE IF NOT EXISTS entities (
    id          TEXT PRIMARY KEY NOT NULL,   -- UUIDv7, lower-case hyphenated: sorts by time
    created_at  TEXT NOT NULL,               -- RFC 3339 UTC
    caller      TEXT,                        -- verified principal email, NULL with AUTH_MODE=off
    body        TEXT NOT NULL,               -- the whole JSON object
    idem_scope  TEXT,                        -- principal the key belongs to ('' when anonymous)
    idem_key    TEXT,                        -- Idempotency-Key header
    body_hash   TEXT                         -- SHA-256 of the canonical body, for 422 on reuse
);

CREATE UNIQUE INDEX IF NOT EXISTS entities_idempotency
    ON entities (idem_scope, idem_key) WHERE idem_key IS NOT NULL;
