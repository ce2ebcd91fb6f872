"""Embedding rate (texts per second) of each encoder on each text configuration.

Run: ``python -m benchmarks.embedding_rate CONTENT --out results/embedding_rate.json
[--encoders a,b] [--configs question-64,...] [--n 200] [--n-slow 50] [--threads 2]``

Embedding is the cost of a cold index build, so the choice of encoder and of how
much of each answer is embedded is a trade of quality for time; this measures the
time side on the same fixed sample for every combination. The sample is a seeded
random draw of articles from the content folder (small samples are prefixes of
larger ones, so rows with different N share their first articles); combinations
expected to be slow (all-mpnet-base-v2, and chunked answers under any transformer)
run on ``--n-slow`` articles, and every row reports its N. Each encoder is loaded,
then warmed up on a batch of other articles outside the sample, before the clock
starts: model loading and first-call allocation are not embedding rate. No cache is
used, so every text is embedded. Threads are pinned (torch, onnxruntime, BLAS/OpenMP)
so results compare across machines with more cores.

Each row also gives a projection for the full content folder: all its articles, and
its distinct prepared texts (copies of one article under several subjects share a
text, and ``embed_texts`` embeds a repeated text once).

Rows measured in an earlier run for other encoders or configurations are kept, so
the matrix can be filled in several short runs; a row measured again is replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.common import git_commit, stamp, write_results
from recommender.config import TextConfig
from recommender.corpus import Article, load_corpus
from recommender.embedding import chunk_words, embed_texts
from recommender.encoders import Encoder, load_encoder, model_spec
from recommender.errors import ModelNotAvailable
from recommender.text import prepare_text

ENCODERS = [
    "all-MiniLM-L6-v2",
    "all-MiniLM-L6-v2-onnx",
    "all-MiniLM-L6-v2-onnx-int8",
    "minilm-static-m2v",
    "all-mpnet-base-v2",
    "hashing",
]
CONFIGS: dict[str, TextConfig] = {
    "question-64": TextConfig(fields=("question",), max_tokens=64),
    "title+answer-256": TextConfig(fields=("title", "answer"), max_tokens=256),
    "title+answer-4x256-chunks": TextConfig(fields=("title", "answer"), max_tokens=256,
                                            chunking="chunks", max_chunks=4),
}
REFERENCE = "all-MiniLM-L6-v2"
VARIANTS = {"all-MiniLM-L6-v2-onnx", "all-MiniLM-L6-v2-onnx-int8"}  # same model, other runtime
SLOW_ENCODERS = {"all-mpnet-base-v2"}
TRANSFORMERS = {"all-MiniLM-L6-v2", "all-MiniLM-L6-v2-onnx", "all-MiniLM-L6-v2-onnx-int8",
                "all-mpnet-base-v2"}
WARMUP = 16
MIN_TIMED_SECONDS = 1.0  # fast encoders are repeated until this long, for a stable median
MAX_REPEATS = 5


def is_slow(encoder: str, config: TextConfig) -> bool:
    """Combinations that run on the smaller sample, to keep one benchmark run short."""
    return encoder in SLOW_ENCODERS or (encoder in TRANSFORMERS and config.chunking == "chunks")


def sample_articles(articles: list[Article], n: int, seed: int) -> tuple[list[Article],
                                                                           list[Article]]:
    """A seeded random sample of ``n`` articles, and ``WARMUP`` others for the warm-up.

    The draw is a seeded permutation of the articles sorted by url, so it depends only
    on the folder's content and the seed, not on file-system order.
    """
    ordered = sorted(articles, key=lambda a: a.url)
    random.Random(seed).shuffle(ordered)
    return ordered[:n], ordered[n : n + WARMUP]


def pin_threads(encoder: Encoder, threads: int) -> None:
    """Give the encoder ``threads`` compute threads whatever the machine's core count.

    torch and BLAS/OpenMP pools are limited by the caller; an onnxruntime session fixes
    its thread count when created (``OnnxEncoder`` uses every core), so it is recreated.
    """
    import torch

    torch.set_num_threads(threads)
    session = getattr(encoder, "session", None)
    if session is not None and session.get_session_options().intra_op_num_threads != threads:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        path = model_spec(encoder.name).resolve_source() / "model.onnx"
        encoder.session = ort.InferenceSession(  # type: ignore[attr-defined]
            str(path), options, providers=["CPUExecutionProvider"])


def token_counts(texts: list[str], config: TextConfig) -> dict[str, float]:
    """How much text one row embeds: pieces per article and MiniLM tokens per piece.

    Explains rate differences between configurations (a truncated question is short;
    a chunked answer is several 256-token windows).
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_spec("all-MiniLM-L6-v2").resolve_source()
                                  / "tokenizer.json"))
    tok.no_padding()  # the packaged tokenizer.json pads to 128: count real tokens only
    tok.enable_truncation(max_length=config.max_tokens)
    if config.chunking == "chunks":
        pieces = [c for t in texts for c in chunk_words(t, config.max_tokens, config.max_chunks)]
    else:
        pieces = list(texts)
    lengths = [len(e.ids) for e in tok.encode_batch(pieces)]
    return {"pieces_per_article": round(len(pieces) / max(len(texts), 1), 2),
            "tokens_per_piece_mean": round(statistics.fmean(lengths), 1) if lengths else 0.0}


def time_one(encoder: Encoder, texts: list[str], warmup: list[str], config: TextConfig,
             batch_size: int, threads: int) -> tuple[dict[str, Any], np.ndarray]:
    """Median seconds to embed ``texts`` (no cache), after an untimed warm-up batch.

    The vectors come back too, so a faster variant can be checked against its reference.
    """
    embed_texts(warmup, encoder, config, cache=None, batch_size=batch_size)
    runs: list[float] = []
    cpu: list[float] = []
    load_before = os.getloadavg()[0]
    while True:
        started, cpu_started = time.perf_counter(), time.process_time()
        vectors, stats = embed_texts(texts, encoder, config, cache=None, batch_size=batch_size)
        runs.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        if sum(runs) >= MIN_TIMED_SECONDS or len(runs) >= MAX_REPEATS:
            break
    seconds = statistics.median(runs)
    cpu_seconds = statistics.median(cpu)
    return {"n": len(texts), "embedded": stats.embedded, "dim": int(vectors.shape[1]),
            "repeats": len(runs), "seconds": round(seconds, 4),
            "texts_per_s": round(len(texts) / seconds, 2),
            # wall-clock rate is what a build sees, but on a shared machine it also
            # measures the neighbours; CPU time per text and the share of the thread
            # budget this process got say how much of a row's time was contention
            "cpu_seconds": round(cpu_seconds, 4),
            "cpu_share": round(cpu_seconds / (seconds * threads), 3),  # of the threads used
            "compute_threads": threads,
            "texts_per_s_cpu_bound": round(len(texts) * threads / max(cpu_seconds, 1e-9), 2),
            "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}, vectors


def distinct_texts(articles: list[Article], config: TextConfig) -> int:
    """Distinct prepared texts in the whole folder: what a cold build actually embeds."""
    return len({prepare_text(a, config) for a in articles})


def _hms(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def markdown(results: dict[str, Any]) -> str:
    """The results as a small table, one row per (encoder, configuration)."""
    meta = results["meta"]
    p = meta["parameters"]
    lines = [
        "# Embedding rate",
        "",
        f"Commit {meta['commit']}, {meta['date']}; {meta['platform']}, {meta['cpus']} CPUs, "
        f"{p['threads']} threads, Python {meta['python']}, torch {p['torch']}, "
        f"onnxruntime {p['onnxruntime']}. Content: `{p['content']}` "
        f"({p['articles']} articles); seeded sample (seed {p['seed']}), batch size "
        f"{p['batch_size']}, no cache, warm-up batch of {WARMUP} untimed. Projection = "
        "articles / rate, and distinct texts / rate (copies share a text, embedded once). "
        "Cosine vs torch: mean cosine of an ONNX variant's vectors to the PyTorch "
        "all-MiniLM-L6-v2 ones on the same texts. CPU share: this process's CPU time over "
        "wall time x compute threads (2 for the transformers, 1 for static and hashing; "
        "well below 100% means the row waited for other processes, so its rate is "
        "pessimistic); CPU-time bound: N x compute threads / CPU seconds, the rate had the "
        "process had its threads to itself (optimistic: it assumes perfect scaling); "
        "load avg: the machine's 1-minute load during the row.",
        "",
        "| encoder | text | N | texts/s | texts/s, CPU-time bound | pieces/article "
        "| tokens/piece | projected, all articles | projected, CPU-time bound "
        "| projected, distinct texts | cosine vs torch | CPU share | load avg |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for row in results["rows"]:
        if "error" in row:
            lines.append(f"| {row['encoder']} | {row['config']} | - | failed: {row['error']} "
                         + "| " * 10)
            continue
        bound = row.get("texts_per_s_cpu_bound")
        lines.append(
            f"| {row['encoder']} | {row['config']} | {row['n']} | {row['texts_per_s']:,.1f} "
            f"| {f'{bound:,.1f}' if bound else ''} "
            f"| {row['pieces_per_article']} | {row['tokens_per_piece_mean']} "
            f"| {_hms(row['projected_seconds_all'])} "
            f"| {_hms(row['articles'] / bound) if bound else ''} "
            f"| {_hms(row['projected_seconds_distinct'])} "
            f"| {row.get('cosine_vs_torch_mean', '')} | {row.get('cpu_share', 0):.0%} "
            f"| {max(row.get('loadavg_1min', [0])):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("content", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/embedding_rate.json"))
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--n-slow", type=int, default=50)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    encoders = [e for e in args.encoders.split(",") if e]
    configs = {c: CONFIGS[c] for c in args.configs.split(",") if c}

    import onnxruntime
    import torch

    started = time.perf_counter()
    corpus = load_corpus(args.content)
    articles = list(corpus)
    load_seconds = time.perf_counter() - started
    sample, warm = sample_articles(articles, max(args.n, args.n_slow), args.seed)
    print(f"loaded {len(articles)} articles in {load_seconds:.1f} s")

    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    rows: dict[tuple[str, str], dict[str, Any]] = {
        (r["encoder"], r["config"]): r for r in previous.get("rows", [])}
    with threadpool_limits(limits=args.threads):
        for cname, config in configs.items():
            distinct = distinct_texts(articles, config)
            reference: np.ndarray | None = None
            for ename in encoders:
                n = args.n_slow if is_slow(ename, config) else args.n
                texts = [prepare_text(a, config) for a in sample[:n]]
                warmup = [prepare_text(a, config) for a in warm]
                row: dict[str, Any] = {"encoder": ename, "config": cname,
                                       "text_config": config.model_dump(mode="json")}
                try:
                    t0 = time.perf_counter()
                    encoder = load_encoder(ename, config.max_tokens)
                    pin_threads(encoder, args.threads)
                    row["load_seconds"] = round(time.perf_counter() - t0, 2)
                    # the static and hashing encoders compute on one thread whatever the limit
                    used = args.threads if ename in TRANSFORMERS else 1
                    timing, vectors = time_one(encoder, texts, warmup, config,
                                               args.batch_size, used)
                    row |= timing
                except ModelNotAvailable as exc:  # a model not built here: say so, go on
                    row["error"] = str(exc)
                    print(f"{ename} / {cname}: {exc}")
                    rows[(ename, cname)] = row
                    continue
                row |= token_counts(texts, config)
                if ename == REFERENCE:
                    reference = vectors
                elif ename in VARIANTS and reference is not None:
                    k = min(len(reference), len(vectors))  # samples are prefixes of one draw
                    cos = (reference[:k] * vectors[:k]).sum(1)
                    row |= {"cosine_vs_torch_mean": round(float(cos.mean()), 5),
                            "cosine_vs_torch_min": round(float(cos.min()), 5)}
                row |= {"articles": len(articles), "distinct_texts": distinct,
                        "projected_seconds_all": round(len(articles) / row["texts_per_s"], 1),
                        "projected_seconds_distinct": round(distinct / row["texts_per_s"], 1),
                        "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "commit": git_commit()}
                rows[(ename, cname)] = row
                print(f"{ename} / {cname}: N={row['n']} {row['texts_per_s']:.1f} texts/s "
                      f"-> {_hms(row['projected_seconds_all'])} for {len(articles)} articles")
    order = {(e, c): (ENCODERS.index(e) if e in ENCODERS else 99, list(CONFIGS).index(c))
             for e, c in rows}
    results = {
        "meta": stamp({
            "content": str(args.content), "articles": len(articles), "seed": args.seed,
            "n": args.n, "n_slow": args.n_slow, "threads": args.threads,
            "batch_size": args.batch_size, "warmup": WARMUP, "cache": None,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "corpus_load_seconds": round(load_seconds, 1),
            "slow_rows": "all-mpnet-base-v2, and chunked answers under a transformer",
            "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS",
                                                           "MKL_NUM_THREADS")}}),
        "rows": [rows[k] for k in sorted(rows, key=order.__getitem__)],
    }
    write_results(args.out, results)
    md = args.out.with_suffix(".md")
    md.write_text(markdown(results), encoding="utf-8")
    print(f"table written to {md}")


if __name__ == "__main__":
    main()
