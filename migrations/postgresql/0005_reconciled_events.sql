-- Reconciled events on PostgreSQL (docs/reconciliation.md): push begins and ends rebuilt from
-- Tencent's records, and the rule that their real callback wins. SQLite's fold matches them row
-- by row (receiver/storage/reconciled.py); here the same statements run in a BEFORE INSERT
-- trigger on `events`, so the matching reads the database inside the store transaction, under
-- the partition locks the store took first: one stream, one partition, so a reconciled event
-- and its real callback stored by two replicas at once are matched one after the other, and
-- every row this takes (the twin, its push session, its stream) belongs to a partition already
-- locked: no new lock order, no deadlock with ordinary stores.
--
-- A reconciled row reaches `store_events` with the reserved path kind '@reconciled'
-- (receiver.storage.reconciled.RECONCILED_PATH, which no /callbacks path can give); the trigger
-- stores it with `source = 'reconciled'` and no path kind, as SQLite's fold does.
--
-- * A reconciled begin or end whose real callback is stored (same stream and kind, event time
--   within TOLERANCE_SECONDS, 5) is not stored: its id becomes an alias of the real event
--   (`event_aliases`, which `GET /api/events/{id}` follows), where the intake finds it.
-- * A real begin or end that repeats a reconciled event (the same key, else the same stream and
--   kind within the tolerance) is not inserted: the reconciled row takes its body, key,
--   sequence and time, `source = 'confirmed'`, keeps its id, and its push session is re-keyed
--   to the real sequence. `store_events` then finds that row by the callback's key, so the
--   callback is answered with its id, as a duplicate is.
-- * A real end whose push began at a reconciled begin (end minus push_duration) re-keys that
--   open session to its sequence before it is inserted, so it closes it.
--
-- What this relies on in `store_events`: that it locks the partitions of its rows before it
-- inserts them (two replicas storing one stream then insert one after the other, and the second
-- sees the first's rows), and that it answers each key with the id of the row that has it now
-- (a taken-over row has the callback's key; a skipped reconciled row has none, and the intake
-- looks its id up in `event_aliases`).
--
-- Cost for every other callback: push begins and ends only (the WHEN clause), and one probe of
-- the partial index below, which holds reconciled rows only (figures: docs/scaling.md).

CREATE INDEX events_reconciled ON events (stream_id, event_type, event_time)
WHERE source = 'reconciled';

-- Give a session the real sequence, unless a session of that key exists already; the key the
-- session has afterwards.
CREATE FUNCTION reconciled_rekey(p_stream BIGINT, p_old TEXT, p_new TEXT)
RETURNS TEXT LANGUAGE plpgsql AS $$
BEGIN
    IF p_old = p_new THEN
        RETURN p_new;
    END IF;
    UPDATE push_sessions SET session_key = p_new, sequence = p_new
    WHERE stream = p_stream AND session_key = p_old
      AND NOT EXISTS (SELECT 1 FROM push_sessions AS o
                      WHERE o.stream = p_stream AND o.session_key = p_new);
    RETURN CASE WHEN FOUND THEN p_new ELSE p_old END;
END;
$$;

-- The stored reconciled row `p_seq` takes the callback `p_new` over (SQLite: Reconciled._replace).
CREATE FUNCTION reconciled_take_over(p_seq BIGINT, p_old_sequence TEXT, p_new events)
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_stream BIGINT;
    v_key    TEXT;
BEGIN
    UPDATE events SET dedupe_key = p_new.dedupe_key, event_time = p_new.event_time,
        sequence = p_new.sequence, payload = p_new.payload, schema_error = p_new.schema_error,
        push_duration_ms = p_new.push_duration_ms, path_kind = p_new.path_kind,
        source = 'confirmed'
    WHERE seq = p_seq;
    SELECT s.id INTO v_stream FROM streams AS s
    WHERE s.domain = p_new.domain AND s.app_name = p_new.app_name
      AND s.stream_id = p_new.stream_id;
    IF v_stream IS NULL OR p_old_sequence IS NULL OR p_new.sequence IS NULL THEN
        RETURN;
    END IF;
    v_key := reconciled_rekey(v_stream, p_old_sequence, p_new.sequence);
    IF p_new.event_type = 1 THEN
        UPDATE push_sessions SET begin_time = p_new.event_time, started_at = p_new.event_time
        WHERE stream = v_stream AND session_key = v_key;
    ELSE
        UPDATE push_sessions SET end_time = p_new.event_time,
            push_duration_ms = p_new.push_duration_ms
        WHERE stream = v_stream AND session_key = v_key;
    END IF;
END;
$$;

CREATE FUNCTION events_reconciled() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c_tolerance CONSTANT DOUBLE PRECISION := 5.0;  -- receiver.storage.reconciled
    v_t       DOUBLE PRECISION := NEW.event_time;
    v_twin    RECORD;
    v_begun   DOUBLE PRECISION;
    v_stream  BIGINT;
BEGIN
    IF NEW.path_kind = '@reconciled' THEN
        NEW.path_kind := NULL;
        NEW.source := 'reconciled';
        IF NEW.domain IS NULL OR NEW.app_name IS NULL OR v_t IS NULL THEN
            RETURN NEW;
        END IF;
        -- Its real callback is stored already: a duplicate of it (SQLite: shadowed_by).
        SELECT e.id INTO v_twin FROM events AS e
        WHERE e.kind = NEW.kind AND e.event_time BETWEEN v_t - c_tolerance AND v_t + c_tolerance
          AND e.stream_id = NEW.stream_id AND e.domain = NEW.domain
          AND e.app_name = NEW.app_name AND e.source <> 'reconciled'
        ORDER BY abs(e.event_time - v_t), e.seq LIMIT 1;
        IF FOUND THEN
            INSERT INTO event_aliases (id, event_id) VALUES (NEW.id, v_twin.id)
            ON CONFLICT (id) DO NOTHING;
            RETURN NULL;
        END IF;
        RETURN NEW;
    END IF;

    IF NEW.domain IS NULL OR NEW.app_name IS NULL OR v_t IS NULL THEN
        RETURN NEW;
    END IF;
    -- Nearly always: no reconciled event of this stream at all.
    PERFORM 1 FROM events AS e
    WHERE e.source = 'reconciled' AND e.stream_id = NEW.stream_id LIMIT 1;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;

    -- The same key: a plain duplicate, unless that row is reconciled (SQLite: take_over).
    SELECT e.seq, e.source, e.sequence INTO v_twin FROM events AS e
    WHERE e.event_type = NEW.event_type AND e.dedupe_key = NEW.dedupe_key;
    IF FOUND THEN
        IF v_twin.source = 'reconciled' THEN
            PERFORM reconciled_take_over(v_twin.seq, v_twin.sequence, NEW);
            RETURN NULL;
        END IF;
        RETURN NEW;  -- ON CONFLICT skips it
    END IF;
    SELECT e.seq, e.sequence INTO v_twin FROM events AS e
    WHERE e.source = 'reconciled' AND e.stream_id = NEW.stream_id
      AND e.event_type = NEW.event_type
      AND e.event_time BETWEEN v_t - c_tolerance AND v_t + c_tolerance
      AND e.domain = NEW.domain AND e.app_name = NEW.app_name
    ORDER BY abs(e.event_time - v_t), e.seq LIMIT 1;
    IF FOUND THEN
        PERFORM reconciled_take_over(v_twin.seq, v_twin.sequence, NEW);
        RETURN NULL;
    END IF;

    -- A real end with no reconciled twin: the open session its push began (end minus
    -- duration) is re-keyed to its sequence if a reconciled begin opened it (SQLite: _adopt).
    IF NEW.event_type = 0 AND NEW.sequence IS NOT NULL AND NEW.push_duration_ms IS NOT NULL THEN
        v_begun := v_t - NEW.push_duration_ms / 1000.0;
        SELECT e.sequence INTO v_twin FROM events AS e
        WHERE e.source = 'reconciled' AND e.stream_id = NEW.stream_id AND e.event_type = 1
          AND e.event_time BETWEEN v_begun - c_tolerance AND v_begun + c_tolerance
          AND e.domain = NEW.domain AND e.app_name = NEW.app_name
        ORDER BY abs(e.event_time - v_begun), e.seq LIMIT 1;
        IF FOUND AND v_twin.sequence IS NOT NULL THEN
            SELECT s.id INTO v_stream FROM streams AS s
            WHERE s.domain = NEW.domain AND s.app_name = NEW.app_name
              AND s.stream_id = NEW.stream_id;
            IF v_stream IS NOT NULL AND EXISTS (
                SELECT 1 FROM push_sessions AS p
                WHERE p.stream = v_stream AND p.session_key = v_twin.sequence
                  AND p.end_seq IS NULL) THEN
                PERFORM reconciled_rekey(v_stream, v_twin.sequence, NEW.sequence);
            END IF;
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER events_reconciled BEFORE INSERT ON events
FOR EACH ROW
WHEN ((NEW.event_type IN (0, 1) AND NEW.stream_id IS NOT NULL) OR NEW.path_kind = '@reconciled')
EXECUTE FUNCTION events_reconciled();
