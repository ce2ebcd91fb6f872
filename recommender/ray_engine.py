"""``recommender build --engine ray``: the same build, its parsing and embedding on Ray.

The local engine parses files on a few processes and embeds on this machine's
cores; a corpus of millions outgrows one machine's embedding throughput. This
engine runs the two costly, embarrassingly parallel stages as Ray Data pipelines
and keeps everything else as it is, so both engines write the same index:

1. the folder is listed and its schema detected here (cheap: one ``stat`` per file);
   the files are parsed by Ray tasks with the library's own parser
   (:func:`~recommender.corpus.read_one`, through :func:`~recommender.sources.scan_folder`'s
   ``reader``), then assembled here as a local build does (duplicate urls, subjects,
   curated links);
2. texts whose vectors are not in the embedding cache are embedded by
   ``map_batches`` over a pool of actors, each loading the configured encoder once
   (:func:`~recommender.encoders.load_encoder`); the new vectors go into the cache;
3. with ``vectors.shards`` > 1 (HNSW or IVF), each shard's FAISS index is built by
   a Ray task (:func:`search_on_ray`);
4. the vectors and their search are handed to
   :func:`~recommender.pipeline.build_snapshot` (sparse signals, neighbour lists,
   suggestions) and saved as any index.

Without ``address`` a local cluster of ``workers`` CPUs is started on loopback and
stopped at the end; with one, the build joins that cluster (every node needs this
package installed and the content folder at the same path, e.g. a shared mount).
A Ray engine build is always a full build: updates of an index are the local
engine's (:func:`~recommender.pipeline.open_index`), and unchanged texts come from
the embedding cache either way.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from recommender.config import BuildConfig, VectorConfig
from recommender.corpus import Article, read_one
from recommender.embedding import (
    EmbeddingCache,
    EmbeddingStats,
    Progress,
    _encode_batch,
    default_cache_dir,
    embed_cached,
    encoder_key,
)
from recommender.encoders import load_encoder, model_spec
from recommender.errors import ConfigError
from recommender.pipeline import Opened, build_snapshot, save_index
from recommender.schema import Schema
from recommender.sources import Read, scan_folder
from recommender.text import clean_once, prepare_text
from recommender.vectors import Shards, VectorSearch, faiss_index, shard_bounds

#: files per parsing task: large enough that a task's overhead (milliseconds) is noise
PARSE_BATCH = 512
#: texts per embedding call on an actor
EMBED_BATCH = 1024


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'qa-related-recommender[ray]'"
                          ) from None
    return ray


@contextmanager
def ray_cluster(address: str | None = None, workers: int | None = None) -> Iterator[int]:
    """Connected to a Ray cluster for the block; yields its CPU count.

    ``address``: an existing cluster (``ray://host:10001`` or ``host:6379``, or
    ``auto``), left running. None: a local cluster of ``workers`` CPUs (default: all
    of them) on loopback, without dashboard, shut down at the end. A cluster this
    process is already connected to is used as it is.
    """
    ray = _ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                     _node_ip_address="127.0.0.1", log_to_driver=False)
        started = True
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.verbose_stats_logs = False
    try:
        yield int(ray.cluster_resources().get("CPU", 1))
    finally:
        if started:
            ray.shutdown()


# -- parsing -------------------------------------------------------------------------------


def _parse_batch(batch: dict[str, np.ndarray], schema: Schema) -> dict[str, np.ndarray]:
    """Ray task: parse a batch of files with the library's parser; results travel pickled."""
    items = [pickle.dumps(read_one(Path(p), schema, r))
             for p, r in zip(batch["path"], batch["rel"], strict=True)]
    return {"row": batch["row"], "item": np.array(items, dtype=object)}


@dataclass
class RayReader:
    """A :data:`~recommender.sources.Reader` that parses the files on the Ray cluster."""

    workers: int

    def __call__(self, paths: list[Path], rels: list[str], schema: Schema) -> list[Read]:
        ray = _ray()
        if not paths:
            return []
        items = [{"row": i, "path": os.fspath(p), "rel": r}
                 for i, (p, r) in enumerate(zip(paths, rels, strict=True))]
        size = max(1, min(PARSE_BATCH, -(-len(items) // self.workers)))
        dataset = ray.data.from_items(items, override_num_blocks=-(-len(items) // size))
        out: list[Read | None] = [None] * len(items)
        for batch in dataset.map_batches(_parse_batch, fn_kwargs={"schema": schema},
                                         batch_size=size).iter_batches(batch_size=None):
            for row, item in zip(batch["row"], batch["item"], strict=True):
                out[int(row)] = pickle.loads(item)
        return out  # type: ignore[return-value]


# -- embedding -----------------------------------------------------------------------------


class Embedder:
    """Ray actor: the configured encoder, loaded once, embedding batches of texts."""

    def __init__(self, config: dict[str, Any]):
        self.config = BuildConfig.model_validate(config)
        self.encoder = load_encoder(self.config.model, self.config.text.max_tokens)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = _encode_batch(list(batch["text"]), self.encoder, self.config.text,
                                self.config.batch_size)
        return {"row": batch["row"], "vector": np.stack(vectors).astype(np.float32)}


def embed_on_ray(texts: list[str], config: BuildConfig, workers: int,
                 cache: EmbeddingCache | None = None, on_progress: Progress | None = None
                 ) -> tuple[np.ndarray, EmbeddingStats]:
    """Vectors of ``texts`` (one row each, in order) as
    :func:`~recommender.embedding.embed_texts` computes them, the cache misses embedded
    by ``workers`` encoder actors on the cluster."""
    ray = _ray()

    def misses(todo: list[tuple[str, str]]) -> Iterator[list[tuple[str, np.ndarray]]]:
        size = max(1, min(EMBED_BATCH, -(-len(todo) // workers)))
        dataset = ray.data.from_items([{"row": i, "text": t} for i, (_, t) in enumerate(todo)],
                                      override_num_blocks=-(-len(todo) // size))
        embedded = dataset.map_batches(
            Embedder, fn_constructor_args=(config.model_dump(mode="json"),),
            batch_size=size, concurrency=workers, num_cpus=1)
        for batch in embedded.iter_batches(batch_size=None):
            yield [(todo[int(i)][0], v) for i, v in zip(batch["row"], batch["vector"],
                                                        strict=True)]

    return embed_cached(texts, encoder_key(config.model, config.text),
                        model_spec(config.model).dim, misses, cache, on_progress)


def _embed_articles(articles: list[Article], config: BuildConfig, workers: int,
                    cache_dir: Path | None, on_progress: Progress | None
                    ) -> tuple[np.ndarray, EmbeddingStats]:
    texts = [prepare_text(a, config.text) for a in articles]
    cache = EmbeddingCache((cache_dir or default_cache_dir()) / "embeddings.sqlite")
    try:
        return embed_on_ray(texts, config, workers, cache, on_progress)
    finally:
        cache.close()


# -- shards ---------------------------------------------------------------------------------


def _build_shard(vectors: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """Ray task: one shard's FAISS index, serialised (FAISS indexes do not pickle)."""
    return faiss.serialize_index(faiss_index(vectors, VectorConfig.model_validate(config)))


def search_on_ray(vectors: np.ndarray, config: VectorConfig) -> VectorSearch:
    """The vector search of ``vectors``; its shards built by Ray tasks, one a shard, when
    the configuration has several (a graph or clusters: flat shards are a copy)."""
    if config.shards <= 1 or config.index == "flat":
        return VectorSearch(vectors, config)
    ray = _ray()
    task = ray.remote(_build_shard)
    refs = [task.remote(vectors[a:b], config.model_dump(mode="json"))
            for a, b in shard_bounds(len(vectors), config.shards)]
    return VectorSearch(vectors, config, Shards([faiss.deserialize_index(b)
                                                 for b in ray.get(refs)]))


# -- the build -----------------------------------------------------------------------------


def build_on_ray(content_dir: str | Path, config: BuildConfig | None = None,
                 index_dir: Path | None = None, *, cache_dir: Path | None = None,
                 on_progress: Progress | None = None, schema: Schema | None = None,
                 address: str | None = None, workers: int | None = None) -> Opened:
    """Build the index of ``content_dir`` from scratch with parsing and embedding on Ray
    (see the module docstring); saved to ``index_dir`` if given, as a local build is."""
    config = config or BuildConfig()
    content_dir = Path(os.path.abspath(content_dir))  # the workers' working folder differs
    started = time.perf_counter()
    timings: dict[str, float] = {}
    with ray_cluster(address, workers) as cpus, clean_once():
        t = time.perf_counter()
        scan = scan_folder(content_dir, None, schema, reread=True, reader=RayReader(cpus))
        timings["parse"] = time.perf_counter() - t
        t = time.perf_counter()
        vectors, stats = _embed_articles(scan.corpus.articles, config, cpus, cache_dir,
                                         on_progress)
        timings["embed"] = time.perf_counter() - t
        t = time.perf_counter()
        search = search_on_ray(vectors, config.vectors)
        timings["vector_index"] = time.perf_counter() - t
        t = time.perf_counter()
        snapshot = build_snapshot(scan.corpus, config, cache_dir, scan=scan, vectors=vectors,
                                  search=search)
        timings["rank"] = time.perf_counter() - t
    manifest = snapshot.manifest
    manifest["counts"].update(embedded=stats.embedded, from_cache=stats.cached)
    manifest["embedding"] = {"seconds": round(stats.seconds, 3),
                             "rate_per_s": round(stats.rate, 2)}
    seconds = time.perf_counter() - started
    manifest["engine"] = {"name": "ray", "address": address or "local", "cpus": cpus,
                          "timings": {k: round(v, 3) for k, v in timings.items()}}
    manifest["last_change"]["seconds"] = manifest["build_seconds"] = round(seconds, 3)
    if index_dir is not None:
        save_index(snapshot, index_dir)
    return Opened(scan.corpus, snapshot, "built", "engine ray", time.perf_counter() - started)
