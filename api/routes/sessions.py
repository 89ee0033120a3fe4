"""Browser sessions: the labelling page signs in with an API key once and then uses a cookie.

``POST /session`` checks the key and answers with an HttpOnly, SameSite=Strict cookie holding a
random session token (only its SHA-256 is stored; ``Secure`` when the request came over https) and
the session's CSRF token, which the page sends as ``X-CSRF-Token`` on every request that changes
state. The key itself never reaches a URL or the page's storage. ``DELETE /session`` signs out.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from api.auth import CSRF_HEADER, SESSION_COOKIE, find_key, find_session
from api.deps import SessionDep, SettingsDep, WriteLockDep
from api.errors import ApiError
from api.routes.common import errors
from api.schemas_session import SessionCreate, SessionPublic
from curator.store.keys import LiveSession, create_browser_session, delete_browser_session

router = APIRouter(prefix="/session", tags=["session"])


def session_public(live: LiveSession) -> SessionPublic:
    """The API view of a live browser session."""
    return SessionPublic(
        key_id=live.key_id, key_prefix=live.key_prefix, role=live.role, project_id=live.project_id,
        csrf_token=live.csrf_token, expires_at=live.expires_at,
    )


def _clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


@router.post("", status_code=201, response_model=SessionPublic, responses=errors(400, 401, 422, 507))
def sign_in(
    body: SessionCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    write_lock: WriteLockDep,
) -> SessionPublic:
    """Sign a browser in with an API key. The answer sets the session cookie (HttpOnly,
    SameSite=Strict, ``Secure`` over https) for ``session_hours`` and carries the CSRF token that
    requests changing state with the cookie must send as ``X-CSRF-Token``. 401 for an unknown or
    revoked key."""
    principal = find_key(session, body.key)
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    with write_lock:
        live, token = create_browser_session(session, principal.key_id, settings.session_hours)
        session.commit()
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max(1, int(settings.session_hours * 3600)), path="/", httponly=True,
        samesite="strict", secure=request.url.scheme == "https",
    )
    response.headers["Cache-Control"] = "no-store"
    return session_public(live)


@router.get("", response_model=SessionPublic, responses=errors(401))
def read_session(request: Request, response: Response, session: SessionDep) -> SessionPublic:
    """The browser session of the cookie, with its CSRF token; 401 when there is none (never signed
    in, signed out, expired, or its key revoked). A bearer key has no session."""
    token = request.cookies.get(SESSION_COOKIE)
    found = find_session(session, token) if token else None
    if found is None:
        raise ApiError(401, "unauthorized", "not signed in: POST /session with an API key")
    response.headers["Cache-Control"] = "no-store"
    return session_public(found[1])


@router.delete("", status_code=204, responses=errors(403))
def sign_out(request: Request, session: SessionDep, write_lock: WriteLockDep) -> Response:
    """Sign out: end the cookie's session and clear the cookie. A live session needs its CSRF token
    (``X-CSRF-Token``), as every cookie request that changes state does; without a live session
    there is nothing to end and the cookie is cleared all the same."""
    token = request.cookies.get(SESSION_COOKIE)
    found = find_session(session, token) if token else None
    if found is not None and token is not None:
        if not hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(), found[1].csrf_token.encode()):
            raise ApiError(403, "csrf_failed", f"signing out needs the session's {CSRF_HEADER} header")
        with write_lock:
            delete_browser_session(session, token)
            session.commit()
    response = Response(status_code=204)
    _clear_cookie(response, request)
    return response
