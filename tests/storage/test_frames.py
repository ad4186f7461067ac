"""Frames between the service and its writer process survive any split of the byte stream, and
every frame comes back as the named tuple it was sent as."""

from __future__ import annotations

import pytest

from receiver.storage.frames import (
    Ack,
    ActionMarks,
    Committed,
    Event,
    Failed,
    Folded,
    FoldThrough,
    Frame,
    FrameBuffer,
    KindFolded,
    OutboxMarks,
    Probe,
    Ready,
    encode,
)


def test_frames_carry_the_body_bytes_verbatim_and_their_types() -> None:
    body = '{"event_type":200,"stream_id":"流-1","x":"\\"q\\""}'.encode()
    sent: list[Frame] = [
        Event(7, 200, 1700000000.25, "snapshot", body),
        Probe(8),
        Event(2**40, 2**31 - 1, 0.0, None, b"{}"),
        OutboxMarks(9, [(1700000001.5, None, 3), (1700000002.0, "unroutable", 4)], [("x", 5)]),
        Ready(),
        Committed(0.002, 2, [Ack(7, "id-7"), Ack(10, "id-1")], [8]),
        Failed(11, "disk I/O error"),
        FoldThrough(12, 2**40),
        Folded(0.01, 3, 99, [KindFolded("snapshot", 1, 1, 0, 1)], [12], None),
        Folded(0, 0, 99, [], [], "database disk image is malformed"),
        ActionMarks(13, [(1, "calling", 1700000003.5, None), (1, "done", 1.0, '{"r":"流"}')]),
    ]
    stream = b"".join(encode(message) for message in sent)
    buffer = FrameBuffer()
    got = []
    for n in range(0, len(stream), 5):  # arrives in pieces that cut through every frame
        got.extend(buffer.feed(stream[n : n + 5]))
    assert got == sent
    assert [type(message) for message in got] == [type(message) for message in sent]
    assert buffer.feed(b"") == []


def test_a_frame_of_no_known_type_is_an_error() -> None:
    body = b'["?", 1]'
    with pytest.raises(ValueError, match="not a writer frame"):
        FrameBuffer().feed(len(body).to_bytes(4, "little") + body)
