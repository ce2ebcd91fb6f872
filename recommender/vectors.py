"""Nearest-neighbour search over the articles' dense vectors, by FAISS.

The vectors are L2-normalised, so inner product is cosine. FAISS finds the
candidates: exactly (``IndexFlatIP``, the default), or approximately with an
HNSW graph or an IVF index when the configuration asks for it
(:class:`~recommender.config.VectorConfig`). The candidates it returns are then
scored exactly by :func:`pair_scores`, so the neighbour lists do not depend on
FAISS's batching or rounding: an updated list and a freshly built one agree.

With ``shards`` > 1 the rows are cut into that many shards of consecutive rows, each
its own FAISS index of the configured kind (:class:`Shards`): a query fans out to
every shard and the results are merged by score, so a sharded exact search finds
what an unsharded one does; an index too large for one machine's memory, or for one
build, is split this way. The manifest reports each shard's rows and memory.

After an update the search is rebuilt over the new vectors: a flat index is a
copy (milliseconds); an IVF index keeps its trained clusters and re-adds the
vectors; an HNSW graph is rebuilt, which costs seconds per hundred thousand
vectors (``benchmarks/vector_search.py`` measures it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from recommender.config import VectorConfig
from recommender.errors import ConfigError


def pair_scores(vectors: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Exact cosines of the row pairs (``left[i]``, ``right[i]``), as float32.

    Summed in float64, so the value of a pair is the same whichever batch computed it.
    """
    out = np.empty(len(left), np.float32)
    for start in range(0, len(left), 4096):  # small chunks: the float64 copies stay in cache
        sl = slice(start, start + 4096)
        a = vectors[left[sl]].astype(np.float64)
        b = vectors[right[sl]].astype(np.float64)
        out[sl] = np.einsum("ij,ij->i", a, b)
    return out


def block_scores(vectors: np.ndarray, rows: np.ndarray, columns: np.ndarray | None = None
                 ) -> np.ndarray:
    """Exact (len(rows), len(columns)) cosines (every row if ``columns`` is None), float32."""
    other = vectors if columns is None else vectors[columns]
    return (vectors[rows].astype(np.float64) @ other.astype(np.float64).T).astype(np.float32)


class VectorSearch:
    """A FAISS index over ``vectors`` (n, dim), searched by inner product."""

    def __init__(self, vectors: np.ndarray, config: VectorConfig,
                 index: faiss.Index | None = None):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.config = config
        self.index = index if index is not None else self._build(None)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def _build(self, trained: faiss.Index | Shards | None) -> faiss.Index | Shards:
        if self.config.shards > 1:
            return Shards.build(self.vectors, self.config,
                                trained if isinstance(trained, Shards) else None)
        return faiss_index(self.vectors, self.config, trained)

    def replaced(self, vectors: np.ndarray) -> VectorSearch:
        """A new search over ``vectors`` (an update); an IVF index keeps its clusters."""
        trained = self.index if self.config.index == "ivf" and self.index.is_trained else None
        new = VectorSearch.__new__(VectorSearch)
        new.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        new.config = self.config
        new.index = new._build(trained)
        return new

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Rows of the ``k`` best candidates of each query, -1 where fewer exist."""
        k = min(k, len(self))
        if k <= 0 or len(queries) == 0:
            return np.full((len(queries), max(k, 0)), -1, np.int64)
        _, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return ids

    def save(self, path: Path) -> None:
        """Write the FAISS index to ``path``; sharded, one file per shard (``shard_path``)."""
        if isinstance(self.index, Shards):
            for i, shard in enumerate(self.index.shards):
                faiss.write_index(shard, str(shard_path(path, i)))
        else:
            faiss.write_index(self.index, str(path))

    @staticmethod
    def read(path: Path, config: VectorConfig | None = None) -> faiss.Index | Shards:
        """The FAISS index in ``path`` (checked against the vectors by the caller); with a
        sharded ``config``, its shards' files."""
        if config is None or config.shards <= 1:
            return faiss.read_index(str(path))
        return Shards([faiss.read_index(str(shard_path(path, i))) for i in range(config.shards)])

    def describe(self) -> dict[str, Any]:
        """What the manifest says of the search: its kind; sharded, each shard's rows and
        the bytes it holds in memory (vectors, graph or lists: :func:`index_bytes`)."""
        out: dict[str, Any] = {"index": self.config.index}
        if isinstance(self.index, Shards):
            out["shards"] = {"count": len(self.index.shards),
                             "rows": [int(s.ntotal) for s in self.index.shards],
                             "bytes": [index_bytes(s) for s in self.index.shards]}
        return out


def faiss_index(vectors: np.ndarray, cfg: VectorConfig,
                trained: faiss.Index | None = None) -> faiss.Index:
    """A FAISS index over ``vectors`` as ``cfg`` says (``trained``: an IVF index whose
    clusters are kept)."""
    n, dim = vectors.shape
    if cfg.index == "hnsw":
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
        index.hnsw.efSearch = cfg.ef_search
    elif cfg.index == "ivf" and n > 0:
        if trained is not None:
            index = faiss.clone_index(trained)
            index.reset()
        else:
            nlist = cfg.nlist or max(1, int(4 * math.sqrt(n)))
            nlist = min(nlist, max(1, n // 39))  # FAISS wants ~39 points per cluster
            quantizer = faiss.IndexFlatIP(dim)
            if cfg.pq_m:
                if dim % cfg.pq_m:
                    raise ConfigError(f"vectors.pq_m {cfg.pq_m} must divide the dimension "
                                      f"{dim}")
                index = faiss.IndexIVFPQ(quantizer, dim, nlist, cfg.pq_m, 8,
                                         faiss.METRIC_INNER_PRODUCT)
            else:
                index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors)
        index.nprobe = cfg.nprobe
    else:
        index = faiss.IndexFlatIP(dim)
    if n:
        index.add(vectors)
    return index


def index_bytes(index: faiss.Index) -> int:
    """The bytes a FAISS index holds in memory, from its parts (no copy is made): stored
    vectors or codes, the HNSW graph's links, the IVF lists with their ids and centroids."""
    n, d = int(index.ntotal), int(index.d)
    if isinstance(index, faiss.IndexHNSW):
        graph = index.hnsw
        return (n * d * 4 + graph.neighbors.size() * 4 + graph.levels.size() * 4
                + graph.offsets.size() * 8)
    if isinstance(index, faiss.IndexIVF):
        lists = index.invlists
        stored = sum(lists.list_size(i) for i in range(lists.nlist))
        return stored * (index.code_size + 8) + int(index.nlist) * d * 4
    return n * d * 4


def shard_path(path: Path, shard: int) -> Path:
    """The file of one shard: ``vectors.faiss`` → ``vectors.shard-003.faiss``."""
    return path.with_name(f"{path.stem}.shard-{shard:03d}{path.suffix}")


class Shards:
    """A FAISS index cut into shards of consecutive rows, each built as the configuration
    says (flat, HNSW or IVF); searched like one index.

    A query goes to every shard; each returns its ``k`` best with their inner products,
    and the shards' lists are merged by score (ties by row) into the global top ``k``,
    rows numbered over all shards. A shard is a separate FAISS index, so shards can be
    built on separate workers and held by separate replicas behind such a merge.
    """

    def __init__(self, shards: list[faiss.Index]):
        self.shards = shards
        sizes = [int(s.ntotal) for s in shards]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @classmethod
    def build(cls, vectors: np.ndarray, cfg: VectorConfig, trained: Shards | None = None
              ) -> Shards:
        bounds = shard_bounds(len(vectors), cfg.shards)
        return cls([faiss_index(vectors[a:b], cfg, trained.shards[i] if trained else None)
                    for i, (a, b) in enumerate(bounds)])

    @property
    def ntotal(self) -> int:
        return int(self.offsets[-1])

    @property
    def d(self) -> int:
        return int(self.shards[0].d)

    @property
    def is_trained(self) -> bool:
        return all(s.is_trained for s in self.shards)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best (scores, global rows) of each query over every shard."""
        scores, rows = [], []
        for offset, shard in zip(self.offsets, self.shards):
            kk = min(k, int(shard.ntotal))
            if kk <= 0:
                continue
            d, i = shard.search(queries, kk)
            scores.append(d)
            rows.append(np.where(i >= 0, i + offset, -1))
        return merge_top_k(np.hstack(scores), np.hstack(rows), k)


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` ranges of consecutive rows covering ``0..n``, sizes differing by one at most."""
    edges = [n * i // shards for i in range(shards + 1)]
    return list(zip(edges[:-1], edges[1:]))


def merge_top_k(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each row's candidates (scores, rows) by score, then by row; a
    missing candidate (row -1) ranks last."""
    scores = np.where(rows >= 0, scores, -np.inf)
    order = np.lexsort((rows, -scores), axis=-1)
    order = order[..., :k]
    top_scores = np.take_along_axis(scores, order, -1)
    top_rows = np.take_along_axis(rows, order, -1)
    return top_scores, top_rows


def recall_against_exact(vectors: np.ndarray, config: VectorConfig, k: int,
                         queries: np.ndarray) -> float:
    """Share of each query row's exact ``k`` nearest rows (itself excluded) that ``config``'s
    search finds among its ``k + 1`` results: how approximate an approximate index is."""
    exact = VectorSearch(vectors, VectorConfig())
    other = VectorSearch(vectors, config)
    truth = exact.search(vectors[queries], k + 1)
    found = other.search(vectors[queries], k + 1)
    hits = total = 0
    for q, t, f in zip(queries.tolist(), truth, found, strict=True):
        wanted = set(t.tolist()) - {q, -1}
        hits += len(wanted & set(f.tolist()))
        total += len(wanted)
    return hits / max(total, 1)
