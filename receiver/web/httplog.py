"""Malformed HTTP requests: a counted warning, not an ERROR with a traceback.

aiohttp answers a request its parser rejects (a header line without a colon, an oversized
header, a bad chunk size, ...) with 400 before any handler runs, and logs it on the
`aiohttp.server` logger at ERROR with a full traceback. A service on the internet gets such
requests from scanners all day: the traceback buries real errors and alerts on log level fire
for nothing. This filter turns each one into one WARNING line naming the peer and the parser's
reason, and counts it in `receiver_malformed_http_requests_total`, so a surge stays visible.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import Counter

from receiver.keys import METRICS
from receiver.logs import printable

SERVER_LOGGER: Final = "aiohttp.server"
_COUNTED: Final = "_receiver_malformed_counted"


class MalformedRequestFilter(logging.Filter):
    """Rewrites aiohttp's "Error handling request" records caused by unparsable requests."""

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self._counter = counter

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or getattr(record, _COUNTED, False):
            return True
        setattr(record, _COUNTED, True)  # another app in this process must not count it again
        self._counter.inc()
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else None
        reason = (exc.message or type(exc).__name__).splitlines()[0]
        record.msg = "malformed HTTP request from %s refused with %s: %s"
        record.args = (printable(peer or "?"), exc.code, printable(reason))
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info = record.exc_text = None
        return True


async def malformed_requests_ctx(app: web.Application) -> AsyncIterator[None]:
    """Install the filter while the app runs (the logger is process-wide, the filter is ours)."""
    log_filter = MalformedRequestFilter(app[METRICS].malformed_requests)
    logger = logging.getLogger(SERVER_LOGGER)
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)
