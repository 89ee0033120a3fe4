"""Errors as JSON: every error answer is ``{"code": <stable id>, "detail": <readable text>}``.

Routes raise :class:`ApiError`; FastAPI's own errors (validation, unknown routes) and unexpected
exceptions are mapped to the same shape by the handlers :func:`install_error_handlers` adds.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from curator.jobs.admission import TooManyJobs
from curator.labels.masks import InvalidMaskError
from curator.store.storage import INSUFFICIENT_STORAGE, OUT_OF_SPACE_MESSAGE, out_of_space

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_jobs",
    500: "internal_error",
    507: INSUFFICIENT_STORAGE,
}


class ApiError(Exception):
    """An error answer with an HTTP status, a stable ``code`` and a readable ``detail``.

    Args:
        status: HTTP status code.
        code: Stable machine-readable identifier (``not_found``, ``lease_expired``, ...).
        detail: What went wrong and, where possible, what to do about it.
        headers: Extra response headers (``WWW-Authenticate`` for 401).
    """

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers


def not_found(what: str, ident: Any) -> ApiError:
    """A 404 ``not_found`` error for ``what`` with id ``ident``."""
    return ApiError(404, "not_found", f"no {what} with id {ident}")


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {"code": code, "detail": detail, **extra}


def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.code, exc.detail), status_code=exc.status, headers=exc.headers)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return JSONResponse(error_body(code, detail), status_code=exc.status_code, headers=exc.headers)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        errors.append(
            {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")), "type": err.get("type", "")}
        )
    summary = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5]) or "invalid request"
    return JSONResponse(error_body("validation_error", summary, errors=errors), status_code=422)


def _invalid_mask(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=422, content=error_body("invalid_mask", str(exc)))


def insufficient_storage() -> ApiError:
    """A 507 ``insufficient_storage`` error: the disk (or the database's) is full; nothing was stored."""
    return ApiError(507, INSUFFICIENT_STORAGE, OUT_OF_SPACE_MESSAGE)


def _storage_or_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """OS and database errors: a full disk is 507 ``insufficient_storage``, anything else a logged 500."""
    if out_of_space(exc):
        log.error("out of disk space: %s", exc)
        return _api_error(request, insufficient_storage())
    return _unexpected(request, exc)


def _too_many_jobs(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManyJobs)
    return JSONResponse(error_body("too_many_jobs", str(exc)), status_code=429, headers={"Retry-After": "30"})


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        error_body("internal_error", "the server hit an unexpected error; it has been logged"), status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every error answer of ``app`` a JSON ``{"code", "detail"}`` object."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InvalidMaskError, _invalid_mask)
    app.add_exception_handler(TooManyJobs, _too_many_jobs)
    app.add_exception_handler(OSError, _storage_or_unexpected)
    app.add_exception_handler(DBAPIError, _storage_or_unexpected)
    app.add_exception_handler(Exception, _unexpected)
