"""Embed articles, reusing every vector already computed for the same text.

The transformer is the bottleneck (about 12 answers a second on two cores), so
vectors are cached by (encoder key, hash of the prepared text): a rebuild embeds
only new or changed articles, and evaluation of several configurations pays for
each text once. The cache is one SQLite file, written batch by batch, so an
interrupted build keeps what it had embedded.

Progress is reported through a callback (``on_progress(done, total)``), so the
library draws nothing: the CLI turns the calls into a progress bar.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.config import BuildConfig, TextConfig
from recommender.corpus import Article
from recommender.encoders import Encoder, load_encoder
from recommender.text import prepare_text, text_hash


def default_cache_dir() -> Path:
    """``$RECOMMENDER_CACHE`` or ``~/.cache/recommender``: outside any content folder."""
    base = os.environ.get("RECOMMENDER_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recommender"
    return Path(base)


def chunk_words(text: str, max_tokens: int, max_chunks: int) -> list[str]:
    """Split ``text`` into windows that fit ``max_tokens`` (about 0.75 words per token)."""
    words = text.split()
    size = max(8, int(max_tokens * 0.75))
    chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return chunks[:max_chunks] or [""]


def encoder_key(model: str, text: TextConfig) -> str:
    """What, besides the text, decides a vector: the model and how long texts are cut."""
    chunks = text.max_chunks if text.chunking == "chunks" else 1
    return f"{model}|{text.max_tokens}|{text.chunking}|{chunks}"


#: up to this many texts the cache is searched by key, above it read whole
_LOOKUPS = 2000


class EmbeddingCache:
    """Vectors by (encoder key, text hash) in a SQLite file."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key TEXT, hash TEXT, dim INTEGER, vec BLOB,"
            " PRIMARY KEY (key, hash))")

    def get_many(self, key: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors of ``hashes``: looked up one by one for the few texts of an
        update (by primary key), read in one pass for a build's many."""
        wanted = set(hashes)
        found: dict[str, np.ndarray] = {}
        if len(wanted) <= _LOOKUPS:
            listed = sorted(wanted)
            rows = []
            for start in range(0, len(listed), 500):  # SQLite's limit on parameters
                part = listed[start : start + 500]
                rows += self.db.execute(
                    f"SELECT hash, vec FROM vectors WHERE key = ? AND hash IN "
                    f"({','.join('?' * len(part))})", (key, *part)).fetchall()
        else:
            rows = self.db.execute("SELECT hash, vec FROM vectors WHERE key = ?", (key,))
        for h, blob in rows:
            if h in wanted:
                found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, key: str, items: Sequence[tuple[str, np.ndarray]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                [(key, h, v.shape[0], np.asarray(v, np.float32).tobytes()) for h, v in items])

    def close(self) -> None:
        self.db.close()


@dataclass
class EmbeddingStats:
    """What an embedding run did; reported by ``build`` and kept in the manifest."""

    texts: int = 0
    cached: int = 0
    embedded: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


#: called as ``on_progress(done, total)`` after each embedded batch (texts, not batches)
Progress = Callable[[int, int], None]


#: embeds cache misses: given (text hash, text) pairs, shortest first, yields the
#: (text hash, vector) pairs batch by batch (in this process, or on a cluster)
EmbedMisses = Callable[[list[tuple[str, str]]], Iterator[list[tuple[str, np.ndarray]]]]


def embed_cached(texts: Sequence[str], key: str, dim: int, embed_misses: EmbedMisses,
                 cache: EmbeddingCache | None = None, on_progress: Progress | None = None
                 ) -> tuple[np.ndarray, EmbeddingStats]:
    """Vectors for ``texts`` under encoder ``key``, from the cache where possible; the
    misses are embedded by ``embed_misses`` and stored batch by batch, so an interrupted
    build keeps what it embedded. Every engine embeds through here.

    ``on_progress(done, total)`` is called once before the first batch and after
    each one, with the number of texts to embed (cache misses) as ``total``.
    """
    stats = EmbeddingStats(texts=len(texts))
    hashes = [text_hash(t) for t in texts]
    known = cache.get_many(key, hashes) if cache is not None else {}
    todo = sorted({h: t for h, t in zip(hashes, texts) if h not in known}.items(),
                  key=lambda item: len(item[1]))  # similar lengths batch with less padding
    stats.cached = len(texts) - sum(1 for h in hashes if h not in known)
    started = time.perf_counter()
    if on_progress and todo:
        on_progress(0, len(todo))
    for items in embed_misses(todo) if todo else ():
        if cache is not None:
            cache.put_many(key, items)
        known.update(items)
        stats.embedded += len(items)
        if on_progress:
            on_progress(stats.embedded, len(todo))
    stats.seconds = time.perf_counter() - started
    if not texts:
        return np.zeros((0, dim), np.float32), stats
    return np.stack([known[h] for h in hashes]).astype(np.float32), stats


def embed_texts(
    texts: Sequence[str],
    encoder: Encoder,
    text_config: TextConfig,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    on_progress: Progress | None = None,
) -> tuple[np.ndarray, EmbeddingStats]:
    """Vectors for ``texts`` (:func:`embed_cached`), the misses embedded in this process."""

    def misses(todo: list[tuple[str, str]]) -> Iterator[list[tuple[str, np.ndarray]]]:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            vectors = _encode_batch([t for _, t in batch], encoder, text_config, batch_size)
            yield list(zip([h for h, _ in batch], vectors))

    return embed_cached(texts, encoder_key(encoder.name, text_config), encoder.dim, misses,
                        cache, on_progress)


def _encode_batch(texts: list[str], encoder: Encoder, config: TextConfig,
                  batch_size: int) -> list[np.ndarray]:
    if config.chunking == "truncate":
        return list(encoder.encode(texts, batch_size=batch_size))
    pieces: list[str] = []
    owners: list[int] = []
    for i, text in enumerate(texts):
        chunks = chunk_words(text, config.max_tokens, config.max_chunks)
        pieces.extend(chunks)
        owners.extend([i] * len(chunks))
    chunk_vectors = encoder.encode(pieces, batch_size=batch_size)
    pooled = np.zeros((len(texts), chunk_vectors.shape[1]), np.float32)
    np.add.at(pooled, np.array(owners), chunk_vectors)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return list(pooled)


def embed_articles(
    articles: Iterable[Article],
    config: BuildConfig,
    cache_dir: Path | None = None,
    on_progress: Progress | None = None,
) -> tuple[np.ndarray, EmbeddingStats]:
    """Vectors of every article under ``config``, one row per article, in order, with stats."""
    texts = [prepare_text(a, config.text) for a in articles]
    encoder = load_encoder(config.model, config.text.max_tokens)
    cache = EmbeddingCache((cache_dir or default_cache_dir()) / "embeddings.sqlite")
    try:
        return embed_texts(texts, encoder, config.text, cache, config.batch_size, on_progress)
    finally:
        cache.close()


def embed_corpus(articles: Iterable[Article], config: BuildConfig,
                 cache_dir: Path | None = None, on_progress: Progress | None = None
                 ) -> np.ndarray:
    """Vectors of every article (e.g. a :class:`~recommender.corpus.Corpus`), in order."""
    return embed_articles(articles, config, cache_dir, on_progress)[0]
