"""Synthetic CSS events for a history database: push sessions with their snapshots, recordings,
moderation hits and push exceptions, as parameters of the service's own INSERT.

Shared by the history benchmark (`python -m bench.history`) and the history schema tests: both
load the same realistic mix (some streams still live, some stream-ends stored before their
push-begins, as retries do) through the writer's statement, so the history triggers run as in
production.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from receiver.storage.ids import EventIds
from receiver.storage.rows import STREAM_END, push_duration_ms

BASE_TIME = 1_700_000_000.0
SPAN_SECONDS = 30 * 86_400
DOMAIN = "push.example.com"
APP = "live"

Row = tuple[Any, ...]
# (event_type, kind, stream, event time, sequence, payload) before ids and arrival are known
Draft = tuple[int, str, str, float, str | None, str]


@dataclass(frozen=True, slots=True)
class Plan:
    events: int
    streams: int
    live_share: float = 0.05  # streams whose latest session is still pushing
    reordered_share: float = 0.02  # push-begins stored after their stream-end (retried)


def _body(event_type: int, stream: str, at: float, **fields: object) -> str:
    body: dict[str, object] = {
        "event_type": event_type,
        "appid": 12345678,
        "app": DOMAIN,
        "appname": APP,
        "stream_id": stream,
        "channel_id": stream,
        "t": int(at) + 600,
        "sign": "ca3e25e5dc17a6f9909a9ae7281e300d",
        **fields,
    }
    return orjson.dumps(body).decode()


def _session_events(
    rng: random.Random, stream: str, sequence: str, start: float, end: float | None, budget: int
) -> Iterator[tuple[float, Draft]]:
    """(arrival time, event) for one push session; `end` None: still live."""
    until = end if end is not None else start + 3600
    push = {"sequence": sequence, "node": "42.81.194.37", "user_ip": "1.1.1.1", "set_id": 2}
    yield (
        start + rng.uniform(0.05, 1.0),
        (
            1,
            "stream_begin",
            stream,
            start,
            sequence,
            _body(1, stream, start, event_time=int(start), errcode=0, errmsg="ok", **push),
        ),
    )
    if end is not None:
        duration_ms = int((end - start) * 1000)
        yield (
            end + rng.uniform(0.05, 1.0),
            (
                0,
                "stream_end",
                stream,
                end,
                sequence,
                _body(
                    0,
                    stream,
                    end,
                    event_time=int(end),
                    errcode=rng.choice((1, 1, 1, 3, 8, 13)),
                    errmsg="The push client actively stopped the push",
                    push_duration=str(duration_ms),
                    **push,
                ),
            ),
        )
    others = max(0, budget - 2)
    for i in range(others):
        at = start + (until - start) * (i + 1) / (others + 1)
        roll = rng.random()
        row: Draft
        if roll < 0.70:
            pic = f"/{stream}/{stream}-screenshot-{int(at)}.jpg"
            row = (
                200,
                "snapshot",
                stream,
                at,
                None,
                _body(
                    200,
                    stream,
                    at,
                    create_time=int(at),
                    file_size=30670,
                    width=1280,
                    height=720,
                    pic_url=pic,
                    pic_full_url=f"https://cos.example.com{pic}",
                ),
            )
        elif roll < 0.85:
            file_id = f"{abs(hash((stream, at))):019d}"
            row = (
                100,
                "record",
                stream,
                at,
                None,
                _body(
                    100,
                    stream,
                    at,
                    file_id=file_id,
                    record_file_id=file_id,
                    file_format="hls",
                    start_time=int(start),
                    end_time=int(at),
                    duration=int(at - start),
                    file_size=277941079,
                    video_url=f"https://vod.example.com/{file_id}.m3u8",
                ),
            )
        elif roll < 0.93:
            row = (
                317,
                "porn",
                stream,
                at,
                None,
                _body(
                    317,
                    stream,
                    at,
                    streamId=stream,
                    img=f"https://cos.example.com/{int(at)}.jpg",
                    screenshotTime=int(at),
                    type=[1],
                    suggestion="Review",
                    score=87,
                ),
            )
        else:
            row = (
                321,
                "push_exception",
                stream,
                at,
                sequence,
                _body(
                    321,
                    stream,
                    at,
                    data_time=int(at * 1000),
                    sequence=sequence,
                    domain=DOMAIN,
                    path=APP,
                    abnormal_event=[{"type": 6, "count": 2}],
                ),
            )
        yield at + rng.uniform(0.5, 30.0), row


def synthetic_rows(plan: Plan, seed: int) -> list[Row]:
    """Every event of the plan in arrival order, as parameters of the service's INSERT."""
    rng = random.Random(seed)
    per_stream = plan.events // plan.streams
    timed: list[tuple[float, Draft]] = []
    for s in range(plan.streams):
        stream = f"stream-{s:05d}"
        sessions = rng.randint(3, 7)
        budget = [per_stream // sessions] * sessions
        budget[-1] += per_stream - sum(budget)
        live = rng.random() < plan.live_share
        durations = [rng.uniform(600, 7200) for _ in range(sessions)]
        gaps = [rng.uniform(60, 86_400) for _ in range(sessions)]
        total = sum(durations) + sum(gaps)
        start = (
            BASE_TIME + SPAN_SECONDS - total
            if live
            else BASE_TIME + rng.uniform(0, SPAN_SECONDS - total)
        )
        for i in range(sessions):
            start += gaps[i]
            end = start + durations[i]
            is_live = live and i == sessions - 1
            sequence = str(rng.getrandbits(62))
            events = list(
                _session_events(rng, stream, sequence, start, None if is_live else end, budget[i])
            )
            if not is_live and rng.random() < plan.reordered_share:
                # The push-begin failed once and was retried after the stream-end arrived.
                arrived, row = events[0]
                events[0] = (end + rng.uniform(60, 700), row)
            timed.extend(events)
            start = end
    timed.sort(key=lambda pair: pair[0])
    rows: list[Row] = []
    ids = EventIds()
    for n, (arrived, draft) in enumerate(timed):
        event_type, kind, name, at, session, payload = draft
        duration = push_duration_ms(orjson.loads(payload)) if event_type == STREAM_END else None
        rows.append(
            (ids.new(), event_type, kind, f"bench:{n}", DOMAIN, APP, name, float(int(at)),
             session, arrived, None, None, payload, duration)
        )  # fmt: skip
    return rows
