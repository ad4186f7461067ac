-- Moderation actions on PostgreSQL (SQLite: migrations/0009, docs/moderation.md): the same
-- table, recorded in the transaction that stores the triggering event
-- (receiver/moderation/pg_book.py), plus a lease, because every replica runs an executor and
-- each action must be carried out by one of them (receiver/moderation/claims.py).
CREATE TABLE moderation_actions (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- the listing's order
    action_id        TEXT    NOT NULL UNIQUE, -- UUIDv7, shown to people and published
    action           TEXT    NOT NULL,    -- drop, forbid, resume
    domain           TEXT    NOT NULL,    -- '' when the callback named none
    app_name         TEXT    NOT NULL,
    stream_id        TEXT    NOT NULL,
    session_key      TEXT    NOT NULL,    -- push_sessions.session_key at the time; '' unknown;
                                          -- 'resume:' || action_id for a resume
    sequence         TEXT,
    trigger_event_id TEXT,
    trigger_kind     TEXT,
    trigger_reason   TEXT,
    reason           TEXT,
    resume_at        DOUBLE PRECISION,
    dry_run          INTEGER NOT NULL DEFAULT 0,
    state            TEXT    NOT NULL DEFAULT 'pending', -- as on SQLite
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       DOUBLE PRECISION NOT NULL,
    called_at        DOUBLE PRECISION,
    finished_at      DOUBLE PRECISION,
    result           TEXT,
    confirmed_at     DOUBLE PRECISION,
    confirm_event_id TEXT,
    -- The executor that works on it (a random id per process) and until when, in the
    -- database's clock (unix seconds), so replicas' clocks need not agree. Another executor
    -- takes an open action only once its lease has run out: the holder renews it while it
    -- works, so a lease runs out only when the holder died or lost the database.
    claimed_by       TEXT,
    lease_until      DOUBLE PRECISION
);
-- Once per stream and push session: a retry on another replica, a further screenshot of the
-- session and a concurrent store of another hit all meet here (ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX moderation_actions_once
    ON moderation_actions (domain, app_name, stream_id, session_key)
    WHERE action IN ('drop', 'forbid');
CREATE INDEX moderation_actions_open ON moderation_actions (id)
    WHERE state IN ('pending', 'calling');
CREATE INDEX moderation_actions_stream ON moderation_actions (stream_id, domain, app_name, id);
