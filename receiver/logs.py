"""Logging: what a request may put in a log line, and the one logging set-up of every process.

Anything a client sends (a path, a header, a stream name, a parser's complaint quoting the
request) can hold a newline, a NUL, a terminal escape or a Unicode direction override. Written
raw, `GET /api/x%0A2024-05-01 CRITICAL ...` forges a log line of its own, ESC sequences rewrite
the terminal of whoever reads the log, and a right-to-left override reverses what a reader sees.
`printable()` shows each such character as an escape (`\\x0a`, `\\u202e`) instead: every log call
wraps the request-derived values it formats, so the record itself is clean whatever handler
emits it, and the handlers `configure()` installs escape every finished message once more, as a
net for what a library logs. Escaping leaves everything else alone (CJK stream names stay
readable) and applying it twice changes nothing, so the net never garbles a wrapped value.

`configure()` is shared by `receiver` (`receiver.cli.common`) and the writer process, so both
write the same format: plain lines, or one JSON object per line (`RECEIVER_LOG_FORMAT=json`),
which log pipelines parse without guessing where a record ends.
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import Final, Literal

LogFormat = Literal["text", "json"]

_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The JSON fields, named as log pipelines expect them; a record's `extra` fields follow.
_JSON_FIELDS: Final = ("levelname", "name", "message")
_JSON_RENAMES: Final = {"levelname": "level", "name": "logger"}
# Record attributes our own filters set as markers (receiver.web.httplog), never log fields.
_PRIVATE_ATTRIBUTES: Final = ("_receiver_malformed_counted",)


def _unsafe() -> frozenset[int]:
    """Every character that can break a line, control a terminal or reorder text on screen."""
    controls = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]  # C0, DEL, C1 (NEL, CSI, ...)
    # Bidi marks, embeddings, overrides and isolates; the Unicode line and paragraph separators.
    unicode = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    return frozenset((*controls, *unicode, 0x2028, 0x2029))


UNSAFE_CHARACTERS: Final = _unsafe()
_ESCAPES: Final = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in UNSAFE_CHARACTERS
}


def printable(value: object) -> str:
    """`value` as text with every control, line-breaking and bidi character escaped visibly.

    For each request-derived value in a log call, and each cell of a CLI table: a stream name
    holding `ESC[2J` must not clear the operator's terminal.
    """
    return str(value).translate(_ESCAPES)


class EscapeFilter(logging.Filter):
    """Escapes each finished message (arguments merged in) before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = printable(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of `log_format`: plain lines, or one JSON object per record."""
    if log_format == "json":
        from pythonjsonlogger.core import RESERVED_ATTRS
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            list(_JSON_FIELDS),
            rename_fields=dict(_JSON_RENAMES),
            reserved_attrs=[*RESERVED_ATTRS, *_PRIVATE_ATTRIBUTES],
            timestamp=True,
        )
    return logging.Formatter(_TEXT_FORMAT)


def configure(level: str, log_format: LogFormat = "text") -> None:
    """Log to stderr at `level` in `log_format`, every message escaped.

    Like `logging.basicConfig`, a no-op when the root logger already has handlers (an embedding
    program's, or pytest's), whose configuration wins. Python's warnings go through logging too,
    and in the JSON format so does a crash's traceback: every line on stderr is then one record.
    """
    if logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(EscapeFilter())
    logging.basicConfig(level=level, handlers=[handler])
    logging.captureWarnings(True)
    if log_format == "json":
        sys.excepthook = _log_crash


def _log_crash(
    kind: type[BaseException], exc: BaseException, traceback: TracebackType | None
) -> None:
    """An uncaught exception as one CRITICAL record (Ctrl-C keeps Python's own short exit)."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, traceback)
        return
    logging.getLogger("receiver").critical("uncaught exception", exc_info=(kind, exc, traceback))
