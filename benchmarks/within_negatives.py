"""Batch-mate negatives of the LambdaRank re-ranker, measured within the batch.

Run: ``python -m benchmarks.within_negatives CONTENT [--max-queries 3000]
[--train-queries 3000] [--per-query 40 1000] [--whole-corpus] [--out FILE]``

Each training query's list is what the signals propose plus ``per_query`` articles of
its publication batch (:func:`recommender.fitting.batch_mates`). With a sample of the
batch, the query's curated targets in the batch are added to it, so the unlisted rows
a model sees are positive far more often than in the batch itself; with ``per_query``
over any batch's size the whole batch is the list and there is no such skew. Both are
refitted per publication-batch fold (leakage-free) and scored by the within-batch
protocol (``--within date``; ``--whole-corpus``: the whole-corpus one) against TF-IDF on
the same queries.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.common import stamp, write_results
from recommender.config import BuildConfig
from recommender.corpus import load_corpus
from recommender.evaluation import LexicalFeatures, TfidfMethod, build_protocol, evaluate
from recommender.evaluation.product import ProductMethod
from recommender.pipeline import build_snapshot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("content", type=Path)
    ap.add_argument("--max-queries", type=int, default=3000)
    ap.add_argument("--train-queries", type=int, default=3000)
    ap.add_argument("--per-query", type=int, nargs="+", default=[40, 1000])
    ap.add_argument("--whole-corpus", action="store_true",
                    help="score the whole-corpus protocol instead of within the batch")
    ap.add_argument("--out", type=Path, default=Path("results/within_negatives.json"))
    args = ap.parse_args()
    started = time.perf_counter()
    corpus = load_corpus(args.content)
    protocol = build_protocol(corpus, max_queries=args.max_queries,
                              within=None if args.whole_corpus else "date")
    features = LexicalFeatures(corpus)
    config = BuildConfig.model_validate({"ranking": {"model": "lambdarank"}})
    snapshot = build_snapshot(corpus, config, None, suggestions=False)
    methods = [TfidfMethod(features, corpus)] + [
        ProductMethod(corpus, config, f"lambdarank, {n} batch-mates", snapshot=snapshot,
                      max_train_queries=args.train_queries, batch_negatives=n)
        for n in args.per_query]
    result = evaluate(protocol, methods, [5, 10], features.tfidf, reference="tfidf",
                      n_resamples=1000, on_method=lambda r: print(
                          f"{r.name}: recall@5 {r.metrics['recall@5']:.4f} "
                          f"nDCG@10 {r.metrics['ndcg@10']:.4f} ({r.seconds:.0f}s)", flush=True))
    write_results(args.out, {
        **stamp({"content": str(args.content), "max_queries": args.max_queries,
                 "train_queries": args.train_queries, "per_query": args.per_query,
                 "protocol": protocol.label, "folds": 5}),
        "queries": len(protocol.queries),
        "methods": {m.name: {k: round(v, 4) for k, v in m.metrics.items()}
                    for m in result.methods},
        "vs_tfidf": [asdict(i) for i in result.intervals if i.metric in ("recall@5", "ndcg@10")],
        "seconds": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()
