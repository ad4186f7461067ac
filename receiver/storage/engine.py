"""Which database engine `RECEIVER_DATABASE` names: a path is SQLite, a URL is PostgreSQL.

SQLite stays the embedded default (one process, one disk, nothing to operate). PostgreSQL is the
engine for several replicas behind a load balancer (docs/scaling.md). The choice is made here
once, when settings are read; everything else asks `is_postgres()` or matches on the type.

A PostgreSQL URL may carry a password, so `PostgresUrl` prints itself masked (`str`, `repr`,
logs, error messages, readiness); only `dsn()` gives the real one, to the driver. Parts the URL
leaves out come from the usual libpq variables (`PGHOST`, `PGUSER`, `PGPASSWORD`, ...), which
asyncpg reads itself: `RECEIVER_DATABASE=postgresql://` alone uses only them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from receiver.errors import StartupRefused

SCHEMES: Final = ("postgresql://", "postgres://")
_MASK: Final = "***"


class PostgresUrl:
    """A PostgreSQL connection URL whose password never shows."""

    __slots__ = ("_dsn",)

    def __init__(self, dsn: str) -> None:
        if not dsn.startswith(SCHEMES):
            raise ValueError("a PostgreSQL URL starts with postgresql:// or postgres://")
        try:
            urlsplit(dsn).port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("the PostgreSQL URL's port is not a number") from None
        self._dsn = dsn

    def dsn(self) -> str:
        """The URL in clear, for the driver only."""
        return self._dsn

    @property
    def masked(self) -> str:
        """The URL with its password replaced by `***` (also in the query: `?password=`)."""
        parts = urlsplit(self._dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":" + _MASK
            netloc = f"{userinfo}@{host}"
        query = "&".join(
            f"{key}={_MASK}" if key.lower() == "password" else item
            for item in parts.query.split("&")
            if item
            for key in [item.split("=", 1)[0]]
        )
        tail = f"?{query}" if query else ""
        return f"{parts.scheme}://{netloc}{parts.path}{tail}"  # `//` even with no host

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"PostgresUrl({self.masked!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PostgresUrl) and other._dsn == self._dsn

    def __hash__(self) -> int:
        return hash(self._dsn)


Database = Path | PostgresUrl


def parse_database(value: Any) -> Any:
    """`RECEIVER_DATABASE` as given: a postgresql:// or postgres:// URL, else a SQLite path."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.lower().startswith(SCHEMES):
            scheme, rest = stripped.split("://", 1)
            return PostgresUrl(f"{scheme.lower()}://{rest}")
        return Path(stripped)
    return value


def is_postgres(database: Database) -> bool:
    return isinstance(database, PostgresUrl)


def describe(database: Database) -> str:
    """How logs and messages name the database (never with a password)."""
    return database.masked if isinstance(database, PostgresUrl) else str(database)


def sqlite_path(database: Database, what: str = "this") -> Path:
    """The SQLite file, for what only the SQLite engine does so far; `StartupRefused` (one
    line) on PostgreSQL."""
    if isinstance(database, PostgresUrl):
        raise StartupRefused(
            f"{what} works on SQLite only so far; RECEIVER_DATABASE names PostgreSQL "
            f"({database.masked})"
        )
    return database
