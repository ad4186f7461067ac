-- Moderation actions (issue 16, docs/moderation.md): what the policy decided on a moderation
-- callback, whether and how the Tencent API was called, and whether CSS confirmed the effect.
--
-- The fold writes a row in the same transaction as the event that triggered it, so the record
-- and the event are one commit: a crash loses neither or both. The unique index is the
-- "once per stream and push session" promise: CSS retries, further screenshots of the same
-- session and a fold done again all hit it and add nothing (INSERT OR IGNORE).
CREATE TABLE moderation_actions (
    id               INTEGER PRIMARY KEY, -- storage order: the listing's order and cursor
    action_id        TEXT    NOT NULL UNIQUE, -- UUIDv7, shown to people and published
    action           TEXT    NOT NULL,    -- drop, forbid, resume
    domain           TEXT    NOT NULL,    -- '' when the callback named none (see the docs)
    app_name         TEXT    NOT NULL,
    stream_id        TEXT    NOT NULL,
    session_key      TEXT    NOT NULL,    -- push_sessions.session_key at the time; '' unknown;
                                          -- 'resume:' || action_id for a resume
    sequence         TEXT,                -- the push session's sequence, when known
    trigger_event_id TEXT,                -- events.id of the moderation callback (NULL: resume)
    trigger_kind     TEXT,
    trigger_reason   TEXT,                -- which rule of the policy matched, in words
    reason           TEXT,                -- ForbidLiveStream's Reason
    resume_at        REAL,                -- forbid: when Tencent lifts it (unix seconds)
    dry_run          INTEGER NOT NULL DEFAULT 0,
    -- pending: recorded, not called yet; calling: the call may have been sent (checked before
    -- it is ever sent again); done / failed: the API's answer is in `result`; dry_run: recorded
    -- only (RECEIVER_MODERATION_DRY_RUN).
    state            TEXT    NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       REAL    NOT NULL,
    called_at        REAL,
    finished_at      REAL,
    result           TEXT,                -- JSON: {"request_id"} or {"error": {code, message}}
    confirmed_at     REAL,                -- a stream end with errcode 21 (100/101) arrived
    confirm_event_id TEXT
);
CREATE UNIQUE INDEX moderation_actions_once
    ON moderation_actions (domain, app_name, stream_id, session_key)
    WHERE action IN ('drop', 'forbid');
-- What the executor still has to do (few rows: it reads this at every pass).
CREATE INDEX moderation_actions_open ON moderation_actions (id) WHERE state IN ('pending', 'calling');
-- The listing by stream, and what a stream end with errcode 21 may confirm.
CREATE INDEX moderation_actions_stream ON moderation_actions (stream_id, domain, app_name, id);
