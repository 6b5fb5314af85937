-- Issue 12.9: bodies are kept exactly as received. jsonb rewrites numbers (1.0E+2 -> 100),
-- reorders keys and cannot hold some valid JSON (numbers beyond numeric's range), so new rows
-- store the compact received text in body_text and leave body NULL; rows written before keep
-- their jsonb body (read back as body::text, as before). Readers use
-- COALESCE(body_text, body::text), which is what the SQLite backend stores in its body column.
ALTER TABLE entities ADD COLUMN IF NOT EXISTS body_text text;
ALTER TABLE entities ALTER COLUMN body DROP NOT NULL;
ALTER TABLE entities ADD CONSTRAINT entities_body_present
    CHECK (body IS NOT NULL OR body_text IS NOT NULL);
