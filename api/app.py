"""The application factory: settings in, a FastAPI app out.

There is no module-level app. ``uvicorn --factory api.app:create_app`` calls
:func:`create_app` with no arguments, which reads the settings from the
environment; tests and ``recommender serve`` pass a :class:`Settings` object (and
may hand over an index they have already loaded, to avoid loading it twice).

Example:
    >>> from fastapi.testclient import TestClient             # doctest: +SKIP
    >>> app = create_app(Settings(index_dir="/tmp/idx", load_in_background=False))
    >>> with TestClient(app) as client:
    ...     client.get("/v1/articles/what-is-supervised-learning/related?k=2").json()
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from api.errors import install_error_handlers
from api.metrics import Metrics, MetricsMiddleware
from api.middleware import BodyLimitMiddleware
from api.routers import admin, articles, decisions, health, related, review
from api.settings import Settings, load_settings
from api.state import IndexState
from recommender.pipeline import Snapshot

DESCRIPTION = """\
Related-article suggestions for Q&A content sites, from a prebuilt index.

* Suggestions for a known article: `GET /v1/articles/{ref}/related` (or `GET /v1/related?article=`).
* Suggestions for the text of a draft: `POST /v1/related`.
* Every error answers `{"error": {"type": ..., "message": ...}}` with a 4xx/5xx status.
"""

#: where the documentation pages' scripts and stylesheets are served
DOCS_STATIC = "/docs-static"

TAGS = [
    {"name": "related", "description": "Related-article suggestions"},
    {"name": "articles", "description": "Article metadata"},
    {"name": "service", "description": "Health, readiness, metrics and index information"},
    {"name": "admin", "description": "Reload the index (bearer token)"},
    {"name": "review", "description": "Editors review suggestions: decisions and the /review page"},
]


def body_limit(settings: Settings) -> int:
    """Largest request body: room for the text limit even if every character is escaped."""
    return settings.max_text_bytes * 6 + 64 * 1024


def create_app(settings: Settings | None = None, *, index: Snapshot | None = None) -> FastAPI:
    """Build the app: one :class:`IndexState`, its own metrics, routers and error handlers.

    ``index`` is served as the first generation instead of being loaded from disk.
    Without ``settings``, they are read from the environment (once per process).
    """
    settings = settings if settings is not None else load_settings()
    metrics = Metrics()
    state = IndexState(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start(preloaded=index)
        try:
            yield
        finally:
            state.stop()
            metrics.close()

    # /docs and /redoc with Swagger UI's and ReDoc's assets served by the app itself (from the
    # fastapi-offline package), not from a CDN: the docs work on a machine without internet
    app = FastAPIOffline(title="Related-article recommender", version="1",
                         description=DESCRIPTION, openapi_tags=TAGS, lifespan=lifespan,
                         static_url=DOCS_STATIC)
    app.state.settings = settings
    app.state.index_state = state
    app.state.metrics = metrics
    app.state.text_limiter = anyio.CapacityLimiter(settings.text_concurrency)
    install_error_handlers(app)
    # order matters: "related" before "articles", whose {ref:path} would match ".../related"
    for router in (related.router, decisions.router, articles.router, health.router,
                   admin.router, review.router):
        app.include_router(router)
    review.mount_static(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=body_limit(settings))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app
