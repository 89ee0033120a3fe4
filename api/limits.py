"""Request-size limits, enforced before any route (or the key check) sees a body.

:class:`BodyLimitMiddleware` is pure ASGI: it refuses a declared ``Content-Length`` over the limit
before reading a byte, and counts the bytes of the receive stream (chunked bodies declare nothing),
answering ``413 payload_too_large`` the moment the count passes the limit. A refused body is never
buffered or parsed, and its connection is closed so the rest of it is not read either.

The limit depends on who seems to be calling, by a check that costs nothing (no database):

* no ``Authorization: Bearer`` header and no cookie shaped like a browser session token:
  :data:`ANONYMOUS_MAX_BYTES` (64 KiB), since such a request can only end in 401 (or, for
  ``POST /session``, carries one key) and its body should cost nothing;
* otherwise ``json_max_bytes`` (setting, 32 MiB by default), which bounds the JSON FastAPI reads and
  parses on the event loop (routes are sync, but FastAPI parses the body in the loop before handing
  it to a worker thread): at 32 MiB that is well under a second of parsing and a bounded amount of
  memory per request;
* video uploads (``POST /projects/{id}/videos``) from a caller with a key are left to their own
  streaming limit ``upload_max_bytes`` (:mod:`api.uploads`), which writes to disk, never to memory.

A caller sending a header with a wrong key (or a well-formed but unknown session cookie) gets the
``json_max_bytes`` limit, then 401.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import SESSION_COOKIE, SESSION_TOKEN
from api.errors import error_body

ANONYMOUS_MAX_BYTES = 64 * 1024
#: Requests whose bodies are streamed to disk under their own limit (method, path pattern).
STREAMED_UPLOADS: tuple[tuple[str, re.Pattern[str]], ...] = (("POST", re.compile(r"^/projects/[^/]+/videos/?$")),)


#: A cookie header holding a session-shaped ``curator_session`` value.
_SESSION_COOKIE = re.compile(
    rb"(?:^|;)\s*" + re.escape(SESSION_COOKIE.encode()) + rb"=" + SESSION_TOKEN.pattern.encode() + rb"\s*(?:;|$)"
)


def _has_bearer(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = bytes(value).partition(b" ")
            return scheme.lower() == b"bearer" and bool(credentials.strip())
    return False


def _has_session_cookie(scope: Scope) -> bool:
    """Whether a ``Cookie`` header holds a value shaped like a session token (no database look-up)."""
    for name, value in scope.get("headers", ()):
        if name == b"cookie" and _SESSION_COOKIE.search(bytes(value)):
            return True
    return False


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimitMiddleware:
    """Refuse request bodies over a size limit with ``413 payload_too_large``, before reading them.

    Args:
        app: The ASGI application to wrap.
        json_max_bytes: Limit for callers that send a bearer key or a session cookie (except streamed
            video uploads).
        anonymous_max_bytes: Limit for callers with neither.
    """

    def __init__(self, app: ASGIApp, json_max_bytes: int, anonymous_max_bytes: int = ANONYMOUS_MAX_BYTES) -> None:
        self.app = app
        self.json_max_bytes = json_max_bytes
        self.anonymous_max_bytes = anonymous_max_bytes

    def limit_for(self, scope: Scope) -> int | None:
        """The byte limit of this request's body, or ``None`` when a route enforces its own."""
        if not (_has_bearer(scope) or _has_session_cookie(scope)):
            return self.anonymous_max_bytes
        method, path = scope.get("method", ""), scope.get("path", "")
        if any(method == m and pattern.match(path) for m, pattern in STREAMED_UPLOADS):
            return None
        return self.json_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, counting its body bytes against the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await _refuse(send, limit)
                    # the app sees a client that went away; whatever it answers is dropped
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(
        error_body("payload_too_large", f"the request body is larger than the limit of {limit} bytes for this call")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the rest of the body is never read
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
