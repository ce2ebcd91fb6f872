"""Article metadata, by any reference the suggestion routes accept."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import current_index, resolve_article
from api.responses import FastJSONResponse
from api.routers import error_responses
from api.schemas import ArticleOut, article_payload
from api.state import Loaded

router = APIRouter(prefix="/v1/articles", tags=["articles"])


@router.get("/{ref:path}", response_model=ArticleOut, responses=error_responses(404, 503),
            summary="An article's metadata")
def get_article(ref: str, loaded: Annotated[Loaded, Depends(current_index)]) -> FastJSONResponse:
    """``ref`` is the article's id, url (slashes allowed), slug or file path. The
    answer text is not kept in the index and is not returned."""
    article = resolve_article(loaded.recommender, ref)
    root = loaded.manifest.get("corpus", {}).get("root")
    return FastJSONResponse(article_payload(article, root))
