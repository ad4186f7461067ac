"""Time windows over `events`, listed in storage order, through the hour indexes.

Event listings are ordered by storage position (`seq`), whatever their filters, so that a cursor
is one number and rows stored meanwhile never shift a page. A time window does not fit that
order: an index on the time alone finds the window's events, but the first page would need all
of them sorted by `seq` (a day's window: every event of that day). Migration 0006 therefore
indexes each time column by hour, and within an hour in storage order:
`(CAST(<time> / 3600 AS INTEGER), seq, <time>)`. The hour never decreases as the time grows,
so the window's events lie in the hours from the hour of its start to the hour of its end, and
only those two hours hold events outside it. Two ways to use that, both exact whatever the data:

- `merge_cte`: a page ordered by `seq` is a merge of the window's hours, each already in `seq`
  order. A recursive CTE whose queue is ordered (SQLite takes rows out of such a queue in that
  order) holds one entry per hour, its next row; each step emits the best entry and replaces it
  with its hour's next row. A page costs one seek per hour in the window plus one per row,
  never the whole window. Event-time windows use it: events arrive late (retries, recordings), so
  the hours' `seq` ranges overlap, and the merge does not care.
- `span_cte`: the first and last `seq` of the window, two seeks per hour. Rows outside that range
  cannot match, so any other index walk (one stream, some kinds, the primary key) is bounded by
  it. Arrival-time windows use it: arrival and storage order agree but for clock steps, so the
  span holds little else than the window. A stream with an event-time window uses it too.

What a page costs beyond its rows: a seek or two per hour of the window that holds events
(`hours_cte` seeks from one such hour to the next, so empty hours, and absurd event times far
from the rest, cost nothing), and, when the window starts or ends inside an hour, that hour's
entries outside the window, read in the index to be passed over. The hour is the width that
balances the two for a day's window on a busy service; a month's window costs some hundreds of
seeks, still far less than sorting the month.

SQLite uses an expression index only for the same expression, so these queries build the hour
with `hour_of` alone, the expression migration 0006 indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

HOUR_SECONDS: Final = 3600


@dataclass(frozen=True, slots=True)
class HourIndex:
    """An index `([prefix,] hour of column, seq, column)` of migration 0006."""

    name: str
    column: str
    prefix: str | None = None  # an equality column before the hour (the kind)


EVENT_HOURS: Final = HourIndex("events_event_hour", "event_time")
KIND_EVENT_HOURS: Final = HourIndex("events_kind_event_hour", "event_time", "kind")
RECEIVED_HOURS: Final = HourIndex("events_received_hour", "received_at")


class Fragment(NamedTuple):
    text: str
    params: tuple[object, ...]


def hour_of(expression: str) -> str:
    """The hour of a time (a column or a bound parameter), as the indexes compute it."""
    return f"CAST({expression} / {HOUR_SECONDS} AS INTEGER)"


def last_hour(high: float) -> Fragment:
    """The last hour that can hold a time before `high` (which is never negative: query times
    are checked). An end on the hour leaves that hour out: its rows all lie at or after it, and
    skipping them would cost a whole hour of entries."""
    on_the_hour = 1 if high > 0 and high % HOUR_SECONDS == 0 else 0
    return Fragment(f"({hour_of('?')} - ?)", (high, on_the_hour))


def _last_hour(alias: str, high: float | None) -> Fragment:
    """The condition that keeps an enumerated hour within the window's last hour."""
    if high is None:
        return Fragment(f"{alias}.x IS NOT NULL", ())
    last = last_hour(high)
    return Fragment(f"{alias}.x <= {last.text}", last.params)


def hours_cte(
    name: str,
    index: HourIndex,
    low: float | None,
    high: float | None,
    prefixes: Sequence[str] = (),
) -> Fragment:
    """`name([p,] x)`: the hours from the window's first one that hold events of `index` (per
    prefix value), each found by one seek from the previous one. The last row may lie past the
    window (or be NULL): consumers keep rows up to `last_hour(high)`.
    """
    hour = hour_of(f"e.{index.column}")
    start = f"{hour} >= {hour_of('?')}" if low is not None else f"{hour} IS NOT NULL"
    first = (low,) if low is not None else ()
    last: tuple[object, ...] = ()
    if high is None:
        stop = f"{name}.x IS NOT NULL"
    else:
        end = last_hour(high)
        stop, last = f"{name}.x < {end.text}", end.params
    if index.prefix is None:
        text = (
            f"{name}(x) AS ("  # noqa: S608 - fixed fragments, values bound
            f"SELECT (SELECT {hour} FROM events AS e INDEXED BY {index.name}"
            f" WHERE {start} ORDER BY {hour} LIMIT 1)"
            f" UNION ALL SELECT (SELECT {hour} FROM events AS e INDEXED BY {index.name}"
            f" WHERE {hour} > {name}.x ORDER BY {hour} LIMIT 1) FROM {name} WHERE {stop})"
        )
        return Fragment(text, (*first, *last))
    values = ", ".join("(?)" for _ in prefixes)
    column = f"e.{index.prefix}"
    text = (
        f"{name}(p, x) AS ("  # noqa: S608 - fixed fragments, values bound
        f"SELECT v.column1, (SELECT {hour} FROM events AS e INDEXED BY {index.name}"
        f" WHERE {column} = v.column1 AND {start} ORDER BY {hour} LIMIT 1)"
        f" FROM (VALUES {values}) AS v"
        f" UNION ALL SELECT {name}.p, (SELECT {hour} FROM events AS e INDEXED BY {index.name}"
        f" WHERE {column} = {name}.p AND {hour} > {name}.x ORDER BY {hour} LIMIT 1)"
        f" FROM {name} WHERE {stop})"
    )
    return Fragment(text, (*first, *prefixes, *last))


def merge_cte(
    name: str,
    hours: str,
    index: HourIndex,
    high: float | None,
    conditions: Sequence[str],
    params: Sequence[object],
    desc: bool,
    fetch: int,
) -> Fragment:
    """`name(seq, ...)`: the first `fetch` rows of the hours in `hours` that meet `conditions`
    (on unqualified `events` columns, the window's own bounds included), in `seq` order.

    Rows come out of the queue best first; an exhausted hour leaves a NULL, which sorts last.
    """
    hour = hour_of(f"e.{index.column}")
    direction, beyond = ("DESC", "<") if desc else ("ASC", ">")
    also = "".join(f" AND {condition}" for condition in conditions)
    last = _last_hour("s", high)
    if index.prefix is None:
        columns, seed_prefix, step_prefix, seed_carry, step_carry = "seq, x", "", "", "", ""
    else:
        columns = "seq, p, x"
        seed_prefix, step_prefix = f"e.{index.prefix} = s.p AND ", f"e.{index.prefix} = w.p AND "
        seed_carry, step_carry = "s.p, ", "w.p, "
    text = (
        f"{name}({columns}) AS ("  # noqa: S608 - fixed fragments, values bound
        f"SELECT (SELECT e.seq FROM events AS e INDEXED BY {index.name}"
        f" WHERE {seed_prefix}{hour} = s.x{also} ORDER BY e.seq {direction} LIMIT 1),"
        f" {seed_carry}s.x FROM {hours} AS s WHERE {last.text}"
        f" UNION ALL SELECT (SELECT e.seq FROM events AS e INDEXED BY {index.name}"
        f" WHERE {step_prefix}{hour} = w.x AND e.seq {beyond} w.seq{also}"
        f" ORDER BY e.seq {direction} LIMIT 1), {step_carry}w.x"
        f" FROM {name} AS w WHERE w.seq IS NOT NULL"
        f" ORDER BY 1 {direction} NULLS LAST LIMIT ?)"
    )
    return Fragment(text, (*params, *last.params, *params, fetch))


def span_cte(
    name: str, hours: str, index: HourIndex, low: float | None, high: float | None
) -> Fragment:
    """`name(lo, hi)`: the first and last `seq` of the rows in the window (NULL when none)."""
    hour = hour_of(f"e.{index.column}")
    window: list[str] = []
    bounds: list[object] = []
    if low is not None:
        window.append(f"e.{index.column} >= ?")
        bounds.append(low)
    if high is not None:
        window.append(f"e.{index.column} < ?")
        bounds.append(high)
    within = "".join(f" AND {condition}" for condition in window)
    last = _last_hour("s", high)
    text = (
        f"{name}(lo, hi) AS (SELECT"  # noqa: S608 - fixed fragments, values bound
        f" min((SELECT e.seq FROM events AS e INDEXED BY {index.name}"
        f" WHERE {hour} = s.x{within} ORDER BY e.seq LIMIT 1)),"
        f" max((SELECT e.seq FROM events AS e INDEXED BY {index.name}"
        f" WHERE {hour} = s.x{within} ORDER BY e.seq DESC LIMIT 1))"
        f" FROM {hours} AS s WHERE {last.text})"
    )
    return Fragment(text, (*bounds, *bounds, *last.params))
