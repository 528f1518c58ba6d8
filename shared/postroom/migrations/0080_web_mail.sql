-- Web mail: conversations, remote images a reader allows, contacts, identities.
--
-- Conversations follow References and In-Reply-To (RFC 5256 §2.2); these expression indexes
-- let the thread lookup find the replies to a Message-ID without reading every blob.
CREATE INDEX blobs_references ON blobs USING gin ((parsed -> 'references'));
CREATE INDEX blobs_in_reply_to ON blobs ((parsed ->> 'in_reply_to'));
-- The message list sorts by date (the Date: header, else the arrival); arrival order of a
-- folder is served by this index, so the first page of a large folder is read, not sorted.
CREATE INDEX messages_arrival ON messages (mailbox_id, internal_date, uid);
