-- Stream state and push sessions for the history API and CLI (receiver/history.py).
--
-- They are kept current by triggers on `events`, so they commit in the same transaction as the
-- event that changed them, and a duplicate (ignored by INSERT OR IGNORE) changes nothing. The
-- state is decided by each push session's `sequence` and event times, never by arrival order:
-- CSS retries reorder callbacks, so a stream-end may be stored before its push-begin.
--
-- The triggers must never fail (a failing trigger would fail the callback's commit, and CSS
-- would retry it forever): every value is guarded with coalesce/typeof, there is no CHECK
-- constraint, and uniqueness conflicts are upserts.

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
    events           INTEGER NOT NULL DEFAULT 0,
    last_begin       REAL,                       -- unix seconds of the latest push begin
    last_end         REAL,                       -- unix seconds of the latest stream end
    last_end_code    INTEGER,                    -- its errcode (interruption reason)
    last_end_message TEXT,                       -- its errmsg
    last_received_at REAL    NOT NULL            -- arrival of the newest event of the stream
);
CREATE UNIQUE INDEX streams_identity ON streams (domain, app_name, stream_id);
-- `?state=live`: the streams in one state, newest first; and a stream name on any domain.
CREATE INDEX streams_state ON streams (state, id);
CREATE INDEX streams_stream_id ON streams (stream_id);

-- Event counts per stream and kind (the `event_counts` of /api/streams).
CREATE TABLE stream_kinds (
    stream INTEGER NOT NULL, -- streams.id
    kind   TEXT    NOT NULL,
    events INTEGER NOT NULL,
    PRIMARY KEY (stream, kind)
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
    started_at       REAL    NOT NULL,    -- begin_time, else end_time - push_duration
    UNIQUE (stream, session_key)
);
-- The most recent session of a stream (its state) and the session listing, newest first.
CREATE INDEX push_sessions_recent ON push_sessions (stream, started_at);

-- History queries the core indexes do not serve without sorting every match:
-- kind filters in storage order, and what happened on one stream during one session.
CREATE INDEX events_kind_seq ON events (kind, seq);
CREATE INDEX events_stream_kind_time ON events (stream_id, domain, app_name, kind, event_time);

-- The bookkeeping lives on a view's INSTEAD OF trigger so that the live trigger below and the
-- backfill at the end of this file run exactly the same statements.
CREATE VIEW history_feed AS
SELECT seq, id, event_type, kind, domain, app_name, stream_id, event_time, sequence,
       received_at, payload
FROM events WHERE 0;

CREATE TRIGGER history_feed_insert INSTEAD OF INSERT ON history_feed
BEGIN
    INSERT INTO streams (domain, app_name, stream_id, events, last_received_at)
    VALUES (coalesce(NEW.domain, ''), coalesce(NEW.app_name, ''), NEW.stream_id, 1,
            NEW.received_at)
    ON CONFLICT (domain, app_name, stream_id) DO UPDATE SET
        events = events + 1,
        last_received_at = max(last_received_at, excluded.last_received_at);

    INSERT INTO stream_kinds (stream, kind, events)
    SELECT id, NEW.kind, 1 FROM streams
    WHERE domain = coalesce(NEW.domain, '') AND app_name = coalesce(NEW.app_name, '')
      AND stream_id = NEW.stream_id
    ON CONFLICT (stream, kind) DO UPDATE SET events = events + 1;

    -- Push sessions: only push begin (1) and stream end (0) open or close one.
    INSERT INTO push_sessions (stream, session_key, sequence, begin_seq, begin_time, end_seq,
                               end_time, end_code, end_message, push_duration_ms, started_at)
    SELECT s.id, coalesce(NEW.sequence, '#' || NEW.id), NEW.sequence,
           iif(NEW.event_type = 1, NEW.seq, NULL), iif(NEW.event_type = 1, f.at, NULL),
           iif(NEW.event_type = 0, NEW.seq, NULL), iif(NEW.event_type = 0, f.at, NULL),
           f.code, f.message, f.duration,
           iif(f.duration > 0, f.at - f.duration / 1000.0, f.at)
    FROM streams AS s,
         (SELECT coalesce(NEW.event_time, NEW.received_at) AS at,
                 CASE WHEN typeof(c) = 'integer' THEN c
                      WHEN typeof(c) = 'real' AND c = CAST(c AS INTEGER) THEN CAST(c AS INTEGER)
                      WHEN typeof(c) = 'text' AND trim(c) <> '' AND length(trim(c)) <= 18
                           AND trim(c) NOT GLOB '*[^0-9]*' THEN CAST(trim(c) AS INTEGER)
                 END AS code,
                 iif(typeof(m) = 'text', m, NULL) AS message,
                 CASE WHEN typeof(d) IN ('integer', 'real') AND d >= 0 AND d < 1e13
                           THEN CAST(d AS INTEGER)
                      WHEN typeof(d) = 'text' AND trim(d) <> '' AND length(trim(d)) <= 13
                           AND trim(d) NOT GLOB '*[^0-9]*' THEN CAST(trim(d) AS INTEGER)
                 END AS duration
          FROM (SELECT iif(ok, json_extract(NEW.payload, '$.errcode'), NULL) AS c,
                       iif(ok, json_extract(NEW.payload, '$.errmsg'), NULL) AS m,
                       iif(ok, json_extract(NEW.payload, '$.push_duration'), NULL) AS d
                FROM (SELECT NEW.event_type = 0 AND json_valid(NEW.payload) AS ok))) AS f
    WHERE NEW.event_type IN (0, 1)
      AND s.domain = coalesce(NEW.domain, '') AND s.app_name = coalesce(NEW.app_name, '')
      AND s.stream_id = NEW.stream_id
    ON CONFLICT (stream, session_key) DO UPDATE SET
        -- The first begin and the first end of a session win; a begin that arrives after its
        -- end replaces the start estimated from push_duration with the real one.
        begin_seq = coalesce(begin_seq, excluded.begin_seq),
        begin_time = coalesce(begin_time, excluded.begin_time),
        started_at = iif(begin_seq IS NULL AND excluded.begin_seq IS NOT NULL,
                         excluded.started_at, started_at),
        end_seq = coalesce(end_seq, excluded.end_seq),
        end_time = coalesce(end_time, excluded.end_time),
        end_code = iif(end_seq IS NULL, excluded.end_code, end_code),
        end_message = iif(end_seq IS NULL, excluded.end_message, end_message),
        push_duration_ms = iif(end_seq IS NULL, excluded.push_duration_ms, push_duration_ms);

    -- A stream is live when its most recent session (by start time, then first seen) has a
    -- begin and no end.
    UPDATE streams SET
        (current_session, state) = (
            SELECT p.id, iif(p.end_seq IS NULL, 'live', 'ended') FROM push_sessions AS p
            WHERE p.stream = streams.id ORDER BY p.started_at DESC, p.id DESC LIMIT 1),
        last_begin = iif(NEW.event_type = 1
                         AND coalesce(last_begin < coalesce(NEW.event_time, NEW.received_at), 1),
                         coalesce(NEW.event_time, NEW.received_at), last_begin)
    WHERE NEW.event_type IN (0, 1)
      AND domain = coalesce(NEW.domain, '') AND app_name = coalesce(NEW.app_name, '')
      AND stream_id = NEW.stream_id;

    UPDATE streams SET
        (last_end, last_end_code, last_end_message) = (
            SELECT p.end_time, p.end_code, p.end_message FROM push_sessions AS p
            WHERE p.stream = streams.id AND p.session_key = coalesce(NEW.sequence, '#' || NEW.id))
    WHERE NEW.event_type = 0
      AND domain = coalesce(NEW.domain, '') AND app_name = coalesce(NEW.app_name, '')
      AND stream_id = NEW.stream_id
      AND coalesce(last_end <= coalesce(NEW.event_time, NEW.received_at), 1);
END;

CREATE TRIGGER push_sessions_count AFTER INSERT ON push_sessions
BEGIN
    UPDATE streams SET sessions = sessions + 1 WHERE id = NEW.stream;
END;

-- Every new event with a stream feeds the bookkeeping. A duplicate is ignored by the writer's
-- INSERT OR IGNORE before any AFTER INSERT trigger fires, so it is never counted twice.
CREATE TRIGGER events_history AFTER INSERT ON events
WHEN NEW.stream_id IS NOT NULL
BEGIN
    INSERT INTO history_feed
    VALUES (NEW.seq, NEW.id, NEW.event_type, NEW.kind, NEW.domain, NEW.app_name, NEW.stream_id,
            NEW.event_time, NEW.sequence, NEW.received_at, NEW.payload);
END;

-- Events stored before this migration, in storage order, through the same statements.
INSERT INTO history_feed
SELECT seq, id, event_type, kind, domain, app_name, stream_id, event_time, sequence, received_at,
       payload
FROM events WHERE stream_id IS NOT NULL ORDER BY seq;
