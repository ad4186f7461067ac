"""The framing between the service and its writer process: length-prefixed frames.

Events, the hot path, travel as binary frames so the callback body crosses the pipe as the bytes
CSS sent (no JSON-escaping of a JSON text in the service, no unescaping in the writer):

    b"E" + <rid u64, event_type u32, received_at f64, len(path_kind) u8> + path_kind + payload

Everything else is an orjson list.

Service → writer:
    event (binary, above)                                     store an event
    `["p", rid]`                                              commit a heartbeat (readiness)
    `["o", rid, published, failed]`                           record publishing outcomes:
        `published` = [[published_at, last_error, seq], ...], `failed` = [[last_error, seq], ...]
Writer → service:
    `["r"]` ready · `["c", seconds, size, acks, done]` one commit, with its duration and size
    (for metrics), `acks` = [[rid, id, new, schema_error], ...] for its events and `done` =
    [rid, ...] for its other requests (one frame per commit, however many requests it carried)
    · `["x", rid, message]` could not commit.

`FrameBuffer.feed` decodes an event frame to `["e", rid, event_type, received_at, path_kind,
payload]`, so every message is a list whose first item says what it is.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import orjson

_HEADER: Final = struct.Struct("<I")
HEADER_SIZE: Final = _HEADER.size
_EVENT: Final = struct.Struct("<cQIdB")
_EVENT_TAG: Final = ord("E")


def frame(message: list[Any]) -> bytes:
    body = orjson.dumps(message)
    return _HEADER.pack(len(body)) + body


def event_frame(
    rid: int, event_type: int, received_at: float, path_kind: str | None, payload: bytes
) -> bytes:
    """The frame of one event; `payload` is the callback body exactly as received."""
    kind = path_kind.encode() if path_kind else b""
    size = _EVENT.size + len(kind) + len(payload)
    return b"".join(
        (
            _HEADER.pack(size),
            _EVENT.pack(b"E", rid, event_type, received_at, len(kind)),
            kind,
            payload,
        )
    )


class FrameBuffer:
    """Accumulates bytes and yields complete frames; a partial frame waits for more bytes."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[list[Any]]:
        self._buffer += data
        buffer = self._buffer
        messages: list[list[Any]] = []
        offset = 0
        view = memoryview(buffer)
        try:
            while len(buffer) - offset >= HEADER_SIZE:
                (size,) = _HEADER.unpack_from(buffer, offset)
                start = offset + HEADER_SIZE
                end = start + size
                if end > len(buffer):
                    break
                if buffer[start] == _EVENT_TAG:
                    messages.append(_event(buffer, view, start, end))
                else:
                    messages.append(orjson.loads(view[start:end]))
                offset = end
        finally:
            view.release()
        del buffer[:offset]
        return messages


def _event(buffer: bytearray, view: memoryview, start: int, end: int) -> list[Any]:
    _, rid, event_type, received_at, kind_size = _EVENT.unpack_from(buffer, start)
    kind_start = start + _EVENT.size
    body_start = kind_start + kind_size
    path_kind = bytes(view[kind_start:body_start]).decode() if kind_size else None
    return ["e", rid, event_type, received_at, path_kind, bytes(view[body_start:end])]
