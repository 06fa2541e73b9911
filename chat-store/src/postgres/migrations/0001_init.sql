-- 0001: the event log, its stream heads and its global head.
--
-- Runs inside the migration transaction with search_path set to the store's schema.

-- One row per stream: the conditional update of this row is the optimistic-concurrency check
-- and the row lock that serialises appenders of the same stream.
CREATE TABLE streams (
    stream_id text PRIMARY KEY,
    version   bigint NOT NULL CHECK (version > 0)
);

-- A single row holding the last committed global position. Appenders take its row lock as the
-- last step before inserting their events and keep it until commit, so positions are gap-free
-- and commit in position order (docs/POSTGRES.md, "Visibility rule").
CREATE TABLE log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL CHECK (position >= 0)
);
INSERT INTO log_head (singleton, position) VALUES (true, 0);

-- The log itself. recorded_at is kept as seconds + nanoseconds so the host's timestamp comes
-- back bit for bit (timestamptz has only microseconds).
CREATE TABLE events (
    global_position bigint  PRIMARY KEY CHECK (global_position > 0),
    event_id        uuid    NOT NULL UNIQUE,
    stream_id       text    NOT NULL,
    stream_version  bigint  NOT NULL CHECK (stream_version > 0),
    event_type      text    NOT NULL,
    schema_version  integer NOT NULL CHECK (schema_version BETWEEN 0 AND 65535),
    recorded_at_s   bigint  NOT NULL,
    recorded_at_ns  integer NOT NULL CHECK (recorded_at_ns >= 0),
    correlation_id  uuid,
    causation_id    uuid,
    payload         bytea   NOT NULL,
    UNIQUE (stream_id, stream_version)
);
