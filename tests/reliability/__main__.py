"""`python -m tests.reliability`: break the real service for real and print what was lost.

    python -m tests.reliability                  # every scenario at full size (a few minutes)
    python -m tests.reliability crash outage     # some of them
    python -m tests.reliability --quick          # CI sizes
    python -m tests.reliability --fuzz-seconds 300

Each scenario runs `receiver serve` as separate processes on loopback with its own SQLite file
and prints one row: sent / acked / stored / published / lost / dup in queue. The exit code is 1
if any promise was broken. Scenarios crash, outage, broker-restart, storm and disk publish to a
private RabbitMQ node (started for the run, always stopped) and audit a queue bound before any
traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

from testbed import PAYLOADS
from testbed.broker import RabbitNode
from tests.reliability.scenarios import broker
from tests.reliability.scenarios import broker_restart as restarts
from tests.reliability.scenarios import crash as crashes
from tests.reliability.scenarios import outage as outages
from tests.reliability.scenarios.disk_trouble import DiskPlan, disk_trouble
from tests.reliability.scenarios.hostile import HostilePlan, hostile_input
from tests.reliability.scenarios.report import Findings, render
from tests.reliability.scenarios.shutdown import ShutdownPlan, graceful_shutdown
from tests.reliability.scenarios.storm import StormPlan, retry_storm

# (work directory, CI sizes?, the run's RabbitMQ node if the scenario publishes) -> rows
Scenario = Callable[[Path, bool, RabbitNode | None], Awaitable[list[Findings]]]
ROOT = Path(__file__).resolve().parents[2]
PUBLISHING = frozenset({"crash", "outage", "broker-restart", "storm", "disk"})


async def crash(workdir: Path, quick: bool, rabbit: RabbitNode | None) -> list[Findings]:
    plan = crashes.QUICK if quick else crashes.CrashPlan()
    return [await crashes.crash_under_load(workdir, plan, rabbit)]


async def outage(workdir: Path, quick: bool, rabbit: RabbitNode | None) -> list[Findings]:
    assert rabbit is not None
    plan = outages.QUICK if quick else outages.OutagePlan()
    stopped = await outages.broker_outage(workdir / "stop", plan, rabbit)
    frozen = replace(plan, mode="freeze")
    return [stopped, await outages.broker_outage(workdir / "freeze", frozen, rabbit)]


async def restart(workdir: Path, quick: bool, rabbit: RabbitNode | None) -> list[Findings]:
    assert rabbit is not None
    plan = restarts.QUICK if quick else restarts.RestartPlan()
    return [await restarts.broker_restart(workdir, plan, rabbit)]


async def storm(workdir: Path, quick: bool, rabbit: RabbitNode | None) -> list[Findings]:
    return [await retry_storm(workdir, StormPlan(restart=True), rabbit)]


async def disk(workdir: Path, quick: bool, rabbit: RabbitNode | None) -> list[Findings]:
    results = []
    for mechanism in ("filesystem", "readonly", "fsize"):
        plan = DiskPlan(
            mechanism=mechanism, events=250 if quick else 1500, outage_seconds=2 if quick else 5
        )
        results.append(await disk_trouble(workdir, plan, rabbit))
    return results


async def hostile(workdir: Path, quick: bool, rabbit: RabbitNode | None) -> list[Findings]:
    full = HostilePlan(examples=3000, oversized=100, slow=100, flood=500)
    plan = HostilePlan() if quick else full
    return [await asyncio.to_thread(hostile_input, workdir, plan)]


async def shutdown(workdir: Path, quick: bool, rabbit: RabbitNode | None) -> list[Findings]:
    rounds = 1 if quick else 5
    return [await graceful_shutdown(workdir / str(n), ShutdownPlan()) for n in range(rounds)]


SCENARIOS: dict[str, Scenario] = {
    "crash": crash,
    "outage": outage,
    "broker-restart": restart,
    "storm": storm,
    "disk": disk,
    "hostile": hostile,
    "shutdown": shutdown,
}


async def run(name: str, workdir: Path, quick: bool, rabbit: RabbitNode | None) -> list[Findings]:
    """One scenario; if it breaks down (a deadline passed, a process died), that is a failed
    row in the table, not a traceback that hides the other scenarios' figures."""
    started = time.monotonic()
    try:
        return await SCENARIOS[name](workdir, quick, rabbit)
    except Exception as exc:
        findings = Findings(name)
        findings.check("the scenario ran to its end", False, f"{type(exc).__name__}: {exc}"[:800])
        findings.seconds = time.monotonic() - started
        return [findings]


def fuzz(workdir: Path, seconds: int) -> Findings:
    """atheris over the payload pipeline, from the real bodies as seed corpus."""
    findings = Findings("6 hostile input (atheris)")
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True)
    for path in PAYLOADS.glob("*.json"):
        (corpus / path.name).write_bytes(path.read_bytes())
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability.scenarios.fuzz",
            str(corpus),
            f"-max_total_time={seconds}",
            "-max_len=8192",
            f"-artifact_prefix={workdir}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    findings.seconds = time.monotonic() - started
    done = [line for line in run.stderr.splitlines() if line.startswith("Done ")]
    findings.check(
        "no crash, no broken promise found",
        run.returncode == 0,
        done[0] if done else run.stderr[-1500:],
    )
    runs = done[0].split()[1] if done else "0"
    findings.sent = findings.attempts = int(runs) if runs.isdigit() else 0
    findings.notes.append(
        "sent/attempts: fuzz inputs, each tried as sent and, if a JSON object, validly signed"
    )
    return findings


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"some of: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="CI sizes")
    parser.add_argument(
        "--fuzz-seconds", type=int, default=60, help="atheris run time (0: skip it)"
    )
    args = parser.parse_args(argv)
    names = args.scenarios or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    results: list[Findings] = []
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        workdir = Path(tmp)
        async with AsyncExitStack() as stack:
            rabbit = None
            if PUBLISHING & set(names):
                print("starting RabbitMQ ...", file=sys.stderr, flush=True)
                rabbit = await stack.enter_async_context(broker.node(workdir / "rabbitmq"))
            for name in names:
                print(f"running {name} ...", file=sys.stderr, flush=True)
                node = rabbit if name in PUBLISHING else None
                results += await run(name, workdir / name, args.quick, node)
        if args.fuzz_seconds and "hostile" in names:
            print("running atheris ...", file=sys.stderr, flush=True)
            results.append(await asyncio.to_thread(fuzz, workdir / "fuzz", args.fuzz_seconds))
    print(render(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
