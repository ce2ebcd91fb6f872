"""Approximate vector search (HNSW, IVF) against exact search, on a corpus's own vectors.

Run: ``python -m benchmarks.vector_search /work/shared/corpora/quicktakes-dev
--out results/vector_search.json [--config FILE.yaml] [--queries 4000]``

The dense neighbour lists are the vector search's whole job: every article's
``depth`` nearest articles (50 by default). For each FAISS configuration
(:class:`~recommender.config.VectorConfig`) this measures the time to build the
index over every article, the time to search a seeded sample of articles for
``depth + 17`` candidates (what :mod:`recommender.ranking` asks for), and the
recall of the ``depth`` exact nearest neighbours among them (itself excluded).
Exact search is the default; the approximate ones are for corpora of millions,
where exact search grows with the corpus for every query.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import stamp, write_results
from recommender.config import BuildConfig, VectorConfig
from recommender.corpus import load_corpus
from recommender.embedding import embed_corpus
from recommender.ranking import SEARCH_SLACK
from recommender.vectors import VectorSearch

CONFIGS = {
    "flat (exact, default)": VectorConfig(),
    "hnsw M=32 efSearch=64": VectorConfig(index="hnsw", ef_search=64),
    "hnsw M=32 efSearch=128": VectorConfig(index="hnsw", ef_search=128),
    "hnsw M=32 efSearch=256": VectorConfig(index="hnsw", ef_search=256),
    "ivf nprobe=8": VectorConfig(index="ivf", nprobe=8),
    "ivf nprobe=16": VectorConfig(index="ivf", nprobe=16),
    "ivf nprobe=32": VectorConfig(index="ivf", nprobe=32),
}


def recall(truth: np.ndarray, found: np.ndarray, queries: np.ndarray, depth: int) -> float:
    hits = total = 0
    for q, t, f in zip(queries.tolist(), truth, found, strict=True):
        wanted = [r for r in t.tolist() if r not in (q, -1)][:depth]
        hits += len(set(wanted) & set(f.tolist()))
        total += len(wanted)
    return hits / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("content", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/vector_search.json"))
    parser.add_argument("--config", type=Path)
    parser.add_argument("--queries", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = BuildConfig.from_yaml(args.config) if args.config else BuildConfig()
    corpus = load_corpus(args.content)
    vectors = embed_corpus(corpus, config)
    depth = config.ranking.depth
    k = depth + SEARCH_SLACK + 1
    rng = np.random.default_rng(args.seed)
    queries = np.sort(rng.choice(len(vectors), min(args.queries, len(vectors)), replace=False))
    rows = []
    truth = None
    for name, vector_config in CONFIGS.items():
        t = time.perf_counter()
        search = VectorSearch(vectors, vector_config)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        found = search.search(vectors[queries], k)
        search_s = time.perf_counter() - t
        if truth is None:
            truth = found
        row = {"name": name, "config": vector_config.model_dump(mode="json"),
               "build_seconds": round(build_s, 3), "search_seconds": round(search_s, 3),
               "search_ms_per_query": round(1000 * search_s / len(queries), 3),
               f"recall@{depth}": round(recall(truth, found, queries, depth), 5),
               "recall@10": round(recall(truth, found, queries, 10), 5)}
        rows.append(row)
        print(row, flush=True)
    write_results(args.out, {
        **stamp({"content": str(args.content), "queries": len(queries), "seed": args.seed,
                 "candidates_per_query": k, "config": config.model_dump(mode="json")}),
        "articles": len(vectors), "dim": int(vectors.shape[1]), "rows": rows})


if __name__ == "__main__":
    main()
