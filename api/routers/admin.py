"""Admin: reload the index while serving. Needs ``Authorization: Bearer <admin token>``."""

from __future__ import annotations

import hmac
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import index_state
from api.errors import Forbidden, Unauthorized
from api.routers import error_responses
from api.schemas import ReloadResponse
from api.settings import Settings, get_settings
from api.state import IndexState

bearer = HTTPBearer(auto_error=False, description="The admin token "
                    "(RECOMMENDER_ADMIN_TOKEN_FILE or RECOMMENDER_ADMIN_TOKEN)")


async def require_admin(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[Optional[HTTPAuthorizationCredentials], Security(bearer)],
) -> None:
    """401 without a bearer token, 403 with a wrong one or when no token is configured."""
    token = settings.admin_token_value()
    if token is None:
        raise Forbidden("admin endpoints are disabled: no admin token is configured "
                        "(set RECOMMENDER_ADMIN_TOKEN_FILE or RECOMMENDER_ADMIN_TOKEN, or "
                        "`recommender serve --admin-token-file FILE`)")
    if credentials is None:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <admin token>'")
    if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
        raise Forbidden("wrong admin token")


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post("/reload", response_model=ReloadResponse,
             responses={**error_responses(401, 403, 409, 503),
                        202: {"model": ReloadResponse, "description": "Reload started"}},
             summary="Rebuild or reload the index, then swap it in")
async def reload(
    state: Annotated[IndexState, Depends(index_state)],
    wait: Annotated[bool, Query(description="Answer when done (else 202 at once)")] = True,
    force: Annotated[bool, Query(
        description="Rebuild even if the index matches the content folder")] = False,
) -> JSONResponse:
    """With a content folder configured, brings the index up to date with it
    (re-embedding only changed articles); otherwise re-reads the index directory.
    The new index is loaded and warmed beside the old one and swapped in at once:
    requests keep being answered throughout, in-flight ones by the old index. On
    failure the old index stays and the error is answered (and kept in
    ``GET /v1/index``). 409 while another reload runs."""
    loaded = await run_in_threadpool(state.reload, force, wait)
    if loaded is None:
        return JSONResponse({"status": "started"}, status_code=202)
    body = ReloadResponse(status="reloaded", generation=loaded.generation,
                          articles=len(loaded.recommender.articles),
                          built_at=loaded.info["built_at"],
                          seconds=state.last_reload_seconds)
    return JSONResponse(body.model_dump())
