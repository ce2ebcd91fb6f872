"""Dependencies shared by the routers: the loaded index, query options, article refs.

Routes read the index through :func:`current_index`, which takes the reference
once per request (see :mod:`api.state`), so a reload never changes the index
under a request that has started. Dependencies are ``async def`` although they
never wait: FastAPI would run a plain ``def`` one in the thread pool, a hop that
costs more than the query itself.
"""

from __future__ import annotations

from typing import Any, Self, get_origin

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from api.errors import BadParameter
from api.settings import K_LIMIT, Settings
from api.state import IndexState, Loaded
from recommender.corpus import Article
from recommender.recommender import Filters, Recommender


async def index_state(request: Request) -> IndexState:
    """The app's :class:`IndexState` (one per app, made by the factory)."""
    return request.app.state.index_state


async def current_index(request: Request) -> Loaded:
    """The index to answer this request from; 503 while none is loaded."""
    return request.app.state.index_state.require()


def check_k(k: int, settings: Settings) -> int:
    """``k`` within the configured limit (the schema already bounds it by :data:`K_LIMIT`)."""
    if k > settings.max_k:
        raise BadParameter(f"k must be at most {settings.max_k}")
    return k


class QueryModel(BaseModel):
    """Query parameters validated in one pydantic call, documented from the same fields.

    FastAPI's own query parsing walks every parameter through generic machinery that
    cost more than the whole related-by-article query; a route taking such a model
    calls :meth:`from_request` instead and declares :meth:`openapi_parameters` in its
    ``openapi_extra``, so the schema, the docs and the parsing share one definition.
    Errors are the same 422 ``ValidationError`` answer as for any other parameter.
    """

    @classmethod
    def from_request(cls, request: Request) -> Self:
        params = request.query_params
        data: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            if get_origin(field.annotation) is list:
                if name in params:
                    data[name] = params.getlist(name)
            elif name in params:
                data[name] = params[name]
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise RequestValidationError(
                [{**e, "loc": ("query", *e["loc"])} for e in error.errors()]) from None

    @classmethod
    def openapi_parameters(cls) -> list[dict[str, Any]]:
        schema = cls.model_json_schema()
        required = set(schema.get("required", ()))
        out = []
        for name, prop in schema["properties"].items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            description = prop.pop("description", None)
            out.append({"name": name, "in": "query", "required": name in required,
                        "schema": prop, "description": description})
        return out


class RelatedQuery(QueryModel):
    """The query parameters of the related-by-article routes."""

    k: int = Field(5, ge=1, le=K_LIMIT, description="How many suggestions")
    subject: list[str] = Field(
        default_factory=list,
        description="Only suggest from these subjects (repeatable, case-insensitive)")
    exclude_subject: list[str] = Field(
        default_factory=list, description="Never suggest from these subjects (repeatable)")
    exclude_url: list[str] = Field(
        default_factory=list, description="Never suggest these article urls (repeatable)")
    cross_subject: bool = Field(
        False, description="Only suggest articles of another subject than the source")
    explain: bool = Field(
        False, description="Say why each one is suggested: the signals that proposed it "
        "and their scores, shared terms and keyword phrases, same subject or not, curated")
    diversity: float = Field(
        0.0, ge=0.0, le=1.0, description="0 to 1: re-order the best suggestions by maximal "
        "marginal relevance, trading relevance for variety (0: the ranking as it is)")
    same: str | None = Field(
        None, description="Only suggest articles whose value of this front-matter field "
        "(e.g. date, language, section) equals the source's; 422 for an unknown field")

    def filters(self) -> Filters:
        return Filters(only_subjects=frozenset(self.subject),
                       exclude_subjects=frozenset(self.exclude_subject),
                       exclude_urls=frozenset(self.exclude_url),
                       cross_subject_only=self.cross_subject, same=self.same)

    @property
    def filtered(self) -> bool:
        return bool(self.subject or self.exclude_subject or self.exclude_url
                    or self.cross_subject or self.same is not None or self.diversity > 0)


class RelatedByParameterQuery(RelatedQuery):
    """``GET /v1/related``: the same, with the article as a parameter."""

    article: str = Field(description="Article id, url, slug or path")


def resolve_article(rec: Recommender, ref: str) -> Article:
    """An article by id, url (with or without the site, as a ``{ref:path}`` segment gives
    it without its leading slash), slug or path: the library's one resolver
    (:mod:`recommender.references`), so the API accepts what the CLI accepts."""
    return rec.get(ref)
