"""The draft protocol: an article's title (or title + answer) posted as free text.

An editor writing a new article has its title, perhaps its answer, and no links
yet. The draft protocol asks each method for the articles related to that text,
as ``related_to_text`` would be asked, and scores them against the article's
curated links. The article itself and its copies are never suggestions (the
protocol collapses them away), so a method cannot win by finding the text's own
article. The methods here take the text of a query row, never the row's stored
vectors or lists:

- :class:`DraftTfidfMethod`: TF-IDF cosine of the text against title + answer;
- :class:`DraftDenseMethod`: the encoder's embedding of the text, cosine (dense alone);
- :class:`DraftProductMethod`: the product's free-text ranking
  (:meth:`~recommender.ranking.Ranker.scores_for_texts`). Its text scorer is
  fitted on draft queries, so here it is refitted fold by fold, on the links
  whose two ends lie outside the fold, like the article ranker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recommender.corpus import Corpus
from recommender.encoders import load_encoder, model_spec
from recommender.evaluation.methods import ExactScorer, LexicalFeatures, _excluded, tie_breaker
from recommender.evaluation.protocol import CandidateSpace, links_between
from recommender.learned import LearnedModel, feature_names, fit_model
from recommender.pipeline import Snapshot
from recommender.ranking import Candidates, Ranker
from recommender.text import article_text

#: the draft variants: the fields of the article that make the posted text
VARIANTS: dict[str, tuple[str, ...]] = {"title": ("title",), "title+answer": ("title", "answer")}
_NOT_PROPOSED = -1e9


def variant_fields(name: str) -> tuple[str, ...]:
    """The fields of a draft variant (``title`` or ``title+answer``); ValueError otherwise."""
    key = name.replace(",", "+").replace(" ", "")
    if key not in VARIANTS:
        raise ValueError(f"unknown draft variant {name!r}; choose from {', '.join(VARIANTS)}")
    return VARIANTS[key]


def own_rows(space: CandidateSpace) -> dict[int, np.ndarray]:
    """Rows of each content (an article and its copies), by content index."""
    order = np.argsort(space.content, kind="stable")
    bounds = np.searchsorted(space.content[order], np.arange(space.n_contents + 1))
    return {c: order[bounds[c] : bounds[c + 1]] for c in range(space.n_contents)}


def draft_texts(corpus: Corpus, rows: Sequence[int], fields: tuple[str, ...]) -> list[str]:
    """The posted text of each row: its ``fields``, cleaned and joined."""
    return [article_text(corpus.articles[int(r)], fields) for r in rows]


class DraftTfidfMethod(ExactScorer):
    """TF-IDF cosine of the draft text against every article's title + answer."""

    def __init__(self, features: LexicalFeatures, corpus: Corpus, fields: tuple[str, ...],
                 seed: int = 0, name: str = "tfidf"):
        self.name, self.corpus, self.fields, self.features = name, corpus, fields, features
        self.matrix_t = features.tfidf.T.tocsr()
        self.excluded = _excluded(corpus)
        self.tiebreak = tie_breaker(features.tfidf.shape[0], seed)

    def scores(self, block: np.ndarray) -> np.ndarray:
        texts = draft_texts(self.corpus, block, self.fields)
        q = self.features.transformer.transform(self.features.counter.transform(texts))
        return (q @ self.matrix_t).toarray()


def refuse_tuned(model: str) -> None:
    """Drafts are embedded by the encoder as shipped: one tuned on this site's links saw
    the links being scored, so the draft protocol refuses it rather than leak."""
    if model_spec(model).tuned_from is not None:
        raise ValueError(f"model {model!r} was tuned on curated links: the draft protocol "
                         "does not tune it per fold yet, and scoring with it would leak")


class DraftDenseMethod(ExactScorer):
    """Cosine of the draft's embedding (the given encoder) with the articles' vectors."""

    def __init__(self, vectors: np.ndarray, corpus: Corpus, fields: tuple[str, ...],
                 model: str, max_tokens: int, seed: int = 0, name: str = "dense"):
        self.name, self.corpus, self.fields = name, corpus, fields
        refuse_tuned(model)
        v = np.asarray(vectors, dtype=np.float32)
        self.vectors = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        self.encoder = load_encoder(model, max_tokens)
        self.excluded = _excluded(corpus)
        self.tiebreak = tie_breaker(len(v), seed)

    def scores(self, block: np.ndarray) -> np.ndarray:
        q = self.encoder.encode(draft_texts(self.corpus, block, self.fields))
        return (q @ self.vectors.T).astype(np.float64)


def text_training_data(ranker: Ranker, corpus: Corpus, links: np.ndarray, rows: np.ndarray,
                       fields: tuple[str, ...], encode: object,
                       cache: dict[int, Candidates] | None = None,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows, 0/1 labels, candidate rows and query rows of draft queries (``rows``'
    ``fields`` posted as text) under ``links``: a candidate is positive when it is (a copy of) a
    target of one of the query's links.

    The query's own article and its copies are hidden from the text altogether
    (:meth:`~recommender.ranking.Ranker.text_candidates` ``exclude``): a draft is not in
    the index yet, so its features must not come through its own article (its 2-hop
    scores would reach its curated links)."""
    space = CandidateSpace(corpus)
    content = space.content
    owners = own_rows(space)
    targets: dict[int, set[int]] = {}
    for q, t in links.tolist():
        targets.setdefault(q, set()).add(int(content[t]))
    cache = {} if cache is None else cache
    todo = np.array([int(r) for r in rows if int(r) not in cache], dtype=np.int64)
    for start in range(0, len(todo), 256):
        block = todo[start : start + 256]
        texts = draft_texts(corpus, block, fields)
        cands, _ = ranker.text_candidates(  # type: ignore[operator]
            texts, encode(texts), [owners[int(content[r])] for r in block])
        order = np.argsort(cands.query, kind="stable")
        bounds = np.searchsorted(cands.query[order], np.arange(len(block) + 1))
        for i, r in enumerate(block.tolist()):
            sel = order[bounds[i] : bounds[i + 1]]
            cache[r] = Candidates(np.zeros(len(sel), np.int64), cands.row[sel],
                                  cands.features[sel])
    xs, ys, cs, qs = [], [], [], []
    for r in np.asarray(rows).tolist():
        c = cache[int(r)]
        wanted = targets.get(int(r), set())
        xs.append(c.features)
        cs.append(c.row)
        qs.append(np.full(len(c.row), r, np.int64))
        ys.append(np.fromiter((int(content[x]) in wanted for x in c.row.tolist()),
                              dtype=np.int8, count=len(c.row)))
    width = len(feature_names(ranker.signals))
    if not xs:
        empty = np.zeros(0, np.int64)
        return np.zeros((0, width), np.float32), np.zeros(0, np.int8), empty, empty
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(cs), np.concatenate(qs)


class DraftProductMethod(ExactScorer):
    """The product's free-text ranking of the draft text (what ``related_to_text`` returns).

    ``refit``: a :class:`~recommender.evaluation.protocol.FittedMethod` whose text
    scorer is fitted per fold on draft queries of the training rows (title
    variant: the scorer the product ships is fitted on titles), never read from
    the shipped file; otherwise the snapshot's text scorer as it is.
    """

    workers = 1  # the text features of a block already use both cores' worth of memory

    def __init__(self, corpus: Corpus, snapshot: Snapshot, fields: tuple[str, ...],
                 seed: int = 0, name: str = "product", refit: bool = True,
                 fit_fields: tuple[str, ...] = ("title",), max_train_queries: int = 8000,
                 model_kind: str = "logistic"):
        self.name, self.corpus, self.fields, self.seed = name, corpus, fields, seed
        self.snapshot = snapshot
        self.ranker: Ranker = snapshot.ranker()
        config = snapshot.config
        refuse_tuned(config.model)
        self.encoder = load_encoder(config.model, config.text.max_tokens)
        self.excluded = _excluded(corpus)
        self.tiebreak = tie_breaker(len(corpus.articles), seed)
        self.fit_fields, self.max_train_queries = fit_fields, max_train_queries
        self.model_kind = model_kind
        self.space = CandidateSpace(corpus)
        self.owners = own_rows(self.space)
        self._features: dict[int, Candidates] = {}
        self.last_training_links: np.ndarray = np.zeros((0, 2), np.int64)
        if refit and self.ranker.learned:
            self.fit = self._fit  # type: ignore[method-assign]

    def _fit(self, corpus: Corpus, train_rows: np.ndarray) -> None:
        """Fit the text scorer on draft queries of ``train_rows``, links between them only."""
        links = links_between(corpus, train_rows)
        self.last_training_links = links
        queries = np.unique(links[:, 0]) if len(links) else np.zeros(0, np.int64)
        if len(queries) > self.max_train_queries:
            rng = np.random.default_rng(self.seed)
            queries = np.sort(rng.choice(queries, self.max_train_queries, replace=False))
        x, y, rows, query = text_training_data(self.ranker, corpus, links, queries,
                                               self.fit_fields, self.encoder.encode,
                                               self._features)
        allowed = np.zeros(len(corpus.articles), dtype=bool)
        allowed[np.asarray(train_rows, dtype=np.int64)] = True
        keep = allowed[rows]
        model: LearnedModel = fit_model(x[keep], y[keep], feature_names(self.ranker.signals),
                                        self.model_kind, self.seed,
                                        note=f"fold fit on {len(queries)} draft queries",
                                        query=query[keep])
        self.ranker = self.ranker.with_text_model(model)

    def scores(self, block: np.ndarray) -> np.ndarray:
        texts = draft_texts(self.corpus, block, self.fields)
        hidden = [self.owners[int(self.space.content[r])] for r in block]
        scores = self.ranker.scores_for_texts(texts, self.encoder.encode(texts), hidden)
        scores[np.isneginf(scores)] = _NOT_PROPOSED
        return scores
