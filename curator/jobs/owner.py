"""Who runs the jobs of a database: runner ids, heartbeats and the one-server lease.

A *runner id* is ``host:pid:token`` (a random token per runner, so two runners of one process
differ). The runner that moves a job to ``running`` writes its id to ``jobs.owner`` and refreshes
``jobs.heartbeat_at`` every ``runner_heartbeat_seconds`` while the job runs. An owner is *gone* when
its heartbeat is older than ``runner_timeout_seconds``, or when it ran on this host and its process
no longer exists; only then does a starting runner mark the owner's jobs ``interrupted``.

Until several servers can share a database, one server holds it: the ``server_lease`` row names
the holder and carries its heartbeat, and :func:`acquire_server_lease` raises
:class:`DatabaseInUse` while another live process holds it.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from curator.store.models import Job, ServerLease
from curator.workspace import Workspace

#: The id of the one ``server_lease`` row.
LEASE_ID = 1


def this_host() -> str:
    """This machine's host name, as runner ids record it."""
    return socket.gethostname()


@dataclass(frozen=True)
class RunnerId:
    """A job runner: the host and process it runs in and a random token of its own.

    Attributes:
        host: Host name.
        pid: Process id on that host.
        token: Random, so two runners in one process are told apart.
    """

    host: str
    pid: int
    token: str

    @classmethod
    def new(cls) -> RunnerId:
        """A fresh id for a runner of this process."""
        return cls(this_host(), os.getpid(), secrets.token_hex(6))

    @classmethod
    def parse(cls, text: str | None) -> RunnerId | None:
        """The id written as ``host:pid:token``, or ``None`` for anything else."""
        parts = (text or "").rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (a zombie, killed but not reaped, does not count)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: signal 0 is all we know
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def owner_gone(owner: str | None, heartbeat_at: float | None, *, timeout: float, now: float | None = None) -> bool:
    """Whether the runner ``owner`` has stopped: no owner or heartbeat, a heartbeat older than
    ``timeout`` seconds, or a process of this host that no longer exists."""
    now = time.time() if now is None else now
    runner = RunnerId.parse(owner)
    if runner is None or heartbeat_at is None or now - heartbeat_at > timeout:
        return True
    return runner.host == this_host() and not pid_alive(runner.pid)


class DatabaseInUse(RuntimeError):
    """Another live server holds the database.

    Args:
        host: The holder's host.
        pid: The holder's process id.
    """

    def __init__(self, host: str, pid: int) -> None:
        super().__init__(f"another curator server (pid {pid} on {host}) is using this database; stop it first")
        self.host = host
        self.pid = pid


def _held_by_another(row: ServerLease, me: RunnerId | None, timeout: float, now: float) -> bool:
    if me is not None and (row.owner == str(me) or (row.host == me.host and row.pid == me.pid)):
        return False  # ours, or another runner of this very process (tests run several apps)
    return not owner_gone(row.owner, row.heartbeat_at, timeout=timeout, now=now)


def server_lease_holder(workspace: Workspace, *, timeout: float | None = None) -> tuple[str, int] | None:
    """``(host, pid)`` of a live server of another process holding ``workspace``'s database, or ``None``."""
    timeout = workspace.settings.runner_timeout_seconds if timeout is None else timeout
    with workspace.db.session() as session:
        row = session.get(ServerLease, LEASE_ID)
        if row is None or not _held_by_another(row, RunnerId.new(), timeout, time.time()):
            return None
        return row.host, row.pid


def acquire_server_lease(workspace: Workspace, me: RunnerId, *, timeout: float | None = None) -> None:
    """Make ``me`` the server holding the database, unless another live process holds it.

    A holder whose heartbeat is older than ``timeout`` (default ``runner_timeout_seconds``), or
    whose process is gone from this host, is replaced. Every step is a conditional write, so two
    servers starting at once cannot both win.

    Raises:
        DatabaseInUse: If another live server holds the database.
    """
    timeout = workspace.settings.runner_timeout_seconds if timeout is None else timeout
    for _ in range(10):
        try:
            with workspace.db.session() as session:
                now = time.time()
                row = session.get(ServerLease, LEASE_ID)
                if row is None:
                    session.add(ServerLease(id=LEASE_ID, owner=str(me), host=me.host, pid=me.pid, heartbeat_at=now))
                    session.flush()
                    return
                if _held_by_another(row, me, timeout, now):
                    raise DatabaseInUse(row.host, row.pid)
                taken = session.execute(
                    update(ServerLease)
                    .where(ServerLease.id == LEASE_ID, ServerLease.owner == row.owner)
                    .values(owner=str(me), host=me.host, pid=me.pid, heartbeat_at=now)
                )
                if taken.rowcount:  # type: ignore[attr-defined]
                    return
        except IntegrityError:
            pass  # another server inserted the row first: look again
    raise RuntimeError("could not take the server lease of the database")


def release_server_lease(workspace: Workspace, me: RunnerId) -> None:
    """Give the database up (only if ``me`` still holds it)."""
    with workspace.db.session() as session:
        session.execute(delete(ServerLease).where(ServerLease.id == LEASE_ID, ServerLease.owner == str(me)))


def heartbeat(session: Session, me: RunnerId, running: list[int]) -> set[int]:
    """Refresh the heartbeat of ``me``'s server lease and running jobs.

    Args:
        session: Where to write (the caller commits).
        me: The runner.
        running: Ids of the jobs the runner is executing.

    Returns:
        Those of ``running`` that are no longer ``running`` under ``me`` (another process took them
        over, as after a wrong guess that ``me`` was gone): the runner should stop them.
    """
    now = time.time()
    session.execute(update(ServerLease).where(ServerLease.owner == str(me)).values(heartbeat_at=now))
    session.execute(update(Job).where(Job.owner == str(me), Job.state == "running").values(heartbeat_at=now))
    if not running:
        return set()
    owned = set(
        session.scalars(select(Job.id).where(Job.id.in_(running), Job.owner == str(me), Job.state == "running"))
    )
    return set(running) - owned
