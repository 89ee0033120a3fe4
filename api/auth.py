"""Who is calling: API key lookup and role checks (keys are created and revoked by :mod:`curator.store.keys`).

A key looks like ``cur_<43 url-safe chars>``; only its SHA-256 is stored. Roles are ordered
``viewer < annotator < admin``; a key holds its role on one project, or on every project when it
has none (a *global* key, needed to create projects).

A browser signs in once with a key (``POST /session``) and then acts for that key through a session
cookie; requests that change state with the cookie must echo the session's CSRF token in
:data:`CSRF_HEADER` (see :func:`api.deps.get_principal`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from curator.store.keys import (
    KEY_PREFIX,
    SESSION_PREFIX,
    LiveSession,
    create_key,
    hash_key,
    key_by_secret,
    list_keys,
    revocations,
    revoke_key,
    session_by_token,
)
from curator.store.models import ROLES

__all__ = [
    "CSRF_HEADER",
    "KEY_PREFIX",
    "SESSION_COOKIE",
    "KeyCache",
    "Principal",
    "create_key",
    "find_key",
    "find_session",
    "hash_key",
    "list_keys",
    "looks_like_session",
    "revoke_key",
]

#: The cookie that carries a browser session token (``POST /session`` sets it: HttpOnly, SameSite=Strict).
SESSION_COOKIE = "curator_session"
#: The header a cookie-authenticated request that changes state must carry, equal to the session's CSRF token.
CSRF_HEADER = "X-CSRF-Token"
#: The shape of a session token (``cus_`` and 43 url-safe characters): checked before any database look-up.
SESSION_TOKEN = re.compile(re.escape(SESSION_PREFIX) + r"[A-Za-z0-9_-]{43}")


def looks_like_session(token: str | None) -> bool:
    """Whether ``token`` has the shape of a session token (a cheap check; it may still be unknown)."""
    return token is not None and SESSION_TOKEN.fullmatch(token) is not None


def find_key(session: Session, secret: str) -> Principal | None:
    """The caller behind a live (not revoked) key whose secret is ``secret``, or ``None``."""
    found = key_by_secret(session, secret)
    return None if found is None else Principal(key_id=found[0], role=found[1], project_id=found[2])


def find_session(session: Session, token: str) -> tuple[Principal, LiveSession] | None:
    """The caller behind a live browser session token, and the session; ``None`` when the token is
    malformed, unknown, expired, or its key was revoked."""
    if not looks_like_session(token):
        return None
    live = session_by_token(session, token)
    if live is None:
        return None
    return Principal(key_id=live.key_id, role=live.role, project_id=live.project_id), live


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and project (``None`` = every project)."""

    key_id: int
    role: str
    project_id: int | None

    def allows(self, role: str, project_id: int | None) -> bool:
        """Whether this key holds ``role`` (or a stronger one) on ``project_id`` (``None`` = global)."""
        if ROLES.index(self.role) < ROLES.index(role):
            return False
        return self.project_id is None or self.project_id == project_id


class KeyCache:
    """Callers behind bearer keys looked up lately, trusted for ``seconds`` before the next look-up.

    Every request names its key; looking it up costs a query and, since that blocks, a hop to a worker
    thread, which is most of what a short queue call costs beyond its own writes. Only live keys are
    held (an unknown key is looked up every time, so a new key works at once), by their hash. A key
    revoked by this process is dropped at once (:func:`curator.store.keys.revocations`); one revoked
    by another (``curator keys revoke``) works for at most ``seconds`` more.

    Args:
        seconds: How long a looked-up key is trusted; 0 or less turns the cache off.
        max_entries: Entries held at most (all are dropped when it is reached).
        clock: Monotonic seconds.
    """

    def __init__(self, seconds: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, tuple[Principal, float, int]] = {}

    def get(self, secret: str) -> Principal | None:
        """The caller behind ``secret`` if it was looked up less than ``seconds`` ago and no key was
        revoked here since; else ``None``."""
        if self.seconds <= 0:
            return None
        digest = hash_key(secret)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, until, epoch = entry
        if until <= self.clock() or epoch != revocations():
            self._entries.pop(digest, None)
            return None
        return principal

    def put(self, secret: str, principal: Principal, epoch: int) -> None:
        """Hold ``principal`` for ``secret``, found live by a look-up that began at revocation count
        ``epoch`` (:func:`curator.store.keys.revocations`, read before the look-up)."""
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[hash_key(secret)] = (principal, self.clock() + self.seconds, epoch)
