"""The one-way pipeline as a single call: content folder → corpus → embeddings → index.

Used by every entry point that starts from a content folder (``build``, ``fill``,
``serve``, ``evaluate``), so they agree on what "the index of this folder" is.
"""

from __future__ import annotations

import json
from pathlib import Path

from recommender.config import BuildConfig
from recommender.corpus import Corpus, load_corpus
from recommender.index import (
    FORMAT_VERSION,
    MANIFEST,
    Index,
    build_index,
    corpus_fingerprint,
    load_index,
)


def index_is_current(index_dir: Path, corpus: Corpus, config: BuildConfig) -> bool:
    """True when ``index_dir`` holds an index of exactly this corpus and configuration."""
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (manifest.get("format_version") == FORMAT_VERSION
            and manifest.get("corpus", {}).get("fingerprint") == corpus_fingerprint(corpus.articles)
            and BuildConfig.model_validate(manifest["config"]).identity() == config.identity())


def open_index(content_dir: Path, config: BuildConfig, index_dir: Path,
               cache_dir: Path | None = None, progress: bool = False,
               rebuild: bool = False) -> tuple[Corpus, Index]:
    """Load the content folder, and the index of it, (re)building it only if out of date."""
    corpus = load_corpus(content_dir)
    if not rebuild and index_is_current(index_dir, corpus, config):
        return corpus, load_index(index_dir, expected=config)
    return corpus, build_index(corpus, config, index_dir, cache_dir, progress)
