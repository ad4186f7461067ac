-- Stream state and push sessions for the history API and CLI (receiver/history.py).
--
-- They are kept current by triggers on `events`, so they commit in the same transaction as the
-- event that changed them, and a duplicate (ignored by INSERT OR IGNORE) changes nothing. The
-- state is decided by each push session's `sequence` and event times, never by arrival order:
-- CSS retries reorder callbacks, so a stream-end may be stored before its push-begin.
--
-- The triggers must never fail (a failing trigger would fail the callback's commit, and CSS
-- would retry it forever): they never parse the body, every value is guarded with coalesce,
-- there is no CHECK constraint, and rows that may exist already are inserted with OR IGNORE.

-- One row per (domain, app_name, stream_id) that has at least one event. '' stands for an
-- event that carried no domain or app name (NULL is not usable in a unique key).
CREATE TABLE streams (
    id               INTEGER PRIMARY KEY, -- first-seen order: the stable sort key of /api/streams
    domain           TEXT    NOT NULL,
    app_name         TEXT    NOT NULL,
    stream_id        TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'unknown', -- live, ended, unknown (no begin/end yet)
    current_session  INTEGER,                    -- push_sessions.id of the most recent session
    sessions         INTEGER NOT NULL DEFAULT 0,
    last_begin       REAL,                       -- unix seconds of the latest push begin
    last_end         REAL,                       -- unix seconds of the latest stream end
    last_end_seq     INTEGER                     -- events.seq of it (errcode, errmsg: its body)
);
CREATE UNIQUE INDEX streams_identity ON streams (domain, app_name, stream_id);
-- `?state=live`: the streams in one state, newest first; and a stream name on any domain.
CREATE INDEX streams_state ON streams (state, id);
CREATE INDEX streams_stream_id ON streams (stream_id);

-- Events per stream and kind: the stream's `event_counts`, total and latest arrival.
CREATE TABLE stream_kinds (
    domain           TEXT    NOT NULL,
    app_name         TEXT    NOT NULL,
    stream_id        TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    events           INTEGER NOT NULL,
    last_received_at REAL    NOT NULL,
    PRIMARY KEY (domain, app_name, stream_id, kind)
) WITHOUT ROWID;

-- One row per push session: the push-begin (1) and stream-end (0) events that carry the same
-- `sequence`, whichever arrived first.
CREATE TABLE push_sessions (
    id               INTEGER PRIMARY KEY, -- first-seen order, the tie-break between sessions
    stream           INTEGER NOT NULL,    -- streams.id
    session_key      TEXT    NOT NULL,    -- `sequence`, or '#' || event id when it is missing
    sequence         TEXT,
    begin_seq        INTEGER,             -- events.seq of the push begin
    begin_time       REAL,                -- its event_time (arrival time if it had none)
    end_seq          INTEGER,             -- events.seq of the stream end
    end_time         REAL,
    started_at       REAL    NOT NULL     -- begin_time, else end_time: orders the sessions
);
CREATE UNIQUE INDEX push_sessions_key ON push_sessions (stream, session_key);
-- The most recent session of a stream (its state) and the session listing, newest first.
CREATE INDEX push_sessions_recent ON push_sessions (stream, started_at);

-- History queries the core indexes do not serve without sorting every match:
-- kind filters in storage order, and what happened on one stream during one session.
CREATE INDEX events_kind_seq ON events (kind, seq);
CREATE INDEX events_stream_kind_time ON events (stream_id, domain, app_name, kind, event_time);

-- Every event with a stream is counted. Cost matters here: this runs inside the writer's
-- transaction for every stored event, so it is three small statements without SQL function
-- calls; INSERT OR IGNORE followed by UPDATE measured several times cheaper than an upsert,
-- and iif() than max(). bench/history.py prints what the triggers cost the write path.
-- A duplicate is ignored by the writer's INSERT OR IGNORE before AFTER INSERT triggers fire,
-- so it is never counted twice.
CREATE TRIGGER events_stream_counts AFTER INSERT ON events
WHEN NEW.stream_id IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO streams (domain, app_name, stream_id)
    VALUES (coalesce(NEW.domain, ''), coalesce(NEW.app_name, ''), NEW.stream_id);

    INSERT OR IGNORE INTO stream_kinds (domain, app_name, stream_id, kind, events,
                                        last_received_at)
    VALUES (coalesce(NEW.domain, ''), coalesce(NEW.app_name, ''), NEW.stream_id, NEW.kind, 0,
            NEW.received_at);
    UPDATE stream_kinds SET
        events = events + 1,
        last_received_at = iif(last_received_at < NEW.received_at, NEW.received_at,
                               last_received_at)
    WHERE domain = coalesce(NEW.domain, '') AND app_name = coalesce(NEW.app_name, '')
      AND stream_id = NEW.stream_id AND kind = NEW.kind;
END;

-- Push sessions: push begin (1) and stream end (0) events open and close them. The logic lives
-- on a view's INSTEAD OF trigger so that live events (below) and the backfill at the end of
-- this file run exactly the same statements. The first begin and the first end of a session
-- win, whatever order they arrive in.
CREATE VIEW push_feed AS
SELECT seq, id, event_type, domain, app_name, stream_id, event_time, sequence, received_at
FROM events WHERE 0;

CREATE TRIGGER push_feed_insert INSTEAD OF INSERT ON push_feed
BEGIN
    INSERT OR IGNORE INTO streams (domain, app_name, stream_id)
    VALUES (coalesce(NEW.domain, ''), coalesce(NEW.app_name, ''), NEW.stream_id);

    INSERT OR IGNORE INTO push_sessions (stream, session_key, sequence, started_at)
    SELECT id, coalesce(NEW.sequence, '#' || NEW.id), NEW.sequence,
           coalesce(NEW.event_time, NEW.received_at)
    FROM streams
    WHERE domain = coalesce(NEW.domain, '') AND app_name = coalesce(NEW.app_name, '')
      AND stream_id = NEW.stream_id;

    -- A begin sets the session's start (until it arrives, the end's time stands in for it).
    UPDATE push_sessions SET
        begin_seq = NEW.seq,
        begin_time = coalesce(NEW.event_time, NEW.received_at),
        started_at = coalesce(NEW.event_time, NEW.received_at)
    WHERE NEW.event_type = 1 AND begin_seq IS NULL
      AND stream = (
          SELECT id FROM streams
          WHERE domain = coalesce(NEW.domain, '') AND app_name = coalesce(NEW.app_name, '')
            AND stream_id = NEW.stream_id)
      AND session_key = coalesce(NEW.sequence, '#' || NEW.id);

    -- errcode, errmsg and push_duration stay in the stream-end's body and are read from it
    -- when a session is shown: JSON functions here measured at ~40 us for every stored event
    -- (SQLite evaluated them whatever the WHEN clause), twice the cost of everything else.
    UPDATE push_sessions SET
        end_seq = NEW.seq,
        end_time = coalesce(NEW.event_time, NEW.received_at)
    WHERE NEW.event_type = 0 AND end_seq IS NULL
      AND stream = (
          SELECT id FROM streams
          WHERE domain = coalesce(NEW.domain, '') AND app_name = coalesce(NEW.app_name, '')
            AND stream_id = NEW.stream_id)
      AND session_key = coalesce(NEW.sequence, '#' || NEW.id);

    -- A stream is live when its most recent session (by start time, then first seen) has a
    -- begin and no end.
    UPDATE streams SET
        (current_session, state) = (
            SELECT p.id, iif(p.end_seq IS NULL, 'live', 'ended') FROM push_sessions AS p
            WHERE p.stream = streams.id ORDER BY p.started_at DESC, p.id DESC LIMIT 1),
        last_begin = iif(NEW.event_type = 1
                         AND coalesce(last_begin < coalesce(NEW.event_time, NEW.received_at), 1),
                         coalesce(NEW.event_time, NEW.received_at), last_begin)
    WHERE domain = coalesce(NEW.domain, '') AND app_name = coalesce(NEW.app_name, '')
      AND stream_id = NEW.stream_id;

    -- The stream's latest end (why it happened is in that event's body).
    UPDATE streams SET
        last_end = coalesce(NEW.event_time, NEW.received_at),
        last_end_seq = NEW.seq
    WHERE NEW.event_type = 0
      AND domain = coalesce(NEW.domain, '') AND app_name = coalesce(NEW.app_name, '')
      AND stream_id = NEW.stream_id
      AND coalesce(last_end <= coalesce(NEW.event_time, NEW.received_at), 1);
END;

CREATE TRIGGER push_sessions_count AFTER INSERT ON push_sessions
BEGIN
    UPDATE streams SET sessions = sessions + 1 WHERE id = NEW.stream;
END;

CREATE TRIGGER events_push_sessions AFTER INSERT ON events
WHEN NEW.event_type IN (0, 1) AND NEW.stream_id IS NOT NULL
BEGIN
    INSERT INTO push_feed
    VALUES (NEW.seq, NEW.id, NEW.event_type, NEW.domain, NEW.app_name, NEW.stream_id,
            NEW.event_time, NEW.sequence, NEW.received_at);
END;

-- Events stored before this migration. Streams get their ids in first-seen order, as the
-- triggers would have given them; sessions replay through the same statements, in order.
INSERT INTO streams (domain, app_name, stream_id)
SELECT coalesce(domain, ''), coalesce(app_name, ''), stream_id
FROM events WHERE stream_id IS NOT NULL
GROUP BY coalesce(domain, ''), coalesce(app_name, ''), stream_id
ORDER BY min(seq);

INSERT INTO stream_kinds (domain, app_name, stream_id, kind, events, last_received_at)
SELECT coalesce(domain, ''), coalesce(app_name, ''), stream_id, kind, count(*), max(received_at)
FROM events WHERE stream_id IS NOT NULL
GROUP BY coalesce(domain, ''), coalesce(app_name, ''), stream_id, kind;

INSERT INTO push_feed
SELECT seq, id, event_type, domain, app_name, stream_id, event_time, sequence, received_at
FROM events WHERE event_type IN (0, 1) AND stream_id IS NOT NULL ORDER BY seq;
