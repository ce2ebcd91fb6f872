"""The editors' review page, ``/review``: server-rendered, works offline (no CDN).

An article list that can be searched and filtered (no links, fewer than k, by subject),
and per article its curated links beside the suggestions, each with why it is suggested
and the four decisions. Without the admin token the page is read-only; with it (pasted
into the page, kept in the tab's sessionStorage) the buttons call
``POST /v1/articles/{ref}/decisions``. One small script, shipped with the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from api.deps import current_index, resolve_article
from api.state import Loaded
from recommender.corpus import subject_key
from recommender.explain import explain_pair

HERE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(tags=["review"], include_in_schema=False)
#: articles listed at most on one page of the list
LIST_LIMIT = 200


def mount_static(app: FastAPI) -> None:
    """Serve the page's script and style sheet from the package."""
    app.mount("/review/static", StaticFiles(directory=HERE / "static"), name="review-static")


@router.get("/review", response_class=HTMLResponse)
async def review_list(
    request: Request,
    loaded: Annotated[Loaded, Depends(current_index)],
    q: Annotated[str, Query(max_length=200)] = "",
    show: Annotated[str, Query(pattern="^(all|no-links|fewer)$")] = "all",
    subject: Annotated[str, Query(max_length=200)] = "",
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> HTMLResponse:
    """The article list: search by title or url, filter by links and subject."""
    rec = loaded.recommender
    rules = rec.folder_decisions()
    words = q.casefold().split()
    rows = []
    for a in rec.articles:
        if a.no_index:
            continue
        links = len(a.links) + sum(1 for p in rules.accepted if p[0] == a.url)
        if show == "no-links" and links or show == "fewer" and links >= k:
            continue
        if subject and subject_key(a.subject) != subject_key(subject):
            continue
        haystack = f"{a.title} {a.url}".casefold()
        if words and not all(w in haystack for w in words):
            continue
        rows.append({"title": a.title, "url": a.url, "subject": a.subject, "links": links,
                     "href": "/review/article/" + a.url.lstrip("/")})
    subjects = sorted({a.subject for a in rec.articles if a.subject})
    return templates.TemplateResponse(request, "review_list.html", {
        "rows": rows[:LIST_LIMIT], "total": len(rows), "q": q, "show": show,
        "subject": subject, "subjects": subjects, "k": k})


@router.get("/review/article/{ref:path}", response_class=HTMLResponse)
async def review_article(
    ref: str,
    request: Request,
    loaded: Annotated[Loaded, Depends(current_index)],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> HTMLResponse:
    """One article: its curated links beside the suggestions, with why and the actions."""
    rec = loaded.recommender
    source = resolve_article(rec, ref)
    rules = rec.folder_decisions()
    suggestions = rec.related(source, k + len(source.links), decisions=rules, explain=True)
    new = [s for s in suggestions if not s.curated][:k]
    row = rec.row_of[source.url]
    accepted = {t for a, t in rules.accepted if a == source.url}
    curated = [{"article": rec.get(u), "accepted": u in accepted and u not in source.links,
                "explanation": explain_pair(rec.ranker, row, rec.row_of[u], True)}
               for u in [*source.links, *sorted(accepted - set(source.links))]
               if u in rec.row_of]
    return templates.TemplateResponse(request, "review_article.html", {
        "article": source, "curated": curated, "suggestions": new,
        "ref": source.url.lstrip("/"), "k": k})
