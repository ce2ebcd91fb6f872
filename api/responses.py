"""A JSON response that skips response-model validation, for the hot routes.

The suggestion routes build plain dicts from library objects that are already
valid, so validating them again through pydantic is pure overhead on the path
the latency goals are about. The route still declares its ``response_model`` for
the OpenAPI schema (FastAPI does not validate a returned ``Response``), and the
tests check the bodies against that schema.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

try:  # a few times faster than the standard library on these payloads
    import orjson

    def dumps(payload: Any) -> bytes:
        return orjson.dumps(payload)
except ImportError:  # pragma: no cover - orjson is optional
    def dumps(payload: Any) -> bytes:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class FastJSONResponse(Response):
    """``application/json`` rendered by :func:`dumps`."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
