"""Accept a suggestion: write the one link into the article's file, as a fill would.

The link goes through the fill's own planning and writing (:mod:`recommender.fill`):
the site's own style (a numbered block or a list item), byte-preserving, verified
twice, atomic, fsynced, under the folder's fill lock. Accepts are serialised by the
decisions lock, so two editors accepting links into one file at once both land.
The decision is recorded in the decisions file only once the link is on disk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from recommender.corpus import Article, Corpus, build_corpus, read_article
from recommender.decisions import Decision, DecisionStore
from recommender.errors import DecisionError
from recommender.fill import FillLock, apply_fill, plan_file
from recommender.frontmatter import ArticleParseError
from recommender.schema import Schema


def _on_disk(root: Path, article: Article, schema: Schema) -> Article:
    path = article.path if article.path.is_absolute() else root / article.path
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    try:
        return read_article(path, schema, rel)
    except ArticleParseError as error:
        raise DecisionError(f"{path}: cannot accept a link into it: {error}") from None


def accept_link(content_dir: str | Path, article: Article, target: Article,
                schema: Schema, store: DecisionStore | None = None) -> Decision:
    """Write ``target`` as a new curated link of ``article`` and record the decision.

    ``article`` and ``target`` may be index records (paths relative to the folder).
    Raises :class:`~recommender.errors.DecisionError` when the link cannot be
    written (already linked, a file that changed or does not parse, a read-only file),
    and :class:`~recommender.errors.FillError` while a fill holds the folder.
    """
    root = Path(content_dir)
    store = store or DecisionStore(root)
    with store.lock():
        fresh = _on_disk(root, article, schema)
        if fresh.url != article.url:
            raise DecisionError(f"{fresh.path}: now holds {fresh.url}, not {article.url}")
        other = dataclasses.replace(target, path=root / target.path)
        corpus: Corpus = build_corpus(root, [fresh, other], files=2, schema=schema)
        fresh = corpus.by_url[article.url]

        def suggest(_a: Article, _n: int, _exclude: Iterable[str]) -> list[tuple[Any, float]]:
            return [(other, 1.0)]

        with FillLock(root):
            plan = plan_file(corpus, fresh, suggest, k=len(fresh.curated) + 1)
            if plan.skip is not None:
                why = ("it is already linked" if plan.skip.kind == "no-suggestions"
                       else plan.skip.detail)
                raise DecisionError(f"{plan.rel}: {target.url} not written: {why}")
            result = apply_fill([plan])
        if result.failed:
            raise DecisionError(f"{plan.rel}: {target.url} not written: "
                                f"{result.failed[0].detail}")
        return store.add("accept", article.url, target.url)
