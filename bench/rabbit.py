"""The broker for a benchmark run: the URL given, or a private RabbitMQ node started for it.

The node is the one the test suite runs too (`testbed.broker.RabbitNode`: private ports, data
directory and cookie, always stopped), so a benchmark never touches a broker someone else is using.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from testbed.broker import RabbitNode


@contextlib.contextmanager
def broker(url: str | None, log: Callable[[str], object] = print) -> Iterator[str]:
    """Yield an AMQP URL: `url` itself, or the URL of a node that lives as long as the block."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="bench-rabbitmq-") as scratch:
        node = RabbitNode(Path(scratch))
        log("starting a private RabbitMQ node")
        try:
            node.start()
            yield node.url
        finally:
            node.stop()
            node.stop_epmd()
