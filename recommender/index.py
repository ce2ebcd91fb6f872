"""Build, save and load an index directory.

An index directory is self-contained, so the service can run from it without the
content folder::

    manifest.json     model, dimension, text config, corpus fingerprint, counts, build time
    config.yaml       the BuildConfig it was built with
    articles.jsonl    one article's metadata per row (answers are not kept)
    vectors.faiss     FAISS inner-product index over L2-normalised vectors (exact)
    neighbours.npz    each article's precomputed ranked candidates (rows and scores)
    lexical/          BM25 index, when the ranking uses the lexical signal

Writes go to a temporary sibling directory that is renamed into place, so an
interrupted build never leaves a broken index; loading an index built with
another model or configuration is refused with a message that says what differs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from recommender.config import BuildConfig
from recommender.corpus import Article, Corpus, CuratedLink
from recommender.embedding import EmbeddingStats, default_cache_dir, embed_articles
from recommender.errors import IndexMismatch, IndexNotFound
from recommender.text import text_hash

FORMAT_VERSION = 2  # 2: learned ranking state in lexical/
MANIFEST = "manifest.json"


def default_index_dir() -> Path:
    """``$RECOMMENDER_INDEX`` or ``~/.cache/recommender/index``: never inside the content."""
    env = os.environ.get("RECOMMENDER_INDEX")
    return Path(env) if env else default_cache_dir() / "index"


def corpus_fingerprint(articles: list[Article]) -> str:
    """A hash of everything that can change suggestions: texts, subjects, links, flags."""
    digest = hashlib.sha256()
    for a in sorted(articles, key=lambda a: a.url):
        content = text_hash("\x1f".join([a.title, a.question, a.answer, ",".join(a.keywords)]))
        digest.update(json.dumps([a.url, a.id, a.subject, a.no_index, content, a.links]).encode())
    return digest.hexdigest()[:16]


def _article_record(a: Article, root: Path) -> dict[str, Any]:
    try:
        path = str(a.path.resolve().relative_to(root.resolve()))
    except ValueError:
        path = str(a.path)
    return {
        "url": a.url, "id": a.id, "title": a.title, "question": a.question,
        "subject": a.subject, "keywords": list(a.keywords), "path": path,
        "no_index": a.no_index, "description": a.description, "date": a.date,
        "links": list(a.links), "curated": [vars(c) for c in a.curated],
    }


def _article_from_record(r: dict[str, Any]) -> Article:
    return Article(
        url=r["url"], id=r["id"], title=r["title"], question=r["question"], answer="",
        subject=r["subject"], keywords=tuple(r["keywords"]), path=Path(r["path"]),
        no_index=r["no_index"], description=r["description"], date=r["date"],
        curated=tuple(CuratedLink(**c) for c in r["curated"]), links=tuple(r["links"]))


@dataclass
class Index:
    """Everything needed to answer queries, in memory."""

    config: BuildConfig
    articles: list[Article]
    vectors: np.ndarray
    neighbours: np.ndarray  # (n, m) int32 rows, best first, -1 padded
    neighbour_scores: np.ndarray  # (n, m) float32
    manifest: dict[str, Any] = field(default_factory=dict)
    lexical: Any = None  # recommender.lexical.LexicalIndex when the ranking uses it
    faiss_index: Any = None

    def __post_init__(self) -> None:
        if self.faiss_index is None:
            self.faiss_index = faiss.IndexFlatIP(self.vectors.shape[1])
            self.faiss_index.add(self.vectors)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def save(self, directory: Path) -> None:
        """Write to a temporary sibling, then rename it into place."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
        try:
            faiss.write_index(self.faiss_index, str(tmp / "vectors.faiss"))
            np.savez(tmp / "neighbours.npz", rows=self.neighbours, scores=self.neighbour_scores)
            root = Path(self.manifest.get("corpus", {}).get("root", "."))
            with open(tmp / "articles.jsonl", "w", encoding="utf-8") as f:
                for a in self.articles:
                    f.write(json.dumps(_article_record(a, root), ensure_ascii=False) + "\n")
            if self.lexical is not None:
                self.lexical.save(tmp / "lexical")
            (tmp / "config.yaml").write_text(self.config.to_yaml(), encoding="utf-8")
            (tmp / MANIFEST).write_text(json.dumps(self.manifest, indent=2), encoding="utf-8")
            _swap_into_place(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _swap_into_place(new: Path, directory: Path) -> None:
    """Replace ``directory`` by ``new``; the old one is removed only once the new is in place."""
    old = None
    if directory.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
        os.rmdir(old)
        os.replace(directory, old)
    os.replace(new, directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _differences(expected: dict[str, Any], found: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key), found.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: index has {b!r}, asked for {a!r}")
    return out


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of the index at ``directory``. Raises :class:`IndexNotFound`."""
    manifest_path = Path(directory) / MANIFEST
    if not manifest_path.exists():
        raise IndexNotFound(f"no index at {directory} (no {MANIFEST}); run `recommender build`")
    return json.loads(manifest_path.read_text(encoding="utf-8"))


def load_index(directory: str | Path, expected: BuildConfig | None = None) -> Index:
    """Load an index; with ``expected``, refuse one built with another configuration."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(f"index at {directory} has format {manifest.get('format_version')},"
                            f" this version reads {FORMAT_VERSION}: rebuild it")
    config = BuildConfig.model_validate(manifest["config"])
    if expected is not None:
        diffs = _differences(expected.identity(), config.identity())
        if diffs:
            raise IndexMismatch(f"index at {directory} was built with another configuration: "
                                + "; ".join(diffs) + " (rebuild it, or drop the option)")
    with open(directory / "articles.jsonl", encoding="utf-8") as f:
        articles = [_article_from_record(json.loads(line)) for line in f]
    faiss_index = faiss.read_index(str(directory / "vectors.faiss"))
    if faiss_index.ntotal != len(articles) or faiss_index.d != manifest["dim"]:
        raise IndexMismatch(f"index at {directory} is inconsistent: {faiss_index.ntotal} vectors"
                            f" of dimension {faiss_index.d} for {len(articles)} articles")
    vectors = faiss_index.reconstruct_n(0, faiss_index.ntotal)
    with np.load(directory / "neighbours.npz") as npz:
        rows, scores = npz["rows"], npz["scores"]
    lexical = None
    if (directory / "lexical").exists():
        from recommender.lexical import LexicalIndex

        lexical = LexicalIndex.load(directory / "lexical")
    return Index(config, articles, vectors, rows, scores, manifest, lexical, faiss_index)


def build_index(
    corpus: Corpus,
    config: BuildConfig | None = None,
    index_dir: Path | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> Index:
    """Embed (reusing cached vectors), index, precompute neighbours, and save if asked."""
    from recommender.ranking import Ranker

    config = config or BuildConfig()
    started = time.perf_counter()
    articles = corpus.articles
    vectors, stats = embed_articles(articles, config, cache_dir, progress)
    index = Index(config, articles, vectors, np.zeros((len(articles), 0), np.int32),
                  np.zeros((len(articles), 0), np.float32))
    ranker = Ranker.build(index, corpus)
    index.neighbours, index.neighbour_scores = ranker.all_neighbours()
    index.manifest = _manifest(corpus, config, index, stats, time.perf_counter() - started)
    if index_dir is not None:
        index.save(index_dir)
    return index


def _manifest(corpus: Corpus, config: BuildConfig, index: Index, stats: EmbeddingStats,
              seconds: float) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "model": config.model,
        "dim": index.dim,
        "config": config.model_dump(mode="json"),
        "corpus": {
            "root": str(corpus.root.resolve()),
            "fingerprint": corpus_fingerprint(corpus.articles),
            "files": corpus.report.files,
            "articles": len(corpus.articles),
            "load_errors": len(corpus.report.errors),
        },
        "counts": {
            "articles": len(index.articles),
            "suggestable": sum(not a.no_index for a in index.articles),
            "no_index": sum(a.no_index for a in index.articles),
            "embedded": stats.embedded,
            "from_cache": stats.cached,
        },
        "embedding": {"seconds": round(stats.seconds, 3), "rate_per_s": round(stats.rate, 2)},
        "build_seconds": round(seconds, 3),
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
