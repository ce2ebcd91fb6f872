"""Ranking metrics, per query, with numpy.

Per-query values (not only means) so that the bootstrap can pair two methods
query by query and so that any breakdown (per subject) is a plain group mean.
Relevance metrics follow ranx's definitions exactly (binary relevance):

- ``recall@k``    = hits in top k / number of relevant
- ``precision@k`` = hits in top k / k (a short list is not rewarded)
- ``hit_rate@k``  = 1 if any hit in top k
- ``ndcg@k``      = sum(hit_i / log2(i + 1)) / sum_{i <= min(R, k)} 1 / log2(i + 1)
- ``map@k``       = sum over hit positions i <= k of precision@i, divided by R
- ``mrr@k``       = 1 / rank of the first hit within k, else 0

Beyond relevance: catalog coverage, intra-list diversity and cross-subject share,
which say what a method shows users even where the curated links are silent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

RELEVANCE_METRICS: tuple[str, ...] = ("recall", "precision", "hit_rate", "ndcg", "map", "mrr")


def hit_matrix(ranked: Sequence[Sequence[int]], relevant: Sequence[np.ndarray],
               depth: int) -> np.ndarray:
    """Boolean (queries x depth): is the item at rank i relevant? Short lists pad with False.

    ``ranked`` and ``relevant`` hold comparable ids (content indices here).
    """
    hits = np.zeros((len(ranked), depth), dtype=bool)
    for q, (items, answers) in enumerate(zip(ranked, relevant, strict=True)):
        top = np.asarray(list(items)[:depth], dtype=np.int64)
        if len(top):
            hits[q, : len(top)] = np.isin(top, answers)
    return hits


def relevance_metrics(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-query ``recall@k`` ... ``mrr@k`` from a hit matrix (ranx definitions)."""
    if k > hits.shape[1]:
        raise ValueError(f"k={k} exceeds the hit matrix depth {hits.shape[1]}")
    h = hits[:, :k].astype(np.float64)
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    safe = np.maximum(n_rel, 1.0)
    found = h.sum(axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.concatenate(([0.0], np.cumsum(discount)))[np.minimum(n_rel, k).astype(np.int64)]
    dcg = h @ discount
    precision_at_i = np.cumsum(h, axis=1) / np.arange(1, k + 1)
    first = np.argmax(h, axis=1)
    has = found > 0
    none = n_rel == 0
    out = {
        "recall": found / safe,
        "precision": found / k,
        "hit_rate": has.astype(np.float64),
        "ndcg": dcg / np.where(ideal > 0, ideal, 1.0),
        "map": (precision_at_i * h).sum(axis=1) / safe,
        "mrr": np.where(has, 1.0 / (first + 1), 0.0),
    }
    return {f"{name}@{k}": np.where(none, 0.0, v) for name, v in out.items()}


def recall_curve(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Mean recall@k for k = 1..depth (one number per k), for the recall-vs-k plot."""
    n_rel = np.maximum(np.asarray(n_relevant, dtype=np.float64), 1.0)
    return (np.cumsum(hits, axis=1) / n_rel[:, None]).mean(axis=0)


def catalog_coverage(ranked: Sequence[Sequence[int]], n_candidates: int, k: int) -> float:
    """Share of candidate contents that appear in at least one top-k list.

    A method that always shows the same few articles scores low even if they are
    often relevant.
    """
    shown: set[int] = set()
    for items in ranked:
        shown.update(int(i) for i in list(items)[:k])
    return len(shown) / n_candidates if n_candidates else 0.0


def intra_list_diversity(ranked_rows: Sequence[Sequence[int]], vectors: sp.spmatrix | np.ndarray,
                         k: int) -> np.ndarray:
    """Per query: mean pairwise cosine distance among its top-k suggestions' vectors.

    ``vectors`` are L2-normalised rows (one per article). Uses the identity
    sum_{i != j} v_i.v_j = |sum v|^2 - sum |v_i|^2, so every list is scored with two
    sparse products instead of k^2 dot products. NaN for lists shorter than 2.
    A zero vector counts as cosine 0 to everything.
    """
    n_q = len(ranked_rows)
    indptr = [0]
    cols: list[int] = []
    for items in ranked_rows:
        top = [int(i) for i in list(items)[:k]]
        cols.extend(top)
        indptr.append(len(cols))
    n_rows = vectors.shape[0]
    pick = sp.csr_matrix((np.ones(len(cols)), np.array(cols, dtype=np.int64),
                          np.array(indptr, dtype=np.int64)), shape=(n_q, n_rows))
    if sp.issparse(vectors):
        summed = sp.csr_matrix(pick @ vectors)
        sq_sum = np.asarray(summed.multiply(summed).sum(axis=1)).ravel()
        norms = np.asarray(sp.csr_matrix(vectors).multiply(vectors).sum(axis=1)).ravel()
    else:
        summed_d = pick @ np.asarray(vectors, dtype=np.float64)
        sq_sum = (summed_d**2).sum(axis=1)
        norms = (np.asarray(vectors, dtype=np.float64) ** 2).sum(axis=1)
    own = pick @ norms
    m = np.diff(pick.indptr).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sim = (sq_sum - own) / (m * (m - 1))
    return np.where(m >= 2, 1.0 - mean_sim, np.nan)


def cross_subject_share(query_subjects: Sequence[str],
                        ranked_subjects: Sequence[Sequence[str]], k: int) -> np.ndarray:
    """Per query: share of its top-k suggestions filed under another subject. NaN if none."""
    out = np.full(len(query_subjects), np.nan)
    for q, (subject, subjects) in enumerate(zip(query_subjects, ranked_subjects, strict=True)):
        top = list(subjects)[:k]
        if top:
            out[q] = sum(s != subject for s in top) / len(top)
    return out


def mean(values: np.ndarray) -> float:
    """Mean ignoring NaN (lists too short to define a value); NaN if nothing is defined."""
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if len(defined) else float("nan")


def group_means(per_query: Mapping[str, np.ndarray], groups: Sequence[str]
                ) -> dict[str, dict[str, float]]:
    """Mean of every per-query metric within each group (e.g. the query's subject)."""
    labels = np.asarray(groups, dtype=object)
    out: dict[str, dict[str, float]] = {}
    for g in sorted(set(labels.tolist())):
        mask = labels == g
        out[g] = {name: mean(values[mask]) for name, values in per_query.items()}
        out[g]["queries"] = float(mask.sum())
    return out
