-- A push begin or stream end keeps its stream's `open_sessions` by increments (+1 for a session
-- it opens, -1 for one it closes) instead of counting the stream's open sessions again
-- (0001). The count read every open session of the stream, so a stream whose ends never come
-- (lost, or the bench's load, which sends every begin of one stream with a new sequence) made
-- each begin cost more than the last (docs/scaling.md, "Measured"). The values are the count's:
-- sessions are only opened by a begin inserting one and closed by an end setting `end_seq`
-- (reconciliation re-keys and re-times sessions, never opens or closes one), and the state is
-- live exactly while open sessions remain. Everything else is 0001's `events_history`,
-- statement for statement.

CREATE OR REPLACE FUNCTION events_history() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_domain  TEXT := NEW.domain;
    v_app     TEXT := NEW.app_name;
    v_stream  BIGINT;
    v_key     TEXT;
    v_at      DOUBLE PRECISION := coalesce(NEW.event_time, NEW.received_at);
    v_session BIGINT;
    v_opened  INTEGER := 0;  -- sessions this event opened (1) or closed (-1)
BEGIN
    -- A missing domain or app name is taken from the one stream of that name whose identity
    -- has it and agrees with what the event does carry; if none or several match, ''.
    IF NEW.domain IS NULL THEN
        SELECT CASE WHEN count(*) = 1 THEN max(k.domain) END INTO v_domain FROM (
            SELECT s.domain FROM streams AS s
            WHERE s.stream_id = NEW.stream_id AND s.domain <> ''
              AND CASE WHEN NEW.app_name IS NULL THEN s.app_name <> ''
                       ELSE s.app_name = NEW.app_name END
            LIMIT 2) AS k;
    END IF;
    IF NEW.app_name IS NULL THEN
        SELECT CASE WHEN count(*) = 1 THEN max(k.app_name) END INTO v_app FROM (
            SELECT s.app_name FROM streams AS s
            WHERE s.stream_id = NEW.stream_id AND s.app_name <> ''
              AND CASE WHEN NEW.domain IS NULL THEN s.domain <> ''
                       ELSE s.domain = NEW.domain END
            LIMIT 2) AS k;
    END IF;
    v_domain := coalesce(v_domain, '');
    v_app := coalesce(v_app, '');

    SELECT s.id INTO v_stream FROM streams AS s
    WHERE s.domain = v_domain AND s.app_name = v_app AND s.stream_id = NEW.stream_id;
    IF v_stream IS NULL THEN
        INSERT INTO streams (domain, app_name, stream_id)
        VALUES (v_domain, v_app, NEW.stream_id)
        ON CONFLICT (domain, app_name, stream_id) DO NOTHING
        RETURNING id INTO v_stream;
        IF v_stream IS NULL THEN
            SELECT s.id INTO v_stream FROM streams AS s
            WHERE s.domain = v_domain AND s.app_name = v_app AND s.stream_id = NEW.stream_id;
        END IF;
    END IF;

    INSERT INTO stream_kinds AS k (domain, app_name, stream_id, kind, events, last_received_at)
    VALUES (v_domain, v_app, NEW.stream_id, NEW.kind, 1, NEW.received_at)
    ON CONFLICT (domain, app_name, stream_id, kind) DO UPDATE SET
        events = k.events + 1,
        last_received_at = greatest(k.last_received_at, EXCLUDED.last_received_at);

    IF NEW.event_type NOT IN (0, 1) THEN
        RETURN NULL;
    END IF;

    -- The session key: the `sequence`; an end without one closes the stream's only open
    -- session that has none either; else the event's own id, a session of its own.
    v_key := NEW.sequence;
    IF v_key IS NULL AND NEW.event_type = 0 THEN
        SELECT CASE WHEN count(*) = 1 THEN max(o.session_key) END INTO v_key FROM (
            SELECT p.session_key FROM push_sessions AS p
            WHERE p.stream = v_stream AND p.end_seq IS NULL AND p.sequence IS NULL
            LIMIT 2) AS o;
    END IF;
    v_key := coalesce(v_key, '#' || NEW.id);

    -- A new session, complete with what this event says. A session known only from its end
    -- began push_duration before it, unless that would be before 1970: then at its end.
    INSERT INTO push_sessions (stream, session_key, sequence, begin_seq, begin_time, end_seq,
                               end_time, push_duration_ms, started_at)
    VALUES (v_stream, v_key, NEW.sequence,
            CASE WHEN NEW.event_type = 1 THEN NEW.seq END,
            CASE WHEN NEW.event_type = 1 THEN v_at END,
            CASE WHEN NEW.event_type = 0 THEN NEW.seq END,
            CASE WHEN NEW.event_type = 0 THEN v_at END,
            NEW.push_duration_ms,
            CASE WHEN NEW.event_type = 0 AND NEW.push_duration_ms <= v_at * 1000
                 THEN v_at - NEW.push_duration_ms / 1000.0 ELSE v_at END)
    ON CONFLICT (stream, session_key) DO NOTHING
    RETURNING id INTO v_session;
    IF v_session IS NOT NULL THEN
        UPDATE streams SET sessions = sessions + 1 WHERE id = v_stream;
        IF NEW.event_type = 1 THEN
            v_opened := 1;
        END IF;
    END IF;

    -- A session seen before: its begin sets the start; its end closes it.
    UPDATE push_sessions SET begin_seq = NEW.seq, begin_time = v_at, started_at = v_at
    WHERE NEW.event_type = 1 AND stream = v_stream AND session_key = v_key
      AND begin_seq IS NULL;
    UPDATE push_sessions SET
        end_seq = NEW.seq, end_time = v_at, push_duration_ms = NEW.push_duration_ms
    WHERE NEW.event_type = 0 AND stream = v_stream AND session_key = v_key
      AND end_seq IS NULL;
    IF FOUND THEN
        v_opened := -1;
    END IF;

    -- A stream is live while any of its sessions is open. Its current session is its latest
    -- open one, else its latest one.
    UPDATE streams SET
        state = CASE WHEN open_sessions + v_opened > 0 THEN 'live' ELSE 'ended' END,
        open_sessions = open_sessions + v_opened,
        current_session = coalesce(
            (SELECT p.id FROM push_sessions AS p
             WHERE p.stream = v_stream AND p.end_seq IS NULL
             ORDER BY p.started_at DESC, p.id DESC LIMIT 1),
            (SELECT p.id FROM push_sessions AS p
             WHERE p.stream = v_stream ORDER BY p.started_at DESC, p.id DESC LIMIT 1)),
        last_begin = CASE WHEN NEW.event_type = 1 AND coalesce(last_begin < v_at, true)
                          THEN v_at ELSE last_begin END,
        last_end = CASE WHEN NEW.event_type = 0 AND coalesce(last_end <= v_at, true)
                        THEN v_at ELSE last_end END,
        last_end_seq = CASE WHEN NEW.event_type = 0 AND coalesce(last_end <= v_at, true)
                            THEN NEW.seq ELSE last_end_seq END
    WHERE id = v_stream;
    RETURN NULL;
END;
$$;
