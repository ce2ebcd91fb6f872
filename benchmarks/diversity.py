"""MMR diversity against recall: what ``related(..., diversity=λ)`` costs and buys.

Run: ``python -m benchmarks.diversity CONTENT --index DIR [--max-queries N]
[--out results/diversity.json]``

The product's ranking is computed once, leakage-free (its learned re-ranker refitted
per publication-batch fold, as ``recommender evaluate`` does), keeping each query's
best ``max(4k, 20)`` distinct suggestions with their scores: the pool the library
re-orders. For each λ the pool is re-ordered by :func:`~recommender.recommender.mmr_order`
over the dense vectors, exactly as the library does, and scored at k = 5 (pool 20)
and k = 10 (pool 40): recall, nDCG, and intra-list diversity (mean pairwise cosine
distance of the suggestions' TF-IDF vectors: the evaluation's yardstick, not the
vectors MMR uses). Paired bootstrap intervals compare each λ with λ = 0.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import stamp, write_results
from recommender.config import BuildConfig
from recommender.evaluation import (
    LexicalFeatures,
    build_protocol,
    paired_bootstrap,
    publication_folds,
    run_method,
    score_suggestions,
)
from recommender.evaluation.methods import _mask, top_rows
from recommender.evaluation.product import ProductMethod
from recommender.pipeline import open_index
from recommender.recommender import DIVERSITY_POOL, mmr_order

LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)


class PoolRecorder:
    """The product's collapsed ranking, keeping each query's pool and its scores."""

    def __init__(self, base: ProductMethod, protocol, pool: int):
        self.name, self.base, self.space, self.pool = "product", base, protocol.space, pool
        self.kept: dict[int, tuple[list[int], np.ndarray]] = {}
        self.fit = base.fit

    def rank(self, queries: np.ndarray, n: int) -> list[list[int]]:
        out = []
        for start in range(0, len(queries), 512):
            block = np.asarray(queries[start : start + 512], dtype=np.int64)
            scores = _mask(self.base.scores(block), block, self.base.excluded)
            top = top_rows(scores, self.space.depth(self.pool), self.base.tiebreak)
            for i, q in enumerate(block.tolist()):
                rows = self.space.collapse(q, top[i], self.pool)
                self.kept[q] = (rows, scores[i, rows])
                out.append(rows)
        return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("content", type=Path)
    ap.add_argument("--index", type=Path, default=None)
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("results/diversity.json"))
    args = ap.parse_args(argv)
    started = time.perf_counter()
    opened = open_index(args.content, BuildConfig(), args.index, full_text=True)
    corpus, snapshot = opened.corpus, opened.snapshot
    protocol = build_protocol(corpus, max_queries=args.max_queries, seed=args.seed)
    features = LexicalFeatures(corpus)
    vectors = snapshot.index.vectors
    folds = publication_folds(corpus, args.folds, args.seed, protocol.queries)
    pool = max(4 * 10, DIVERSITY_POOL)
    recorder = PoolRecorder(ProductMethod(corpus, BuildConfig(), snapshot=snapshot,
                                          seed=args.seed), protocol, pool)
    run_method(protocol, recorder, pool, folds)
    ranked = time.perf_counter() - started
    rows: dict[str, object] = {}
    baseline = {}
    for k in (5, 10):
        size = max(4 * k, DIVERSITY_POOL)
        for lam in LAMBDAS:
            lists = []
            for q in protocol.queries.tolist():
                pool_rows, scores = recorder.kept[q]
                pool_rows, scores = pool_rows[:size], scores[:size]
                order = mmr_order(scores, vectors[pool_rows], k, lam) if pool_rows else []
                lists.append([pool_rows[j] for j in order])
            result = score_suggestions(protocol, f"λ={lam}", lists, [k], features.tfidf)
            metrics = [f"recall@{k}", f"ndcg@{k}", f"diversity@{k}"]
            entry = {m: result.metrics[m] for m in metrics}
            if lam == 0.0:
                baseline[k] = result
            else:
                entry["vs λ=0"] = [i.as_dict() for i in paired_bootstrap(
                    result.name, result.per_query, "λ=0", baseline[k].per_query, metrics,
                    args.resamples, seed=args.seed)]
            rows[f"k={k} λ={lam}"] = entry
            print(f"k={k} λ={lam}: " + ", ".join(f"{m} {entry[m]:.4f}" for m in metrics),
                  flush=True)
    write_results(args.out, {
        **stamp({"content": str(args.content), "max_queries": args.max_queries,
                 "folds": args.folds, "seed": args.seed, "lambdas": list(LAMBDAS),
                 "pool": "max(4k, 20) best distinct suggestions, as the library"}),
        "queries": len(protocol.queries),
        "results": rows,
        "seconds": {"ranking": round(ranked, 1), "total": round(time.perf_counter() - started, 1)},
    })


if __name__ == "__main__":
    main()
