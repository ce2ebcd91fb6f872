"""Liveness, readiness, metrics, and what index is being served."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.deps import current_index, index_state
from api.routers import error_responses
from api.schemas import Health, IndexInfo, Ready
from api.state import IndexState, Loaded

router = APIRouter(tags=["service"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> dict[str, str]:
    """200 as long as the process answers, index or not."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Ready, responses=error_responses(503),
            summary="Readiness")
async def readyz(loaded: Annotated[Loaded, Depends(current_index)]) -> dict[str, object]:
    """200 once an index is loaded and warmed up; 503 before (or if loading failed).
    ``held`` lists content files that fail to load now, whose last good version is
    served (``serve --watch``)."""
    return {"status": "ready", "articles": len(loaded.recommender.articles),
            "generation": loaded.generation, "held": loaded.held}


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"}})
async def metrics(request: Request) -> Response:
    """Requests and latency by route and status, index size and reloads."""
    body, content_type = request.app.state.metrics.exposition()
    return Response(body, media_type=content_type)


@router.get("/v1/index", response_model=IndexInfo, responses=error_responses(503),
            summary="The index being served")
async def index_info(
    loaded: Annotated[Loaded, Depends(current_index)],
    state: Annotated[IndexState, Depends(index_state)],
) -> dict[str, object]:
    """Model, article count, build time and corpus fingerprint (from the index
    manifest), the subjects filters accept, and the state of reloads."""
    return {**loaded.info, "generation": loaded.generation, "loaded_at": loaded.loaded_at,
            "source": loaded.source, "reload": state.status()}
