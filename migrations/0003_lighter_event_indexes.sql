-- Every index on `events` is paid for by every stored event, inside the writer's commit: the
-- durable ingest rate is mostly B-tree work and WAL pages (bench: `python -m bench ingest`).
--
-- `events_event_time` only served "time window, any kind" listings. Those now walk
-- `events_kind_time` once per kind and merge (receiver/history.py), reading the same rows, so
-- this index was pure write cost: dropping it measured ~0.5 WAL pages and about 5% of the
-- writer's CPU per stored event.
DROP INDEX IF EXISTS events_event_time;
