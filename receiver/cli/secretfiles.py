"""Secrets the service generates for itself when the operator configured none.

A generated secret is written once, with mode 0600, next to the database, and reused on every
later start, so CSS templates keep working across restarts. The environment always wins.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import string
from pathlib import Path

from receiver.storage.backup import sync_path

log = logging.getLogger(__name__)

CALLBACK_KEY_FILE = "callback_key"
API_TOKEN_FILE = "api_token"  # noqa: S105 - a file name, not a secret
# The CSS console accepts at most 32 letters and digits; 32 of 62 symbols is ~190 bits.
_ALPHABET = string.ascii_letters + string.digits


def generate_key(length: int = 32) -> str:
    """A random key of letters and digits that the CSS console and API accept."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def load_or_create(path: Path, length: int = 32) -> tuple[str, bool]:
    """Return the secret stored at `path`, creating it first if needed; True if created now.

    Several replicas may share the directory and start at once (the `ha` Compose profile): the
    secret is written whole to a file of its own, then linked into place, which fails if another
    process got there first. So no process ever reads a half-written secret, and every one of
    them ends with the same value.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _read(path), False
    except FileNotFoundError:
        pass
    value = generate_key(length)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            return _read(path), False
    finally:
        draft.unlink(missing_ok=True)
    sync_path(path.parent)  # the new name durable: a restart finds the secret CSS was given
    return value, True


def _read(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by other users; run chmod 600 on it", path)
    value = path.read_text("ascii").strip()
    if not value:
        raise RuntimeError(f"{path} is empty; delete it to generate a new secret")
    return value
