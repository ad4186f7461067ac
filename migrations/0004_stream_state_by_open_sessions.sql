-- Stream state from every open push session (issue 12): the rule is in docs/history-api.md
-- ("How stream state is decided"). 0002 decided a stream's state by its latest session alone,
-- so an overlapping backup push that ended ended the stream while the main push went on; it
-- placed a session known only from its end at the end's time, so an old session's late end
-- could become "the latest" and end a newer push; and an event without `app`/`appname` made a
-- second stream row while the real one stayed live.
--
-- The derived tables are dropped and rebuilt from the stored events (last statement), through
-- the same statements the triggers run for a new event, so an upgraded database holds exactly
-- what a new one would. Each migration runs in one transaction: a failure leaves 0003's tables.
--
-- What 0002 said about the triggers still holds: they run inside the writer's transaction for
-- every stored event and must never fail (a failing trigger fails the callback's commit and CSS
-- retries it forever), so they guard every value, have no CHECK constraint, and insert rows that
-- may exist already with OR IGNORE. They also call no scalar SQL function (iif and coalesce
-- are compiled inline; count and max here are aggregates): one such call anywhere in a trigger
-- on `events`, even in one whose WHEN never holds, makes SQLite treat every insert as one that
-- may abort and open a statement journal for it, which costs more than the history statements
-- themselves (tests/history/test_schema.py checks the writer's insert for such calls).

-- A stream end's `push_duration` as whole milliseconds (NULL for other kinds, or when it is not
-- usable), so that the triggers can place a session known only from its end without parsing
-- JSON. The writer fills it (receiver/storage/rows.py, `push_duration_ms`); events stored before
-- this migration get it here, by the same rule: a JSON integer or integral number from 0 to
-- 10^18 - 1, or a string of 1 to 18 ASCII digits with spaces around allowed.
ALTER TABLE events ADD COLUMN push_duration_ms INTEGER;
UPDATE events SET push_duration_ms = (
    SELECT CASE d.type
        WHEN 'integer' THEN iif(d.value BETWEEN 0 AND 999999999999999999, d.value, NULL)
        WHEN 'real' THEN iif(d.value >= 0 AND d.value < 1e18
                             AND d.value = cast(d.value AS INTEGER), cast(d.value AS INTEGER),
                             NULL)
        WHEN 'text' THEN iif(length(trim(d.value)) BETWEEN 1 AND 18
                             AND trim(d.value) NOT GLOB '*[^0-9]*',
                             cast(trim(d.value) AS INTEGER), NULL)
        END
    FROM (SELECT json_type(payload, '$.push_duration') AS type,
                 json_extract(payload, '$.push_duration') AS value) AS d)
WHERE event_type = 0 AND json_valid(payload);

DROP TRIGGER events_stream_counts;
DROP TRIGGER events_push_sessions;
DROP VIEW push_feed;         -- and its INSTEAD OF trigger
DROP TABLE push_sessions;    -- and push_sessions_count, and its indexes
DROP TABLE stream_kinds;
DROP TABLE streams;

-- One row per (domain, app_name, stream_id) that has at least one event. '' stands for an
-- identity field the event did not carry and that could not be resolved (see stream_feed).
CREATE TABLE streams (
    id               INTEGER PRIMARY KEY, -- first-seen order: the stable sort key of /api/streams
    domain           TEXT    NOT NULL,
    app_name         TEXT    NOT NULL,
    stream_id        TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'unknown', -- live (a session open), ended, unknown
    current_session  INTEGER,             -- the latest open session; else the latest session
    sessions         INTEGER NOT NULL DEFAULT 0,
    open_sessions    INTEGER NOT NULL DEFAULT 0, -- sessions with a push begin and no stream end
    last_begin       REAL,                -- unix seconds of the latest push begin
    last_end         REAL,                -- unix seconds of the latest stream end
    last_end_seq     INTEGER              -- events.seq of it (errcode, errmsg: its body)
);
CREATE UNIQUE INDEX streams_identity ON streams (domain, app_name, stream_id);
-- `?state=live`: the streams in one state, newest first; and a stream name on any domain
-- (also how an event missing its domain or app name finds the stream's known identity).
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

-- One row per push session: the push begin (1) and stream end (0) that carry the same
-- `sequence`, whichever arrived first. The first begin and the first end of a session win.
CREATE TABLE push_sessions (
    id               INTEGER PRIMARY KEY, -- first-seen order, the tie-break between sessions
    stream           INTEGER NOT NULL,    -- streams.id
    session_key      TEXT    NOT NULL,    -- `sequence`, or '#' || event id when it is missing
    sequence         TEXT,
    begin_seq        INTEGER,             -- events.seq of the push begin
    begin_time       REAL,                -- its event_time (arrival time if it had none)
    end_seq          INTEGER,             -- events.seq of the stream end
    end_time         REAL,
    push_duration_ms INTEGER,             -- the end's push_duration, when it is usable
    started_at       REAL    NOT NULL     -- begin_time; else end_time - push_duration; else
                                          -- end_time: orders the sessions
);
CREATE UNIQUE INDEX push_sessions_key ON push_sessions (stream, session_key);
-- The session listing, newest first, and a stream's latest session.
CREATE INDEX push_sessions_recent ON push_sessions (stream, started_at);
-- A stream's open sessions: its state and current session, without reading its history.
CREATE INDEX push_sessions_open ON push_sessions (stream, started_at) WHERE end_seq IS NULL;

CREATE TRIGGER push_sessions_count AFTER INSERT ON push_sessions
BEGIN
    UPDATE streams SET sessions = sessions + 1 WHERE id = NEW.stream;
END;

-- The triggers pass each event down three views, so that live events and the rebuild at the
-- end of this file run exactly the same statements (a view's INSTEAD OF trigger is the only
-- way to run trigger statements again for rows already stored):
--   stream_event_feed  the event's identity as stored; resolves a missing domain or app name
--   stream_feed        the resolved identity: counts the event, passes push begin/end on
--   push_feed          a push begin or end on its stream row: sessions and stream state

CREATE VIEW stream_event_feed AS
SELECT seq, id, event_type, kind, domain, app_name, stream_id, event_time, sequence, received_at,
       push_duration_ms
FROM events WHERE 0;

CREATE VIEW stream_feed AS
SELECT seq, id, event_type, kind, domain, app_name, stream_id, event_time, sequence, received_at,
       push_duration_ms
FROM events WHERE 0;

CREATE VIEW push_feed AS
SELECT 0 AS stream, 0 AS seq, 0 AS event_type, '' AS session_key, '' AS sequence, 0.0 AS at,
       0 AS push_duration_ms
WHERE 0;

-- A missing domain or app name is taken from the one stream of that name whose identity has
-- it and agrees with what the event does carry: an end without `app`/`appname` for stream X
-- joins the only known (*, *, X); without `appname` on domain D, the only known (D, *, X). If
-- none or several match, the field stays '' (a row of its own): never a guess. Events with
-- their whole identity skip both lookups (coalesce stops at its first non-NULL argument).
-- Every feed is a single-row VALUES insert: an INSERT ... SELECT into a view with triggers
-- would fill a temporary table first, for every stored event.
CREATE TRIGGER stream_event_feed_insert INSTEAD OF INSERT ON stream_event_feed
BEGIN
    INSERT INTO stream_feed
    VALUES (NEW.seq, NEW.id, NEW.event_type, NEW.kind,
            coalesce(NEW.domain,
                     (SELECT iif(count(*) = 1, max(k.domain), NULL) FROM (
                         SELECT domain FROM streams
                         WHERE stream_id = NEW.stream_id AND domain <> ''
                           AND iif(NEW.app_name IS NULL, app_name <> '', app_name = NEW.app_name)
                         LIMIT 2) AS k),
                     ''),
            coalesce(NEW.app_name,
                     (SELECT iif(count(*) = 1, max(k.app_name), NULL) FROM (
                         SELECT app_name FROM streams
                         WHERE stream_id = NEW.stream_id AND app_name <> ''
                           AND iif(NEW.domain IS NULL, domain <> '', domain = NEW.domain)
                         LIMIT 2) AS k),
                     ''),
            NEW.stream_id, NEW.event_time, NEW.sequence, NEW.received_at,
            NEW.push_duration_ms);
END;

-- Every event with a stream is counted. Cost matters here: this runs for every stored event,
-- so it is small statements without SQL function calls; INSERT OR IGNORE followed by UPDATE
-- measured several times cheaper than an upsert, and iif() than max(). bench/history.py prints
-- what the triggers cost the write path. A duplicate is ignored by the writer's INSERT OR IGNORE
-- before AFTER INSERT triggers fire, so it is never counted twice.
CREATE TRIGGER stream_feed_count INSTEAD OF INSERT ON stream_feed
BEGIN
    INSERT OR IGNORE INTO streams (domain, app_name, stream_id)
    VALUES (NEW.domain, NEW.app_name, NEW.stream_id);

    INSERT OR IGNORE INTO stream_kinds (domain, app_name, stream_id, kind, events,
                                        last_received_at)
    VALUES (NEW.domain, NEW.app_name, NEW.stream_id, NEW.kind, 0, NEW.received_at);
    UPDATE stream_kinds SET
        events = events + 1,
        last_received_at = iif(last_received_at < NEW.received_at, NEW.received_at,
                               last_received_at)
    WHERE domain = NEW.domain AND app_name = NEW.app_name AND stream_id = NEW.stream_id
      AND kind = NEW.kind;
END;

-- Push begins and stream ends also go to push_feed, on their stream row (made here too: SQLite
-- does not promise in which order the two triggers of stream_feed run).
--
-- The session key: the `sequence`; an end without one closes the stream's only open session
-- that has none either (the same never-guess rule as the identity above); else the event's own
-- id, a session of its own.
CREATE TRIGGER stream_feed_push INSTEAD OF INSERT ON stream_feed
WHEN NEW.event_type IN (0, 1)
BEGIN
    INSERT OR IGNORE INTO streams (domain, app_name, stream_id)
    VALUES (NEW.domain, NEW.app_name, NEW.stream_id);

    INSERT INTO push_feed
    VALUES ((SELECT id FROM streams
             WHERE domain = NEW.domain AND app_name = NEW.app_name AND stream_id = NEW.stream_id),
            NEW.seq, NEW.event_type,
            coalesce(NEW.sequence,
                     iif(NEW.event_type = 0,
                         (SELECT iif(count(*) = 1, max(o.session_key), NULL) FROM (
                             SELECT p.session_key FROM push_sessions AS p
                             WHERE p.stream = (SELECT id FROM streams
                                               WHERE domain = NEW.domain
                                                 AND app_name = NEW.app_name
                                                 AND stream_id = NEW.stream_id)
                               AND p.end_seq IS NULL AND p.sequence IS NULL
                             LIMIT 2) AS o),
                         NULL),
                     '#' || NEW.id),
            NEW.sequence, coalesce(NEW.event_time, NEW.received_at),
            NEW.push_duration_ms);
END;

CREATE TRIGGER push_feed_insert INSTEAD OF INSERT ON push_feed
BEGIN
    -- A new session, complete with what this event says. A session known only from its end
    -- began push_duration before it (until its begin arrives, if ever), unless that would be
    -- before 1970: then it is placed at its end.
    INSERT OR IGNORE INTO push_sessions (stream, session_key, sequence, begin_seq, begin_time,
                                         end_seq, end_time, push_duration_ms, started_at)
    VALUES (NEW.stream, NEW.session_key, NEW.sequence,
            iif(NEW.event_type = 1, NEW.seq, NULL), iif(NEW.event_type = 1, NEW.at, NULL),
            iif(NEW.event_type = 0, NEW.seq, NULL), iif(NEW.event_type = 0, NEW.at, NULL),
            NEW.push_duration_ms,
            iif(NEW.event_type = 0 AND NEW.push_duration_ms <= NEW.at * 1000,
                NEW.at - NEW.push_duration_ms / 1000.0, NEW.at));

    -- A session seen before: its begin sets the start; its end closes it.
    UPDATE push_sessions SET begin_seq = NEW.seq, begin_time = NEW.at, started_at = NEW.at
    WHERE NEW.event_type = 1 AND stream = NEW.stream AND session_key = NEW.session_key
      AND begin_seq IS NULL;
    UPDATE push_sessions SET
        end_seq = NEW.seq, end_time = NEW.at, push_duration_ms = NEW.push_duration_ms
    WHERE NEW.event_type = 0 AND stream = NEW.stream AND session_key = NEW.session_key
      AND end_seq IS NULL;

    -- A stream is live while any of its sessions is open (begun, not ended): a backup push
    -- overlaps the main one with its own sequence, and either may end first. Its current
    -- session is its latest open one, else its latest one. Both read only the stream's open
    -- sessions and one index entry, never its whole history.
    UPDATE streams SET
        state = iif(EXISTS (SELECT 1 FROM push_sessions AS p
                            WHERE p.stream = NEW.stream AND p.end_seq IS NULL),
                    'live', 'ended'),
        open_sessions = (SELECT count(*) FROM push_sessions AS p
                         WHERE p.stream = NEW.stream AND p.end_seq IS NULL),
        current_session = coalesce(
            (SELECT p.id FROM push_sessions AS p
             WHERE p.stream = NEW.stream AND p.end_seq IS NULL
             ORDER BY p.started_at DESC, p.id DESC LIMIT 1),
            (SELECT p.id FROM push_sessions AS p
             WHERE p.stream = NEW.stream ORDER BY p.started_at DESC, p.id DESC LIMIT 1)),
        last_begin = iif(NEW.event_type = 1 AND coalesce(last_begin < NEW.at, 1),
                         NEW.at, last_begin),
        -- The stream's latest end (why it happened is in that event's body).
        last_end = iif(NEW.event_type = 0 AND coalesce(last_end <= NEW.at, 1),
                       NEW.at, last_end),
        last_end_seq = iif(NEW.event_type = 0 AND coalesce(last_end <= NEW.at, 1),
                           NEW.seq, last_end_seq)
    WHERE id = NEW.stream;
END;

-- The entry points. An event with its whole identity (nearly all) goes straight to stream_feed;
-- one missing its domain or app name is resolved first. The rebuild below sends every event
-- through stream_event_feed, which passes a whole identity on unchanged: the same result.
CREATE TRIGGER events_stream_known AFTER INSERT ON events
WHEN NEW.stream_id IS NOT NULL AND NEW.domain IS NOT NULL AND NEW.app_name IS NOT NULL
BEGIN
    INSERT INTO stream_feed
    VALUES (NEW.seq, NEW.id, NEW.event_type, NEW.kind, NEW.domain, NEW.app_name, NEW.stream_id,
            NEW.event_time, NEW.sequence, NEW.received_at, NEW.push_duration_ms);
END;

CREATE TRIGGER events_stream_partial AFTER INSERT ON events
WHEN NEW.stream_id IS NOT NULL AND (NEW.domain IS NULL OR NEW.app_name IS NULL)
BEGIN
    INSERT INTO stream_event_feed
    VALUES (NEW.seq, NEW.id, NEW.event_type, NEW.kind, NEW.domain, NEW.app_name, NEW.stream_id,
            NEW.event_time, NEW.sequence, NEW.received_at, NEW.push_duration_ms);
END;

-- Rebuild from every stored event, in storage order, as if each had just arrived.
INSERT INTO stream_event_feed
SELECT seq, id, event_type, kind, domain, app_name, stream_id, event_time, sequence, received_at,
       push_duration_ms
FROM events WHERE stream_id IS NOT NULL ORDER BY seq;
