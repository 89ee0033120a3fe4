"""Who is calling: API key lookup and role checks (keys are created and revoked by :mod:`curator.store.keys`).

A key looks like ``cur_<43 url-safe chars>``; only its SHA-256 is stored. Roles are ordered
``viewer < annotator < admin``; a key holds its role on one project, or on every project when it
has none (a *global* key, needed to create projects).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from curator.store.keys import KEY_PREFIX, create_key, hash_key, key_by_secret, list_keys, revoke_key
from curator.store.models import ROLES

__all__ = ["KEY_PREFIX", "Principal", "create_key", "find_key", "hash_key", "list_keys", "revoke_key"]

def find_key(session: Session, secret: str) -> Principal | None:
    """The caller behind a live (not revoked) key whose secret is ``secret``, or ``None``."""
    found = key_by_secret(session, secret)
    return None if found is None else Principal(key_id=found[0], role=found[1], project_id=found[2])


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
