"""Quality against cold build cost of every ranking configuration: the frontier table.

Run: ``python -m benchmarks.quality_frontier /work/shared/corpora/quicktakes-dev
--out results/quality_frontier.json [--max-queries N]``

Every row is scored on the same queries with the evaluate protocol (candidates =
all articles, copies collapsed; methods learned from links refitted per
publication-batch fold). Each row also gets a cold build cost for the whole
corpus, split into parts, each labelled ``measured`` (timed in this run) or
``projected`` (embedding: articles with distinct texts / the encoder's rate in
``results/embedding_rate.json``). Bootstrap intervals compare every row with
TF-IDF on the same queries (Hugo's related content has no per-query data, so
only its published means can be shown); the default's recall@5 also gets an
interval of its own. Writes the JSON, a Markdown table (``.md``) and a plot of
recall@5 against cold build time (``.png``) beside ``--out``.

Embeddings come from the shared cache; a dense configuration whose vectors are
not all cached and would take long to embed is skipped (and listed as such).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import stamp, write_results
from recommender.config import BuildConfig, RankingConfig, TextConfig
from recommender.corpus import Corpus, load_corpus
from recommender.embedding import EmbeddingCache, default_cache_dir, embed_corpus, encoder_key
from recommender.evaluation import (
    BM25Method,
    DenseMethod,
    KeywordMethod,
    LexicalFeatures,
    TfidfMethod,
    build_protocol,
)
from recommender.evaluation import evaluate as run_evaluation
from recommender.evaluation.product import ProductMethod
from recommender.ranking import Ranker
from recommender.text import prepare_text, text_hash

#: Hugo 0.111 related content (keywords + date), published means on quicktakes-dev
HUGO = {"recall@5": 0.166, "ndcg@10": 0.195, "mrr@10": 0.259, "hit_rate@5": 0.405}
METRICS = ("recall@5", "ndcg@10", "mrr@10", "hit_rate@5")
MINILM_Q = BuildConfig(model="all-MiniLM-L6-v2",
                       text=TextConfig(fields=("question",), max_tokens=128))
MINILM_TA = BuildConfig(model="all-MiniLM-L6-v2",
                        text=TextConfig(fields=("title", "answer"), max_tokens=256))
M2V_TA = BuildConfig(model="minilm-static-m2v",
                     text=TextConfig(fields=("title", "answer"), max_tokens=256))
#: embedding_rate.json rows used to project each encoder's cold embedding time
RATE_ROWS = {"all-MiniLM-L6-v2|question": ("all-MiniLM-L6-v2", "question-64"),
             "all-MiniLM-L6-v2|title,answer": ("all-MiniLM-L6-v2", "title+answer-256"),
             "minilm-static-m2v|title,answer": ("minilm-static-m2v", "title+answer-256")}


def with_ranking(base: BuildConfig, **ranking: Any) -> BuildConfig:
    return base.model_copy(update={"ranking": RankingConfig(**ranking)})


def cached_fraction(corpus: Corpus, config: BuildConfig) -> float:
    """Share of the corpus's texts under ``config`` already in the embedding cache."""
    hashes = list({text_hash(prepare_text(a, config.text)) for a in corpus})
    cache = EmbeddingCache(default_cache_dir() / "embeddings.sqlite")
    try:
        found = cache.get_many(encoder_key(config.model, config.text), hashes)
    finally:
        cache.close()
    return len(found) / max(len(hashes), 1)


def projected_embedding(config: BuildConfig, rates: dict[str, Any]) -> tuple[float | None, str]:
    key = f"{config.model}|{','.join(config.text.fields)}"
    want = RATE_ROWS.get(key)
    for row in rates.get("rows", []):
        if want and (row["encoder"], row["config"]) == want:
            return float(row["projected_seconds_distinct"]), (
                f"projected: {row['distinct_texts']} distinct texts / {row['texts_per_s']} "
                f"texts/s ({row['encoder']} {row['config']}, embedding_rate.json)")
    return None, "no rate in embedding_rate.json"


def bootstrap_mean(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = np.array([values[rng.integers(0, len(values), len(values))].mean()
                      for _ in range(resamples)])
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("content", type=Path)
    ap.add_argument("--out", type=Path, default=Path("results/quality_frontier.json"))
    ap.add_argument("--max-queries", type=int, default=None, help="seeded query sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--rates", type=Path, default=Path("results/embedding_rate.json"))
    ap.add_argument("--max-train-queries", type=int, default=6000,
                    help="training queries per fold for the learned rankers")
    ap.add_argument("--skip", default="", help="comma-separated row names to leave out")
    ap.add_argument("--no-cold-build", action="store_true",
                    help="do not measure a real cold build of the default (empty cache)")
    args = ap.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    started = time.perf_counter()

    t = time.perf_counter()
    corpus = load_corpus(args.content)
    load_s = time.perf_counter() - t
    protocol = build_protocol(corpus, max_queries=args.max_queries, seed=args.seed)
    rates = json.loads(args.rates.read_text()) if args.rates.exists() else {}
    print(f"{len(protocol.queries)} queries, {len(corpus)} articles, load {load_s:.1f}s",
          flush=True)

    t = time.perf_counter()
    features = LexicalFeatures(corpus)
    tfidf_s = time.perf_counter() - t

    rows: list[dict[str, Any]] = []
    methods: list[Any] = []

    def add(name: str, description: str, make: Callable[[], Any],
            embed: tuple[float | None, str] = (0.0, "none"), fitted: bool = False) -> None:
        if name in skip:
            return
        t0 = time.perf_counter()
        method = make()
        setup = time.perf_counter() - t0
        methods.append(method)
        rows.append({"name": name, "description": description, "fitted_per_fold": fitted,
                     "setup_seconds_measured": round(setup, 2),
                     "embed_seconds": embed[0], "embed_basis": embed[1]})

    add("keywords", "IDF cosine over seo.page_keywords", lambda: KeywordMethod(corpus, args.seed))
    add("bm25", "BM25 more-like-this (top 25 TF-IDF terms)",
        lambda: BM25Method(features, corpus, args.seed))
    add("tfidf", "TF-IDF cosine, title + answer", lambda: TfidfMethod(features, corpus, args.seed))
    for name, cfg in (("dense:minilm-question", MINILM_Q),
                      ("dense:minilm-title-answer-256", MINILM_TA),
                      ("dense:m2v-title-answer", M2V_TA)):
        frac = cached_fraction(corpus, cfg)
        if frac < 0.999 and cfg.model != "minilm-static-m2v":
            print(f"skipping {name}: only {frac:.1%} of its vectors are cached", flush=True)
            continue
        add(name, f"{cfg.model} over {'+'.join(cfg.text.fields)}",
            lambda cfg=cfg, name=name: DenseMethod(embed_corpus(corpus, cfg), corpus,
                                                   args.seed, name),
            projected_embedding(cfg, rates))
    m2v_embed = projected_embedding(M2V_TA, rates)
    default = BuildConfig()
    shared: dict[str, ProductMethod] = {}

    def product(name: str, config: BuildConfig, **kwargs: Any) -> ProductMethod:
        method = ProductMethod(corpus, config, name, seed=args.seed,
                               max_train_queries=args.max_train_queries,
                               reuse=shared.get("default"), **kwargs)
        shared.setdefault("default", method)
        return method

    # the default first: its setup time is the measured part of its cold build, and the
    # other product rows share its fitted signals and lists (their setup is then partial)
    add("default", "BuildConfig(): learned re-ranker (logistic) over m2v title+answer, "
        "TF-IDF title+answer, description and keywords",
        lambda: product("default", default), projected_embedding(default, rates), fitted=True)
    add("fused:m2v+tfidf+desc+kw", "weighted sum of raw cosines (1,1,1,1), m2v dense",
        lambda: product("fused:m2v+tfidf+desc+kw", with_ranking(M2V_TA, method="fused")),
        m2v_embed)
    add("learned-lambdarank:m2v", "learned re-ranker, LightGBM lambdarank, m2v dense",
        lambda: product("learned-lambdarank:m2v", M2V_TA, model_kind="lambdarank"), m2v_embed,
        fitted=True)
    if cached_fraction(corpus, MINILM_Q) >= 0.999:
        add("learned:minilm-question", "learned re-ranker (logistic), MiniLM question dense",
            lambda: product("learned:minilm-question", MINILM_Q),
            projected_embedding(MINILM_Q, rates), fitted=True)

    # cold build cost of the product's ranking state, measured once for the default
    ranker: Ranker | None = next((m.ranker for m in methods if m.name == "default"), None)
    neighbours_s = None
    if ranker is not None:
        t = time.perf_counter()
        block = np.arange(min(1024, len(corpus)))
        ranker.suggest_rows(block, 100)
        neighbours_s = (time.perf_counter() - t) * len(corpus) / max(len(block), 1)

    def progress(result: Any) -> None:
        print(f"  {result.name}: recall@5 {result.metrics['recall@5']:.4f} "
              f"({result.seconds:.0f}s)", flush=True)

    result = run_evaluation(protocol, methods, [5, 10], features.tfidf, "tfidf", 5, args.seed,
                            args.resamples, on_method=progress)
    intervals = {(i.method, i.metric): i for i in result.intervals}
    for row in rows:
        r = result.method(row["name"])
        row["metrics"] = {m: round(r.metrics[m], 4) for m in METRICS}
        row["vs_tfidf"] = {m: {"difference": round(i.difference, 4), "low": round(i.low, 4),
                               "high": round(i.high, 4)}
                           for m in METRICS if (i := intervals.get((row["name"], m)))}
        row["eval_seconds"] = round(r.seconds, 1)
        cost = load_s
        parts = {"load (measured)": round(load_s, 1)}
        if row["embed_seconds"]:
            cost += row["embed_seconds"]
            parts["embed (projected)"] = round(row["embed_seconds"], 1)
        if row["name"] in ("keywords", "bm25", "tfidf") or row["name"].startswith("dense:"):
            extra = tfidf_s if row["name"] in ("bm25", "tfidf") else row["setup_seconds_measured"]
            if row["name"].startswith("dense:"):
                extra = 0.0  # exact search over cached vectors; index time is negligible
            parts["fit (measured)"] = round(extra, 1)
            cost += extra
        else:  # product: signals + neighbour lists measured, all-neighbour re-ranking projected
            base = next(r for r in rows if r["name"] == "default") if any(
                r["name"] == "default" for r in rows) else row
            parts["signals + lists (measured, default's)"] = base["setup_seconds_measured"]
            cost += base["setup_seconds_measured"]
            if neighbours_s is not None:
                parts["precompute neighbours (projected from 1024 rows)"] = round(neighbours_s, 1)
                cost += neighbours_s
        row["cold_build_seconds"] = round(cost, 1)
        row["cold_build_parts"] = parts
        if row["name"] == "default":
            low, high = bootstrap_mean(r.per_query["recall@5"], args.resamples, args.seed)
            row["recall@5_interval"] = [round(low, 4), round(high, 4)]
            low, high = bootstrap_mean(r.per_query["ndcg@10"], args.resamples, args.seed)
            row["ndcg@10_interval"] = [round(low, 4), round(high, 4)]

    if not args.no_cold_build and any(r["name"] == "default" for r in rows):
        measured = cold_build(args.content)
        row = next(r for r in rows if r["name"] == "default")
        row["cold_build_measured"] = measured
        row["cold_build_seconds"] = measured["total_seconds"]
        row["cold_build_parts"] = {"load (measured)": measured["load_seconds"],
                                   "embed (measured)": measured["embed_seconds"],
                                   "rest of build (measured)": round(
                                       measured["build_seconds"] - measured["embed_seconds"], 1)}
        print(f"cold build of the default: {measured['total_seconds']:.0f}s", flush=True)

    out = {"meta": stamp(vars(args) | {"content": str(args.content), "out": str(args.out),
                                        "rates": str(args.rates)})
           | {"queries": len(protocol.queries), "articles": len(corpus),
              "wall_seconds": round(time.perf_counter() - started, 1),
              "hugo_reference": HUGO},
           "rows": rows}
    write_results(args.out, out)
    args.out.with_suffix(".md").write_text(markdown(out), encoding="utf-8")
    plot(out, args.out.with_suffix(".png"))


def cold_build(content: Path) -> dict[str, float]:
    """Load + build_index of the default configuration with an empty embedding cache."""
    import shutil
    import tempfile

    from recommender.pipeline import open_index

    tmp = Path(tempfile.mkdtemp(prefix="cold-build-"))
    try:
        t = time.perf_counter()
        index = open_index(content, BuildConfig(), tmp / "index", cache_dir=tmp / "cache",
                           rebuild=True).snapshot
        build_s = time.perf_counter() - t
        load_s = 0.0  # the folder is read within the build (open_index)
        return {"load_seconds": round(load_s, 1), "build_seconds": round(build_s, 1),
                "embed_seconds": round(index.manifest["embedding"]["seconds"], 1),
                "embedded": index.manifest["counts"]["embedded"],
                "total_seconds": round(load_s + build_s, 1)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def markdown(out: dict[str, Any]) -> str:
    meta = out["meta"]
    lines = [
        "# Quality frontier", "",
        f"Commit {meta['commit']}, {meta['date']}, {meta['cpus']} CPUs. "
        f"{meta['queries']} queries over {meta['articles']} articles (quicktakes-dev, evaluate "
        "protocol; learned rows refitted per publication-batch fold). Cold build = load + "
        "embedding + fitting/indexing; embedding is projected from "
        "results/embedding_rate.json (texts/s on this machine), the rest is measured here; "
        "the default's is a real cold build (empty cache) timed in this run. "
        "Intervals: 95% paired bootstrap of the difference to TF-IDF.", "",
        "| configuration | recall@5 | nDCG@10 | MRR@10 | hit@5 | Δrecall@5 vs TF-IDF [95%] "
        "| cold build |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    h = meta["hugo_reference"]
    lines.append(f"| Hugo related content (published means) | {h['recall@5']:.3f} | "
                 f"{h['ndcg@10']:.3f} | {h['mrr@10']:.3f} | {h['hit_rate@5']:.3f} | | |")
    for row in out["rows"]:
        m = row["metrics"]
        d = row["vs_tfidf"].get("recall@5")
        diff = f"{d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]" if d else "reference"
        name = f"**{row['name']}**" if row["name"] == "default" else row["name"]
        lines.append(f"| {name} | {m['recall@5']:.4f} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} "
                     f"| {m['hit_rate@5']:.4f} | {diff} | {row['cold_build_seconds']:.0f} s |")
    default = next((r for r in out["rows"] if r["name"] == "default"), None)
    if default and "recall@5_interval" in default:
        lo, hi = default["recall@5_interval"]
        nlo, nhi = default["ndcg@10_interval"]
        lines += ["", f"Default: recall@5 {default['metrics']['recall@5']:.4f} "
                  f"[{lo:.4f}, {hi:.4f}], nDCG@10 {default['metrics']['ndcg@10']:.4f} "
                  f"[{nlo:.4f}, {nhi:.4f}] (95% bootstrap over queries); Hugo: "
                  f"{h['recall@5']:.3f} and {h['ndcg@10']:.3f}."]
    lines += ["", "Cold build parts:", ""]
    for row in out["rows"]:
        parts = ", ".join(f"{k} {v}s" for k, v in row["cold_build_parts"].items())
        lines.append(f"- {row['name']}: {parts}")
    return "\n".join(lines) + "\n"


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in out["rows"]:
        x, y = max(row["cold_build_seconds"], 1.0), row["metrics"]["recall@5"]
        ax.scatter([x], [y], color="tab:red" if row["name"] == "default" else "tab:blue")
        ax.annotate(row["name"], (x, y), fontsize=7, xytext=(4, 2), textcoords="offset points")
    hugo = out["meta"]["hugo_reference"]["recall@5"]
    ax.axhline(hugo, color="grey", ls="--", lw=1)
    ax.text(0.01, hugo, " Hugo (published mean)", fontsize=7, color="grey", va="bottom",
            transform=ax.get_yaxis_transform())
    ax.axvline(300, color="grey", ls=":", lw=1)
    ax.text(300, 0.01, " 5 min", fontsize=7, color="grey", transform=ax.get_xaxis_transform())
    xs = [max(r["cold_build_seconds"], 1.0) for r in out["rows"]]
    ax.set_xscale("log")
    ax.set_xlim(min(xs) * 0.7, max(xs) * 2.5)
    from matplotlib.ticker import ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("cold build of the dev corpus, seconds (2 cores; log scale)")
    ax.set_ylabel("recall@5")
    ax.set_title("Quality frontier on quicktakes-dev")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
