-- Where an event came from (issue 15, docs/reconciliation.md):
--   callback    CSS posted it (every event stored before this migration);
--   reconciled  built from Tencent's own records (DescribeLiveStreamEventList, the online list)
--               by `receiver tencent reconcile --apply` or the background reconciliation,
--               because its callback never reached us;
--   confirmed   stored as reconciled, then its real callback arrived late: the row took the
--               callback's body, sequence and time (the real one wins), keeps its id, and was
--               published as reconciled if it was published before the callback came.
-- A reconciled event enters like a callback: an inbox row (its path_kind the reserved
-- '@reconciled', which no /callbacks path can give), folded, published by the outbox relay.
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'callback';

-- The reconciled push begins and ends a late real callback may repeat, found by stream and time
-- when the fold stores a push begin or end. Partial: it holds only reconciled rows, so a
-- callback's insert pays one comparison for it.
CREATE INDEX events_reconciled ON events (stream_id, event_type, event_time)
WHERE source = 'reconciled';
