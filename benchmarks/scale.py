"""Scale: build throughput on Ray, and a sharded HNSW index over 1M synthetic articles.

Run (each under ``flock /work/cpu.lock``)::

    python -m benchmarks.scale /work/shared/corpora/quicktakes-dev --out results/scale.json
    python -m benchmarks.scale /work/shared/corpora/quicktakes-dev --dev-build \\
        --out results/scale_dev_build.json   # the engines on the dev corpus only

**The synthetic corpus.** No public Q&A corpus of a million articles is on this
machine, so one is generated, reproducibly, by recombining the dev corpus's
sentences (it is generated in memory or into a temporary folder, never kept):

- the dev articles' answers are cleaned (:func:`~recommender.text.clean_text`) and
  split into sentences of 40 to 400 characters; articles with fewer than 4 are left out;
- synthetic article ``i`` belongs to chunk ``i // 10_000``, whose generator is
  ``numpy.random.default_rng([seed, chunk])``: any chunk can be generated alone, in
  any order, on any worker, and gives the same articles;
- each article picks a *seed article* uniformly; its title and subject are the seed's;
  its answer is 6 to 13 sentences: each, with probability 0.7, one of the seed's own
  sentences, otherwise a sentence of another article of the same subject (chosen
  uniformly), kept in the order drawn.

So the corpus has the dev corpus's vocabulary, sentence lengths and subject mix, and
a topical structure (about 35 articles share each seed, as pages of a large site
share a topic, mixed with others of their subject): its nearest neighbours are
neither trivially far (random vectors) nor all exact copies. It is a benchmark of
throughput, memory, latency and ANN recall, not of suggestion quality.

**What is measured** (the default mode):

1. *Build throughput per worker*: a subset (``--subset`` articles, written as
   markdown files) parsed and embedded by the local engine and by the Ray engine
   with 1 and 2 local workers (a local cluster on loopback, started and stopped by
   the benchmark; its start-up is reported apart). The parallel stages only (parsing
   and embedding): the rest of a build (TF-IDF, neighbour lists, suggestions) runs
   on the driver and is measured on the dev corpus by ``--dev-build``.
2. *1M articles*: generated and embedded with the default static encoder by Ray
   tasks on a local cluster of ``--workers`` CPUs (one task a chunk, generated where
   it runs), then indexed in this process as ``--shards`` HNSW shards
   (:class:`~recommender.vectors.Shards`); the index memory, per shard.
3. *ANN recall@10 against exact search* on ``--queries`` sampled articles (the
   article itself excluded), and query latency for each ``efSearch`` tried:
   *related-by-article* is the vector store alone (the article's vector searched in
   every shard, results merged, itself dropped). At build time a full build
   precomputes every article's suggestions with the learned ranking, and serving them
   is a lookup; this is the cost of the online path when an article is not
   precomputed, or of computing the dense neighbour lists. *by-text* adds encoding the
   query text with the static encoder (dev-corpus titles as the queries).
4. *Projection*: the measured per-worker embedding throughput times N workers, times
   the measured 2-worker efficiency (assumed to hold; an assumption, stated), and
   the hours a 1M and a 10M corpus would take.

First of all (and alone with ``--dev-build``): the real dev corpus built by the
local engine and by the Ray engine (2 local workers), one after the other in one
run, each with an empty embedding cache; wall times and whether they suggest the
same articles.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.common import stamp, write_results
from recommender.config import BuildConfig, VectorConfig
from recommender.corpus import load_corpus
from recommender.embedding import embed_texts
from recommender.encoders import load_encoder
from recommender.ranking import SEARCH_SLACK
from recommender.sources import scan_folder
from recommender.text import clean_text, prepare_text
from recommender.vectors import VectorSearch

CHUNK = 10_000
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


# -- the generator -------------------------------------------------------------------------


class Generator:
    """Synthetic articles recombined from a corpus's sentences (see the module docstring)."""

    def __init__(self, content: Path, seed: int = 0):
        corpus = load_corpus(content)
        self.seed = seed
        self.titles: list[str] = []
        self.subjects: list[str] = []
        self.sentences: list[list[str]] = []
        for a in corpus.articles:
            if a.no_index:
                continue
            found = [s.strip() for s in _SENTENCE.split(clean_text(a.answer))
                     if 40 <= len(s.strip()) <= 400]
            if len(found) >= 4:
                self.titles.append(a.title)
                self.subjects.append(a.subject)
                self.sentences.append(found)
        by_subject: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(self.subjects):
            by_subject[s].append(i)
        self.same_subject = [np.array(by_subject[s]) for s in self.subjects]

    def chunk(self, number: int, size: int = CHUNK) -> list[tuple[str, str, str]]:
        """Articles ``number * CHUNK ...`` (title, subject, answer): chunk ``number``."""
        rng = np.random.default_rng([self.seed, number])
        out = []
        for _ in range(size):
            seed = int(rng.integers(len(self.titles)))
            own, others = self.sentences[seed], self.same_subject[seed]
            parts = []
            for _ in range(int(rng.integers(6, 14))):
                if rng.random() < 0.7:
                    parts.append(own[int(rng.integers(len(own)))])
                else:
                    other = self.sentences[int(others[int(rng.integers(len(others)))])]
                    parts.append(other[int(rng.integers(len(other)))])
            out.append((self.titles[seed], self.subjects[seed], " ".join(parts)))
        return out

    def articles(self, n: int) -> Iterator[list[tuple[str, str, str]]]:
        """The first ``n`` articles, chunk by chunk."""
        for number in range(-(-n // CHUNK)):
            yield self.chunk(number, min(CHUNK, n - number * CHUNK))

    def write(self, folder: Path, n: int) -> None:
        """The first ``n`` articles as markdown files of the QuickTakes schema."""
        i = 0
        for chunk in self.articles(n):
            for title, subject, answer in chunk:
                slug = f"synthetic-{i:07d}"
                meta = {"id": i, "title": title, "question": title, "answer": answer,
                        "subject": subject, "url": f"/learn/synthetic/{slug}/"}
                (folder / f"{slug}.md").write_text(
                    "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n&nbsp;\n",
                    encoding="utf-8")
                i += 1


def _text(title: str, answer: str) -> str:
    """What the default configuration embeds of an article: title and answer."""
    return f"{title}\n{answer}"


# -- measurements --------------------------------------------------------------------------


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3)}


def throughput(gen: Generator, n: int, config: BuildConfig) -> dict[str, Any]:
    """Parse + embed ``n`` synthetic files: local engine, Ray with 1 and 2 workers."""
    import ray

    from recommender.ray_engine import RayReader, embed_on_ray, ray_cluster

    folder = Path(tempfile.mkdtemp(prefix="scale-subset-"))
    try:
        gen.write(folder, n)
        out: dict[str, Any] = {"articles": n}
        t = time.perf_counter()
        scan = scan_folder(folder, reread=True)
        parse = time.perf_counter() - t
        texts = [prepare_text(a, config.text) for a in scan.corpus.articles]
        encoder = load_encoder(config.model, config.text.max_tokens)
        t = time.perf_counter()
        embed_texts(texts, encoder, config.text, None, config.batch_size)
        embed = time.perf_counter() - t
        out["local"] = {"parse_s": round(parse, 2), "embed_s": round(embed, 2),
                        "articles_per_s": round(n / (parse + embed), 1)}
        print("local", out["local"], flush=True)
        for workers in (1, 2):
            t = time.perf_counter()
            with ray_cluster(None, workers) as cpus:
                start = time.perf_counter() - t
                t = time.perf_counter()
                scan = scan_folder(folder, reread=True, reader=RayReader(cpus))
                parse = time.perf_counter() - t
                texts = [prepare_text(a, config.text) for a in scan.corpus.articles]
                t = time.perf_counter()
                embed_on_ray(texts, config, cpus, None)
                embed = time.perf_counter() - t
            assert not ray.is_initialized()
            rate = n / (parse + embed)
            out[f"ray_{workers}"] = {
                "workers": workers, "cluster_start_s": round(start, 2),
                "parse_s": round(parse, 2), "embed_s": round(embed, 2),
                "articles_per_s": round(rate, 1),
                "articles_per_s_per_worker": round(rate / workers, 1),
                "embed_per_s_per_worker": round(n / embed / workers, 1)}
            print(f"ray {workers}", out[f"ray_{workers}"], flush=True)
        one, two = out["ray_1"]["articles_per_s"], out["ray_2"]["articles_per_s"]
        out["efficiency_2_workers"] = round(two / (2 * one), 3)
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _embed_chunk(gen: Generator, number: int, size: int, model: str, max_tokens: int
                 ) -> tuple[np.ndarray, float]:
    """Ray task: generate chunk ``number`` where it runs and embed it (vectors, seconds)."""
    encoder = load_encoder(model, max_tokens)  # once per worker process
    texts = [_text(title, answer) for title, _, answer in gen.chunk(number, size)]
    t = time.perf_counter()
    vectors = encoder.encode(texts, batch_size=1024)
    return vectors, time.perf_counter() - t


def embed_million(gen: Generator, n: int, config: BuildConfig, workers: int
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    """Generate and embed ``n`` articles on a local Ray cluster of ``workers`` CPUs: one
    task a chunk, each generating its chunk from the seed where it runs."""
    import ray

    from recommender.ray_engine import ray_cluster

    dim = load_encoder(config.model, config.text.max_tokens).dim
    vectors = np.empty((n, dim), np.float32)
    task_seconds = 0.0
    started = time.perf_counter()
    with ray_cluster(None, workers):
        task = ray.remote(_embed_chunk)
        shared = ray.put(gen)
        sizes = [min(CHUNK, n - number * CHUNK) for number in range(-(-n // CHUNK))]
        refs = [task.remote(shared, number, size, config.model, config.text.max_tokens)
                for number, size in enumerate(sizes)]
        for number, ref in enumerate(refs):
            chunk, seconds = ray.get(ref)
            vectors[number * CHUNK : number * CHUNK + len(chunk)] = chunk
            task_seconds += seconds
            refs[number] = None
            if number % 10 == 0:
                print(f"embedded {(number + 1) * CHUNK}", flush=True)
    wall = time.perf_counter() - started
    return vectors, {"articles": n, "workers": workers, "wall_s": round(wall, 1),
                     "articles_per_s": round(n / wall, 1),
                     "embed_s_summed_over_tasks": round(task_seconds, 1),
                     "embed_per_s_per_worker": round(n / task_seconds, 1),
                     "note": "generation and embedding on a local Ray cluster, one task a "
                             "chunk of 10,000; wall time includes the cluster's start"}


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The exact ``k`` nearest rows of each query row (flat inner-product search)."""
    exact = VectorSearch(vectors, VectorConfig())
    return exact.search(vectors[queries], k)


def recall_at(found: np.ndarray, truth: np.ndarray, queries: np.ndarray, k: int) -> float:
    hits = total = 0
    for q, t, f in zip(queries.tolist(), truth, found, strict=True):
        wanted = [r for r in t.tolist() if r not in (q, -1)][:k]
        got = [r for r in f.tolist() if r not in (q, -1)][:k]
        hits += len(set(wanted) & set(got))
        total += len(wanted)
    return hits / max(total, 1)


def latencies(search: VectorSearch, queries: np.ndarray, k: int) -> list[float]:
    out = []
    for q in queries:
        t = time.perf_counter()
        search.search(q[None, :], k)
        out.append(time.perf_counter() - t)
    return out


def million(args: argparse.Namespace, gen: Generator, config: BuildConfig) -> dict[str, Any]:
    vectors, embedding = embed_million(gen, args.articles, config, args.workers)
    print(embedding, flush=True)
    vc = VectorConfig(index="hnsw", shards=args.shards, hnsw_m=args.hnsw_m,
                      ef_construction=args.ef_construction)
    t = time.perf_counter()
    search = VectorSearch(vectors, vc)
    build_s = time.perf_counter() - t
    described = search.describe()
    print("hnsw built", round(build_s, 1), described, flush=True)
    rng = np.random.default_rng(args.seed + 1)
    queries = np.sort(rng.choice(len(vectors), args.queries, replace=False))
    t = time.perf_counter()
    truth = exact_top(vectors, queries, 11)
    exact_s = time.perf_counter() - t
    exact_lat = latencies(VectorSearch(vectors, VectorConfig(shards=args.shards)),
                          vectors[queries[:50]], 11)
    rows = []
    for ef in args.ef_search:
        for shard in search.index.shards:
            shard.hnsw.efSearch = ef
        found = search.search(vectors[queries], 11)
        lat = latencies(search, vectors[queries], 11)
        row = {"ef_search": ef, "recall@10": round(recall_at(found, truth, queries, 10), 4),
               "related_by_article": _percentiles(lat)}
        rows.append(row)
        print(row, flush=True)
    good = [r for r in rows if r["recall@10"] >= args.target_recall]
    chosen = good[0] if good else rows[-1]
    for shard in search.index.shards:
        shard.hnsw.efSearch = chosen["ef_search"]
    depth_k = config.ranking.depth + SEARCH_SLACK + 1
    lists_lat = latencies(search, vectors[queries], depth_k)
    encoder = load_encoder(config.model, config.text.max_tokens)
    titles = [gen.titles[i] for i in rng.choice(len(gen.titles), args.queries, replace=False)]
    text_lat = []
    for title in titles:
        t = time.perf_counter()
        search.search(encoder.encode([title]), 10)
        text_lat.append(time.perf_counter() - t)
    vector_bytes = int(vectors.nbytes)
    faiss_bytes = sum(described["shards"]["bytes"])
    return {
        "embedding": embedding,
        "index": {"config": vc.model_dump(mode="json"), "build_s": round(build_s, 1),
                  "shards": described["shards"],
                  "faiss_bytes": faiss_bytes, "vectors_npy_bytes": vector_bytes,
                  "note": "an HNSW shard stores its vectors; the index also keeps vectors.npy "
                          "(exact rescoring of the candidates): both are in memory when served"},
        "queries": args.queries,
        "exact_search": {"batch_s": round(exact_s, 2),
                         "per_query_single": _percentiles(exact_lat),
                         "note": "flat search over all rows (4 flat shards), 50 single queries"},
        "ef_search": rows,
        "chosen": {"ef_search": chosen["ef_search"], "recall@10": chosen["recall@10"],
                   "related_by_article": chosen["related_by_article"],
                   "by_text": _percentiles(text_lat),
                   f"neighbour_list_{depth_k}": _percentiles(lists_lat)},
        "by_text_note": "encode a dev-corpus title with the static encoder, then the sharded "
                        "search for 10 (no re-ranking)",
        "neighbour_list_note": "the search a build runs per article for its dense list "
                               "(depth + slack candidates)",
        "related_by_article_note": "vector store only: the article's vector searched in every "
                                   "shard for 11, merged, itself dropped; a built index serves "
                                   "precomputed suggestions by lookup instead",
    }


def projection(tp: dict[str, Any], embedding: dict[str, Any]) -> dict[str, Any]:
    """Throughput for N workers: per-worker rate × N × the measured 2-worker efficiency."""
    per_worker = tp["ray_1"]["articles_per_s"]
    eff = min(1.0, tp["efficiency_2_workers"])
    out = {"per_worker_articles_per_s": per_worker, "efficiency": eff,
           "assumption": "every added worker keeps the efficiency measured going from 1 to 2 "
                         "local workers (on 2 shared cores here, so a pessimistic figure for "
                         "separate nodes); parsing and embedding only, the driver's ranking "
                         "stage is not included",
           "workers": {}}
    for n in (1, 2, 4, 8, 16, 32, 64):
        rate = per_worker * (1 if n == 1 else n * eff)
        out["workers"][str(n)] = {"articles_per_s": round(rate, 1),
                                  "hours_1M": round(1e6 / rate / 3600, 3),
                                  "hours_10M": round(1e7 / rate / 3600, 2)}
    out["measured_1M"] = {"workers": embedding["workers"],
                          "articles_per_s": embedding["articles_per_s"],
                          "embed_per_s_per_worker": embedding["embed_per_s_per_worker"]}
    return out


def dev_build(content: Path, config: BuildConfig) -> dict[str, Any]:
    """The dev corpus built by the local engine, then by the Ray engine, empty caches."""
    from recommender.pipeline import open_index
    from recommender.ray_engine import build_on_ray

    work = Path(tempfile.mkdtemp(prefix="scale-dev-"))
    try:
        t = time.perf_counter()
        local = open_index(content, config, work / "local", cache_dir=work / "cache-local",
                           rebuild=True).snapshot
        local_s = time.perf_counter() - t
        print("local", round(local_s, 1), flush=True)
        t = time.perf_counter()
        on_ray = build_on_ray(content, config, work / "ray", cache_dir=work / "cache-ray",
                              workers=2).snapshot
        ray_s = time.perf_counter() - t
        print("ray", round(ray_s, 1), on_ray.manifest["engine"], flush=True)
        same = np.array_equal(local.ranking.suggestions.rows, on_ray.ranking.suggestions.rows)
        return {"articles": len(local.articles),
                "local": {"wall_s": round(local_s, 1),
                          "embedding": local.manifest["embedding"]},
                "ray_2_workers": {"wall_s": round(ray_s, 1),
                                  "embedding": on_ray.manifest["embedding"],
                                  "stages_s": on_ray.manifest["engine"]["timings"],
                                  "includes_cluster_start": True},
                "same_suggestions": bool(same)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("content", type=Path, help="the dev corpus (sentences, or --dev-build)")
    parser.add_argument("--out", type=Path, default=Path("results/scale.json"))
    parser.add_argument("--dev-build", action="store_true", help="only the dev-corpus builds")
    parser.add_argument("--no-dev-build", action="store_true", help="no dev-corpus builds")
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="Ray workers for the 1M")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = BuildConfig()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    dev = None if args.no_dev_build else dev_build(args.content, config)
    if args.dev_build:
        write_results(args.out, {**stamp({"content": str(args.content),
                                          "config": config.model_dump(mode="json")}),
                                 "dev_build": dev})
        return
    gen = Generator(args.content, args.seed)
    print(f"generator: {len(gen.titles)} seed articles", flush=True)
    tp = throughput(gen, args.subset, config)
    big = million(args, gen, config)
    result = {"dev_build": dev, "subset_throughput": tp, "synthetic": big,
              "projection": projection(tp, big["embedding"]),
              "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
              "targets": {"recall@10>=0.95": big["chosen"]["recall@10"] >= 0.95,
                          "related_by_article_p99<=20ms":
                              big["chosen"]["related_by_article"]["p99_ms"] <= 20}}
    write_results(args.out, {**stamp({k: (str(v) if isinstance(v, Path) else v)
                                      for k, v in vars(args).items()}), **result})


if __name__ == "__main__":
    main()
