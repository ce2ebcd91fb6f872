"""One router per resource; each calls the library and leaves errors to :mod:`api.errors`."""

from __future__ import annotations

from typing import Any

from api.schemas import ErrorResponse

_DESCRIPTIONS = {
    400: "Body is not decodable (e.g. not UTF-8)", 401: "Missing bearer token",
    403: "Wrong token, or admin endpoints disabled",
    404: "Unknown article", 409: "Conflicting state (reload running, index mismatch)",
    413: "Posted text over the size limit", 422: "Invalid parameter or unknown subject",
    503: "No index loaded yet, or the encoder is unavailable",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error codes a route can answer, all with :class:`ErrorResponse`."""
    return {code: {"model": ErrorResponse, "description": _DESCRIPTIONS[code]} for code in codes}
