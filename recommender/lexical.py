"""Sparse lexical signals: TF-IDF cosine over words, and over curated keyword phrases.

All are cosines in [0, 1], like the dense signal, so a weighted sum of them is
meaningful without per-query normalisation. The fitted vocabulary and IDF are
saved as plain JSON and NumPy files (no pickles) inside the index directory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.corpus import Article
from recommender.text import article_text

if TYPE_CHECKING:
    from recommender.ranking import LearnedModel

KEYWORD_SEP = "\x1f"


def _split_keywords(text: str) -> list[str]:
    return [k for k in text.split(KEYWORD_SEP) if k]


def _vectorizer(kind: str, vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    if kind == "keywords":
        return TfidfVectorizer(tokenizer=_split_keywords, token_pattern=None, lowercase=True,
                               sublinear_tf=True, vocabulary=vocabulary, dtype=np.float32)
    return TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, max_df=0.5,
                           vocabulary=vocabulary, dtype=np.float32)


class SparseSignal:
    """TF-IDF vectors of every article for one kind of text, and the fitted vectorizer."""

    def __init__(self, kind: str, fields: Sequence[str], vectorizer: TfidfVectorizer,
                 matrix: sp.csr_matrix):
        self.kind, self.fields = kind, tuple(fields)
        self.vectorizer, self.matrix = vectorizer, matrix.astype(np.float32).tocsr()

    @staticmethod
    def document(article: Article, kind: str, fields: Sequence[str]) -> str:
        if kind == "keywords":
            return KEYWORD_SEP.join(article.keywords)
        return article_text(article, tuple(fields))

    @classmethod
    def fit(cls, articles: Sequence[Article], kind: str, fields: Sequence[str]) -> SparseSignal:
        docs = [cls.document(a, kind, fields) for a in articles]
        vectorizer = _vectorizer(kind)
        try:
            matrix = vectorizer.fit_transform(docs)
        except ValueError:  # empty vocabulary (tiny corpus): fall back to keeping every term
            vectorizer = TfidfVectorizer(sublinear_tf=True, dtype=np.float32)
            matrix = vectorizer.fit_transform(docs)
        return cls(kind, fields, vectorizer, matrix)

    def transform_text(self, text: str) -> sp.csr_matrix:
        """Vector of free text; keyword signals read no free text and give an empty vector."""
        if self.kind == "keywords":
            return sp.csr_matrix((1, self.matrix.shape[1]), dtype=np.float32)
        return self.vectorizer.transform([text]).astype(np.float32)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        vocab = {t: int(i) for t, i in self.vectorizer.vocabulary_.items()}
        meta = {"kind": self.kind, "fields": list(self.fields), "vocabulary": vocab}
        (directory / "vectorizer.json").write_text(json.dumps(meta), encoding="utf-8")
        np.save(directory / "idf.npy", self.vectorizer.idf_)
        sp.save_npz(directory / "matrix.npz", self.matrix)

    @classmethod
    def load(cls, directory: Path) -> SparseSignal:
        meta = json.loads((directory / "vectorizer.json").read_text(encoding="utf-8"))
        vectorizer = _vectorizer(meta["kind"], meta["vocabulary"])
        vectorizer.idf_ = np.load(directory / "idf.npy")
        return cls(meta["kind"], meta["fields"], vectorizer, sp.load_npz(directory / "matrix.npz"))


@dataclass
class NeighbourLists:
    """Each article's nearest articles under one signal: (n, depth) rows and cosines."""

    rows: np.ndarray  # int32, best first
    scores: np.ndarray  # float32


class LexicalIndex:
    """The ranking state of one index beyond the vectors.

    The sparse signals by name (``lexical``, ``description``, ``keywords``), and for
    the learned ranker each signal's neighbour lists and the model's parameters,
    all saved as JSON / NumPy files: ``<name>/`` per sparse signal,
    ``neighbour_lists.npz`` and ``ranker.json``.
    """

    def __init__(self, signals: dict[str, SparseSignal],
                 neighbours: dict[str, NeighbourLists] | None = None,
                 model: LearnedModel | None = None):
        self.signals = signals
        self.neighbours: dict[str, NeighbourLists] = neighbours or {}
        self.model = model

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, signal in self.signals.items():
            signal.save(directory / name)
        if self.neighbours:
            arrays = {}
            for name, lists in self.neighbours.items():
                arrays[f"{name}.rows"], arrays[f"{name}.scores"] = lists.rows, lists.scores
            np.savez(directory / "neighbour_lists.npz", **arrays)
        if self.model is not None:
            self.model.save(directory / "ranker.json")

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        signals = {d.name: SparseSignal.load(d) for d in sorted(directory.iterdir())
                   if d.is_dir() and (d / "vectorizer.json").exists()}
        neighbours: dict[str, NeighbourLists] = {}
        if (directory / "neighbour_lists.npz").exists():
            with np.load(directory / "neighbour_lists.npz") as npz:
                for key in npz.files:
                    name, part = key.rsplit(".", 1)
                    if part == "rows":
                        neighbours[name] = NeighbourLists(npz[key], npz[f"{name}.scores"])
        model = None
        if (directory / "ranker.json").exists():
            from recommender.ranking import LearnedModel

            model = LearnedModel.load(directory / "ranker.json")
        return cls(signals, neighbours, model)
