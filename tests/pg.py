"""A throwaway PostgreSQL server for the tests, on loopback: :mod:`benchmarks.pgserver`, which the
benchmarks share.

``PostgresServer.start()`` makes a cluster in a temporary folder with Debian's binaries
(``/usr/lib/postgresql/<version>/bin``, or ``$CURATOR_PG_BIN``), listening on 127.0.0.1 only; each
test then gets a fresh database (:meth:`PostgresServer.create_database`).

``pytest --db postgresql`` runs every test that builds settings against PostgreSQL: the
``CURATOR_DATABASE_URL`` variable names a new database per test, which every settings object (and
every server a test starts) reads. ``make test`` runs the suite on SQLite and then on PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.pgserver import PG_BIN_ENV, PostgresServer, find_bin, free_port

__all__ = ["PG_BIN_ENV", "PostgresServer", "find_bin", "free_port", "require_postgres"]


def require_postgres() -> Path:
    """PostgreSQL's binary folder; without one the test is skipped, loudly, and under CI it fails."""
    bindir = find_bin()
    if bindir is None or not (bindir / "initdb").exists():
        message = "PostgreSQL's binaries were not found (apt-get install postgresql, or set CURATOR_PG_BIN)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return bindir
