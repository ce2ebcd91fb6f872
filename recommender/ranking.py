"""Score every candidate article for a query from several content similarity signals.

Signals are cosines: ``dense`` (embeddings of the index's model), ``lexical``
(TF-IDF over words of ``lexical_fields``), ``description`` (TF-IDF over the SEO
page description) and ``keywords`` (TF-IDF over curated keyword phrases).

Two ways of combining them (:class:`~recommender.config.RankingConfig` ``method``):

``fused``
    the weighted sum of the raw cosines, scored against every article.
``learned`` (the default)
    a re-ranker. Each signal proposes its ``pool`` best articles; every proposed
    candidate gets features that look beyond one raw cosine: per-query normalised
    scores (z-score and gap to the query's 10th neighbour), the candidate's rank in
    the query's list and the *query's* rank in the candidate's list (mutual
    neighbours: the articles written from one source cluster tightly), the same
    normalisations from the candidate's side (which tames hubs), a 2-hop score
    (neighbours of neighbours) and whether the subjects match. A small model fitted
    on curated links (gradient-boosted trees or a logistic regression, stored as
    plain JSON) turns the features into a score; articles no signal proposed score
    ``-inf``.

No feature is derived from id, date, file order or publication batch, on purpose:
such signals raise the metric (links were made batch by batch) without making
suggestions better for a reader. Links are only the training labels, and the
evaluation fits the model with folds grouped by publication batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.config import RankingConfig
from recommender.corpus import Corpus, subject_key
from recommender.index import Index
from recommender.lexical import LexicalIndex, NeighbourLists, SparseSignal

#: how many ranked candidates are precomputed per article at build time
NEIGHBOURS = 100
_BLOCK = 512
#: the repository's models folder (shipped learned-ranker parameters live in models/ranker/)
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
#: signals in feature order; those with weight 0 in the configuration are left out
SIGNALS = ("lexical", "description", "keywords", "dense")
#: signals that also get a 2-hop (neighbours of neighbours) feature
TWO_HOP = ("lexical", "dense")
_PER_SIGNAL = ("cos", "rank_q", "rank_c", "z_q", "z_c", "gap_q", "gap_c")
_HOP_FROM = 10  # 2-hop: through the query's 10 nearest neighbours
#: calls of scores_for_rows with at most this many rows score every article (see there)
_FILL_ROWS = 4


def feature_names(signals: Sequence[str]) -> list[str]:
    """Names of the learned ranker's features for the given active signals, in order."""
    names = [f"{s}_{f}" for s in signals for f in _PER_SIGNAL]
    names += [f"{s}_2hop" for s in signals if s in TWO_HOP]
    return names + ["same_subject", "n_signals"]


# -- learned model ---------------------------------------------------------------------------


@dataclass
class LearnedModel:
    """Parameters of the re-ranker: a logistic regression or an ensemble of trees.

    Stored as JSON (no pickle). Trees use scikit-learn's convention: go left when
    ``x[feature] <= threshold``; the score is ``baseline + sum of leaf values``.
    """

    features: list[str]
    kind: str  # "logistic" | "trees"
    params: dict[str, Any]
    note: str = ""

    def score(self, x: np.ndarray) -> np.ndarray:
        """Raw (log-odds) scores of feature rows ``x`` (n, len(features))."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "logistic":
            mean = np.asarray(self.params["mean"])
            scale = np.asarray(self.params["scale"])
            coef = np.asarray(self.params["coef"])
            return ((x - mean) / scale) @ coef + float(self.params["intercept"])
        if self.kind == "trees":
            return self._trees(x)
        raise ValueError(f"unknown learned model kind {self.kind!r}")

    def _trees(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        if "_arrays" not in p:  # padded (trees, nodes) arrays, built once
            trees = p["trees"]
            width = max(len(t["feature"]) for t in trees)
            arrays = {}
            for key, dtype in (("feature", np.int64), ("threshold", np.float64),
                               ("left", np.int64), ("right", np.int64),
                               ("leaf", bool), ("value", np.float64)):
                a = np.zeros((len(trees), width), dtype=dtype)
                for i, t in enumerate(trees):
                    a[i, : len(t[key])] = t[key]
                arrays[key] = a
            arrays["depth"] = int(max(t["depth"] for t in trees))
            p["_arrays"] = arrays
        a = p["_arrays"]
        n_trees = a["feature"].shape[0]
        out = np.full(len(x), float(p["baseline"]))
        tree_ix = np.arange(n_trees)[None, :]
        for start in range(0, len(x), 20000):
            xb = x[start : start + 20000]
            node = np.zeros((len(xb), n_trees), dtype=np.int64)
            rows = np.arange(len(xb))[:, None]
            for _ in range(a["depth"] + 1):
                leaf = a["leaf"][tree_ix, node]
                if leaf.all():
                    break
                f = a["feature"][tree_ix, node]
                go_left = xb[rows, f] <= a["threshold"][tree_ix, node]
                nxt = np.where(go_left, a["left"][tree_ix, node], a["right"][tree_ix, node])
                node = np.where(leaf, node, nxt)
            out[start : start + 20000] += a["value"][tree_ix, node].sum(axis=1)
        return out

    def to_json(self) -> str:
        params = {k: v for k, v in self.params.items() if not k.startswith("_")}
        return json.dumps({"kind": self.kind, "features": self.features, "note": self.note,
                           "params": params})

    @classmethod
    def from_json(cls, text: str) -> LearnedModel:
        data = json.loads(text)
        return cls(list(data["features"]), data["kind"], data["params"], data.get("note", ""))

    @classmethod
    def load(cls, path: str | Path) -> LearnedModel:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(self.to_json(), encoding="utf-8")


def resolve_model_path(name: str) -> Path:
    """``default`` or another bare name = ``models/ranker/<name>.json``; else a file path."""
    path = Path(name).expanduser()
    if path.suffix == ".json" or path.is_absolute() or len(path.parts) > 1:
        return path
    return MODELS_DIR / "ranker" / f"{name}.json"


def fit_model(x: np.ndarray, y: np.ndarray, features: list[str], kind: str = "logistic",
              seed: int = 0, note: str = "") -> LearnedModel:
    """Fit the re-ranker on candidate feature rows ``x`` and 0/1 labels ``y``.

    ``trees``: scikit-learn's HistGradientBoostingClassifier, exported node by node;
    ``logistic``: a standardised logistic regression.
    """
    y = np.asarray(y, dtype=np.int64)
    if kind == "logistic" or len(np.unique(y)) < 2:
        from sklearn.linear_model import LogisticRegression

        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        if len(np.unique(y)) < 2:  # nothing to learn from: fall back to the raw cosines
            coef = np.array([1.0 if f.endswith("_cos") else 0.0 for f in features]) * scale
            return LearnedModel(features, "logistic", {
                "mean": mean.tolist(), "scale": scale.tolist(), "coef": coef.tolist(),
                "intercept": 0.0}, note or "no positive labels: sum of cosines")
        lr = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y)
        return LearnedModel(features, "logistic", {
            "mean": mean.tolist(), "scale": scale.tolist(), "coef": lr.coef_[0].tolist(),
            "intercept": float(lr.intercept_[0])}, note)
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, max_leaf_nodes=31,
                                         min_samples_leaf=40, random_state=seed)
    clf.fit(x, y)
    trees = []
    for (predictor,) in clf._predictors:
        nodes = predictor.nodes
        trees.append({
            "feature": nodes["feature_idx"].tolist(),
            "threshold": nodes["num_threshold"].tolist(),
            "left": nodes["left"].astype(np.int64).tolist(),
            "right": nodes["right"].astype(np.int64).tolist(),
            "leaf": nodes["is_leaf"].astype(bool).tolist(),
            "value": nodes["value"].tolist(),
            "depth": int(nodes["depth"].max()),
        })
    return LearnedModel(features, "trees", {
        "baseline": float(np.ravel(clf._baseline_prediction)[0]), "trees": trees}, note)


# -- candidate features ----------------------------------------------------------------------


@dataclass
class Candidates:
    """Candidate pairs of a batch of queries: query position, candidate row, features."""

    query: np.ndarray  # (m,) position of the query in the batch
    row: np.ndarray  # (m,) candidate article row
    features: np.ndarray  # (m, n_features) float32


class Ranker:
    """Scores of all articles against article rows or free text."""

    def __init__(self, index: Index):
        self.index = index
        self.config: RankingConfig = index.config.ranking
        self.excluded = np.array([a.no_index for a in index.articles], dtype=bool)
        self.subject = np.array([hash(subject_key(a.subject)) for a in index.articles])
        self.learned = self.config.method == "learned"
        self.signals = [s for s in SIGNALS if getattr(self.config, s) > 0]
        lexical = index.lexical
        self.lists: dict[str, NeighbourLists] = lexical.neighbours if lexical else {}
        self.model: LearnedModel | None = lexical.model if lexical else None
        self._two_hop: dict[str, sp.csr_matrix] = {}
        self._transposed: dict[str, sp.csr_matrix] = {}

    @classmethod
    def build(cls, index: Index, corpus: Corpus, model: LearnedModel | None = None,
              reuse: LexicalIndex | None = None, reuse_dense: bool = False) -> Ranker:
        """Fit the sparse signals, and for the learned method the neighbour lists and model.

        ``model`` overrides the configuration's ``model`` file (the evaluation passes
        a model fitted on training folds only). ``reuse``: the state of another
        ranker over the same corpus, whose sparse signals (same fields) and their
        neighbour lists (same depth) are taken instead of refitted; its dense lists
        too with ``reuse_dense`` (same vectors). For comparing configurations.
        """
        cfg = index.config.ranking
        wanted = {"lexical": ("words", cfg.lexical_fields),
                  "description": ("words", ("description",)), "keywords": ("keywords", ())}
        signals: dict[str, SparseSignal] = {}
        lists: dict[str, NeighbourLists] = {}
        for name, (kind, fields) in wanted.items():
            if getattr(cfg, name) <= 0:
                continue
            old = reuse.signals.get(name) if reuse is not None else None
            if old is not None and old.fields == tuple(fields):
                signals[name] = old
                if reuse is not None and name in reuse.neighbours:
                    lists[name] = reuse.neighbours[name]
            else:
                signals[name] = SparseSignal.fit(corpus.articles, kind, fields)
        if reuse_dense and reuse is not None and "dense" in reuse.neighbours:
            lists["dense"] = reuse.neighbours["dense"]
        index.lexical = LexicalIndex(signals)
        ranker = cls(index)
        if ranker.learned:
            lists = {k: v for k, v in lists.items() if v.rows.shape[1] == cfg.depth}
            index.lexical.neighbours = ranker.compute_lists(lists)
            if model is None and cfg.model is not None:
                path = resolve_model_path(cfg.model)
                if path.exists():
                    model = LearnedModel.load(path)
            index.lexical.model = model
            ranker = cls(index)
            ranker.check_model()
        return ranker

    def with_model(self, model: LearnedModel | None) -> Ranker:
        """This ranker with other learned parameters (same index, lists and signals)."""
        if self.index.lexical is not None:
            self.index.lexical.model = model
        self.model = model
        self.check_model()
        return self

    def check_model(self) -> None:
        if self.model is not None and self.model.features != feature_names(self.signals):
            raise ValueError("the learned ranker was fitted on features "
                             f"{self.model.features}, this configuration gives "
                             f"{feature_names(self.signals)}")

    # -- raw signals ---------------------------------------------------------------------------

    def _sparse(self, name: str) -> SparseSignal:
        assert self.index.lexical is not None
        return self.index.lexical.signals[name]

    def signal_rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n) cosines of one signal."""
        if name == "dense":
            v = self.index.vectors
            return np.asarray(v[rows] @ v.T, dtype=np.float32)
        m = self._sparse(name).matrix
        if name not in self._transposed:  # csr @ csr: scipy would convert a csc .T each call
            self._transposed[name] = sp.csr_matrix(m.T)
        return (m[rows] @ self._transposed[name]).toarray().astype(np.float32)

    def signal_text(self, name: str, text: str, vector: np.ndarray) -> np.ndarray:
        """(n,) cosines of one signal against free text (keywords: all zero)."""
        if name == "dense":
            return np.asarray(self.index.vectors @ vector.astype(np.float32), dtype=np.float32)
        s = self._sparse(name)
        return (s.matrix @ s.transform_text(text).T).toarray().ravel().astype(np.float32)

    def _fused_signals(self) -> Iterator[tuple[float, str]]:
        for name in self.signals:
            if name == "dense" or (self.index.lexical and name in self.index.lexical.signals):
                yield getattr(self.config, name), name

    # -- neighbour lists (learned method) ---------------------------------------------------

    def compute_lists(self, known: dict[str, NeighbourLists] | None = None
                      ) -> dict[str, NeighbourLists]:
        """Every article's ``depth`` nearest articles under each signal (build time).

        Lists in ``known`` are kept as they are.
        """
        n, depth = len(self.index.articles), self.config.depth
        out: dict[str, NeighbourLists] = dict(known or {})
        for name in self.signals:
            if name in out:
                continue
            rows = np.zeros((n, depth), np.int32)
            scores = np.zeros((n, depth), np.float32)
            for start in range(0, n, _BLOCK):
                block = np.arange(start, min(start + _BLOCK, n))
                cos = self._mask(self.signal_rows(name, block), block)
                rows[block], scores[block] = top_k(cos, depth, pad=True)
            out[name] = NeighbourLists(rows, scores)
        return out

    def _mask(self, cos: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        cos = cos.copy()
        cos[:, self.excluded] = -1.0
        if rows is not None:
            cos[np.arange(len(rows)), rows] = -1.0
        return cos

    def _hop_matrix(self, name: str) -> sp.csr_matrix:
        if name not in self._two_hop:
            lists = self.lists[name]
            n, depth = lists.rows.shape
            self._two_hop[name] = sp.csr_matrix(
                (np.maximum(lists.scores, 0).ravel(),
                 (np.repeat(np.arange(n), depth), lists.rows.ravel())), shape=(n, n))
        return self._two_hop[name]

    def _tops_from_cosines(self, cos: dict[str, np.ndarray], rows: np.ndarray | None
                           ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        depth = self.config.depth
        return {name: top_k(self._mask(c, rows), depth, pad=True) for name, c in cos.items()}

    def _pair_cosines(self, name: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Cosines of article pairs (``left[i]``, ``right[i]``) under one signal."""
        if name == "dense":
            v = self.index.vectors
            return np.einsum("ij,ij->i", v[left], v[right]).astype(np.float32)
        m = self._sparse(name).matrix
        out = np.zeros(len(left), np.float32)
        for start in range(0, len(left), 100_000):
            sl = slice(start, start + 100_000)
            out[sl] = np.asarray(m[left[sl]].multiply(m[right[sl]]).sum(axis=1)).ravel()
        return out

    def _has_lists(self) -> bool:
        return all(name in self.lists for name in self.signals)

    def candidates_for_rows(self, rows: np.ndarray) -> Candidates:
        """Candidates and features of article rows, from the stored neighbour lists.

        Cheaper than scoring every article: each signal's list gives the query's
        side, and only the candidates' cosines are computed (pair by pair).
        """
        rows = np.asarray(rows, dtype=np.int64)
        if not self._has_lists():
            cos = {name: self.signal_rows(name, rows) for name in self.signals}
            return self.candidates(self._tops_from_cosines(cos, rows), cos, rows)
        tops = {name: (self.lists[name].rows[rows], self.lists[name].scores[rows])
                for name in self.signals}
        return self.candidates(tops, None, rows)

    def candidates(self, tops: dict[str, tuple[np.ndarray, np.ndarray]],
                   cos: dict[str, np.ndarray] | None, rows: np.ndarray | None) -> Candidates:
        """Candidates and features for a batch of queries.

        ``tops[name]`` are the queries' ``depth`` nearest rows and cosines under
        each active signal; ``cos[name]``, when given, their full (b, n) cosine rows
        (free text); otherwise candidates' cosines are computed pair by pair from
        the query ``rows``, which are never candidates themselves.
        """
        cfg = self.config
        depth, pool = cfg.depth, min(cfg.pool, cfg.depth)
        b = next(iter(tops.values()))[0].shape[0]
        member = np.zeros((b, len(self.index.articles)), dtype=bool)
        for top, _ in tops.values():
            np.put_along_axis(member, top[:, :pool].astype(np.int64), True, axis=1)
        member[:, self.excluded] = False
        if rows is not None:
            member[np.arange(b), rows] = False
        query, row = np.nonzero(member)
        if len(query) == 0:  # e.g. a one-article corpus
            return Candidates(query, row, np.zeros((0, len(feature_names(self.signals))),
                                                   np.float32))
        feats: list[np.ndarray] = []
        in_list = np.zeros(len(query), np.float32)
        for name in self.signals:
            top, top_scores = tops[name]
            if cos is not None:
                value = cos[name][query, row]
            else:
                assert rows is not None
                value = self._pair_cosines(name, rows[query], row)
            position = np.full((b, member.shape[1]), depth, dtype=np.int32)
            np.put_along_axis(position, top.astype(np.int64),
                              np.broadcast_to(np.arange(depth, dtype=np.int32), top.shape), axis=1)
            pos_q = position[query, row]
            in_list += pos_q < depth
            own = self.lists[name].scores[row]  # the candidate's own neighbour scores
            pos_c = (own > value[:, None]).sum(axis=1)
            q_scores = top_scores[query]
            feats += [value, 1.0 / (1.0 + pos_q), 1.0 / (1.0 + pos_c),
                      (value - q_scores.mean(1)) / (q_scores.std(1) + 1e-6),
                      (value - own.mean(1)) / (own.std(1) + 1e-6),
                      value - q_scores[:, min(9, depth - 1)], value - own[:, min(9, depth - 1)]]
        for name in self.signals:
            if name not in TWO_HOP:
                continue
            top, top_scores = tops[name]
            k = min(_HOP_FROM, depth)
            first = sp.csr_matrix((np.maximum(top_scores[:, :k], 0).ravel(),
                                   (np.repeat(np.arange(b), k), top[:, :k].ravel())),
                                  shape=(b, member.shape[1]))
            hop = (first @ self._hop_matrix(name)).tocsr()
            feats.append(np.asarray(hop[query, row]).ravel())
        if rows is not None:
            same = self.subject[rows][query] == self.subject[row]
        else:
            same = np.zeros(len(query), dtype=bool)
        feats += [same.astype(np.float32), in_list]
        return Candidates(query, row, np.stack(feats, axis=1).astype(np.float32))

    def _learned_scores(self, cands: Candidates, b: int) -> np.ndarray:
        out = np.full((b, len(self.index.articles)), -np.inf, dtype=np.float64)
        if self.model is None:  # no parameters: sum of the cosines, over candidates only
            names = feature_names(self.signals)
            cols = [i for i, f in enumerate(names) if f.endswith("_cos")]
            value = cands.features[:, cols].sum(axis=1)
        else:
            value = self.model.score(cands.features)
        out[cands.query, cands.row] = value
        return out

    # -- entry points ------------------------------------------------------------------------

    def scores_for_rows(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n) scores; each row's own article and no_index ones at -inf.

        For the learned method, articles that no signal proposed are at -inf in a
        bulk call (precomputing neighbours). For a few rows (up to
        ``_FILL_ROWS``: the fallback of :meth:`Recommender.related` when filters
        reject the precomputed neighbours) they get finite scores below every
        candidate, ordered by their summed cosines, so filters can still be met.
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
        scores = np.zeros((len(rows), len(self.index.articles)), dtype=np.float64)
        for weight, name in self._fused_signals():
            scores += weight * self.signal_rows(name, rows)
        scores[:, self.excluded] = -np.inf
        scores[np.arange(len(rows)), rows] = -np.inf
        return scores

    def scores_for_text(self, text: str, vector: np.ndarray) -> np.ndarray:
        """(n,) scores of every article against free text and its embedding.

        Free text has no keywords and no subject: those features are zero, and the
        other signals carry the ranking. With the learned method, articles no
        signal proposed score below every candidate, by their summed cosines.
        """
        if self.learned:
            cos = {name: self.signal_text(name, text, vector)[None, :] for name in self.signals}
            scores = self._learned_scores(
                self.candidates(self._tops_from_cosines(cos, None), cos, None), 1)[0]
            finite = np.isfinite(scores)
            floor = scores[finite].min() if finite.any() else 0.0
            rest = floor - len(self.signals) - 1.0 + sum(cos.values())[0]
            scores = np.where(finite, scores, rest)
            scores[self.excluded] = -np.inf
            return scores
        scores = np.zeros(len(self.index.articles), dtype=np.float64)
        for weight, name in self._fused_signals():
            scores += weight * self.signal_text(name, text, vector)
        scores[self.excluded] = -np.inf
        return scores

    def all_neighbours(self, m: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
        """Top ``m`` candidates of every article, best first (-1 padded when fewer exist)."""
        n = len(self.index.articles)
        m_eff = min(m, max(n - 1, 0))
        rows_out = np.full((n, m), -1, dtype=np.int32)
        scores_out = np.full((n, m), -np.inf, dtype=np.float32)
        for start in range(0, n, _BLOCK):
            block = np.arange(start, min(start + _BLOCK, n))
            top, top_scores = top_k(self.scores_for_rows(block), m_eff)
            rows_out[block, :m_eff], scores_out[block, :m_eff] = top, top_scores
        rows_out[~np.isfinite(scores_out)] = -1
        return rows_out, scores_out

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


def top_k(scores: np.ndarray, k: int, pad: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` best scores of each row, best first.

    torch's top-k is about ten times faster than numpy's argpartition on wide rows,
    which matters when neighbours of every article are precomputed; numpy is the
    fallback for installs without torch. ``pad`` allows ``k`` wider than the rows
    (extra columns repeat the last index with score -1).
    """
    width = scores.shape[1]
    if pad and k > width:
        rows, values = top_k(scores, width)
        extra = k - width
        last = rows[:, -1:] if width else np.zeros((len(rows), 1), np.int32)
        return (np.concatenate([rows, np.repeat(last, extra, axis=1)], axis=1),
                np.concatenate([values, np.full((len(rows), extra), -1.0, np.float32)], axis=1))
    if k <= 0:
        return (np.zeros((scores.shape[0], 0), np.int32), np.zeros((scores.shape[0], 0)))
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        values, indices = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k, dim=1)
        return indices.numpy().astype(np.int32), values.numpy().astype(np.float32)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return (np.take_along_axis(part, order, axis=1).astype(np.int32),
            np.take_along_axis(part_scores, order, axis=1).astype(np.float32))
