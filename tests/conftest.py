"""Shared fixtures: one embedded ClickHouse (chDB) directory per test process.

chDB lets a process open exactly one data directory, so every test that needs the real engine
shares this one and isolates itself by database name (``unique_db``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_counter = itertools.count()
_CHDB_DIR = Path(tempfile.mkdtemp(prefix="sovtel-test-chdb-"))


@pytest.fixture(scope="session")
def chdb_dir() -> Path:
    """The one chDB data directory this test process may open."""
    return _CHDB_DIR


@pytest.fixture(scope="session")
def chdb_dsn(chdb_dir: Path) -> str:
    """A clickhouse-connect DSN for the shared embedded store."""
    return f"chdb://{chdb_dir}"


@pytest.fixture
def unique_db() -> str:
    """A database name no other test in this process uses."""
    return f"t{os.getpid()}_{next(_counter)}"


@pytest.fixture
def tmp_home(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory for files a test writes."""
    yield tmp_path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the shared chDB directory, so repeated runs leave no stores behind."""
    shutil.rmtree(_CHDB_DIR, ignore_errors=True)
