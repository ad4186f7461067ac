"""What the test suite and the benchmarks both run against, so that neither imports the other.

`tests/` and `bench/` need the same private services and the same data: a RabbitMQ node of
their own (`testbed.broker`), `receiver serve` as a separate process and free loopback ports
(`testbed.service`), the reference example bodies of every callback kind (`PAYLOADS`) and
synthetic history rows (`testbed.history_rows`). They live here, in one place, and both sides
import them from here: `tests` never imports `bench`, and `bench` never imports `tests`. Nothing
here is shipped: the wheel holds `receiver` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

# The example callback bodies of the CSS reference, one JSON file per kind and variant.
PAYLOADS: Final = Path(__file__).resolve().parent / "payloads"
