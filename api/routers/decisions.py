"""Editors' decisions on suggestions: ``POST /v1/articles/{ref}/decisions`` (admin token).

A thin layer over :mod:`recommender.decisions` and :mod:`recommender.accept`: an
accept writes the link into the article's file (a few file operations: off the event
loop), the others add a line to the folder's decisions file. Served suggestions honour
a decision from the next request on.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from api.deps import current_index, resolve_article
from api.routers import error_responses
from api.routers.admin import require_admin
from api.schemas import DecisionIn, DecisionOut
from api.state import Loaded
from recommender.accept import accept_link
from recommender.corpus import QUICKTAKES
from recommender.decisions import Decision

router = APIRouter(tags=["review"])


@router.post("/v1/articles/{ref:path}/decisions", response_model=DecisionOut,
             dependencies=[Depends(require_admin)],
             responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
             summary="Accept, reject, pin or block a suggestion")
async def decide(
    ref: str,
    decision: DecisionIn,
    loaded: Annotated[Loaded, Depends(current_index)],
) -> DecisionOut:
    """``accept`` writes the target into the article's file (in the site's own style,
    byte-preserving, atomic; 409 when it cannot be written, e.g. already linked or a fill
    is running); ``reject``, ``pin`` and ``block`` are recorded in the content folder's
    ``.recommender/decisions.yaml``. 404 when either article is unknown."""
    rec = loaded.recommender
    source, target = resolve_article(rec, ref), resolve_article(rec, decision.target)
    if decision.action == "accept":
        schema = rec.index.schema or QUICKTAKES
        done: Decision = await run_in_threadpool(accept_link, rec.index.root, source, target,
                                                 schema, rec.decision_store)
    else:
        done = await run_in_threadpool(rec.decision_store.add, decision.action, source.url,
                                       target.url)
    return DecisionOut(**done.model_dump())
