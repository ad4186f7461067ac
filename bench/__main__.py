"""`python -m bench`: measure the receiver against baselines measured in the same run.

    python -m bench all --json out.json   # ingest (publishing off and on), keep-up, drain
    python -m bench ingest                # bare aiohttp vs receiver serve, publishing off
    python -m bench drain                 # outbox drain vs raw aio-pika, 200,000 events
    python -m bench keepup                # half the durable maximum, relay publishing
    python -m bench soak --minutes 10     # memory over a long run
    python -m bench smoke                 # CI: a few seconds, checks counts only, never timing

Every speed figure is printed with its ratio to a baseline of the same run: these machines are
shared and noisy, so absolute numbers from different runs are not comparable. Without
--amqp-url, scenarios that publish start a private RabbitMQ node for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path

from bench.ingest import BASELINE, RECEIVER, RELAY, Load, Side, measure_ingest, ratio
from bench.keepup import measure_keepup
from bench.outbox_drain import measure_drain
from bench.rabbit import broker
from bench.report import Report
from bench.soak import measure_soak
from receiver.cli.serve import new_event_loop

INGEST_RATIO, P99_MS, DRAIN_RATIO, OLDEST_S, RSS_GROWTH = 0.80, 15.0, 0.90, 1.0, 1.20
NEEDS_BROKER = {"all", "drain", "keepup", "soak", "smoke"}


async def ingest(args: argparse.Namespace, report: Report, url: str | None) -> Side:
    """Returns the receiver's side (publishing off): its req/s is the durable maximum."""
    load = Load(args.seconds, args.connections, args.threads, streams=args.streams)
    print(
        f"ingest: {args.runs} rounds of {args.seconds:g} s, {args.connections} connections, "
        f"wrk -t {args.threads}"
        + (f", events over {args.streams:,} streams" if args.streams else "")
        + ("" if url else " (publishing off only)")
    )
    sides = await measure_ingest(runs=args.runs, load=load, amqp_url=url)
    base, recv = sides[BASELINE], sides[RECEIVER]
    report.context["ingest"] = {name: side.summary() for name, side in sides.items()}
    report.context["ingest"]["load"] = {
        "seconds": args.seconds,
        "connections": args.connections,
        "wrk_threads": args.threads,
        "streams": args.streams or "one per kind",
    }
    b, r = base.summary(), recv.summary()
    report.section("ingest, publishing off (medians; ratio = median of per-round ratios)")
    report.add("bare aiohttp: req/s", b["req_per_s"], "req/s")
    report.add("bare aiohttp: p50 / p99 latency", b["p50_ms"], "ms", extra=b["p99_ms"])
    report.add("bare aiohttp: CPU per request", b["http_cpu_ms_per_req"], "ms")
    value = ratio(recv, base)
    report.add(
        "receiver: req/s", r["req_per_s"], "req/s",
        ratio=value, target=f">= {INGEST_RATIO:.2f}", ok=value >= INGEST_RATIO,
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
    report.add("receiver: writer process CPU per request", r["writer_cpu_ms_per_req"], "ms")
    report.add("wrk CPU per request (shares the cores)", r["wrk_cpu_ms_per_req"], "ms")
    if RELAY in sides:
        relay = sides[RELAY]
        p = relay.summary()
        report.section("ingest with the relay publishing to RabbitMQ (confirms, bound queue)")
        report.add("receiver + relay: req/s", p["req_per_s"], "req/s", ratio=ratio(relay, base))
        report.add("receiver + relay: p50 / p99 ack latency", p["p50_ms"], "ms", extra=p["p99_ms"])
        report.add(
            "receiver + relay: HTTP process CPU per request", p["http_cpu_ms_per_req"], "ms",
            ratio=p["http_cpu_ms_per_req"] / max(b["http_cpu_ms_per_req"], 1e-9),
        )  # fmt: skip
        report.add("receiver + relay: writer CPU per request", p["writer_cpu_ms_per_req"], "ms")
        report.add("end to end: first request to all consumed", p["end_to_end_s"], "s")
        report.add("end to end: of which after the last request", p["after_load_s"], "s")
        report.add(
            "end to end: events stored, confirmed, consumed /s",
            p["end_to_end_events_per_s"],
            "ev/s",
            ratio=p["end_to_end_events_per_s"] / max(b["req_per_s"], 1e-9),
        )
    return recv


async def keepup(args: argparse.Namespace, report: Report, url: str, durable_max: float) -> None:
    rate = args.rate or durable_max / 2
    print(f"keep-up: {args.keepup_seconds:g} s at {rate:,.0f} req/s with the relay publishing")
    load = Load(args.keepup_seconds, args.connections, args.threads)
    result = await measure_keepup(url, rate=rate, load=load)
    summary = result.summary()
    report.context["keepup"] = summary
    report.section(f"keep-up at half the durable maximum ({durable_max:,.0f} req/s)")
    achieved = summary["achieved_req_per_s"] / rate
    report.add(
        "offered / achieved req/s", rate, "req/s", extra=summary["achieved_req_per_s"],
        ratio=achieved, target=">= 0.95 of offered", ok=achieved >= 0.95,
    )  # fmt: skip
    report.add("p50 / p99 ack latency", summary["p50_ms"], "ms", extra=summary["p99_ms"])
    report.add(
        "outbox backlog, largest seen", result.max_backlog, "events",
        target="<= 1 s of traffic", ok=result.bounded,
    )  # fmt: skip
    report.add("oldest unpublished event, largest seen", result.max_age, "s")
    report.add(
        "oldest unpublished event at the end (last 1 s)", result.final_age, "s",
        target=f"< {OLDEST_S:g} s", ok=result.final_age < OLDEST_S,
    )  # fmt: skip


async def drain(args: argparse.Namespace, report: Report, url: str) -> None:
    print(f"drain: {args.drain_rounds} rounds over {args.drain_events:,} events, 256 in flight")
    result = await measure_drain(url, events=args.drain_events, rounds=args.drain_rounds)
    summary = result.summary()
    report.context["drain"] = summary
    report.section(f"outbox drain of a {args.drain_events:,}-event backlog (medians)")
    report.add("raw aio-pika confirmed publish: msg/s", summary["raw_msg_per_s"], "msg/s")
    report.add(
        "outbox relay drain: msg/s", summary["outbox_msg_per_s"], "msg/s",
        ratio=result.ratio, target=f">= {DRAIN_RATIO:.2f}", ok=result.ratio >= DRAIN_RATIO,
    )  # fmt: skip


async def soak(args: argparse.Namespace, report: Report, url: str) -> None:
    rate = args.rate
    if rate is None:
        print("soak: measuring the durable maximum first (one 5 s run)")
        sides = await measure_ingest(
            runs=1, load=Load(5, args.connections, args.threads), amqp_url=None
        )
        rate = sides[RECEIVER].runs[0].wrk.rate / 2
    print(f"soak: {args.minutes:g} minutes at {rate:,.0f} req/s with the relay publishing")
    load = Load(args.minutes * 60, args.connections, args.threads)
    result = await measure_soak(url, minutes=args.minutes, rate=rate, load=load)
    summary = result.summary()
    report.context["soak"] = summary
    report.section(f"soak: {summary['minutes']:g} minutes at {rate:,.0f} req/s, relay publishing")
    report.add("achieved req/s", summary["achieved_req_per_s"], "req/s")
    for name in ("http", "writer"):
        rss = summary[f"{name}_rss_mib"]
        report.add(
            f"{name} process RSS after warm-up / max", rss["reference"], "MiB", extra=rss["max"],
            ratio=rss["growth"], target=f"<= {RSS_GROWTH:.2f}", ok=rss["growth"] <= RSS_GROWTH,
        )  # fmt: skip


async def run(args: argparse.Namespace) -> Report:
    report = Report()
    load = os.getloadavg()[0]
    print(
        f"load average {load:.2f} on {os.cpu_count()} CPUs"
        + (" (busy: figures will be noisy; ratios are taken within each round)" if load > 1 else "")
    )
    with contextlib.ExitStack() as stack:
        url = args.amqp_url
        if args.scenario in NEEDS_BROKER:
            url = stack.enter_context(broker(args.amqp_url))
        if args.scenario in ("ingest", "all", "smoke"):
            receiver = await ingest(args, report, url if args.scenario != "ingest" else None)
            if args.scenario != "ingest":
                assert url is not None
                await keepup(args, report, url, receiver.summary()["req_per_s"])
                await drain(args, report, url)
        elif args.scenario == "drain":
            await drain(args, report, url)
        elif args.scenario == "keepup":
            sides = await measure_ingest(
                runs=1, load=Load(args.seconds, args.connections, args.threads), amqp_url=None
            )
            await keepup(args, report, url, sides[RECEIVER].runs[0].wrk.rate)
        elif args.scenario == "soak":
            await soak(args, report, url)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", choices=["all", "ingest", "drain", "keepup", "soak", "smoke"])
    parser.add_argument("--runs", type=int, default=3, help="ingest rounds (medians reported)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each ingest run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="wrk threads (it shares the cores with the servers; default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--streams", type=int, default=0,
        help="ingest: spread events over this many streams (default: one per kind, as in the "
        "examples); many streams make the per-stream indexes cost more",
    )  # fmt: skip
    parser.add_argument("--amqp-url", help="an existing broker (default: start a private node)")
    parser.add_argument("--drain-events", type=int, default=200_000)
    parser.add_argument("--drain-rounds", type=int, default=3)
    parser.add_argument("--keepup-seconds", type=float, default=30.0)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak run")
    parser.add_argument(
        "--rate", type=float, help="req/s for keepup and soak (default: half the durable maximum)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.scenario == "smoke":
        args.runs, args.seconds, args.connections = 1, 2.0, 16
        args.keepup_seconds, args.drain_events, args.drain_rounds = 2.0, 2000, 1
        args.streams = args.streams or 50  # the many-streams load path is exercised too
    # uvloop, as `receiver serve` runs: the drain measures the relay inside this process.
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        report = runner.run(run(args))
    print()
    print(report.table())
    if args.json:
        report.write_json(args.json)
        print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
