-- Stream state and push sessions for the history API and CLI (receiver/history.py).
--
-- They are kept current by triggers on `events`, so they commit in the same transaction as the
-- event that changed them, and a duplicate (ignored by INSERT OR IGNORE) changes nothing. The
-- state is decided by each push session's `sequence` and event times, never by arrival order:
-- CSS retries reorder callbacks, so a stream-end may be stored before its push-begin.
--
-- The triggers must never fail (a failing trigger would fail the callback's commit, and CSS
-- would retry it forever): every value is guarded with coalesce/typeof, there is no CHECK
-- constraint, and rows that may exist already are inserted with OR IGNORE.

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
    last_end_code    INTEGER,                    -- its errcode (interruption reason)
    last_end_message TEXT                        -- its errmsg
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
    end_code         INTEGER,             -- errcode of the stream end
    end_message      TEXT,                -- errmsg of the stream end
    push_duration_ms INTEGER,             -- push_duration of the stream end
    started_at       REAL    NOT NULL     -- begin_time, else end_time - push_duration
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
-- calls; INSERT OR IGNORE followed by UPDATE measured several times cheaper than an upsert.
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
SELECT seq, id, event_type, domain, app_name, stream_id, event_time, sequence, received_at,
       payload
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

    -- A begin sets the session's real start (replacing one estimated from its end).
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

    -- An end brings errcode, errmsg and push_duration (numbers may arrive as strings; the
    -- typeof() guards keep malformed values out instead of failing the insert).
    UPDATE push_sessions SET
        end_seq = NEW.seq,
        end_time = coalesce(NEW.event_time, NEW.received_at),
        (end_code, end_message, push_duration_ms) = (
            SELECT CASE WHEN typeof(c) = 'integer' THEN c
                        WHEN typeof(c) = 'real' AND c = CAST(c AS INTEGER)
                             THEN CAST(c AS INTEGER)
                        WHEN typeof(c) = 'text' AND trim(c) <> '' AND length(trim(c)) <= 18
                             AND trim(c) NOT GLOB '*[^0-9]*' THEN CAST(trim(c) AS INTEGER)
                   END,
                   iif(typeof(m) = 'text', m, NULL),
                   CASE WHEN typeof(d) IN ('integer', 'real') AND d >= 0 AND d < 1e13
                             THEN CAST(d AS INTEGER)
                        WHEN typeof(d) = 'text' AND trim(d) <> '' AND length(trim(d)) <= 13
                             AND trim(d) NOT GLOB '*[^0-9]*' THEN CAST(trim(d) AS INTEGER)
                   END
            FROM (SELECT iif(ok, json_extract(NEW.payload, '$.errcode'), NULL) AS c,
                         iif(ok AND json_type(NEW.payload, '$.errmsg') = 'text',
                             json_extract(NEW.payload, '$.errmsg'), NULL) AS m,
                         iif(ok, json_extract(NEW.payload, '$.push_duration'), NULL) AS d
                  FROM (SELECT NEW.event_type = 0 AND json_valid(NEW.payload) AS ok)))
    WHERE NEW.event_type = 0 AND end_seq IS NULL
      AND stream = (
          SELECT id FROM streams
          WHERE domain = coalesce(NEW.domain, '') AND app_name = coalesce(NEW.app_name, '')
            AND stream_id = NEW.stream_id)
      AND session_key = coalesce(NEW.sequence, '#' || NEW.id);

    -- A session known only from its end started push_duration before it.
    UPDATE push_sessions SET started_at = end_time - push_duration_ms / 1000.0
    WHERE NEW.event_type = 0 AND begin_seq IS NULL AND end_seq = NEW.seq
      AND push_duration_ms > 0
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

    -- The stream's latest end, and why it happened.
    UPDATE streams SET
        (last_end, last_end_code, last_end_message) = (
            SELECT p.end_time, p.end_code, p.end_message FROM push_sessions AS p
            WHERE p.stream = streams.id AND p.end_seq = NEW.seq)
    WHERE NEW.event_type = 0
      AND domain = coalesce(NEW.domain, '') AND app_name = coalesce(NEW.app_name, '')
      AND stream_id = NEW.stream_id
      AND coalesce(last_end <= coalesce(NEW.event_time, NEW.received_at), 1)
      AND EXISTS (SELECT 1 FROM push_sessions AS p
                  WHERE p.stream = streams.id AND p.end_seq = NEW.seq);
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
            NEW.event_time, NEW.sequence, NEW.received_at, NEW.payload);
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
SELECT seq, id, event_type, domain, app_name, stream_id, event_time, sequence, received_at,
       payload
FROM events WHERE event_type IN (0, 1) AND stream_id IS NOT NULL ORDER BY seq;
