-- Every accepted CSS callback, stored before it is answered 200.
CREATE TABLE events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT, -- storage order: outbox order, cursors
    id               TEXT    NOT NULL UNIQUE,            -- UUIDv7, stable: AMQP message_id
    event_type       INTEGER NOT NULL,
    kind             TEXT    NOT NULL,                   -- receiver.kinds name, 'other' if unknown
    dedupe_key       TEXT    NOT NULL,                   -- receiver.dedupe: identical for retries
    domain           TEXT,
    app_name         TEXT,
    stream_id        TEXT,
    event_time       REAL,                               -- unix seconds; NULL when the kind has none
    sequence         TEXT,                               -- push session id (kinds 0, 1, 321)
    received_at      REAL    NOT NULL,                   -- unix seconds
    path_kind        TEXT,                               -- /callbacks/<path kind>, metadata only
    schema_error     TEXT,                               -- set when the body did not fit its model
    payload          TEXT    NOT NULL,                   -- the request body, verbatim
    -- Outbox columns: an event is published when the broker confirmed it.
    published_at     REAL,
    publish_attempts INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT
);

-- Retries of one event store one row, even when they arrive concurrently.
CREATE UNIQUE INDEX events_dedupe ON events (event_type, dedupe_key);
-- The outbox reads unpublished events oldest first without scanning published ones.
CREATE INDEX events_unpublished ON events (seq) WHERE published_at IS NULL;
-- History queries: by stream, by kind and time, by time, by arrival.
CREATE INDEX events_stream ON events (stream_id, seq);
CREATE INDEX events_kind_time ON events (kind, event_time);
CREATE INDEX events_event_time ON events (event_time);
CREATE INDEX events_received_at ON events (received_at);

-- Small key/value facts about the service itself (readiness heartbeat, ...).
CREATE TABLE service_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
