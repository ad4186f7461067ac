"""A test module on both engines: import `database` and `make_settings` from here into it.

Every test of that module then runs on a SQLite file and on a PostgreSQL database (the
`any_database` parameters), and whatever reads the test's `database` (the Tencent CLI runner,
the tests' own reads) reads that one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from receiver.settings import Settings
from receiver.storage.engine import Database


@pytest.fixture
def database(any_database: Database) -> Database:
    return any_database


@pytest.fixture
def make_settings(
    make_settings: Callable[..., Settings], any_database: Database
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return make_settings(**{"database": any_database, **overrides})

    return make
