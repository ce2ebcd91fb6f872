"""Methods under evaluation: baselines, dense vectors, and suggestions read from a file.

Each method ranks whole-corpus article rows for a batch of query rows. They
score every candidate exactly (no approximate search), so a difference between
methods is a difference of signal, not of search. Ties are broken by a seeded
random order of rows, never by row (file) order: files are sorted by subject
and slug, so breaking ties by position would quietly favour same-subject,
alphabetically-near articles. Methods drop ``no_index`` rows and the query row
themselves, but the protocol does not rely on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bm25s
import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

from recommender.corpus import Corpus
from recommender.errors import ArticleNotFound, SuggestionsFileError
from recommender.evaluation.protocol import CandidateSpace, Method
from recommender.text import article_text

#: rows scored per dense block: 512 x 28k float64 is ~120 MB
BLOCK = 512
#: magnitude of the tie-breaking term: below any real score difference, above zero
_TIE_SCALE = 1e-12


def tie_breaker(n_rows: int, seed: int) -> np.ndarray:
    """A seeded random order of rows, scaled to be added to scores to break exact ties."""
    order = np.random.default_rng(seed).permutation(n_rows)
    return order.astype(np.float64) * (_TIE_SCALE / max(n_rows, 1))


def top_rows(scores: np.ndarray, n: int, tiebreak: np.ndarray) -> np.ndarray:
    """Indices of the ``n`` best columns per row, best first (``-inf`` = excluded).

    Uses a partition threshold (fast even when many scores tie, unlike
    argpartition), then sorts the few columns above it.
    """
    m, width = scores.shape
    n = min(n, width)
    if n == 0 or m == 0:
        return np.zeros((m, 0), dtype=np.int64)
    keyed = scores.astype(np.float64, copy=True)
    keyed += tiebreak
    kth = np.partition(keyed, width - n, axis=1)[:, width - n]
    out = np.empty((m, n), dtype=np.int64)
    for i in range(m):
        cols = np.flatnonzero(keyed[i] >= kth[i])  # at least n columns, by construction
        out[i] = cols[np.argsort(-keyed[i, cols], kind="stable")[:n]]
    return out


def _blocks(queries: np.ndarray, size: int = BLOCK) -> Iterator[np.ndarray]:
    for start in range(0, len(queries), size):
        yield queries[start : start + size]


def _mask(scores: np.ndarray, block: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    scores[:, excluded] = -np.inf
    scores[np.arange(len(block)), block] = -np.inf
    return scores


def _excluded(corpus: Corpus) -> np.ndarray:
    return np.flatnonzero([a.no_index for a in corpus])


class ExactScorer:
    """Shared ranking loop: score a block of queries against every row, keep the top n.

    Subclasses provide :meth:`scores`. Blocks run on a small thread pool: the
    sparse and dense products and the partition release the GIL, so two cores
    score two blocks at once.
    """

    name: str
    excluded: np.ndarray
    tiebreak: np.ndarray
    workers: int = min(2, os.cpu_count() or 1)
    block: int = BLOCK
    #: while :meth:`rank_within` runs: the group of each row (candidates share the query's)
    groups: np.ndarray | None = None

    def scores(self, block: np.ndarray) -> np.ndarray:
        """Dense (len(block) x rows) similarity of each query row to every row."""
        raise NotImplementedError

    def _top(self, block: np.ndarray, n: int) -> list[list[int]]:
        scores = _mask(self.scores(block), block, self.excluded)
        if self.groups is None:
            return top_rows(scores, n, self.tiebreak).tolist()
        scores[self.groups[None, :] != self.groups[block][:, None]] = -np.inf
        top = top_rows(scores, n, self.tiebreak)
        finite = np.isfinite(np.take_along_axis(scores, top, axis=1))
        return [row[keep].tolist() for row, keep in zip(top, finite, strict=True)]

    def rank_within(self, queries: np.ndarray, n: int, groups: np.ndarray) -> list[list[int]]:
        """The ranking restricted to each query's group (rows with its ``groups`` value)."""
        self.groups = groups
        try:
            return self.rank(queries, n)
        finally:
            self.groups = None

    def rank(self, queries: np.ndarray, n: int) -> list[list[int]]:
        blocks = list(_blocks(np.asarray(queries, dtype=np.int64), self.block))
        if self.workers > 1 and len(blocks) > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                parts = list(pool.map(lambda b: self._top(b, n), blocks))
        else:
            parts = [self._top(b, n) for b in blocks]
        return [ranked for part in parts for ranked in part]


class LexicalFeatures:
    """Term counts and TF-IDF vectors of title + answer, shared by methods and metrics.

    Equivalent to ``TfidfVectorizer(sublinear_tf=True, stop_words="english")``
    (which is exactly CountVectorizer then TfidfTransformer), split in two so
    BM25 indexes the same tokens the TF-IDF query terms are drawn from. The
    TF-IDF rows are also the common yardstick for intra-list diversity.
    """

    fields: tuple[str, ...] = ("title", "answer")

    def __init__(self, corpus: Corpus, fields: tuple[str, ...] | None = None):
        self.fields = fields or self.fields
        texts = [article_text(a, self.fields) for a in corpus]
        self.counter = CountVectorizer(stop_words="english", dtype=np.int64)
        self.counts: sp.csr_matrix = sp.csr_matrix(self.counter.fit_transform(texts))
        self.transformer = TfidfTransformer(sublinear_tf=True)
        self.tfidf: sp.csr_matrix = sp.csr_matrix(self.transformer.fit_transform(self.counts))
        self.vocabulary: dict[str, int] = {
            str(t): int(i) for t, i in self.counter.vocabulary_.items()}


class RandomMethod:
    """Chance level: a seeded random ranking per query.

    Each query's ranking is a fixed random sequence of its own (seeded by the
    query row), read until ``n`` distinct rows are found: the same whatever batch
    the query comes in, and the top 5 is the prefix of the top 20, as for any
    real ranking, without shuffling the whole corpus per query.
    """

    chunk = 256
    small = 4096

    def __init__(self, n_rows: int, seed: int = 0, name: str = "random"):
        self.name, self.n_rows, self.seed = name, n_rows, seed

    def _one(self, query: int, n: int) -> list[int]:
        rng = np.random.default_rng([self.seed, query])
        if self.n_rows <= self.small:  # depends on the corpus only, never on n
            return rng.permutation(self.n_rows)[:n].tolist()
        seen: dict[int, None] = {}
        while len(seen) < n:
            seen.update(dict.fromkeys(rng.integers(0, self.n_rows, self.chunk).tolist()))
        return list(seen)[:n]

    def rank(self, queries: np.ndarray, n: int) -> list[list[int]]:
        n = min(n, self.n_rows)
        return [self._one(int(q), n) for q in queries]

    def rank_within(self, queries: np.ndarray, n: int, groups: np.ndarray) -> list[list[int]]:
        """A seeded random order of each query's group."""
        order = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[order], np.arange(int(groups.max()) + 2))
        out = []
        for q in np.asarray(queries).tolist():
            members = order[bounds[groups[q]] : bounds[groups[q] + 1]]
            rng = np.random.default_rng([self.seed, q])
            out.append(members[rng.permutation(len(members))][:n].tolist())
        return out


class TfidfMethod(ExactScorer):
    """Cosine of TF-IDF (title + answer) vectors: the lexical reference."""

    def __init__(self, features: LexicalFeatures, corpus: Corpus, seed: int = 0,
                 name: str = "tfidf"):
        self.name = name
        self.matrix = features.tfidf
        self.matrix_t = sp.csr_matrix(features.tfidf.T)
        self.excluded = _excluded(corpus)
        self.tiebreak = tie_breaker(self.matrix.shape[0], seed)

    def scores(self, block: np.ndarray) -> np.ndarray:
        return (self.matrix[block] @ self.matrix_t).toarray()


class BM25Method(ExactScorer):
    """BM25 More-Like-This: the article's top TF-IDF terms as a BM25 query.

    The index is built by bm25s over the same tokens as the TF-IDF vectors. A
    batch of queries is scored at once as a sparse product of the query-term
    matrix with bm25s's document-term score matrix, which is the sum bm25s
    computes per query (``BM25.get_scores``), vectorised over the batch.
    """

    def __init__(self, features: LexicalFeatures, corpus: Corpus, seed: int = 0,
                 n_terms: int = 25, k1: float = 1.5, b: float = 0.75, name: str = "bm25"):
        self.name, self.n_terms = name, n_terms
        self.features = features
        counts = features.counts
        docs = [np.repeat(counts.indices[s:e], counts.data[s:e]).tolist()
                for s, e in zip(counts.indptr[:-1], counts.indptr[1:], strict=True)]
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene", dtype="float64")
        self.retriever.index((docs, dict(features.vocabulary)), create_empty_token=False,
                             show_progress=False)
        s = self.retriever.scores
        n_docs, n_vocab = counts.shape
        doc_term = sp.csc_matrix((s["data"], s["indices"], s["indptr"]), shape=(n_docs, n_vocab))
        self.term_doc = sp.csr_matrix(doc_term.T)
        self.excluded = _excluded(corpus)
        self.tiebreak = tie_breaker(n_docs, seed)

    def query_terms(self, row: int) -> np.ndarray:
        """The ``n_terms`` highest-weighted TF-IDF term ids of an article (ties by term id)."""
        x = self.features.tfidf
        start, end = x.indptr[row], x.indptr[row + 1]
        terms, weights = x.indices[start:end], x.data[start:end]
        return terms[np.lexsort((terms, -weights))[: self.n_terms]]

    def query_matrix(self, rows: np.ndarray) -> sp.csr_matrix:
        """Binary (rows x vocabulary) matrix of each article's query terms."""
        terms = [self.query_terms(int(r)) for r in rows]
        indptr = np.concatenate(([0], np.cumsum([len(t) for t in terms])))
        indices = np.concatenate(terms) if terms else np.zeros(0, dtype=np.int64)
        return sp.csr_matrix((np.ones(len(indices)), indices, indptr),
                             shape=(len(rows), self.term_doc.shape[0]))

    def scores(self, block: np.ndarray) -> np.ndarray:
        return (self.query_matrix(block) @ self.term_doc).toarray()


class KeywordMethod(ExactScorer):
    """IDF-weighted cosine over ``seo.page_keywords`` sets (each phrase is one feature).

    Rare shared keyphrases weigh more than ubiquitous ones ("research"); binary
    weights because a keyword is listed once.
    """

    def __init__(self, corpus: Corpus, seed: int = 0, name: str = "keywords"):
        self.name = name
        vocab: dict[str, int] = {}
        indptr, indices = [0], []
        for a in corpus:
            ids = sorted({vocab.setdefault(k.strip(), len(vocab)) for k in a.keywords if k.strip()})
            indices.extend(ids)
            indptr.append(len(indices))
        n = len(corpus)
        binary = sp.csr_matrix((np.ones(len(indices)), np.array(indices, dtype=np.int64),
                                np.array(indptr, dtype=np.int64)), shape=(n, len(vocab)))
        df = np.bincount(binary.indices, minlength=len(vocab))
        idf = np.log((1 + n) / (1 + df)) + 1.0
        weighted = sp.csr_matrix(binary.multiply(idf[None, :]))
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        self.matrix = sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ weighted)
        self.matrix_t = sp.csr_matrix(self.matrix.T)
        self.excluded = _excluded(corpus)
        self.tiebreak = tie_breaker(n, seed)

    def scores(self, block: np.ndarray) -> np.ndarray:
        return (self.matrix[block] @ self.matrix_t).toarray()


class DenseMethod(ExactScorer):
    """Exact inner-product search over precomputed vectors (one row per article).

    Takes the vectors rather than an encoder so evaluation does not depend on
    how they were made; rows are re-normalised so the score is a cosine.
    """

    def __init__(self, vectors: np.ndarray, corpus: Corpus, seed: int = 0, name: str = "dense"):
        if vectors.shape[0] != len(corpus):
            raise ValueError(f"{vectors.shape[0]} vectors for {len(corpus)} articles")
        self.name = name
        v = np.asarray(vectors, dtype=np.float32)
        self.vectors = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        self.excluded = _excluded(corpus)
        self.tiebreak = tie_breaker(len(v), seed)

    def scores(self, block: np.ndarray) -> np.ndarray:
        return (self.vectors[block] @ self.vectors.T).astype(np.float64)


def _resolve(corpus: Corpus, row_of: dict[str, int], ref: str, where: str) -> int:
    """The row of a reference, resolved as everywhere (:mod:`recommender.references`)."""
    try:
        return row_of[corpus.get(ref).url]
    except ArticleNotFound:
        raise ArticleNotFound(f"{where}: {ref!r} is not an article of this corpus") from None


class SuggestionsFile:
    """Suggestions produced elsewhere: JSONL lines ``{"url": ..., "suggestions": [url, ...]}``.

    Scored as given (no folds), so a file from a method trained on curated links
    is not leakage-free. A query missing from the file gets an empty list, and a
    suggestion that names no article is an error rather than silently skipped
    (skipping would move later suggestions up and flatter the file).
    """

    def __init__(self, corpus: Corpus, path: str | Path, name: str | None = None):
        self.path = Path(path)
        self.name = name or f"file:{self.path.stem}"
        row_of = {a.url: i for i, a in enumerate(corpus)}
        self.lists: dict[int, list[int]] = {}
        with self.path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{self.path}:{number}"
                try:
                    item = json.loads(line)
                    url, suggestions = item["url"], item["suggestions"]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise SuggestionsFileError(f"{where}: not a suggestions line ({exc})") from None
                if not isinstance(suggestions, list):
                    raise SuggestionsFileError(f"{where}: 'suggestions' is not a list")
                row = _resolve(corpus, row_of, str(url), where)
                if row in self.lists:
                    raise SuggestionsFileError(f"{where}: {url} is listed twice")
                self.lists[row] = [_resolve(corpus, row_of, str(s), where) for s in suggestions]

    def rank(self, queries: np.ndarray, n: int) -> list[list[int]]:
        return [self.lists.get(int(q), []) for q in queries]

    def rank_within(self, queries: np.ndarray, n: int, groups: np.ndarray) -> list[list[int]]:
        """The file's lists, keeping only rows of the query's group (a file written with
        ``suggest --same FIELD`` holds only those)."""
        return [[r for r in self.lists.get(int(q), []) if groups[r] == groups[q]]
                for q in queries]


def suggestion_lines(space: CandidateSpace, method: Method, k: int,
                     rows: Iterable[int] | None = None, groups: np.ndarray | None = None
                     ) -> Iterator[dict[str, object]]:
    """``{"url", "suggestions"}`` per article, collapsed exactly as the protocol scores them;
    with ``groups``, among the article's own group only (``suggest --same FIELD``)."""
    corpus = space.corpus
    rows_arr = np.arange(len(corpus)) if rows is None else np.asarray(list(rows), dtype=np.int64)
    depth = space.depth(k)
    for block in _blocks(rows_arr, 4 * BLOCK):
        if groups is not None:
            ranked_block = method.rank_within(block, depth, groups)  # type: ignore[attr-defined]
        else:
            ranked_block = method.rank(block, depth)
        for row, ranked in zip(block.tolist(), ranked_block, strict=True):
            chosen = space.collapse(row, ranked, k)
            yield {"url": corpus.articles[row].url,
                   "suggestions": [corpus.articles[r].url for r in chosen]}


def export_suggestions(space: CandidateSpace, method: Method, k: int, path: str | Path,
                       groups: np.ndarray | None = None) -> int:
    """Write every article's top-k suggestions as JSONL; returns the number of lines."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for line in suggestion_lines(space, method, k, groups=groups):
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            count += 1
    return count
