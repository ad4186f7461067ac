"""The report's sections: each scenario's figures as table rows, with the issue's targets.

Every target row carries its target and a verdict; every ratio is against a baseline measured in
the same run (bare aiohttp under the same load, or raw aio-pika for the drain). The details of
every run go into `report.context`, for the JSON file.
"""

from __future__ import annotations

from bench.ingest import Side, ratio
from bench.keepup import KeepUp
from bench.outbox_drain import Drain
from bench.pg_ingest import SQLITE, PgIngest, pg_side
from bench.report import Report
from bench.service import BASELINE, RECEIVER, RELAY
from bench.soak import Soak
from bench.sustained import ACHIEVED, Sustained, bounded

INGEST_RATIO, INGEST_AIM, P99_MS = 0.80, 0.85, 12.0
RELAY_RATIO = 0.70
STREAMS_RATIO = 0.80
SUSTAINED_RATIO = 0.40
OLDEST_S, RSS_GROWTH, DRAIN_RATIO = 1.0, 1.20, 0.90
BOUNDED = "<= 1 s of traffic, flat"
PG_AIM, PG_AIM_REPLICAS = 1.0, 2  # 2 replicas on PostgreSQL >= 1 SQLite node (issue 14)


def _stored(report: Report, label: str, side: Side) -> None:
    """The count that proves no acknowledged callback was lost (the runs raise otherwise)."""
    stored = sum(r.stored or 0 for r in side.runs)
    answered = sum(r.wrk.ok for r in side.runs)
    report.add(
        f"{label}: events stored / answered 200", stored, "events", extra=answered,
        target="every 200 stored", ok=side.all_stored,
    )  # fmt: skip


def _fold_drain(report: Report, label: str, side: Side) -> None:
    drains = [r.fold_drain for r in side.runs if r.fold_drain is not None]
    report.add(
        f"{label}: fold drained, s after load (med / max)",
        side.median(lambda r: r.fold_drain), "s", extra=max(drains, default=0.0),
    )  # fmt: skip


def ingest(report: Report, sides: dict[str, Side]) -> None:
    """The main ingest section (publishing off) and, if measured, the one with the relay."""
    base, recv = sides[BASELINE], sides[RECEIVER]
    b, r = base.summary(), recv.summary()
    report.context["ingest"] = {name: side.summary() for name, side in sides.items()}
    report.section("ingest, publishing off (medians; ratio = median of per-round ratios)")
    report.add("bare aiohttp: req/s", b["req_per_s"], "req/s")
    report.add("bare aiohttp: p50 / p99 latency", b["p50_ms"], "ms", extra=b["p99_ms"])
    report.add("bare aiohttp: CPU per request", b["http_cpu_ms_per_req"], "ms")
    value = ratio(recv, base)
    report.add(
        "receiver: req/s", r["req_per_s"], "req/s", ratio=value,
        target=f">= {INGEST_RATIO:.2f} (aim {INGEST_AIM:.2f})", ok=value >= INGEST_RATIO,
    )  # fmt: skip
    report.add("receiver: p50 ack latency", r["p50_ms"], "ms")
    report.add(
        "receiver: p99 ack latency", r["p99_ms"], "ms",
        target=f"<= {P99_MS:g} ms", ok=r["p99_ms"] <= P99_MS,
    )  # fmt: skip
    report.add(
        "receiver: HTTP process CPU per request", r["http_cpu_ms_per_req"], "ms",
        ratio=r["http_cpu_ms_per_req"] / max(b["http_cpu_ms_per_req"], 1e-9),
    )  # fmt: skip
    report.add("receiver: writer CPU per request", r.get("writer_cpu_ms_per_req", 0), "ms")
    report.add("receiver: fold CPU per request", r.get("fold_cpu_ms_per_req", 0), "ms")
    _fold_drain(report, "receiver", recv)
    _stored(report, "receiver", recv)
    report.add("wrk CPU per request (shares the cores)", r["wrk_cpu_ms_per_req"], "ms")
    if RELAY not in sides:
        return
    relay = sides[RELAY]
    p = relay.summary()
    report.section("ingest with the relay publishing to RabbitMQ (confirms, bound queue)")
    value = ratio(relay, base)
    report.add(
        "receiver + relay: req/s", p["req_per_s"], "req/s", ratio=value,
        target=f">= {RELAY_RATIO:.2f}", ok=value >= RELAY_RATIO,
    )  # fmt: skip
    report.add("receiver + relay: p50 / p99 ack latency", p["p50_ms"], "ms", extra=p["p99_ms"])
    report.add(
        "receiver + relay: HTTP process CPU per request", p["http_cpu_ms_per_req"], "ms",
        ratio=p["http_cpu_ms_per_req"] / max(b["http_cpu_ms_per_req"], 1e-9),
    )  # fmt: skip
    report.add("receiver + relay: writer CPU per request", p["writer_cpu_ms_per_req"], "ms")
    report.add("receiver + relay: fold CPU per request", p.get("fold_cpu_ms_per_req", 0), "ms")
    if "relay_cpu_ms_per_req" in p:
        report.add(
            "receiver + relay: relay process CPU per request", p["relay_cpu_ms_per_req"], "ms"
        )
    _fold_drain(report, "receiver + relay", relay)
    report.add("end to end: first request to all consumed", p["end_to_end_s"], "s")
    report.add("end to end: of which after the last request", p["after_load_s"], "s")
    report.add(
        "end to end: events stored, confirmed, consumed /s", p["end_to_end_events_per_s"],
        "ev/s", ratio=p["end_to_end_events_per_s"] / max(b["req_per_s"], 1e-9),
    )  # fmt: skip
    consumed, stored = sum(p["consumed"]), sum(p["stored"])
    report.add(
        "end to end: events consumed / stored", consumed, "events", extra=stored,
        target="all consumed", ok=consumed == stored and relay.all_stored,
    )  # fmt: skip


def many_streams(report: Report, sides: dict[str, Side], *, streams: int) -> None:
    """The same ingest with every request naming one of `streams` streams at random."""
    base, recv = sides[BASELINE], sides[RECEIVER]
    b, r = base.summary(), recv.summary()
    report.context["many_streams"] = {name: side.summary() for name, side in sides.items()}
    report.context["many_streams"]["streams"] = streams
    report.section(f"ingest over {streams:,} streams, publishing off (medians)")
    report.add("bare aiohttp: req/s", b["req_per_s"], "req/s")
    value = ratio(recv, base)
    report.add(
        "receiver: req/s", r["req_per_s"], "req/s", ratio=value,
        target=f">= {STREAMS_RATIO:.2f}", ok=value >= STREAMS_RATIO,
    )  # fmt: skip
    report.add("receiver: p50 / p99 ack latency", r["p50_ms"], "ms", extra=r["p99_ms"])
    report.add("receiver: writer CPU per request", r.get("writer_cpu_ms_per_req", 0), "ms")
    report.add("receiver: fold CPU per request", r.get("fold_cpu_ms_per_req", 0), "ms")
    report.add(
        "receiver: distinct streams stored (median)",
        round(recv.median(lambda run: run.streams)), "streams",
    )  # fmt: skip
    _fold_drain(report, "receiver", recv)
    _stored(report, "receiver", recv)


def sustained(report: Report, result: Sustained, *, bare: float, seconds: float) -> None:
    report.context["sustained"] = result.summary()
    run = result.run
    if run is None:
        raise ValueError("the sustained run did not happen")
    report.section(
        f"sustained end to end: {seconds:g} s at the highest rate both backlogs stay bounded"
    )
    report.add(
        f"rate found ({len(result.probes)} probes down from the burst with relay)",
        result.rate, "req/s", ratio=result.rate / max(bare, 1e-9),
        target="a probe bounded", ok=result.found,
    )  # fmt: skip
    value = run.run.wrk.rate / max(bare, 1e-9)
    e2e = run.run.end_to_end
    report.add(
        "offered / achieved req/s", run.offered, "req/s", extra=run.run.wrk.rate, ratio=value,
        target=f">= {SUSTAINED_RATIO:.2f}, bounded",
        ok=value >= SUSTAINED_RATIO and bounded(run),
    )  # fmt: skip
    report.add("p50 / p99 ack latency", run.run.wrk.p50_ms, "ms", extra=run.run.wrk.p99_ms)
    _backlogs(report, run)
    report.add(
        "oldest unfolded / unpublished at the end", run.oldest_unfolded, "s",
        extra=run.oldest_unpublished,
    )  # fmt: skip
    consumed = 0 if e2e is None else e2e.consumed
    stored = run.run.stored or 0
    report.add(
        "events consumed / stored (all acknowledged)", consumed, "events", extra=stored,
        target="all consumed", ok=consumed == stored >= run.run.wrk.ok,
    )  # fmt: skip


def _backlogs(report: Report, run: KeepUp) -> None:
    for name, b in (("fold", run.fold), ("outbox", run.outbox)):
        report.add(
            f"{name} backlog at the end / largest", b.end, "rows", extra=b.largest,
            target=BOUNDED, ok=b.ok,
        )  # fmt: skip


def keepup(report: Report, result: KeepUp, *, basis: str) -> None:
    summary = result.summary()
    report.context["keepup"] = summary
    report.section(f"keep-up at {basis}, relay publishing")
    report.add(
        "offered / achieved req/s", result.offered, "req/s", extra=result.run.wrk.rate,
        ratio=result.achieved, target=f">= {ACHIEVED:.2f} of offered",
        ok=result.achieved >= ACHIEVED,
    )  # fmt: skip
    report.add("p50 / p99 ack latency", summary["p50_ms"], "ms", extra=summary["p99_ms"])
    _backlogs(report, result)
    report.add(
        "oldest unfolded row at the end (last 1 s)", result.oldest_unfolded, "s",
        target=f"< {OLDEST_S:g} s", ok=result.oldest_unfolded < OLDEST_S,
    )  # fmt: skip
    report.add(
        "oldest unpublished event at the end (last 1 s)", result.oldest_unpublished, "s",
        target=f"< {OLDEST_S:g} s", ok=result.oldest_unpublished < OLDEST_S,
    )  # fmt: skip


def soak(report: Report, result: Soak) -> None:
    summary = result.summary()
    report.context["soak"] = summary
    report.section(
        f"soak: {summary['minutes']:g} minutes at {result.rate:,.0f} req/s, relay publishing"
    )
    report.add("achieved req/s", summary["achieved_req_per_s"], "req/s")
    for role, rss in summary["rss_mib"].items():
        report.add(
            f"{role} process RSS after warm-up / max", rss["reference"], "MiB", extra=rss["max"],
            ratio=rss["growth"], target=f"<= {RSS_GROWTH:.2f}", ok=rss["growth"] <= RSS_GROWTH,
        )  # fmt: skip
    report.add(
        "events consumed / stored (all acknowledged)", summary["consumed"] or 0, "events",
        extra=summary["stored"] or 0, target="all consumed",
        ok=(summary["consumed"] or 0) >= (summary["stored"] or 0) >= summary["ok"],
    )  # fmt: skip


def drain(report: Report, result: Drain) -> None:
    summary = result.summary()
    report.context["drain"] = summary
    report.section(f"outbox drain of a {result.events:,}-event backlog (medians)")
    report.add("raw aio-pika confirmed publish: msg/s", summary["raw_msg_per_s"], "msg/s")
    report.add(
        "outbox relay drain: msg/s", summary["outbox_msg_per_s"], "msg/s",
        ratio=result.ratio, target=f">= {DRAIN_RATIO:.2f}", ok=result.ratio >= DRAIN_RATIO,
    )  # fmt: skip


def pg_ingest(report: Report, result: PgIngest) -> None:
    """Ingest on PostgreSQL with 1, 2, ... replicas next to bare aiohttp and one SQLite node.

    The issue's aim: 2 replicas at least as fast as one SQLite node on the same machine."""
    report.context["pg_ingest"] = {name: result.summary(name) for name in result.sides}
    report.section("ingest on PostgreSQL, publishing off (medians; ratio = of per-round ratios)")
    for name in result.sides:
        s = result.summary(name)
        report.add(f"{name}: req/s", s["req_per_s"], "req/s",
                   ratio=None if name == BASELINE else s["ratio_to_bare"])  # fmt: skip
        report.add(f"{name}: p50 / p99 ack latency", s["p50_ms"], "ms", extra=s["p99_ms"])
        for role, ms in s["cpu_ms_per_req"].items():
            report.add(f"{name}: {role} CPU per request", ms, "ms")
        if name != BASELINE:
            stored, answered = sum(s["stored"]), sum(s["ok"])
            report.add(
                f"{name}: events stored / answered 200", stored, "events", extra=answered,
                target="every 200 stored once", ok=stored >= answered,
            )  # fmt: skip
    if PG_AIM_REPLICAS in result.replicas:
        name = pg_side(PG_AIM_REPLICAS)
        value = result.ratio(name, SQLITE)
        report.add(
            f"{name} to one SQLite node", result.rate(name), "req/s", ratio=value,
            target=f">= {PG_AIM:.2f}", ok=value >= PG_AIM,
        )  # fmt: skip
