"""API keys as stored rows: creation (the secret is shown once), hashing, listing, revocation; and the
browser sessions signed in with a key.

A key looks like ``cur_<43 url-safe chars>``; only its SHA-256 is stored. Roles are ordered
``viewer < annotator < admin``; a key holds its role on one project, or on every project when it
has none (a *global* key, needed to create projects).

A browser session token looks like ``cus_<43 url-safe chars>``; it travels in a cookie and only its
SHA-256 is stored, with the key it acts for, a CSRF token and an expiry. A session of a revoked key
is never found.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from curator.store.models import ROLES, ApiKey, BrowserSession, Project, utcnow

KEY_PREFIX = "cur_"
SESSION_PREFIX = "cus_"


def hash_key(secret: str) -> str:
    """SHA-256 hex digest of a key (a fast hash is right here: keys are random, not passwords)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(session: Session, role: str, project_id: int | None = None, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is not stored and cannot be shown again.

    Raises:
        ValueError: If ``role`` is unknown or the project does not exist.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if project_id is not None and session.get(Project, project_id) is None:
        raise ValueError(f"no project with id {project_id}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(key_hash=hash_key(secret), prefix=secret[:12], name=name, role=role, project_id=project_id)
    session.add(row)
    session.flush()
    return row, secret


_API_KEYS = cast(Table, ApiKey.__table__)
# Built once: every request looks its key up, and building the statement (through the ORM) would cost
# several times what the look-up itself does.
_LIVE_KEY = select(_API_KEYS.c.id, _API_KEYS.c.role, _API_KEYS.c.project_id).where(
    _API_KEYS.c.key_hash == bindparam("p_hash"), _API_KEYS.c.revoked_at.is_(None)
)


def key_by_secret(session: Session, secret: str) -> tuple[int, str, int | None] | None:
    """``(key id, role, project id)`` of the live (not revoked) key whose secret is ``secret``."""
    row = session.execute(_LIVE_KEY, {"p_hash": hash_key(secret)}).first()
    return None if row is None else (int(row[0]), str(row[1]), row[2])


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


_revocations = 0


def revocations() -> int:
    """How many times this process has revoked keys: a cache of looked-up keys (the server's, see
    :class:`api.auth.KeyCache`) drops what it holds when this changes, so a key revoked in the
    process that caches it stops working at once."""
    return _revocations


def revoke_key(session: Session, key_id: int) -> bool:
    """Revoke a key by id, ending its browser sessions; False if there is no such live key."""
    global _revocations
    # entries looked up before this are dropped; one looked up before the caller commits may still see
    # the key live and is trusted no longer than a revocation by another process would be
    _revocations += 1
    done = session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    session.execute(delete(BrowserSession).where(BrowserSession.key_id == key_id))
    return bool(done.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LiveSession:
    """A browser session that is signed in now: its key (id, role, project, shown prefix), its CSRF
    token and when it ends (Unix seconds)."""

    session_id: int
    key_id: int
    role: str
    project_id: int | None
    key_prefix: str
    csrf_token: str
    expires_at: float


def create_browser_session(
    session: Session, key_id: int, hours: float, now: float | None = None
) -> tuple[LiveSession, str]:
    """Sign a browser in with the live key ``key_id`` for ``hours``; returns the session and its token.

    The token (for the cookie) is not stored and cannot be had again. Expired sessions of every key
    are deleted on the way. The caller commits.

    Raises:
        ValueError: If ``key_id`` is not a live key.
    """
    now = time.time() if now is None else now
    key = session.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None:
        raise ValueError(f"no live key with id {key_id}")
    session.execute(delete(BrowserSession).where(BrowserSession.expires_at <= now))
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    row = BrowserSession(
        token_hash=hash_key(token), key_id=key_id, csrf_token=secrets.token_urlsafe(32), expires_at=now + hours * 3600
    )
    session.add(row)
    session.flush()
    live = LiveSession(row.id, key.id, key.role, key.project_id, key.prefix, row.csrf_token, row.expires_at)
    return live, token


def session_by_token(session: Session, token: str, now: float | None = None) -> LiveSession | None:
    """The unexpired session whose token is ``token``, if its key is live; else ``None``."""
    now = time.time() if now is None else now
    row = session.execute(
        select(
            BrowserSession.id, ApiKey.id, ApiKey.role, ApiKey.project_id, ApiKey.prefix,
            BrowserSession.csrf_token, BrowserSession.expires_at,
        )
        .join(ApiKey, ApiKey.id == BrowserSession.key_id)
        .where(
            BrowserSession.token_hash == hash_key(token), BrowserSession.expires_at > now,
            ApiKey.revoked_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    return LiveSession(int(row[0]), int(row[1]), str(row[2]), row[3], str(row[4]), str(row[5]), float(row[6]))


def delete_browser_session(session: Session, token: str) -> bool:
    """Sign out the session whose token is ``token``; False if there was none. The caller commits."""
    done = session.execute(delete(BrowserSession).where(BrowserSession.token_hash == hash_key(token)))
    return bool(done.rowcount)  # type: ignore[attr-defined]
