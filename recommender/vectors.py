"""Nearest-neighbour search over the articles' dense vectors, by FAISS.

The vectors are L2-normalised, so inner product is cosine. FAISS finds the
candidates: exactly (``IndexFlatIP``, the default), or approximately with an
HNSW graph or an IVF index when the configuration asks for it
(:class:`~recommender.config.VectorConfig`). The candidates it returns are then
scored exactly by :func:`pair_scores`, so the neighbour lists do not depend on
FAISS's batching or rounding: an updated list and a freshly built one agree.

After an update the search is rebuilt over the new vectors: a flat index is a
copy (milliseconds); an IVF index keeps its trained clusters and re-adds the
vectors; an HNSW graph is rebuilt, which costs seconds per hundred thousand
vectors (``benchmarks/vector_search.py`` measures it).
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

from recommender.config import VectorConfig


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

    def _build(self, trained: faiss.Index | None) -> faiss.Index:
        n, dim = self.vectors.shape
        cfg = self.config
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
                index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
                index.train(self.vectors)
            index.nprobe = cfg.nprobe
        else:
            index = faiss.IndexFlatIP(dim)
        if n:
            index.add(self.vectors)
        return index

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
        faiss.write_index(self.index, str(path))

    @staticmethod
    def read(path: Path) -> faiss.Index:
        """The FAISS index in ``path`` (checked against the vectors by the caller)."""
        return faiss.read_index(str(path))


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
