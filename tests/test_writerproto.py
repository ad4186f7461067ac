"""Frames between the service and its writer process survive any split of the byte stream."""

from __future__ import annotations

from receiver.writerproto import FrameBuffer, event_frame, frame


def test_event_frames_carry_the_body_bytes_verbatim() -> None:
    body = '{"event_type":200,"stream_id":"流-1","x":"\\"q\\""}'.encode()
    stream = b"".join(
        [
            event_frame(7, 200, 1700000000.25, "snapshot", body),
            frame(["p", 8]),
            event_frame(2**40, 2**31 - 1, 0.0, None, b"{}"),
        ]
    )
    buffer = FrameBuffer()
    got = []
    for n in range(0, len(stream), 5):  # arrives in pieces that cut through every frame
        got.extend(buffer.feed(stream[n : n + 5]))
    assert got == [
        ["e", 7, 200, 1700000000.25, "snapshot", body],
        ["p", 8],
        ["e", 2**40, 2**31 - 1, 0.0, None, b"{}"],
    ]
    assert buffer.feed(b"") == []
