"""The benchmark's output: a table of absolute figures and ratios, and the same as JSON."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Report:
    """Rows of (figure, value, unit, ratio, target) collected by the scenarios of one run."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)

    def add(
        self,
        figure: str,
        value: float,
        unit: str,
        *,
        ratio: float | None = None,
        target: str = "",
        ok: bool | None = None,
    ) -> None:
        self.rows.append(
            {"figure": figure, "value": value, "unit": unit, "ratio": ratio, "target": target,
             "ok": ok}
        )  # fmt: skip

    def table(self) -> str:
        lines = [f"{'figure':<52} {'value':>12} {'unit':<8} {'ratio':>7}  target"]
        lines.append("-" * len(lines[0]))
        for row in self.rows:
            ratio = "" if row["ratio"] is None else f"{row['ratio']:.3f}"
            verdict = {True: " ok", False: " MISSED", None: ""}[row["ok"]]
            lines.append(
                f"{row['figure']:<52} {row['value']:>12,.2f} {row['unit']:<8} {ratio:>7}  "
                f"{row['target']}{verdict}"
            )
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        document = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": _cpus(), "python": platform.python_version()},
            "context": self.context,
            "rows": self.rows,
        }
        path.write_text(json.dumps(document, indent=2) + "\n")


def _cpus() -> int:
    import os

    return os.cpu_count() or 0
