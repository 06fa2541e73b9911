-- 0002: the hash chain (tamper evidence) and the key vault (crypto-shredding), docs/AUDIT.md.
--
-- Runs inside the migration transaction with search_path set to the store's schema.

-- Each event's link in the global hash chain; NULL for events written before this migration
-- (legacy events may only form a prefix of the log: verify reports them).
ALTER TABLE events ADD COLUMN chain bytea CHECK (chain IS NULL OR length(chain) = 32);

-- The link of the event at the head, updated under the head's row lock by every append, so the
-- next append links to it without reading the events table. NULL: empty log or legacy head.
ALTER TABLE log_head ADD COLUMN chain bytea CHECK (chain IS NULL OR length(chain) = 32);

-- The key vault: one random key per sealed value group (a message, a chat record, a contact's
-- fields…). Not part of the append-only log: deleting a row destroys the content it sealed.
-- owner groups keys for erasure (a chat, a contact, a projection's checkpoints).
CREATE TABLE keys (
    key_id     uuid    PRIMARY KEY,
    owner      uuid,
    secret     bytea   NOT NULL CHECK (length(secret) = 32)
);
CREATE INDEX keys_owner ON keys (owner) WHERE owner IS NOT NULL;
