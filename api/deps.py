"""FastAPI dependencies: the workspace, a database session, the job runner, and the caller's key."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.auth import CSRF_HEADER, SESSION_COOKIE, KeyCache, Principal, find_key, find_session
from api.errors import ApiError
from curator.config import Settings
from curator.jobs.base import JobRunner
from curator.store.keys import revocations
from curator.workspace import Workspace

bearer = HTTPBearer(auto_error=False, description="An API key from `curator keys create`.")


# The hot queue routes (claim, submit) take the request and read these off it: FastAPI's solving of
# each dependency costs a short call about as much as one of its SQLite statements.
def settings_of(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def runner_of(request: Request) -> JobRunner:
    """The app's job runner."""
    runner: JobRunner = request.app.state.runner
    return runner


class NoLock:
    """A lock that never waits: the write lock on databases that take concurrent writers."""

    def __enter__(self) -> bool:
        return True

    def __exit__(self, *exc: object) -> None:
        return None


def write_lock_of(request: Request) -> AbstractContextManager[Any]:
    """The app's lock around short queue write transactions.

    SQLite allows one writer; when several request threads want the lock at once, SQLite's busy
    handler makes the losers sleep and poll (up to 100 ms a try), which shows up as tail latency.
    Queuing them on a Python lock first hands the database over without sleeps. On PostgreSQL it
    is a :class:`NoLock`.
    """
    lock: AbstractContextManager[Any] = request.app.state.write_lock
    return lock


def workspace_of(request: Request) -> Workspace:
    """The app's workspace."""
    workspace: Workspace = request.app.state.workspace
    return workspace


# Trivial dependencies are ``async`` so FastAPI runs them inline instead of hopping to a worker thread.
async def get_workspace(request: Request) -> Workspace:
    """The app's workspace."""
    return workspace_of(request)


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return settings_of(request)


async def get_runner(request: Request) -> JobRunner:
    """The app's job runner."""
    return runner_of(request)


async def get_write_lock(request: Request) -> AbstractContextManager[Any]:
    """The app's lock around short queue write transactions (see :func:`write_lock_of`)."""
    return write_lock_of(request)


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]
WriteLockDep = Annotated[AbstractContextManager[Any], Depends(get_write_lock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for one request (made inline: creating one does no I/O; it connects on first use).

    Routes that write call ``session.commit()`` themselves before answering, so a 2xx is only ever
    sent for committed work; whatever is left uncommitted is rolled back here.
    """
    session = workspace_of(request).db.sessionmaker()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]


#: Methods that change state: with a session cookie they must carry the session's CSRF token.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The header a 401 carries.
CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller's key: from ``Authorization: Bearer <key>`` (scripts), else from the browser session
    cookie (the labelling page, signed in with ``POST /session``).

    A bearer key looked up lately is taken from the app's :class:`api.auth.KeyCache` (no query and no
    worker thread); other look-ups run in a worker thread, in a session of their own (the request's
    session is not a dependency here: each one FastAPI solves costs a short call noticeably).

    A request authenticated by the cookie that changes state (POST, PUT, PATCH, DELETE) must carry
    the session's CSRF token in ``X-CSRF-Token``: another site can make a browser send the cookie,
    but cannot read the token (SameSite=Strict already keeps the cookie off cross-site requests;
    the token also covers same-site pages that are not ours). A bearer header needs no CSRF token:
    browsers never add one by themselves.

    Raises:
        ApiError: 401 ``unauthorized`` when neither a live key nor a live session is given; 403
            ``csrf_failed`` for a cookie request that changes state without the matching token.
    """
    if credentials is not None and credentials.credentials:
        secret = credentials.credentials
        cache: KeyCache = request.app.state.key_cache
        principal = cache.get(secret)
        if principal is None:
            epoch = revocations()
            principal = await run_in_threadpool(_key_principal, workspace_of(request), secret)
            if principal is None:
                raise ApiError(401, "unauthorized", "unknown or revoked API key", dict(CHALLENGE))
            cache.put(secret, principal, epoch)
        return principal
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'", dict(CHALLENGE))
    return await run_in_threadpool(_session_principal, request, workspace_of(request), token)


def _key_principal(workspace: Workspace, secret: str) -> Principal | None:
    """The caller behind a live key ``secret`` (see :func:`get_principal`)."""
    with workspace.db.session() as session:
        return find_key(session, secret)


def _session_principal(request: Request, workspace: Workspace, token: str) -> Principal:
    """The caller behind the browser session cookie ``token`` (see :func:`get_principal`)."""
    with workspace.db.session() as session:
        found = find_session(session, token)
    if found is None:
        raise ApiError(
            401, "unauthorized", "the browser session has ended (expired, signed out or its key revoked); sign in again",
            dict(CHALLENGE),
        )
    principal, live = found
    if request.method in UNSAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), live.csrf_token.encode()):
            raise ApiError(
                403, "csrf_failed",
                f"a request that changes state with the session cookie needs the session's {CSRF_HEADER} header "
                "(from POST /session or GET /session)",
            )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(principal: Principal, role: str, project_id: int | None) -> None:
    """Raise 403 ``forbidden`` unless ``principal`` holds ``role`` on ``project_id`` (``None``: globally).

    Raises:
        ApiError: 403 with the role needed and the role held.
    """
    if principal.allows(role, project_id):
        return
    where = "every project (a global key)" if project_id is None else f"project {project_id}"
    held = "all projects" if principal.project_id is None else f"project {principal.project_id}"
    raise ApiError(
        403, "forbidden", f"this needs role '{role}' on {where}; your key has role '{principal.role}' on {held}"
    )
