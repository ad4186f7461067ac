-- The acknowledgement path writes here and nowhere else (issue 13): an accepted callback is
-- appended as the bytes CSS sent, committed with synchronous=FULL, and answered 200. The fold
-- (receiver/storage/fold.py) later turns inbox rows into `events` rows, in `seq` order and in
-- large batches: deduplication, normalised columns, every index and the history triggers are
-- paid there, off the acknowledgement's path. Folding a row deletes it in the same transaction
-- that stores its event, so a row is folded exactly once whatever stops the process.
--
-- AUTOINCREMENT: a seq is never given twice, also once the fold has emptied the table, so "the
-- fold is past seq N" (what `GET /api/events/{id}` waits for) always means that row.
CREATE TABLE inbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- arrival order: the fold's order
    id           TEXT    NOT NULL,      -- the event id given at acknowledgement (X-Event-Id)
    event_type   INTEGER NOT NULL,
    received_at  REAL    NOT NULL,      -- unix seconds
    path_kind    TEXT,                  -- /callbacks/<path kind>, metadata only
    payload      BLOB    NOT NULL       -- the request body, verbatim (valid UTF-8 JSON)
);
-- `GET /api/events/{id}` for an id not folded yet. Ids are UUIDv7 made in arrival order, so
-- this index grows at its right edge: a page or two per commit.
CREATE INDEX inbox_id ON inbox (id);

-- An acknowledged id whose callback turned out, when folded, to repeat a stored event: the id
-- the caller was given still finds that event. One row per duplicate only.
CREATE TABLE event_aliases (
    id        TEXT PRIMARY KEY,         -- the id acknowledged for the repeat
    event_id  TEXT NOT NULL             -- events.id of the event it repeats
) WITHOUT ROWID;

-- A callback the database refuses to store as an event (a constraint or trigger says no; not a
-- disk error, which the fold retries): kept here, verbatim, so the rows after it fold on and
-- nothing is lost. /readyz `fold` reports them (degraded) until an operator has dealt with them
-- and deleted the rows (docs/guarantees.md).
CREATE TABLE fold_rejects (
    seq          INTEGER PRIMARY KEY,   -- its inbox seq
    id           TEXT    NOT NULL,
    event_type   INTEGER NOT NULL,
    received_at  REAL    NOT NULL,
    path_kind    TEXT,
    payload      BLOB    NOT NULL,
    error        TEXT    NOT NULL,      -- what the database said
    rejected_at  REAL    NOT NULL
);

-- Events stored before this migration were folded at once; nothing to move.
