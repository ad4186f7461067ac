"""The benchmark's output: a table of absolute figures and ratios, and the same as JSON."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_WIDTH = 56  # the figure column


@dataclass
class Report:
    """Rows of (figure, value, unit, ratio, target) collected by the scenarios of one run,
    grouped in sections; `context` holds every measured detail for the JSON file."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    _section: str = ""

    def section(self, title: str) -> None:
        self._section = title

    def add(
        self,
        figure: str,
        value: float,
        unit: str,
        *,
        extra: float | None = None,
        ratio: float | None = None,
        target: str = "",
        ok: bool | None = None,
    ) -> None:
        """One figure; `extra` is a second value in the same unit (shown as `value / extra`)."""
        self.rows.append(
            {"section": self._section, "figure": figure, "value": value, "extra": extra,
             "unit": unit, "ratio": ratio, "target": target, "ok": ok}
        )  # fmt: skip

    def table(self) -> str:
        header = f"{'figure':<{_WIDTH}} {'value':>19} {'unit':<6} {'ratio':>6}  target"
        lines = [header]
        section = None
        for row in self.rows:
            if row["section"] != section:
                section = row["section"]
                lines += ["", f"## {section}", "-" * len(header)]
            value = _number(row["value"])
            if row["extra"] is not None:
                value = f"{value} / {_number(row['extra'])}"
            ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
            verdict = {True: " ok", False: " MISSED", None: ""}[row["ok"]]
            lines.append(
                f"{row['figure']:<{_WIDTH}} {value:>19} {row['unit']:<6} {ratio:>6}  "
                f"{row['target']}{verdict}".rstrip()
            )
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        document = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {
                "cpus": os.cpu_count() or 0,
                "python": platform.python_version(),
                "load_average": os.getloadavg(),
            },
            "context": self.context,
            "rows": self.rows,
        }
        path.write_text(json.dumps(document, indent=2) + "\n")


def _number(value: float) -> str:
    if isinstance(value, int):  # counts
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"
