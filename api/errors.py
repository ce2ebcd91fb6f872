"""The one place where errors become HTTP status codes and JSON error bodies.

Library errors (:mod:`recommender.errors`) and the few errors only the service
has (not ready, text too large, bad token...) are mapped here and nowhere else,
so every route answers a failure the same way::

    {"error": {"type": "ArticleNotFound", "message": "no article matches 'x' ..."}}

Unexpected exceptions are logged and answered with a JSON 500; the tests show
that no request reaches that handler.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from recommender.errors import (
    ArticleNotFound,
    ConfigError,
    CorpusError,
    DecisionError,
    FillError,
    FillIncomplete,
    IndexCorrupt,
    IndexMismatch,
    IndexNotFound,
    InvalidFilter,
    ModelNotAvailable,
    RecommenderError,
    SchemaError,
    SuggestionsFileError,
)

log = logging.getLogger("api")


class ApiError(Exception):
    """An error only the HTTP layer knows about; its class name is the error type."""


class NotReady(ApiError):
    """No index is loaded yet (startup, or the first load failed)."""


class PayloadTooLarge(ApiError):
    """A posted body or draft text is over the configured size limit."""


class Unauthorized(ApiError):
    """An admin request without a bearer token."""


class Forbidden(ApiError):
    """An admin request with a wrong token, or admin endpoints are disabled."""


class ReloadInProgress(ApiError):
    """A reload was asked for while another one is running."""


class IndexUnreadable(ApiError):
    """An index directory cannot be served: a missing or truncated file, a garbage manifest,
    arrays that do not match the articles, or an invalid configuration."""


class BadParameter(ApiError):
    """A parameter is well-formed but not acceptable (e.g. ``k`` above the configured limit)."""


#: status code per error class; looked up along the class's MRO, so subclasses inherit
STATUS: dict[type[Exception], int] = {
    ArticleNotFound: 404,
    InvalidFilter: 422,
    BadParameter: 422,
    IndexUnreadable: 422,
    IndexMismatch: 409,
    IndexCorrupt: 422,  # an index that cannot be served (a reload keeps the old one)
    FillError: 409,
    FillIncomplete: 409,
    DecisionError: 409,  # e.g. the link cannot be written into the file
    ReloadInProgress: 409,
    IndexNotFound: 503,
    ModelNotAvailable: 503,
    CorpusError: 503,
    SchemaError: 503,  # the content cannot be read as configured
    ConfigError: 503,  # the configuration file cannot be read
    NotReady: 503,
    PayloadTooLarge: 413,
    Unauthorized: 401,
    Forbidden: 403,
    SuggestionsFileError: 500,  # only the CLI reads suggestion files: a bug if it reaches here
    RecommenderError: 500,
}

#: the ``type`` of a Starlette/FastAPI HTTPException, by status code
_HTTP_TYPES = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed",
               413: "PayloadTooLarge", 415: "UnsupportedMediaType"}


def status_for(error: Exception) -> int:
    """The status code of ``error`` (500 for anything not mapped)."""
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def error_body(kind: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON body of every error response."""
    # a message may quote the caller's input: never let it make the answer un-encodable
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    error: dict[str, Any] = {"type": kind, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(kind: str, message: str, status: int, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """An error response; also used by middleware that answers before routing."""
    return JSONResponse(error_body(kind, message, details), status_code=status, headers=headers)


async def _domain_error(request: Request, error: Exception) -> JSONResponse:
    status = status_for(error)
    if status >= 500 and status != 503:
        log.error("%s on %s %s: %s", type(error).__name__, request.method, request.url.path, error)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
    return error_response(type(error).__name__, str(error), status, headers=headers)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    # without the offending input: it can be a 100 KB body, and it is the caller's own
    problems = [{k: v for k, v in e.items() if k not in ("input", "url")} for e in error.errors()]
    details = jsonable_encoder(problems, custom_encoder={Exception: str})
    first = details[0] if details else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
    return error_response("ValidationError", message, 422, details)


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path: Starlette's 405 names only the first route's
    (``GET /v1/related`` and ``POST /v1/related`` are two routes)."""
    path = request.url.path
    methods: set[str] = set()
    for route in request.app.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    kind = _HTTP_TYPES.get(error.status_code, f"HTTP{error.status_code}")
    headers = dict(getattr(error, "headers", None) or {})
    if error.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(kind, str(error.detail), error.status_code, headers=headers or None)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response("InternalError", "internal server error", 500)


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(RecommenderError, _domain_error)
    app.add_exception_handler(ApiError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
