-- The history (streams, counts per kind, push sessions) kept once per INSERT statement instead
-- of once per row (issue 14: the row trigger of 0001 was most of the server's CPU per stored
-- event). The rules are 0001's `events_history`, statement for statement; what changes is how
-- often they run:
--
-- * Most callbacks (snapshots, recordings, moderation, every kind but push begin and stream
--   end) that carry their domain and app name only need their stream to exist and their
--   `stream_kinds` row counted. Those are done for the whole statement at once: the streams it
--   sees first inserted in the order of their first row, the counts summed per stream and kind
--   and upserted once each (counts add up and the latest arrival is a maximum, so the order of
--   the upserts changes nothing).
-- * Push begins and ends (their sessions and the stream's state) and rows missing their domain
--   or app name (resolved against the streams that exist when the row lands) still run row by
--   row, in seq order, through `events_history_row`.
--
-- Both happen in one statement-level AFTER INSERT trigger, so they interleave as rows landing
-- one by one would: before a row of the second kind, every stream first seen by an earlier row
-- of the statement is created, and none seen first by a later one. A row missing its domain
-- thus resolves against exactly the streams SQLite's triggers would see, and streams get their
-- ids (first-seen order) as there. tests/history/test_postgres_history.py feeds the same events
-- to both engines, one row per statement and many rows per statement, and compares every
-- derived row.
--
-- Like 0001's trigger this must never fail (a failing trigger fails the callback's commit, and
-- CSS retries it for ever): every value is guarded; rows that may exist already are inserted
-- with ON CONFLICT DO NOTHING. Rows skipped by ON CONFLICT (duplicates) or by the
-- `events_reconciled` BEFORE trigger are not in the statement's new rows, so they change
-- nothing, as before.

DROP TRIGGER events_history ON events;
DROP FUNCTION events_history();

-- One row's history, for a push begin or end or a row missing its domain or app name: 0001's
-- `events_history`, except that a row carrying both counts in the statement's sums.
CREATE FUNCTION events_history_row(e events) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_domain  TEXT := e.domain;
    v_app     TEXT := e.app_name;
    v_stream  BIGINT;
    v_key     TEXT;
    v_at      DOUBLE PRECISION := coalesce(e.event_time, e.received_at);
    v_session BIGINT;
BEGIN
    -- A missing domain or app name is taken from the one stream of that name whose identity
    -- has it and agrees with what the event does carry; if none or several match, ''.
    IF e.domain IS NULL THEN
        SELECT CASE WHEN count(*) = 1 THEN max(k.domain) END INTO v_domain FROM (
            SELECT s.domain FROM streams AS s
            WHERE s.stream_id = e.stream_id AND s.domain <> ''
              AND CASE WHEN e.app_name IS NULL THEN s.app_name <> ''
                       ELSE s.app_name = e.app_name END
            LIMIT 2) AS k;
    END IF;
    IF e.app_name IS NULL THEN
        SELECT CASE WHEN count(*) = 1 THEN max(k.app_name) END INTO v_app FROM (
            SELECT s.app_name FROM streams AS s
            WHERE s.stream_id = e.stream_id AND s.app_name <> ''
              AND CASE WHEN e.domain IS NULL THEN s.domain <> ''
                       ELSE s.domain = e.domain END
            LIMIT 2) AS k;
    END IF;
    v_domain := coalesce(v_domain, '');
    v_app := coalesce(v_app, '');

    SELECT s.id INTO v_stream FROM streams AS s
    WHERE s.domain = v_domain AND s.app_name = v_app AND s.stream_id = e.stream_id;
    IF v_stream IS NULL THEN
        INSERT INTO streams (domain, app_name, stream_id)
        VALUES (v_domain, v_app, e.stream_id)
        ON CONFLICT (domain, app_name, stream_id) DO NOTHING
        RETURNING id INTO v_stream;
        IF v_stream IS NULL THEN
            SELECT s.id INTO v_stream FROM streams AS s
            WHERE s.domain = v_domain AND s.app_name = v_app AND s.stream_id = e.stream_id;
        END IF;
    END IF;

    -- Counted here only when resolved: the batch counts the others (events_history_batch).
    IF e.domain IS NULL OR e.app_name IS NULL THEN
        INSERT INTO stream_kinds AS k (domain, app_name, stream_id, kind, events,
                                       last_received_at)
        VALUES (v_domain, v_app, e.stream_id, e.kind, 1, e.received_at)
        ON CONFLICT (domain, app_name, stream_id, kind) DO UPDATE SET
            events = k.events + 1,
            last_received_at = greatest(k.last_received_at, EXCLUDED.last_received_at);
    END IF;

    IF e.event_type NOT IN (0, 1) THEN
        RETURN;
    END IF;

    -- The session key: the `sequence`; an end without one closes the stream's only open
    -- session that has none either; else the event's own id, a session of its own.
    v_key := e.sequence;
    IF v_key IS NULL AND e.event_type = 0 THEN
        SELECT CASE WHEN count(*) = 1 THEN max(o.session_key) END INTO v_key FROM (
            SELECT p.session_key FROM push_sessions AS p
            WHERE p.stream = v_stream AND p.end_seq IS NULL AND p.sequence IS NULL
            LIMIT 2) AS o;
    END IF;
    v_key := coalesce(v_key, '#' || e.id);

    -- A new session, complete with what this event says. A session known only from its end
    -- began push_duration before it, unless that would be before 1970: then at its end.
    INSERT INTO push_sessions (stream, session_key, sequence, begin_seq, begin_time, end_seq,
                               end_time, push_duration_ms, started_at)
    VALUES (v_stream, v_key, e.sequence,
            CASE WHEN e.event_type = 1 THEN e.seq END,
            CASE WHEN e.event_type = 1 THEN v_at END,
            CASE WHEN e.event_type = 0 THEN e.seq END,
            CASE WHEN e.event_type = 0 THEN v_at END,
            e.push_duration_ms,
            CASE WHEN e.event_type = 0 AND e.push_duration_ms <= v_at * 1000
                 THEN v_at - e.push_duration_ms / 1000.0 ELSE v_at END)
    ON CONFLICT (stream, session_key) DO NOTHING
    RETURNING id INTO v_session;
    IF v_session IS NOT NULL THEN
        UPDATE streams SET sessions = sessions + 1 WHERE id = v_stream;
    END IF;

    -- A session seen before: its begin sets the start; its end closes it.
    UPDATE push_sessions SET begin_seq = e.seq, begin_time = v_at, started_at = v_at
    WHERE e.event_type = 1 AND stream = v_stream AND session_key = v_key
      AND begin_seq IS NULL;
    UPDATE push_sessions SET
        end_seq = e.seq, end_time = v_at, push_duration_ms = e.push_duration_ms
    WHERE e.event_type = 0 AND stream = v_stream AND session_key = v_key
      AND end_seq IS NULL;

    -- A stream is live while any of its sessions is open. Its current session is its latest
    -- open one, else its latest one.
    UPDATE streams SET
        state = CASE WHEN EXISTS (SELECT 1 FROM push_sessions AS p
                                  WHERE p.stream = v_stream AND p.end_seq IS NULL)
                     THEN 'live' ELSE 'ended' END,
        open_sessions = (SELECT count(*) FROM push_sessions AS p
                         WHERE p.stream = v_stream AND p.end_seq IS NULL),
        current_session = coalesce(
            (SELECT p.id FROM push_sessions AS p
             WHERE p.stream = v_stream AND p.end_seq IS NULL
             ORDER BY p.started_at DESC, p.id DESC LIMIT 1),
            (SELECT p.id FROM push_sessions AS p
             WHERE p.stream = v_stream ORDER BY p.started_at DESC, p.id DESC LIMIT 1)),
        last_begin = CASE WHEN e.event_type = 1 AND coalesce(last_begin < v_at, true)
                          THEN v_at ELSE last_begin END,
        last_end = CASE WHEN e.event_type = 0 AND coalesce(last_end <= v_at, true)
                        THEN v_at ELSE last_end END,
        last_end_seq = CASE WHEN e.event_type = 0 AND coalesce(last_end <= v_at, true)
                            THEN e.seq ELSE last_end_seq END
    WHERE id = v_stream;
    RETURN;
END;
$$;

CREATE FUNCTION events_history_batch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- The statement's rows naming a stream, in seq order. Read from the transition table once:
    -- a query on it is planned again at every call, one on this array is planned once.
    v_rows   events[];
    -- The streams those rows name with their domain and app name and that do not exist yet,
    -- by the seq of the first row naming each.
    v_first  BIGINT[];
    v_domain TEXT[];
    v_app    TEXT[];
    v_name   TEXT[];
    v_next   INTEGER := 1;
    v_count  INTEGER;
    v_row    events;
BEGIN
    SELECT array_agg(n ORDER BY n.seq) INTO v_rows
    FROM new_events AS n WHERE n.stream_id IS NOT NULL;
    IF v_rows IS NULL THEN
        RETURN NULL;
    END IF;

    SELECT array_agg(f.seq ORDER BY f.seq), array_agg(f.domain ORDER BY f.seq),
           array_agg(f.app_name ORDER BY f.seq), array_agg(f.stream_id ORDER BY f.seq)
    INTO v_first, v_domain, v_app, v_name
    FROM (SELECT min(n.seq) AS seq, n.domain, n.app_name, n.stream_id
          FROM UNNEST(v_rows) AS n
          WHERE n.domain IS NOT NULL AND n.app_name IS NOT NULL
          GROUP BY n.domain, n.app_name, n.stream_id) AS f
    -- A scalar subquery, not NOT EXISTS: an anti join may be planned as a scan of `streams`.
    WHERE (SELECT s.id FROM streams AS s
           WHERE s.domain = f.domain AND s.app_name = f.app_name
             AND s.stream_id = f.stream_id) IS NULL;
    v_count := coalesce(cardinality(v_first), 0);

    FOREACH v_row IN ARRAY v_rows LOOP
        CONTINUE WHEN v_row.event_type NOT IN (0, 1)
                  AND v_row.domain IS NOT NULL AND v_row.app_name IS NOT NULL;
        -- The streams earlier rows saw first exist before this row lands.
        WHILE v_next <= v_count AND v_first[v_next] < v_row.seq LOOP
            INSERT INTO streams (domain, app_name, stream_id)
            SELECT v_domain[v_next], v_app[v_next], v_name[v_next]
            WHERE NOT EXISTS (SELECT 1 FROM streams AS s
                              WHERE s.domain = v_domain[v_next] AND s.app_name = v_app[v_next]
                                AND s.stream_id = v_name[v_next])
            ON CONFLICT (domain, app_name, stream_id) DO NOTHING;
            v_next := v_next + 1;
        END LOOP;
        PERFORM events_history_row(v_row);
    END LOOP;
    -- NOT EXISTS first: a conflicting insert would still take an id, leaving gaps.
    IF v_next <= v_count THEN
        INSERT INTO streams (domain, app_name, stream_id)
        SELECT f.domain, f.app_name, f.stream_id
        FROM UNNEST(v_first, v_domain, v_app, v_name)
             WITH ORDINALITY AS f(seq, domain, app_name, stream_id, position)
        WHERE f.position >= v_next
          AND (SELECT s.id FROM streams AS s
               WHERE s.domain = f.domain AND s.app_name = f.app_name
                 AND s.stream_id = f.stream_id) IS NULL
        ORDER BY f.position
        ON CONFLICT (domain, app_name, stream_id) DO NOTHING;
    END IF;

    -- One upsert per stream and kind (ON CONFLICT DO UPDATE may touch a row once per
    -- statement), in key order.
    INSERT INTO stream_kinds AS k (domain, app_name, stream_id, kind, events, last_received_at)
    SELECT n.domain, n.app_name, n.stream_id, n.kind, count(*), max(n.received_at)
    FROM UNNEST(v_rows) AS n
    WHERE n.domain IS NOT NULL AND n.app_name IS NOT NULL
    GROUP BY n.domain, n.app_name, n.stream_id, n.kind
    ORDER BY n.domain, n.app_name, n.stream_id, n.kind
    ON CONFLICT (domain, app_name, stream_id, kind) DO UPDATE SET
        events = k.events + EXCLUDED.events,
        last_received_at = greatest(k.last_received_at, EXCLUDED.last_received_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_history_batch AFTER INSERT ON events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION events_history_batch();
