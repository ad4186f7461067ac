-- Replay jobs and refused callbacks on PostgreSQL (issue 14; SQLite keeps both its own way).

-- Replays started over HTTP (`POST /api/events/replay`), shared by every replica so that any of
-- them answers for a job another one started, and one runs at a time across them
-- (receiver/outbox/pg_replay.py). SQLite keeps them in the one service's memory.
CREATE TABLE replay_jobs (
    id            TEXT PRIMARY KEY,
    state         TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'cancelled')),
    filter        TEXT NOT NULL,                 -- the selection as given (JSON, key order kept)
    matched       BIGINT NOT NULL,
    published     BIGINT NOT NULL DEFAULT 0,
    unroutable    BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    started_at    DOUBLE PRECISION NOT NULL,     -- unix seconds
    finished_at   DOUBLE PRECISION,
    error         TEXT,
    -- Written with the progress every second by the replica running it (the server's clock):
    -- a running job silent for long is taken for dead and marked failed.
    heartbeat_at  DOUBLE PRECISION NOT NULL
);
-- At most one running job, whichever replica started it.
CREATE UNIQUE INDEX replay_jobs_one_running ON replay_jobs ((TRUE)) WHERE state = 'running';

-- A callback the database refuses to store as an event (a constraint or a trigger says no, not
-- an unreachable server): kept here, verbatim, so it is not lost, and answered 200 once this
-- row committed (receiver/storage/postgres/rejects.py). The same name and meaning as SQLite's
-- table (migrations/0005_inbox.sql): /readyz reports them (degraded) until an operator has dealt
-- with them and deleted the rows (docs/guarantees.md).
CREATE TABLE fold_rejects (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT    NOT NULL,               -- the id the callback was acknowledged with
    event_type   INTEGER NOT NULL,
    received_at  DOUBLE PRECISION NOT NULL,
    path_kind    TEXT,
    payload      BYTEA   NOT NULL,               -- the request body, byte for byte
    error        TEXT    NOT NULL,               -- what the database said
    rejected_at  DOUBLE PRECISION NOT NULL
);
