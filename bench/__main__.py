"""`python -m bench`: measure the receiver against baselines measured in the same run.

    python -m bench all --json out.json   # everything below, in this order (about 30 minutes)
    python -m bench ingest                # bare aiohttp vs receiver serve, publishing off
    python -m bench ingest --database postgresql  # ... vs SQLite vs 1 and 2 PostgreSQL replicas
    python -m bench sustained             # the highest rate the fold and outbox keep up with
    python -m bench keepup                # half the sustained maximum, relay publishing
    python -m bench soak --minutes 10     # memory over a long run at that rate
    python -m bench drain                 # outbox drain vs raw aio-pika, 200,000 events
    python -m bench history               # history queries on a million events
    python -m bench smoke                 # CI: every part briefly, checks counts only, never timing

`all` runs: ingest with publishing off and with the relay; ingest again over --many-streams
streams; the sustained search and run; keep-up and the soak at half the sustained maximum; the
outbox drain; the history queries. Every speed figure is printed with its ratio to a baseline of
the same run: these machines are shared and noisy, so absolute numbers from different runs are
not comparable. Without --amqp-url, scenarios that publish start a private RabbitMQ node.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path

from bench import sections
from bench.history import history_section
from bench.ingest import Side, measure_ingest
from bench.keepup import measure_keepup
from bench.outbox_drain import measure_drain
from bench.pg_ingest import measure_pg_ingest
from bench.rabbit import broker
from bench.report import Report
from bench.service import BASELINE, RELAY
from bench.soak import measure_soak
from bench.sustained import Sustained, find_rate, measure_sustained
from bench.wrk import Load
from receiver.cli.serve import new_event_loop

NEEDS_BROKER = {"all", "sustained", "keepup", "soak", "drain", "smoke"}
SCENARIOS = ["all", "ingest", "sustained", "keepup", "soak", "drain", "history", "smoke"]


def burst(args: argparse.Namespace, *, streams: int = 0) -> Load:
    return Load(
        args.seconds, args.connections, args.threads, streams=streams, quiet=args.quiet_tail
    )


def paced(args: argparse.Namespace, seconds: float) -> Load:
    """Rate and quiet tail are set by the scenario."""
    return Load(seconds, args.connections, args.threads)


async def ingest(args: argparse.Namespace, report: Report, url: str | None) -> dict[str, Side]:
    print(
        f"ingest: {args.runs} rounds of {args.seconds:g} s, {args.connections} connections, "
        f"wrk -t {args.threads}"
        + (f", events over {args.streams:,} streams" if args.streams else "")
        + ("" if url else " (publishing off only)")
    )
    sides = await measure_ingest(
        runs=args.runs, load=burst(args, streams=args.streams), amqp_url=url
    )
    sections.ingest(report, sides)
    report.context["ingest"]["load"] = _load_context(args, args.streams)
    return sides


async def pg_ingest(args: argparse.Namespace, report: Report) -> None:
    replicas = tuple(args.replicas)
    print(
        f"ingest on PostgreSQL: {args.runs} rounds of {args.seconds:g} s, {args.connections} "
        f"connections split over the replicas, replicas {', '.join(map(str, replicas))}"
        + (f", events over {args.streams:,} streams" if args.streams else "")
    )
    result = await measure_pg_ingest(
        runs=args.runs,
        load=burst(args, streams=args.streams),
        database=args.database,
        replicas=replicas,
    )
    sections.pg_ingest(report, result)
    report.context["pg_ingest"]["load"] = _load_context(args, args.streams)
    report.context["pg_ingest"]["load_average"] = os.getloadavg()


async def many_streams(args: argparse.Namespace, report: Report) -> None:
    print(f"ingest over {args.many_streams:,} streams: {args.runs} rounds, publishing off")
    load = burst(args, streams=args.many_streams)
    sides = await measure_ingest(runs=args.runs, load=load, amqp_url=None)
    sections.many_streams(report, sides, streams=args.many_streams)
    report.context["many_streams"]["load"] = _load_context(args, args.many_streams)


def _load_context(args: argparse.Namespace, streams: int) -> dict[str, object]:
    return {
        "seconds": args.seconds,
        "connections": args.connections,
        "wrk_threads": args.threads,
        "quiet_tail_s": args.quiet_tail,
        "streams": streams or "one per kind",
    }


async def bare_and_burst(args: argparse.Namespace, report: Report, url: str) -> tuple[float, float]:
    """For a scenario run on its own: bare aiohttp's req/s and the burst rate with the relay,
    from one round of each."""
    print("measuring bare aiohttp and the burst rate with the relay (one round each)")
    sides = await measure_ingest(runs=1, load=burst(args), amqp_url=url, names=[BASELINE, RELAY])
    report.context["basis"] = {name: side.summary() for name, side in sides.items()}
    return sides[BASELINE].runs[0].wrk.rate, sides[RELAY].runs[0].wrk.rate


async def sustained(
    args: argparse.Namespace, report: Report, url: str, *, bare: float, start: float
) -> Sustained:
    print(
        f"sustained: probes of {args.probe_seconds:g} s from {start:,.0f} req/s down (x0.85, "
        f"at most {args.max_probes}, {args.refine} refining), then {args.sustained_seconds:g} s"
    )
    result = await measure_sustained(
        url,
        start=start,
        probe=paced(args, args.probe_seconds),
        load=paced(args, args.sustained_seconds),
        max_probes=args.max_probes,
        refine=args.refine,
    )
    sections.sustained(report, result, bare=bare, seconds=args.sustained_seconds)
    return result


async def half_sustained(args: argparse.Namespace, report: Report, url: str) -> tuple[float, str]:
    """For keep-up or the soak on its own: --rate, or half the rate the sustained search finds
    (the search only: no long run)."""
    if args.rate:
        return args.rate, f"{args.rate:,.0f} req/s (--rate)"
    _, start = await bare_and_burst(args, report, url)
    print(f"finding the sustained maximum: probes of {args.probe_seconds:g} s from {start:,.0f}")
    found = await find_rate(
        url,
        start=start,
        probe=paced(args, args.probe_seconds),
        max_probes=args.max_probes,
        refine=args.refine,
    )
    report.context["sustained_search"] = found.summary()
    return found.rate / 2, f"half the sustained maximum ({found.rate:,.0f} req/s)"


async def keepup(
    args: argparse.Namespace, report: Report, url: str, rate: float, basis: str
) -> None:
    print(f"keep-up: {args.keepup_seconds:g} s at {rate:,.0f} req/s with the relay publishing")
    result = await measure_keepup(url, rate=rate, load=paced(args, args.keepup_seconds))
    sections.keepup(report, result, basis=basis)


async def soak(args: argparse.Namespace, report: Report, url: str, rate: float) -> None:
    print(f"soak: {args.minutes:g} minutes at {rate:,.0f} req/s with the relay publishing")
    result = await measure_soak(
        url, minutes=args.minutes, rate=rate, load=paced(args, args.minutes * 60)
    )
    sections.soak(report, result)


async def drain(args: argparse.Namespace, report: Report, url: str) -> None:
    print(f"drain: {args.drain_rounds} rounds over {args.drain_events:,} events, 256 in flight")
    result = await measure_drain(url, events=args.drain_events, rounds=args.drain_rounds)
    sections.drain(report, result)


async def history(args: argparse.Namespace, report: Report) -> None:
    print(f"history: {args.history_events:,} events over {args.history_streams:,} streams")
    await history_section(
        report, events=args.history_events, streams=args.history_streams, runs=args.history_runs
    )


async def everything(args: argparse.Namespace, report: Report, url: str) -> None:
    sides = await ingest(args, report, url)
    if args.many_streams:
        await many_streams(args, report)
    bare = sides[BASELINE].median(lambda r: r.wrk.rate)
    start = sides[RELAY].median(lambda r: r.wrk.rate)
    found = await sustained(args, report, url, bare=bare, start=start)
    rate = args.rate or found.rate / 2
    basis = (
        f"{rate:,.0f} req/s (--rate)"
        if args.rate
        else f"half the sustained maximum ({found.rate:,.0f} req/s)"
    )
    await keepup(args, report, url, rate, basis)
    await soak(args, report, url, rate)
    await drain(args, report, url)
    await history(args, report)


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
        scenario = args.scenario
        if scenario in ("all", "smoke"):
            await everything(args, report, url)
        elif scenario == "ingest" and args.database:
            await pg_ingest(args, report)
        elif scenario == "ingest":
            await ingest(args, report, None)
        elif scenario == "sustained":
            bare, start = await bare_and_burst(args, report, url)
            await sustained(args, report, url, bare=bare, start=start)
        elif scenario == "keepup":
            await keepup(args, report, url, *await half_sustained(args, report, url))
        elif scenario == "soak":
            rate, _ = await half_sustained(args, report, url)
            await soak(args, report, url, rate)
        elif scenario == "drain":
            await drain(args, report, url)
        elif scenario == "history":
            await history(args, report)
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    p.add_argument("--amqp-url", help="an existing broker (default: start a private node)")
    load = p.add_argument_group("load (every scenario)")
    load.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    load.add_argument(
        "--threads", type=int, default=1,
        help="wrk threads (it shares the cores with the servers; default 1)",
    )  # fmt: skip
    ingest = p.add_argument_group("ingest (bursts: as fast as answered)")
    ingest.add_argument("--runs", type=int, default=3, help="rounds (medians reported)")
    ingest.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    ingest.add_argument(
        "--streams", type=int, default=0,
        help="spread the events over this many streams (default: one per kind, as in the "
        "examples)",
    )  # fmt: skip
    ingest.add_argument(
        "--many-streams", type=int, default=10_000,
        help="all: ingest again with the events over this many streams (0: skip); many streams "
        "make the per-stream indexes cost more",
    )  # fmt: skip
    ingest.add_argument(
        "--database", metavar="URL",
        help="ingest: measure PostgreSQL too (1 and 2 replicas next to bare aiohttp and SQLite); "
        "a postgresql:// URL whose role may CREATE DATABASE (a fresh one per run), or just "
        "'postgresql' for a private cluster in a temporary directory",
    )  # fmt: skip
    ingest.add_argument(
        "--replicas", type=_replicas, default=[1, 2], metavar="N,M",
        help="with --database: the replica counts to measure (default 1,2)",
    )  # fmt: skip
    ingest.add_argument(
        "--quiet-tail", type=float, default=0.0,
        help="stop sending this many seconds before each burst ends, so every request sent is "
        "answered and the events stored equal the 200s exactly (costs wrk a timer per "
        "request; paced runs always end with a quiet second)",
    )  # fmt: skip
    sustained = p.add_argument_group("sustained, keep-up, soak (paced, relay publishing)")
    sustained.add_argument("--probe-seconds", type=float, default=10.0, help="length of a probe")
    sustained.add_argument(
        "--max-probes", type=int, default=8,
        help="probes down from the burst rate with the relay, each at 0.85 times the last",
    )  # fmt: skip
    sustained.add_argument(
        "--refine", type=int, default=2,
        help="bisection probes between the highest bounded and the lowest unbounded rate",
    )  # fmt: skip
    sustained.add_argument(
        "--sustained-seconds", type=float, default=60.0, help="the run at the rate found"
    )
    sustained.add_argument("--keepup-seconds", type=float, default=30.0, help="the keep-up run")
    sustained.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    sustained.add_argument(
        "--rate", type=float,
        help="req/s for keep-up and the soak (default: half the sustained maximum)",
    )  # fmt: skip
    other = p.add_argument_group("drain and history")
    other.add_argument(
        "--drain-events", type=int, default=200_000, help="the outbox backlog to drain"
    )
    other.add_argument("--drain-rounds", type=int, default=3, help="rounds (medians reported)")
    other.add_argument(
        "--history-events", type=int, default=1_000_000, help="events in the history database"
    )
    other.add_argument(
        "--history-streams", type=int, default=10_000, help="streams they are spread over"
    )
    other.add_argument("--history-runs", type=int, default=20, help="timed runs of each query")
    return p


def _replicas(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("replica counts are positive integers, e.g. 1,2")
    return counts


def smoke(args: argparse.Namespace) -> None:
    """Every part, briefly; quiet tails everywhere so the counts are exact."""
    args.runs, args.seconds, args.connections, args.quiet_tail = 1, 2.0, 16, 1.0
    args.many_streams = min(args.many_streams, 50)  # a handful, more than the 16 kinds name
    args.probe_seconds, args.max_probes, args.refine, args.sustained_seconds = 2.0, 1, 0, 3.0
    args.keepup_seconds, args.minutes = 3.0, 5 / 60
    args.drain_events, args.drain_rounds = 2000, 1
    args.history_events, args.history_streams, args.history_runs = 2000, 20, 3


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.database and args.scenario != "ingest":
        p.error("--database goes with the ingest scenario only")
    if args.scenario == "smoke":
        smoke(args)
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
