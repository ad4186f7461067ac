"""How a callback body's bytes become Python values, the same way in both processes.

The HTTP process parses a body to refuse it or authenticate it; the writer process parses the
same bytes again to normalise and deduplicate it. Both must see the same values, so both read
them through this module.

orjson is fast but turns an integer beyond 64 bits into a float (`18446744073709551617` becomes
`1.8446744073709552e+19`), so two neighbouring identifiers would read as one. CSS sends its
identifiers (`sequence`, `seq`, ...) as strings, so such integers are rare: orjson parses every
body, and only a body that holds a float too large for a 64-bit integer (the only trace a lossy
integer leaves) is parsed again by the standard library, which keeps every integer exact. The
stored payload is always the raw bytes, whichever parser read them.
"""

from __future__ import annotations

import json
from typing import Any, Final, NamedTuple

import orjson

# orjson keeps integers exact from -2^63 to 2^64 - 1; a float outside (-2^63, 2^63) may be
# such an integer's approximation (it may also be a genuine float: re-parsing it costs only time).
_EXACT_BELOW: Final = 2.0**63


class Shape(NamedTuple):
    """What the intake checks about a parsed body, measured in one walk.

    `depth` counts nesting levels (the body itself is level 1), and stops one past the limit it
    was measured with; `lossy`: some number may be an approximated integer.
    """

    depth: int
    lossy: bool


def measure(body: object, limit: int) -> Shape:
    """Walk `body` level by level (no recursion: a deep body cannot exhaust the stack)."""
    depth = 0
    lossy = False
    level = [body]
    while level and depth <= limit:
        depth += 1
        deeper: list[object] = []
        for node in level:
            for value in node.values() if type(node) is dict else node:  # type: ignore[attr-defined]
                kind = type(value)
                if kind is dict or kind is list:
                    deeper.append(value)
                elif kind is float and not -_EXACT_BELOW < value < _EXACT_BELOW:
                    lossy = True
        level = deeper
    return Shape(depth, lossy)


def exact(raw: bytes) -> Any:
    """`raw` parsed with every integer exact (the standard library; slower than orjson).

    Call it only on bytes orjson accepted: the standard library also accepts NaN and lone
    surrogates, which orjson refuses, and it would parse them here without complaint.
    """
    return json.loads(raw.decode("utf-8"))


def loads(raw: bytes) -> Any:
    """Parse bytes the intake accepted (so within its depth limit) as the intake read them."""
    value = orjson.loads(raw)
    return exact(raw) if measure(value, limit=1 << 30).lossy else value
