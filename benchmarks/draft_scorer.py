"""The free-text scorer on the draft protocol: which scorer the product ships for text.

Run: ``python -m benchmarks.draft_scorer CONTENT --index DIR [--max-queries N]
[--out results/draft_scorer.json]``

Each article with curated links is a query; only its title is posted as free text
(``--fields title``, or ``title,answer``), and the curated links are the answers;
the article itself and its copies are never counted (the protocol collapses them
away). Compared, with paired bootstrap intervals against TF-IDF on the same text:

- ``tfidf``: TF-IDF cosine of the text against title + answer;
- ``dense``: the default encoder's embedding of the text, cosine (dense alone);
- ``product:text-related``: the product's features, a logistic model fitted per
  publication-batch fold on draft queries whose positives are the curated targets;
- ``product:text``: the same, with the query's own article a positive too (the
  shipped ``models/ranker/text.json``, fitted by ``benchmarks.fit_ranker --text``).

Fitted methods are refitted fold by fold on links between training rows only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import stamp, write_results
from recommender.config import BuildConfig
from recommender.evaluation import LexicalFeatures, build_protocol, evaluate, print_table
from recommender.evaluation.draft import (
    DraftDenseMethod,
    DraftProductMethod,
    DraftTfidfMethod,
    variant_fields,
)
from recommender.evaluation.report import results_dict
from recommender.pipeline import open_index


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("content", type=Path)
    ap.add_argument("--index", type=Path, default=None)
    ap.add_argument("--fields", default="title")
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--methods", default="tfidf,dense,product:text-related,product:text")
    ap.add_argument("--out", type=Path, default=Path("results/draft_scorer.json"))
    args = ap.parse_args(argv)
    started = time.perf_counter()
    config = BuildConfig()
    opened = open_index(args.content, config, args.index, full_text=True)
    corpus, snapshot = opened.corpus, opened.snapshot
    fields = variant_fields(args.fields)
    protocol = build_protocol(corpus, max_queries=args.max_queries, seed=args.seed,
                              label=f"draft {args.fields}")
    features = LexicalFeatures(corpus)
    methods = []
    for name in args.methods.split(","):
        if name == "tfidf":
            methods.append(DraftTfidfMethod(features, corpus, fields, args.seed))
        elif name == "dense":
            methods.append(DraftDenseMethod(snapshot.index.vectors, corpus, fields,
                                            config.model, config.text.max_tokens, args.seed))
        elif name in ("product:text", "product:text-related"):
            methods.append(DraftProductMethod(corpus, snapshot, fields, args.seed, name=name))
        else:
            raise SystemExit(f"unknown method {name}")
    result = evaluate(protocol, methods, [5, 10], features.tfidf, "tfidf", args.folds,
                      args.seed, args.resamples,
                      on_method=lambda r: print(f"{r.name}: {r.seconds:.0f}s", flush=True))
    result.wall_seconds = time.perf_counter() - started
    print_table(result)
    summary = results_dict(result)
    write_results(args.out, {
        **stamp({"content": str(args.content), "fields": args.fields,
                 "max_queries": args.max_queries, "folds": args.folds, "seed": args.seed,
                 "resamples": args.resamples}),
        "protocol": summary["protocols"][protocol.label],
        "seconds": round(result.wall_seconds, 1),
    })


if __name__ == "__main__":
    main()
