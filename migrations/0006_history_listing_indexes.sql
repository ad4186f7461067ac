-- History listings in bounded work (issue 13): the first page of every listing within a small
-- multiple of fetching the same rows by primary key, however much history is stored.
--
-- Every index on `events` is work for the fold, which stores every event (the callback's
-- acknowledgement no longer waits for it). These replace two indexes of 0001 and add one; what
-- it costs, measured by `python -m bench.history`'s comparison (the same events loaded in large
-- transactions into the core schema alone, then into the full one; 200,000 events, 8 paired
-- rounds on 2 shared cores): from +0.3 to +1.3 us of CPU per stored event, 1-6% of what storing
-- an event with its history costs, less than the spread between rounds (+-4 us); history as a
-- whole costs the fold 2.8x the core schema's time, before and after. The indexes below take
-- 84 bytes per event where the two they replace took 44 (the event itself, indexes included,
-- takes about 770).
--
-- Event listings are in storage order (`seq`), whatever their filters. An index on a time alone
-- finds a window's events but must sort them all by seq to find the first page: every event of
-- the day for a 1-day window (24x fetching its rows by key, at a million events). These cut
-- each time into hours and keep each hour in storage order, so a page walks only the window's
-- hours, about one entry per row it lists (receiver/history/hours.py). The hour is an
-- expression, so there is no column to fill and nothing for the writer to compute; it calls no
-- SQL function, so the insert still needs no statement journal. The time itself ends each
-- entry, so that the window's first and last hours are filtered without reading the rows.

-- Event-time windows of any kind: a page merges the window's hours. The one index this adds
-- (24 bytes per event, appended in time order).
CREATE INDEX events_event_hour
    ON events (CAST(event_time / 3600 AS INTEGER), seq, event_time);

-- Event-time windows of some kinds: the same, per kind (32 bytes per event). It replaces
-- (kind, event_time) (25 bytes), which served these listings alone, by sorting the window.
CREATE INDEX events_kind_event_hour
    ON events (kind, CAST(event_time / 3600 AS INTEGER), seq, event_time);
DROP INDEX IF EXISTS events_kind_time;

-- Arrival-time windows: the window's first and last seq, which bound any other walk (arrival
-- and storage order agree but for clock steps). 29 bytes per event, appended in arrival order;
-- it replaces (received_at) (20 bytes), which served these listings alone, by sorting the window.
-- (`receiver replay` selecting by arrival time counts its events by reading the table now: a
-- third of a second per million events, once per job an operator starts.)
CREATE INDEX events_received_hour
    ON events (CAST(received_at / 3600 AS INTEGER), seq, received_at);
DROP INDEX IF EXISTS events_received_at;

-- `/api/streams?domain=`: the domain's streams newest first without sorting all of them (the
-- identity index orders them by app and name). A stream row is inserted once, when its first
-- event arrives, and never changes domain: the fold pays for this once per stream.
CREATE INDEX streams_domain ON streams (domain, id);
