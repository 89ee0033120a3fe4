"""A throwaway PostgreSQL server on loopback, for the tests and the benchmarks.

``PostgresServer.start()`` makes a cluster in a temporary folder with Debian's binaries
(``/usr/lib/postgresql/<version>/bin``, or ``$CURATOR_PG_BIN``), listening on 127.0.0.1 only, trust
authentication, ``fsync`` off (a throwaway server: speed over durability); when run as root the
server runs as the ``postgres`` user, which refuses to start as root. Each user of it then makes a
fresh database (:meth:`PostgresServer.create_database`).

``tests/pg.py`` re-exports it for the test suite (``pytest --db postgresql``); ``curator bench scale``
starts one for its replicas part (:mod:`benchmarks.replicas`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: Where a user may point at the binaries (the folder holding ``initdb`` and ``pg_ctl``).
PG_BIN_ENV = "CURATOR_PG_BIN"


def find_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: ``$CURATOR_PG_BIN``, Debian's newest, or the PATH."""
    if os.environ.get(PG_BIN_ENV):
        return Path(os.environ[PG_BIN_ENV])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A PostgreSQL cluster in a temporary folder (see the module docstring).

    Args:
        bindir: Folder of the server binaries.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="curator-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        self._count = 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresServer:
        """Make the cluster and start the server; returns self once it accepts connections."""
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.execute("SELECT 1")
                return self
            except Exception:
                time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not start; log: {(self.root / 'log').read_text()}")

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` (psycopg 3 over loopback TCP)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        """Run one statement in the ``postgres`` database (autocommit: CREATE DATABASE needs it)."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        self._count += 1
        name = f"{prefix}_{os.getpid()}_{self._count}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
