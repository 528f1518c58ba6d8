-- Substring search (IMAP SEARCH TEXT/BODY, the API's search) is an ILIKE over
-- blobs.search_text and blobs.header_text; a trigram index makes it fast where the pg_trgm extension is installed.
-- Embedded servers without contrib modules still work, with a sequential scan.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX IF NOT EXISTS blobs_search_trgm ON blobs USING gin (search_text gin_trgm_ops);
        CREATE INDEX IF NOT EXISTS blobs_header_trgm ON blobs USING gin (header_text gin_trgm_ops);
    END IF;
END
$$;
