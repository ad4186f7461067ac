"""`python -m bench`: measure the receiver against baselines measured in the same run.

    python -m bench ingest            # bare aiohttp vs receiver serve (publishing off)
    python -m bench all --json out.json
    python -m bench smoke             # CI: a few seconds, checks counts only, never timing

Every speed figure is printed with its ratio to a baseline of the same run: these machines are
shared and noisy, so absolute numbers from different runs are not comparable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.ingest import measure_ingest
from bench.report import Report


def ingest(args: argparse.Namespace, report: Report) -> None:
    print(f"ingest: {args.runs} runs of {args.seconds:g} s at {args.connections} connections")
    sides = measure_ingest(runs=args.runs, seconds=args.seconds, connections=args.connections)
    base, recv = sides["baseline"].summary(), sides["receiver"].summary()
    ratio = recv["req_per_s"] / base["req_per_s"]
    report.context["ingest"] = {"baseline": base, "receiver": recv}
    report.add("bare aiohttp: req/s", base["req_per_s"], "req/s")
    report.add("bare aiohttp: p99 latency", base["p99_ms"], "ms")
    report.add(
        "receiver (durable, publishing off): req/s", recv["req_per_s"], "req/s",
        ratio=ratio, target=">= 0.80", ok=ratio >= 0.80,
    )  # fmt: skip
    report.add("receiver: p50 ack latency", recv["p50_ms"], "ms")
    report.add(
        "receiver: p99 ack latency", recv["p99_ms"], "ms", target="<= 15 ms",
        ok=recv["p99_ms"] <= 15,
    )  # fmt: skip
    report.add(
        "receiver: HTTP process CPU per request", recv["cpu_ms_per_req"], "ms",
        ratio=recv["cpu_ms_per_req"] / max(base["cpu_ms_per_req"], 1e-9),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", choices=["ingest", "all", "smoke"])
    parser.add_argument("--runs", type=int, default=3, help="runs per side (median is reported)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.scenario == "smoke":
        args.runs, args.seconds, args.connections = 1, 2.0, 16
    report = Report()
    ingest(args, report)
    print()
    print(report.table())
    if args.json:
        report.write_json(args.json)
        print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
