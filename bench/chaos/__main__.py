"""`python -m bench.chaos`: break the real service for real and print what was lost.

    python -m bench.chaos                  # every scenario at full size (a few minutes)
    python -m bench.chaos crash storm      # some of them
    python -m bench.chaos --quick          # CI sizes
    python -m bench.chaos --fuzz-seconds 300

Each scenario runs `receiver serve` as separate processes on loopback with its own SQLite file
and prints one row: sent / acked / stored / published / lost / dup in queue. The exit code is 1
if any promise was broken. The broker scenarios (2, 3) and the `published` and `dup in queue`
figures come with the RabbitMQ outbox; they print `n/a` until then.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.chaos.crash import CrashPlan, crash_under_load
from bench.chaos.disk_trouble import DiskPlan, disk_trouble
from bench.chaos.hostile import HostilePlan, hostile_input
from bench.chaos.report import Findings, render
from bench.chaos.shutdown import ShutdownPlan, graceful_shutdown
from bench.chaos.storm import StormPlan, retry_storm

Scenario = Callable[[Path, bool], Awaitable[list[Findings]]]
ROOT = Path(__file__).resolve().parents[2]


async def crash(workdir: Path, quick: bool) -> list[Findings]:
    plan = CrashPlan(events=400, rate=150, crashes=3) if quick else CrashPlan()
    return [await crash_under_load(workdir, plan)]


async def storm(workdir: Path, quick: bool) -> list[Findings]:
    return [await retry_storm(workdir, StormPlan(restart=True))]


async def disk(workdir: Path, quick: bool) -> list[Findings]:
    results = []
    for mechanism in ("filesystem", "readonly", "fsize"):
        plan = DiskPlan(
            mechanism=mechanism, events=250 if quick else 1500, outage_seconds=2 if quick else 5
        )
        results.append(await disk_trouble(workdir, plan))
    return results


async def hostile(workdir: Path, quick: bool) -> list[Findings]:
    full = HostilePlan(examples=3000, oversized=100, slow=100, flood=500)
    plan = HostilePlan() if quick else full
    return [await asyncio.to_thread(hostile_input, workdir, plan)]


async def shutdown(workdir: Path, quick: bool) -> list[Findings]:
    rounds = 1 if quick else 5
    return [await graceful_shutdown(workdir / str(n), ShutdownPlan()) for n in range(rounds)]


SCENARIOS: dict[str, Scenario] = {
    "crash": crash,
    "storm": storm,
    "disk": disk,
    "hostile": hostile,
    "shutdown": shutdown,
}


def fuzz(workdir: Path, seconds: int) -> Findings:
    """atheris over the payload pipeline, from the real bodies as seed corpus."""
    findings = Findings("6 hostile input (atheris)")
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True)
    for path in (ROOT / "tests" / "payloads").glob("*.json"):
        (corpus / path.name).write_bytes(path.read_bytes())
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.chaos.fuzz",
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
        prog="python -m bench.chaos",
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
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results += await SCENARIOS[name](workdir / name, args.quick)
        if args.fuzz_seconds and "hostile" in names:
            print("running atheris ...", file=sys.stderr, flush=True)
            results.append(await asyncio.to_thread(fuzz, workdir / "fuzz", args.fuzz_seconds))
    print(render(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
