"""The framing between the service and its writer process: length-prefixed orjson lists.

Service → writer:
    `["e", rid, event_type, received_at, path_kind, payload]`  store an event
    `["p", rid]`                                              commit a heartbeat (readiness)
    `["o", rid, published, failed]`                           record publishing outcomes:
        `published` = [[published_at, last_error, seq], ...], `failed` = [[last_error, seq], ...]
Writer → service:
    `["r"]` ready · `["a", rid, id, new, schema_error]` event committed · `["k", rid]` other
    request committed · `["x", rid, message]` could not commit · `["c", seconds, size]` one
    commit's duration and size, for metrics.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import orjson

_HEADER: Final = struct.Struct("<I")
HEADER_SIZE: Final = _HEADER.size


def frame(message: list[Any]) -> bytes:
    body = orjson.dumps(message)
    return _HEADER.pack(len(body)) + body


class FrameBuffer:
    """Accumulates bytes and yields complete frames; a partial frame waits for more bytes."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[list[Any]]:
        self._buffer += data
        messages: list[list[Any]] = []
        offset = 0
        view = memoryview(self._buffer)
        try:
            while len(self._buffer) - offset >= HEADER_SIZE:
                (size,) = _HEADER.unpack_from(self._buffer, offset)
                end = offset + HEADER_SIZE + size
                if end > len(self._buffer):
                    break
                messages.append(orjson.loads(view[offset + HEADER_SIZE : end]))
                offset = end
        finally:
            view.release()
        del self._buffer[:offset]
        return messages
