-- Where an event came from: `callback`, `reconciled` or `confirmed` (migrations/0008 for
-- SQLite, docs/reconciliation.md). Reconciliation itself runs on SQLite only so far
-- (docs/scaling.md): on PostgreSQL every event is a callback, and the column keeps the history
-- API's answers the same on both engines.
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'callback';
