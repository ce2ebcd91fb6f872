"""Related-article suggestions: for a known article, and for the text of a draft."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import (
    RelatedByParameterQuery,
    RelatedQuery,
    check_k,
    current_index,
    resolve_article,
)
from api.errors import PayloadTooLarge
from api.responses import FastJSONResponse
from api.routers import error_responses
from api.schemas import DraftRequest, RelatedResponse, related_payload
from api.settings import Settings, get_settings
from api.state import Loaded
from recommender.recommender import Filters

router = APIRouter(tags=["related"])


async def _for_article(loaded: Loaded, ref: str, query: RelatedQuery,
                       settings: Settings) -> FastJSONResponse:
    rec = loaded.recommender
    k = check_k(query.k, settings)
    source = resolve_article(rec, ref)
    decisions = rec.folder_decisions()  # the editors' (a stat when the file is unchanged)
    if query.filtered or query.explain:  # may scan every article: keep it off the event loop
        found = await run_in_threadpool(partial(
            rec.related, source, k, query.filters(), query.diversity, decisions,
            query.explain))
    else:  # precomputed neighbours: tens of microseconds
        found = rec.related(source, k, decisions=decisions)
    return FastJSONResponse(related_payload(source, k, found))


@router.get("/v1/articles/{ref:path}/related", response_model=RelatedResponse,
            responses=error_responses(404, 422, 503),
            openapi_extra={"parameters": RelatedQuery.openapi_parameters()},
            summary="Articles related to a known article")
async def related_to_article(
    ref: str,
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    loaded: Annotated[Loaded, Depends(current_index)],
) -> FastJSONResponse:
    """``ref`` is the article's id, url (slashes allowed), slug or file path. Never
    suggests the article itself, a copy of it under another subject, or a
    ``no_index`` article; ``curated`` tells which suggestions it already links to."""
    return await _for_article(loaded, ref, RelatedQuery.from_request(request), settings)


@router.get("/v1/related", response_model=RelatedResponse,
            responses=error_responses(404, 422, 503),
            openapi_extra={"parameters": RelatedByParameterQuery.openapi_parameters()},
            summary="Articles related to a known article (reference as a query parameter)")
async def related_by_query(
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    loaded: Annotated[Loaded, Depends(current_index)],
) -> FastJSONResponse:
    """The same as ``GET /v1/articles/{ref}/related``, for clients that would rather
    not put a url in a path."""
    query = RelatedByParameterQuery.from_request(request)
    return await _for_article(loaded, query.article, query, settings)


@router.post("/v1/related", response_model=RelatedResponse,
             responses=error_responses(400, 413, 422, 503),
             summary="Articles related to the text of a draft")
async def related_to_text(
    draft: DraftRequest,
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    loaded: Annotated[Loaded, Depends(current_index)],
) -> FastJSONResponse:
    """Embeds the draft (title, question, answer and/or free text, joined) with the
    index's own encoder and ranks every article against it. The text is limited to
    ``max_text_bytes`` (413 beyond). Encoding takes milliseconds of CPU, so it runs in
    worker threads, at most ``text_concurrency`` at a time: a burst of drafts then
    queues instead of crowding out the related-by-article requests."""
    size = draft.text_bytes()
    if size > settings.max_text_bytes:
        raise PayloadTooLarge(f"draft text is {size} bytes, over the limit of "
                              f"{settings.max_text_bytes} bytes")
    k = check_k(draft.k, settings)
    filters = Filters(only_subjects=frozenset(draft.subject),
                      exclude_subjects=frozenset(draft.exclude_subject),
                      exclude_urls=frozenset(draft.exclude_url))
    found = await anyio.to_thread.run_sync(
        loaded.recommender.related_to_text, draft.joined(), k, filters, draft.diversity,
        loaded.recommender.folder_decisions(), limiter=request.app.state.text_limiter)
    return FastJSONResponse(related_payload(None, k, found))
