"""API keys as stored rows: creation (the secret is shown once), hashing, listing, revocation.

A key looks like ``cur_<43 url-safe chars>``; only its SHA-256 is stored. Roles are ordered
``viewer < annotator < admin``; a key holds its role on one project, or on every project when it
has none (a *global* key, needed to create projects).
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from curator.store.models import ROLES, ApiKey, Project, utcnow

KEY_PREFIX = "cur_"


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


def key_by_secret(session: Session, secret: str) -> tuple[int, str, int | None] | None:
    """``(key id, role, project id)`` of the live (not revoked) key whose secret is ``secret``."""
    row = session.execute(
        select(ApiKey.id, ApiKey.role, ApiKey.project_id).where(
            ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None)
        )
    ).first()
    return None if row is None else (int(row[0]), str(row[1]), row[2])


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(session: Session, key_id: int) -> bool:
    """Revoke a key by id; False if there is no such live key."""
    done = session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]
