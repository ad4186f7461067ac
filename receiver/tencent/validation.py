"""Local checks of what registration sends, so a bad value fails before any API call.

Documented limits (reference §4.6): TemplateName ≤ 255 bytes and Description ≤ 1024 bytes, of
letters, digits, `_` and `-`, and Chinese characters: the Chinese page and the official SDK's
models say so, the English page leaves them out. We accept them, as the API documents: the
international site may refuse them, and then says so itself (`InvalidParameter.ArgsNotMatch`), a
clear error that changes nothing. "Chinese characters" is read as the CJK Unified Ideographs block
(U+4E00-U+9FFF), not punctuation. The byte limits count UTF-8 bytes (three per such character).
The console is stricter than the API (name ≤ 30, description ≤ 100 characters, CallbackKey ≤ 32
letters/digits): longer names and descriptions only earn a warning, because the API takes them;
a CallbackKey the console could not hold is refused, because no documentation says CSS signs
correctly with it and a wrong guess would make every callback fail with 401.

Every refusal here is an `InvalidRegistration`: the configuration must change (the CLI exits 2).
"""

from __future__ import annotations

import re
from typing import Final

from receiver.tencent.errors import InvalidRegistration

NAME_MAX_BYTES: Final = 255
DESCRIPTION_MAX_BYTES: Final = 1024
CONSOLE_NAME_MAX: Final = 30
CONSOLE_DESCRIPTION_MAX: Final = 100
CALLBACK_KEY_MAX: Final = 32
TEMPLATE_QUOTA: Final = 50

_NAME = re.compile(r"[A-Za-z0-9_\-\u4e00-\u9fff]+")
_KEY = re.compile(r"[A-Za-z0-9]{1,32}")


def template_name(value: str) -> list[str]:
    """Refuse a name the API would refuse; return console warnings."""
    _charset("template name", value, NAME_MAX_BYTES)
    if len(value) > CONSOLE_NAME_MAX:
        return [f"template name is {len(value)} characters; the CSS console shows at most 30"]
    return []


def description(value: str) -> list[str]:
    if value:
        _charset("template description", value, DESCRIPTION_MAX_BYTES)
    if len(value) > CONSOLE_DESCRIPTION_MAX:
        return [f"description is {len(value)} characters; the CSS console shows at most 100"]
    return []


def callback_key(value: str) -> None:
    """The current callback key must be one the CSS console could hold: ≤ 32 letters/digits."""
    if not _KEY.fullmatch(value):
        raise InvalidRegistration(
            f"the current callback key ({len(value)} characters) is not 1-32 letters and digits, "
            "the most a CSS template's CallbackKey holds: put a suitable key first in "
            "RECEIVER_CALLBACK_KEYS (unset it to use a generated one)"
        )


def _charset(what: str, value: str, max_bytes: int) -> None:
    if not _NAME.fullmatch(value):
        raise InvalidRegistration(
            f"{what} {value!r} may only contain letters, digits, '_', '-' and Chinese characters"
        )
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise InvalidRegistration(f"{what} is {size} bytes (UTF-8), longer than {max_bytes} bytes")
