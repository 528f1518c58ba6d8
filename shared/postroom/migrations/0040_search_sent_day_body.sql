-- IMAP SEARCH SENTBEFORE/SENTON/SENTSINCE compare the day written in the Date: header,
-- "disregarding time and timezone" (RFC 3501 §6.4.4), not its day in UTC: sent_day keeps it.
-- SEARCH BODY must not match the header lines that search_text starts with: search_body_at
-- is where its body text begins (NULL for rows written before: the whole text).
ALTER TABLE blobs ADD COLUMN sent_day date, ADD COLUMN search_body_at integer;

-- Rows parsed before: the day in the Date: header's own numeric zone where one is written.
UPDATE blobs b SET sent_day = (b.sent_date AT TIME ZONE z.zone)::date
FROM (
    SELECT id, coalesce(
        make_interval(mins => ((m[1] || '1')::int) * (m[2]::int * 60 + m[3]::int)),
        INTERVAL '0') AS zone
    FROM blobs, LATERAL (
        SELECT regexp_match(header_text, '(?:^|\n)date:[^\n]*([+-])(\d\d)(\d\d)', 'i') AS m
    ) r
    WHERE sent_date IS NOT NULL
) z
WHERE b.id = z.id;
