"""Score candidate articles for a query from several content similarity signals.

Signals are cosines: ``dense`` (embeddings of the index's model), ``lexical``
(TF-IDF over words of ``lexical_fields``), ``description`` (TF-IDF over the SEO
page description) and ``keywords`` (TF-IDF over curated keyword phrases).

Two ways of combining them (:class:`~recommender.config.RankingConfig` ``method``):

``fused``
    the weighted sum of the raw cosines, scored against every article.
``learned`` (the default)
    a re-ranker. Each signal proposes its ``pool`` best articles (from the
    neighbour lists of the ranking state); every proposed candidate gets features
    that look beyond one raw cosine: per-query normalised scores (z-score and gap
    to the query's 10th neighbour), the candidate's rank in the query's list and
    the *query's* rank in the candidate's list (mutual neighbours: the articles
    written from one source cluster tightly), the same normalisations from the
    candidate's side (which tames hubs), a 2-hop score (neighbours of neighbours)
    and whether the subjects match. A small model (:mod:`recommender.learned`)
    turns the features into a score; without one, the score is the unsupervised
    blend: the sum of the candidate's cosines. Articles no signal proposed score
    ``-inf``.

Features read *other* articles' lists (the candidate's side, 2-hop), so after an
update that patches only some lists (:mod:`recommender.neighbours`) an untouched
article's suggestions can differ slightly from a fresh build's; the update
benchmark measures by how much.

No feature is derived from id, date, file order or publication batch, on purpose:
such signals raise the metric (links were made batch by batch) without making
suggestions better for a reader. Links are only the training labels, and the
evaluation fits the model with folds grouped by publication batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.config import RankingConfig
from recommender.corpus import Article, subject_key
from recommender.index import Index
from recommender.learned import (  # noqa: F401  (re-exported: the model's home before)
    SIGNALS,
    TWO_HOP,
    LearnedModel,
    feature_names,
    fit_model,
    resolve_model_path,
)
from recommender.ranking_state import (
    NeighbourLists,
    RankingState,
    best_neighbours,
    choose_text_model,
    top_columns,
)
from recommender.vectors import block_scores, pair_scores

_BLOCK = 512
_HOP_FROM = 10  # 2-hop: through the query's 10 nearest neighbours
#: calls of scores_for_rows with at most this many rows score every article (see there)
_FILL_ROWS = 4
#: FAISS is asked for this many more candidates than a list keeps (self, no_index, ties)
SEARCH_SLACK = 16
#: how far below a floor a float32 cosine may be and the exact one still reach it (unit
#: vectors: the float32 error of a dot product is below 1e-5 at a few hundred dimensions)
_ROUGH = 1e-4
#: up to this many rows, a sparse signal's cosines are computed without transposing it
_FEW_ROWS = 256


@dataclass
class Candidates:
    """Candidate pairs of a batch of queries: query position, candidate row, features."""

    query: np.ndarray  # (m,) position of the query in the batch
    row: np.ndarray  # (m,) candidate article row
    features: np.ndarray  # (m, n_features) float32


_UNSET = object()


class Ranker:
    """Scores of articles against article rows or free text, from an index and its state.

    ``model`` overrides the state's learned model (the evaluation passes one
    fitted on training folds); it must have the state's features.
    """

    def __init__(self, index: Index, state: RankingState, model: object = _UNSET):
        self.index, self.state = index, state
        self.config: RankingConfig = index.config.ranking
        self.n = len(index.articles)
        self.excluded = index.derived("excluded", lambda: ROW_ARRAYS["excluded"](index.articles))
        self.subject = index.derived("subjects", lambda: ROW_ARRAYS["subjects"](index.articles))
        self.learned = self.config.method == "learned"
        self.signals = list(state.active)
        self.lists: dict[str, NeighbourLists] = state.lists
        self.model: LearnedModel | None = state.model if model is _UNSET else model  # type: ignore[assignment]
        self._text_model: object = _UNSET  # read at the first text query
        self.check_model()
        self._two_hop: dict[str, sp.csr_matrix] = {}
        self._transposed: dict[str, sp.csr_matrix] = {}
        self._stats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def with_model(self, model: LearnedModel | None) -> Ranker:
        """This ranker with other learned parameters (same index, lists and signals)."""
        other = Ranker.__new__(Ranker)
        other.__dict__.update(self.__dict__)
        other.model = model
        other.check_model()
        return other

    @property
    def text_model(self) -> LearnedModel | None:
        """The free-text scorer (``ranking.text_model``, fitted on draft queries); None: the
        dense cosine. Read from its file at the first text query (a missing file is
        :class:`~recommender.errors.ModelNotAvailable`)."""
        if self._text_model is _UNSET:
            self._text_model = choose_text_model(self.index.config,
                                                 tuple(self.signals))[0]
        return self._text_model  # type: ignore[return-value]

    def with_text_model(self, model: LearnedModel | None) -> Ranker:
        """This ranker with another free-text scorer (the evaluation fits one per fold)."""
        self._check(model)
        other = Ranker.__new__(Ranker)
        other.__dict__.update(self.__dict__)
        other._text_model = model
        return other

    def check_model(self) -> None:
        self._check(self.model)

    def _check(self, model: LearnedModel | None) -> None:
        if model is not None and model.features != feature_names(self.signals):
            raise ValueError("the learned ranker was fitted on features "
                             f"{model.features}, this configuration gives "
                             f"{feature_names(self.signals)}")

    # -- raw signals ---------------------------------------------------------------------------

    def matrix(self, name: str) -> sp.csr_matrix:
        return self.state.matrices[name]

    def transposed(self, name: str) -> sp.csr_matrix:
        """The signal's matrix transposed, as CSR (scipy would convert a csc .T each call)."""
        if name not in self._transposed:
            self._transposed[name] = sp.csr_matrix(self.matrix(name).T)
        return self._transposed[name]

    def signal_rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n) cosines of one signal."""
        if name == "dense":
            v = self.index.vectors
            return np.asarray(v[rows] @ v.T, dtype=np.float32)
        m = self.matrix(name)
        if name not in self._transposed and len(rows) <= _FEW_ROWS:
            # the few rows of an update: no transposed copy of the whole matrix. The same
            # products are summed in the same (column) order, so the cosines are identical
            return (m @ sp.csr_matrix(m[rows].T)).T.toarray().astype(np.float32)
        return (m[rows] @ self.transposed(name)).toarray().astype(np.float32)

    def signal_block(self, name: str, rows: np.ndarray, columns: np.ndarray,
                     floor: np.ndarray | None = None) -> np.ndarray:
        """(len(rows), len(columns)) cosines, computed as the neighbour lists compute them.

        ``floor`` (len(rows),): only values at or above a row's floor are needed; others
        may come back as 0. An update scores the few fresh articles against every
        article that way: a float32 product finds the pairs that can pass, and only those
        are computed exactly.
        """
        if name == "dense":
            vectors = self.index.vectors
            if floor is None:  # summed in float64 as pair_scores does, by one product
                return block_scores(vectors, rows, columns)
            left = vectors if len(rows) == self.n else vectors[rows]
            rough = left @ vectors[columns].T
            near = np.nonzero(rough >= floor[:, None] - _ROUGH)
            out = np.zeros(rough.shape, np.float32)
            out[near] = pair_scores(vectors, np.asarray(rows)[near[0]],
                                    np.asarray(columns)[near[1]])
            return out
        m = self.matrix(name)
        right = sp.csr_matrix(m[columns].T)
        if len(rows) * 4 > self.n:  # most rows: no copy of them (same sums, same order)
            return (m @ right).toarray()[rows].astype(np.float32)
        return (m[rows] @ right).toarray().astype(np.float32)

    def signal_text(self, name: str, text: str, vector: np.ndarray) -> np.ndarray:
        """(n,) cosines of one signal against free text (keywords: all zero)."""
        if name == "dense":
            return np.asarray(self.index.vectors @ vector.astype(np.float32), dtype=np.float32)
        signal = self.state.signals[name]
        return (self.matrix(name) @ signal.transform_text(text).T).toarray().ravel().astype(
            np.float32)

    def pair_cosines(self, name: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Cosines of article pairs (``left[i]``, ``right[i]``) under one signal."""
        if name == "dense":
            return pair_scores(self.index.vectors, left, right)
        m = self.matrix(name)
        out = np.zeros(len(left), np.float32)
        for start in range(0, len(left), 100_000):
            sl = slice(start, start + 100_000)
            out[sl] = np.asarray(m[left[sl]].multiply(m[right[sl]]).sum(axis=1)).ravel()
        return out

    def _fused_signals(self) -> Iterator[tuple[float, str]]:
        for name in self.signals:
            yield getattr(self.config, name), name

    def mask(self, cos: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        """Cosine rows with no_index articles and each row's own article at -inf."""
        cos = cos.copy()
        cos[:, self.excluded] = -np.inf
        if rows is not None:
            cos[np.arange(len(rows)), rows] = -np.inf
        return cos

    # -- learned features ----------------------------------------------------------------------

    def _hop_matrix(self, name: str) -> sp.csr_matrix:
        if name not in self._two_hop:
            lists = self.lists[name]
            n = lists.rows.shape[0]
            valid = lists.rows >= 0  # lists are rows already: CSR without a COO detour
            indptr = np.concatenate(([0], np.cumsum(valid.sum(axis=1)))).astype(np.int64)
            self._two_hop[name] = sp.csr_matrix(
                (lists.scores[valid], lists.rows[valid].astype(np.int64), indptr),
                shape=(n, n))
        return self._two_hop[name]

    def _own_stats(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`_list_stats` of every article's own list (computed once per ranker)."""
        if name not in self._stats:
            self._stats[name] = _list_stats(self.lists[name].scores)
        return self._stats[name]

    def _has_lists(self) -> bool:
        return all(name in self.lists for name in self.signals)

    def candidates_for_rows(self, rows: np.ndarray) -> Candidates:
        """Candidates and features of article rows, from the stored neighbour lists.

        Cheaper than scoring every article: each signal's list gives the query's
        side, and only the candidates' cosines are computed (pair by pair).
        """
        rows = np.asarray(rows, dtype=np.int64)
        if not self._has_lists():
            raise ValueError("the learned ranking needs the neighbour lists of every signal")
        tops = {name: (self.lists[name].rows[rows], self.lists[name].scores[rows])
                for name in self.signals}
        return self.candidates(tops, None, rows)

    def candidates(self, tops: dict[str, tuple[np.ndarray, np.ndarray]],
                   cos: dict[str, np.ndarray] | None, rows: np.ndarray | None,
                   pairs: np.ndarray | None = None) -> Candidates:
        """Candidates and features for a batch of queries.

        ``tops[name]`` are the queries' ``depth`` nearest rows (-1: nobody) and
        cosines under each active signal; ``cos[name]``, when given, their full
        (b, n) cosine rows (free text); otherwise candidates' cosines are computed
        pair by pair from the query ``rows``, which are never candidates themselves.
        ``pairs`` (keys ``query * n + row``): score exactly these candidates instead
        of those the signals propose (a restricted candidate set, such as
        ``same=date``); a pair's features do not depend on who proposed it, so its
        score is the one it has in the unrestricted ranking.
        Candidates come in (query, row) order.
        """
        cfg = self.config
        depth, pool = cfg.depth, min(cfg.pool, cfg.depth)
        n = self.n
        b = next(iter(tops.values()))[0].shape[0]
        keys = []
        if pairs is not None:
            keys.append(np.asarray(pairs, dtype=np.int64))
        else:
            for top, _ in tops.values():
                proposed = top[:, :pool].astype(np.int64)
                q = np.broadcast_to(np.arange(b, dtype=np.int64)[:, None], proposed.shape)
                valid = proposed >= 0
                keys.append(q[valid] * n + proposed[valid])
        key = _sorted_unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
        query, row = key // n, key % n
        keep = ~self.excluded[row]
        if rows is not None:
            keep &= row != rows[query]
        query, row, key = query[keep], row[keep], key[keep]
        if len(query) == 0:  # e.g. a one-article corpus
            return Candidates(query, row, np.zeros((0, len(feature_names(self.signals))),
                                                   np.float32))
        feats: list[np.ndarray] = []
        in_list = np.zeros(len(query), np.float32)
        for name in self.signals:
            top, top_scores = tops[name]
            pos_q = _positions(top, key, n, depth)
            listed = pos_q < depth
            if cos is not None:
                value = cos[name][query, row]
            else:  # a listed candidate's cosine is in the list; only the others are computed
                assert rows is not None
                value = np.empty(len(query), np.float32)
                value[listed] = top_scores[query[listed], pos_q[listed]]
                unlisted = ~listed
                value[unlisted] = self.pair_cosines(name, rows[query[unlisted]], row[unlisted])
            in_list += listed
            own = self.lists[name].scores[row]  # the candidate's own neighbour scores
            pos_c = (own > value[:, None]).sum(axis=1)
            q_mean, q_spread, q_tenth = _list_stats(top_scores)  # per query, then spread
            c_mean, c_spread, c_tenth = self._own_stats(name)
            feats += [value, 1.0 / (1.0 + pos_q), 1.0 / (1.0 + pos_c),
                      (value - q_mean[query]) / q_spread[query],
                      (value - c_mean[row]) / c_spread[row],
                      value - q_tenth[query], value - c_tenth[row]]
        for name in self.signals:
            if name not in TWO_HOP:
                continue
            top, top_scores = tops[name]
            k = min(_HOP_FROM, depth)
            first_rows = top[:, :k].astype(np.int64)
            valid = first_rows >= 0
            first = sp.csr_matrix(
                (np.maximum(top_scores[:, :k], 0)[valid],
                 (np.broadcast_to(np.arange(b)[:, None], first_rows.shape)[valid],
                  first_rows[valid])), shape=(b, n))
            hop = (first @ self._hop_matrix(name)).tocsr()
            feats.append(np.asarray(hop[query, row]).ravel())
        if rows is not None:
            same = self.subject[rows][query] == self.subject[row]
        else:
            same = np.zeros(len(query), dtype=bool)
        feats += [same.astype(np.float32), in_list]
        return Candidates(query, row, np.stack(feats, axis=1).astype(np.float32))

    def candidate_scores(self, cands: Candidates) -> np.ndarray:
        """The learned model's score of each candidate, or the blend: the sum of its cosines."""
        if self.model is None:
            names = feature_names(self.signals)
            cols = [i for i, f in enumerate(names) if f.endswith("_cos")]
            return cands.features[:, cols].sum(axis=1).astype(np.float64)
        return self.model.score(cands.features)

    def _learned_scores(self, cands: Candidates, b: int) -> np.ndarray:
        out = np.full((b, self.n), -np.inf, dtype=np.float64)
        out[cands.query, cands.row] = self.candidate_scores(cands)
        return out

    def dense_neighbours(self, queries: np.ndarray, rows: np.ndarray | None = None,
                         depth: int | None = None) -> NeighbourLists:
        """The ``depth`` nearest articles of query vectors under the dense signal.

        FAISS proposes candidates (``SEARCH_SLACK`` more than needed, for the query's
        own row, no_index articles and ties); they are scored exactly
        (:func:`~recommender.vectors.pair_scores`) and ordered as every list is.
        When the candidates cannot settle the list (a tie at its end with the last
        candidate, too few left after masking) every article is scored instead.
        ``rows``: the queries' own rows, never their own neighbours. ``depth``: how
        many (default: the configuration's).
        """
        depth = depth or self.config.depth
        k = min(self.n, depth + SEARCH_SLACK + (rows is not None))
        ids = self.index.search.search(queries, k)
        exact = self._dense_exact(queries, rows, ids)
        allowed = ids >= 0
        allowed[allowed] &= ~self.excluded[ids[allowed]]
        if rows is not None:
            allowed &= ids != rows[:, None]
        lists, _ = best_neighbours(np.where(allowed, exact, -np.inf), depth, ids)
        if k >= self.n:
            return lists
        lowest = np.where(ids >= 0, exact, np.inf).min(axis=1)
        unsettled = ~((lowest < lists.scores[:, depth - 1]) | (lowest <= 0))
        if unsettled.any():
            redo = np.flatnonzero(unsettled)
            every = np.broadcast_to(np.arange(self.n, dtype=np.int64), (len(redo), self.n))
            full = self._dense_exact(queries[redo], None if rows is None else rows[redo], every)
            full = self.mask(full, None if rows is None else rows[redo])
            again, _ = best_neighbours(full, depth)
            lists.rows[redo], lists.scores[redo] = again.rows, again.scores
        return lists

    def _dense_exact(self, queries: np.ndarray, rows: np.ndarray | None,
                     ids: np.ndarray) -> np.ndarray:
        """Exact cosines of each query with the articles ``ids`` (b, k); -1 ids score 0."""
        safe = np.maximum(ids, 0)
        if rows is not None:  # article rows: the very numbers every list of them uses
            left = np.repeat(np.asarray(rows, np.int64), ids.shape[1])
            return pair_scores(self.index.vectors, left, safe.ravel()).reshape(ids.shape)
        q = queries.astype(np.float64)
        v = self.index.vectors
        return np.einsum("bj,bkj->bk", q, v[safe].astype(np.float64)).astype(np.float32)

    # -- entry points ------------------------------------------------------------------------

    def scores_for_rows(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n) scores; each row's own article and no_index ones at -inf.

        For the learned method, articles that no signal proposed are at -inf in a
        bulk call. For a few rows (up to ``_FILL_ROWS``: the fallback of
        :meth:`Recommender.related` when filters reject the precomputed
        suggestions) they get finite scores below every candidate, ordered by
        their summed cosines, so filters can still be met.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if self.learned:
            scores = self._learned_scores(self.candidates_for_rows(rows), len(rows))
            if len(rows) <= _FILL_ROWS:
                rest = np.zeros_like(scores)
                for name in self.signals:
                    rest += self.signal_rows(name, rows)
                floor = np.where(np.isfinite(scores), scores, np.inf).min(axis=1, keepdims=True)
                floor = np.where(np.isfinite(floor), floor, 0.0)
                fill = floor - len(self.signals) - 1.0 + rest
                scores = np.where(np.isfinite(scores), scores, fill)
                scores[:, self.excluded] = -np.inf
                scores[np.arange(len(rows)), rows] = -np.inf
            return scores
        scores = np.zeros((len(rows), self.n), dtype=np.float64)
        for weight, name in self._fused_signals():
            scores += weight * self.signal_rows(name, rows)
        scores[:, self.excluded] = -np.inf
        scores[np.arange(len(rows)), rows] = -np.inf
        return scores

    def scores_for_text(self, text: str, vector: np.ndarray) -> np.ndarray:
        """(n,) scores of every article against free text and its embedding
        (:meth:`scores_for_texts` for one text)."""
        return self.scores_for_texts([text], vector[None, :])[0]

    def text_cosines(self, texts: list[str], vectors: np.ndarray) -> dict[str, np.ndarray]:
        """(b, n) cosines of each active signal against free texts and their embeddings."""
        out = {}
        for name in self.signals:
            if name == "dense":
                out[name] = np.asarray(vectors.astype(np.float32) @ self.index.vectors.T,
                                       dtype=np.float32)
            else:
                signal = self.state.signals[name]
                q = sp.vstack([signal.transform_text(t) for t in texts]).tocsr()
                out[name] = (q @ self.transposed(name)).toarray().astype(np.float32)
        return out

    def text_candidates(self, texts: list[str], vectors: np.ndarray,
                        exclude: list[np.ndarray] | None = None
                        ) -> tuple[Candidates, dict[str, np.ndarray]]:
        """Candidates and features of free texts (as for articles; no keywords, no subject),
        with the texts' full cosine rows.

        ``exclude[i]``: rows text ``i`` must not see at all, neither as candidates nor
        in its own neighbour lists (the draft protocol posts an article's title while
        the article is in the index: its features must be those of a new text, not
        2-hop scores through its own article).
        """
        cos = self.text_cosines(texts, vectors)
        if exclude is not None:
            for c in cos.values():
                for i, rows in enumerate(exclude):
                    c[i, rows] = -np.inf
        tops = {}
        for name, c in cos.items():
            if name == "dense" and exclude is None:
                lists = self.dense_neighbours(vectors.astype(np.float32))
            else:
                lists, _ = best_neighbours(self.mask(c, None), self.config.depth)
            tops[name] = (lists.rows, lists.scores)
        if exclude is not None:
            cos = {name: np.where(np.isfinite(c), c, 0).astype(np.float32)
                   for name, c in cos.items()}
        return self.candidates(tops, cos, None), cos

    def text_candidate_scores(self, cands: Candidates) -> np.ndarray:
        """Scores of free-text candidates: the text model (fitted on draft queries), never
        the article-to-article one; without it, the candidates' dense cosine."""
        if self.text_model is not None:
            return self.text_model.score(cands.features)
        names = feature_names(self.signals)
        col = names.index("dense_cos") if "dense_cos" in names else names.index(
            next(f for f in names if f.endswith("_cos")))
        return cands.features[:, col].astype(np.float64)

    def scores_for_texts(self, texts: list[str], vectors: np.ndarray,
                         exclude: list[np.ndarray] | None = None) -> np.ndarray:
        """(len(texts), n) scores of every article against free texts and their embeddings.

        Free text has no keywords and no subject: those features are zero. The
        learned method scores the signals' candidates with the *text* model
        (:attr:`text_model`, fitted on draft queries: an article's title posted as
        text); articles no signal proposed score below every candidate, by their
        summed cosines. The fused method is the weighted sum of the cosines.
        ``exclude``: rows each text must not see (:meth:`text_candidates`); ``-inf``.
        """
        b = len(texts)
        if self.learned:
            cands, cos = self.text_candidates(texts, vectors, exclude)
            scores = np.full((b, self.n), -np.inf, dtype=np.float64)
            scores[cands.query, cands.row] = self.text_candidate_scores(cands)
            finite = np.isfinite(scores)
            floor = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
            floor = np.where(np.isfinite(floor), floor, 0.0)
            rest = floor - len(self.signals) - 1.0 + sum(cos.values())
            scores = np.where(finite, scores, rest)
            scores[:, self.excluded] = -np.inf
            for i, rows in enumerate(exclude or []):
                scores[i, rows] = -np.inf
            return scores
        scores = np.zeros((b, self.n), dtype=np.float64)
        cos = self.text_cosines(texts, vectors)
        for weight, name in self._fused_signals():
            scores += weight * cos[name]
        scores[:, self.excluded] = -np.inf
        return scores

    def suggest_rows(self, rows: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``m`` best suggestions of article ``rows``: (len(rows), m) rows (-1 padded) and
        scores (-inf padded), best first, ties to the lower row."""
        rows = np.asarray(rows, dtype=np.int64)
        out_rows = np.full((len(rows), m), -1, np.int32)
        out_scores = np.full((len(rows), m), -np.inf, np.float32)
        for start in range(0, len(rows), _BLOCK):
            block = rows[start : start + _BLOCK]
            sl = slice(start, start + len(block))
            if self.learned:
                cands = self.candidates_for_rows(block)
                value = self.candidate_scores(cands)
                order = np.lexsort((cands.row, -value, cands.query))
                query, row, value = cands.query[order], cands.row[order], value[order]
                first = np.searchsorted(query, np.arange(len(block)))
                rank = np.arange(len(query)) - first[query]
                keep = rank < m
                out_rows[sl][query[keep], rank[keep]] = row[keep]
                out_scores[sl][query[keep], rank[keep]] = value[keep]
            else:
                scores = self.scores_for_rows(block)
                k = min(m, self.n)
                if k == 0:
                    continue
                cols = top_columns(scores, k)
                values = np.take_along_axis(scores, cols, axis=1)
                order = np.lexsort((cols, -values), axis=1)
                cols = np.take_along_axis(cols, order, axis=1)
                values = np.take_along_axis(values, order, axis=1)
                out_rows[sl][:, :k] = np.where(np.isfinite(values), cols, -1)
                out_scores[sl][:, :k] = values
        return out_rows, out_scores

    def scores_among(self, rows: np.ndarray, among: list[np.ndarray]) -> list[np.ndarray]:
        """Scores of a restricted candidate set per article row: ``among[i]`` for ``rows[i]``.

        Every candidate of the set is scored (learned: its features are computed for
        the pair, whether or not a signal proposed it; fused: the weighted sum of its
        cosines), so a filter such as ``same=date`` gets a full ranking of the set
        even when the precomputed suggestions hold few of its articles. Scores are
        aligned with ``among[i]``; the row itself and no_index articles are ``-inf``.
        """
        rows = np.asarray(rows, dtype=np.int64)
        among = [np.asarray(a, dtype=np.int64) for a in among]
        out = [np.full(len(a), -np.inf) for a in among]
        for start in range(0, len(rows), _BLOCK):
            block = rows[start : start + _BLOCK]
            sets = among[start : start + len(block)]
            sizes = [len(a) for a in sets]
            if not sum(sizes):
                continue
            query = np.repeat(np.arange(len(block), dtype=np.int64), sizes)
            cand = np.concatenate(sets)
            if self.learned:
                tops = {name: (self.lists[name].rows[block], self.lists[name].scores[block])
                        for name in self.signals}
                cands = self.candidates(tops, None, block, pairs=query * self.n + cand)
                value = self.candidate_scores(cands)
                got_key = cands.query * self.n + cands.row
            else:
                value = np.zeros(len(cand), np.float64)
                for weight, name in self._fused_signals():
                    value += weight * self.pair_cosines(name, block[query], cand)
                keep = ~self.excluded[cand] & (cand != block[query])
                got_key, value = (query * self.n + cand)[keep], value[keep]
            order = np.argsort(got_key)
            got_key, value = got_key[order], value[order]
            want = query * self.n + cand
            at = np.minimum(np.searchsorted(got_key, want), max(len(got_key) - 1, 0))
            found = (got_key[at] == want) if len(got_key) else np.zeros(len(want), bool)
            scores = np.where(found, value[at] if len(got_key) else 0.0, -np.inf)
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            for i in range(len(block)):
                out[start + i] = scores[bounds[i] : bounds[i + 1]]
        return out

    def features_for_rows(self, rows: np.ndarray) -> Candidates:
        """Candidates and features of article rows (for fitting the learned ranker)."""
        rows = np.asarray(rows, dtype=np.int64)
        parts = []
        for start in range(0, len(rows), _BLOCK):
            block = rows[start : start + _BLOCK]
            c = self.candidates_for_rows(block)
            parts.append(Candidates(c.query + start, c.row, c.features))
        if not parts:
            return Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64),
                              np.zeros((0, len(feature_names(self.signals))), np.float32))
        return Candidates(np.concatenate([p.query for p in parts]),
                          np.concatenate([p.row for p in parts]),
                          np.concatenate([p.features for p in parts]))


#: per-row arrays a ranker reads, by name, from the articles; each row's value depends on
#: its own article only, so an update carries kept rows' values over (pipeline.py)
ROW_ARRAYS: dict[str, Callable[[Sequence[Article]], np.ndarray]] = {
    "excluded": lambda articles: np.array([a.no_index for a in articles], dtype=bool),
    "subjects": lambda articles: np.array([hash(subject_key(a.subject)) for a in articles],
                                          dtype=np.int64),
}


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of an integer array by one sort (numpy's hash-based unique, which sorts
    afterwards anyway, is several times slower on the candidate keys of a batch)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def _list_stats(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per list (row of ``scores``): the mean, the spread (std + 1e-6) and the 10th score,
    which features compare a candidate's cosine with."""
    tenth = min(9, scores.shape[1] - 1)
    return scores.mean(1), scores.std(1) + 1e-6, scores[:, tenth]


def _positions(top: np.ndarray, key: np.ndarray, n: int, depth: int) -> np.ndarray:
    """Position of each (query, row) ``key`` in the queries' lists ``top``; ``depth`` if absent."""
    b, width = top.shape
    rows = top.astype(np.int64)
    valid = rows >= 0
    list_keys = (np.arange(b, dtype=np.int64)[:, None] * n + rows)[valid]
    positions = np.broadcast_to(np.arange(width, dtype=np.int32), top.shape)[valid]
    order = np.argsort(list_keys, kind="stable")
    list_keys, positions = list_keys[order], positions[order]
    at = np.searchsorted(list_keys, key)
    at_clipped = np.minimum(at, max(len(list_keys) - 1, 0))
    found = (at < len(list_keys)) & (list_keys[at_clipped] == key) if len(list_keys) else (
        np.zeros(len(key), dtype=bool))
    out = np.full(len(key), depth, np.int32)
    out[found] = positions[at_clipped[found]]
    return out
