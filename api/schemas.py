"""Request and response models of the HTTP API (they are also its OpenAPI schema).

Kept apart from the library's own types so the wire format can stay stable while
the library changes: the functions at the bottom are the only translation from
library objects (:class:`~recommender.corpus.Article`,
:class:`~recommender.recommender.Suggestion`) to JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.settings import K_LIMIT
from recommender.corpus import Article
from recommender.recommender import Suggestion
from recommender.text import encoding_problem

_EXAMPLE_URL = "/learn/computer-science/questions/what-is-supervised-learning"


class ErrorInfo(BaseModel):
    type: str = Field(description="Error class, e.g. ArticleNotFound, InvalidFilter, NotReady")
    message: str = Field(description="What went wrong, for a person")
    details: Optional[Any] = Field(None, description="Per-field problems of a ValidationError")


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx response."""

    error: ErrorInfo


class ArticleRef(BaseModel):
    """An article, as little as a link needs."""

    id: Optional[str] = Field(description="Content id (shared by copies under other subjects)")
    url: str = Field(description="Unique url of the article", examples=[_EXAMPLE_URL])
    title: str
    subject: str


class SuggestionOut(ArticleRef):
    """One suggested article."""

    score: float = Field(description="Fused similarity score, higher is closer")
    curated: bool = Field(description="Whether the source article already links to it "
                          "(or an editor accepted it)")
    pinned: bool = Field(False, description="Whether an editor pinned it first")
    explanation: Optional[dict[str, Any]] = Field(
        None, description="With explain=true: proposed_by, signals, shared_terms, "
        "shared_keywords, same_subject, subjects, curated")


class RelatedResponse(BaseModel):
    """Suggestions, best first (with ``diversity``, in the order maximal marginal relevance
    picks them); fewer than ``k`` only when filters leave fewer candidates."""

    source: Optional[ArticleRef] = Field(
        description="The article the suggestions are for (null for posted text)")
    k: int
    suggestions: list[SuggestionOut]


class CuratedLinkOut(BaseModel):
    n: int
    id: Optional[str]
    title: str
    subject: str
    url: Optional[str]


class ArticleOut(ArticleRef):
    """An article's metadata as held in the index (answers are not kept there)."""

    question: str
    description: str
    keywords: list[str]
    date: Optional[str]
    no_index: bool = Field(description="Never suggested (e.g. a refusal answer)")
    path: str = Field(description="File path relative to the content folder")
    links: list[str] = Field(description="Urls of the curated related articles that resolve")
    curated: list[CuratedLinkOut] = Field(description="related_articleN blocks as written")


#: "at least one text field is not blank", as JSON Schema (the validator below enforces it)
_SOME_TEXT = {"anyOf": [{"required": [name], "properties": {name: {"pattern": r"\S"}}}
                        for name in ("title", "question", "answer", "text")]}


class DraftRequest(BaseModel):
    """The text of a draft (any of the fields, at least one not blank; they are joined), and
    what to suggest."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={**_SOME_TEXT, "examples": [{
        "title": "What is gradient boosting?",
        "question": "What is gradient boosting and how does it differ from random forests?",
        "k": 5, "subject": ["Computer Science"]}]})

    title: str = ""
    question: str = ""
    answer: str = ""
    text: str = Field("", description="Free text, used with or instead of the fields above")
    k: int = Field(5, ge=1, le=K_LIMIT, description="How many suggestions")
    subject: list[str] = Field(default_factory=list, description="Only these subjects")
    exclude_subject: list[str] = Field(default_factory=list, description="Never these subjects")
    exclude_url: list[str] = Field(
        default_factory=list, description="Never these articles (e.g. the draft's own url)")
    diversity: float = Field(
        0.0, ge=0.0, le=1.0, description="0 to 1: re-order the best suggestions by maximal "
        "marginal relevance, trading relevance for variety (0: the ranking as it is)")

    @field_validator("title", "question", "answer", "text", "subject", "exclude_subject",
                     "exclude_url")
    @classmethod
    def _valid_unicode(cls, value: str | list[str]) -> str | list[str]:
        """A lone surrogate (``"\ud800"`` in JSON) is a 422, not a tokenizer's TypeError."""
        for item in [value] if isinstance(value, str) else value:
            problem = encoding_problem(item)
            if problem:
                raise ValueError(f"not valid Unicode text: {problem}")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> DraftRequest:
        if not any(v.strip() for v in (self.title, self.question, self.answer, self.text)):
            raise ValueError("give at least one of title, question, answer or text")
        return self

    def text_bytes(self) -> int:
        """Size of the posted text in UTF-8, which the size limit is about."""
        return sum(len(v.encode("utf-8", "surrogatepass"))
                   for v in (self.title, self.question, self.answer, self.text))

    def joined(self) -> str:
        """The draft as one text: title, question, answer and text, repeats skipped."""
        parts: list[str] = []
        for value in (self.title, self.question, self.answer, self.text):
            value = value.strip()
            if value and value not in parts:
                parts.append(value)
        return "\n".join(parts)


class HeldFile(BaseModel):
    """A content file that turned broken while its last good version is served."""

    path: str = Field(description="Path relative to the content folder")
    reason: str = Field(description="Why it does not load")


class IndexInfo(BaseModel):
    """What is being served: from the index manifest, plus reload bookkeeping."""

    model: str
    dim: int
    articles: int
    suggestable: Optional[int]
    no_index: Optional[int]
    built_at: Optional[str]
    build_seconds: Optional[float]
    corpus_fingerprint: Optional[str]
    format_version: Optional[int]
    config: dict[str, Any]
    subjects: list[str] = Field(description="Subject names the filters accept")
    ranker: Optional[dict[str, str]] = Field(
        None, description="The ranking used: kind (learned, blend, fused) and its file or "
                          "the reason there is no learned model")
    signals: Optional[dict[str, Any]] = Field(
        None, description="Active signals, and those switched off with why")
    held: list[HeldFile] = Field(
        default_factory=list, description="Files that fail to load now; their last good "
                                          "version is served")
    generation: int = Field(description="Loads of an index by this process, 1 for the first")
    loaded_at: str
    source: str = Field(description="'index' (index dir) or 'content' (built from the folder)")
    reload: dict[str, Any]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    articles: int
    generation: int
    held: list[HeldFile] = Field(
        default_factory=list, description="Files that fail to load now; their last good "
                                          "version is served (serve --watch)")


class ReloadResponse(BaseModel):
    status: str = Field(description="'reloaded', or 'started' when not waiting")
    generation: Optional[int] = None
    articles: Optional[int] = None
    built_at: Optional[str] = None
    seconds: Optional[float] = None


def _ref(a: Article) -> dict[str, Any]:
    return {"id": a.id, "url": a.url, "title": a.title, "subject": a.subject}


def related_payload(source: Article | None, k: int,
                    suggestions: list[Suggestion]) -> dict[str, Any]:
    """A :class:`RelatedResponse` as plain data (the hot path skips model validation)."""
    return {
        "source": _ref(source) if source is not None else None,
        "k": k,
        "suggestions": [{"id": s.article.id, "url": s.article.url, "title": s.article.title,
                         "subject": s.article.subject, "score": round(s.score, 6),
                         "curated": s.curated, **({"pinned": True} if s.pinned else {}),
                         **({"explanation": s.explanation} if s.explanation else {})}
                        for s in suggestions],
    }


def relative_path(path: Path, root: str | None) -> str:
    """``path`` relative to the content folder, whether the index was loaded or just built.

    A loaded index stores relative paths; a freshly built one holds the paths the
    corpus was read from, which would leak the server's directory layout.
    """
    if root:
        try:
            return str(path.resolve().relative_to(Path(root).resolve()))
        except (ValueError, OSError):
            pass
    return str(path)


def article_payload(a: Article, root: str | None = None) -> dict[str, Any]:
    """An :class:`ArticleOut` as plain data (``root``: the content folder, from the manifest)."""
    return {
        **_ref(a), "question": a.question, "description": a.description,
        "keywords": list(a.keywords), "date": a.date, "no_index": a.no_index,
        "path": relative_path(a.path, root), "links": list(a.links),
        "curated": [{"n": c.n, "id": c.id, "title": c.title, "subject": c.subject,
                     "url": c.url} for c in a.curated],
    }


class DecisionIn(BaseModel):
    """An editor's decision on one suggestion of the article in the path."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["accept", "reject", "pin", "block"] = Field(
        description="accept: write the link into the article's file; reject: never suggest "
        "it for this article; pin: always first for this article; block: never anywhere")
    target: str = Field(min_length=1, max_length=2048,
                        description="The suggested article: id, url, slug or path")


class DecisionOut(BaseModel):
    """The decision as recorded in the content folder's .recommender/decisions.yaml."""

    action: str
    article: str
    target: str
    at: str
