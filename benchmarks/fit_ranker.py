"""Fit the shipped learned-ranker parameters (``models/ranker/default.*``).

Run: ``python -m benchmarks.fit_ranker /work/shared/corpora/quicktakes-dev
[--config FILE.yaml] [--kind lambdarank|logistic] [--out FILE] [--max-queries N]``

Fits the re-ranker of a build configuration (default: ``BuildConfig()``) on the
curated links of a whole corpus: every link-bearing article (or a seeded sample
of ``--max-queries``) is a query, its candidates get the ranker's features, and
a candidate is positive when it is (a copy of) a curated target; batch-mates
are among the negatives (:func:`recommender.fitting.training_data`). A LightGBM
ranker is written as LightGBM's model text (``.lgb.txt``), a logistic model as
JSON whose note says what it was fitted on (the script prints it for both).
These parameters serve ``recommender build``; the evaluation never uses them, it
refits per publication-batch fold.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from recommender.config import BuildConfig
from recommender.corpus import load_corpus
from recommender.encoders import load_encoder
from recommender.evaluation.draft import text_training_data
from recommender.evaluation.product import ProductMethod, training_data
from recommender.evaluation.protocol import link_pairs
from recommender.learned import feature_names, fit_model
from recommender.model_files import LGB_SUFFIX, builtin_models_dir
from recommender.pipeline import corpus_fingerprint, open_index


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("content", type=Path)
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--max-queries", type=int, default=12000)
    ap.add_argument("--kind", choices=("lambdarank", "logistic"), default="logistic",
                    help="the default model is logistic (default.json); lambdarank: "
                         "--out models/ranker/lambdarank.lgb.txt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--index", type=Path, default=None,
                    help="index of CONTENT to reuse (opened as `recommender build` would)")
    ap.add_argument("--text", action="store_true",
                    help="fit the free-text scorer (ranking.text_model, models/ranker/text.json) "
                         "on draft queries: each article's title posted as text")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    config = BuildConfig.from_yaml(args.config) if args.config else BuildConfig()
    name = (config.ranking.text_model or "text") if args.text else (
        config.ranking.model or "default")
    suffix = LGB_SUFFIX if args.kind == "lambdarank" else ".json"
    out = args.out or builtin_models_dir() / "ranker" / f"{name}{suffix}"
    # the model being fitted (and the text scorer) may not exist yet: the snapshot is made
    # without them (the features do not depend on a model)
    plain = config.model_copy(update={"ranking": config.ranking.model_copy(
        update={"text_model": None, **({} if args.text else {"model": None})})})
    if args.index is not None:
        opened = open_index(args.content, plain, args.index, full_text=True)
        corpus = opened.corpus
        method = ProductMethod(corpus, plain, refit=False, seed=args.seed,
                               snapshot=opened.snapshot)
    else:
        corpus = load_corpus(args.content)
        method = ProductMethod(corpus, plain, refit=False, seed=args.seed)
    links = link_pairs(corpus.articles)
    queries = np.unique(links[:, 0])
    if len(queries) > args.max_queries:
        rng = np.random.default_rng(args.seed)
        queries = np.sort(rng.choice(queries, args.max_queries, replace=False))
    if args.text:
        encoder = load_encoder(config.model, config.text.max_tokens)
        x, y, _, query = text_training_data(method.ranker, corpus, links, queries, ("title",),
                                            encoder.encode)
    else:
        data = training_data(method.ranker, corpus.articles, links, queries, seed=args.seed)
        x, y, query = data.x, data.y, data.query
    note = (f"fitted by benchmarks/fit_ranker.py on {corpus.root.name} "
            f"({len(corpus)} articles, fingerprint "
            f"{corpus_fingerprint(method.snapshot.articles, method.snapshot.index.sources)[:12]}): "
            f"{len(queries)} link-bearing articles as "
            f"{'draft queries (title as text)' if args.text else 'queries'} (seed {args.seed}), "
            f"{len(y)} candidates, {int(y.sum())} positive; model {config.model} over "
            f"{'+'.join(config.text.fields)}; {time.strftime('%Y-%m-%d')}")
    model = fit_model(x, y, feature_names(method.ranker.signals), args.kind, args.seed, note,
                      query=query)
    model.save(out)
    print(f"{note}\nwrote {out} in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
