"""Sparse lexical signals: TF-IDF over words of some fields, or over keyword phrases.

A signal is fitted once (vocabulary and IDF) and then *frozen*: an update
transforms only the new or changed articles with the same vocabulary and IDF, so
every other article's vector stays as it is, and so do the neighbour lists built
on them. How far the frozen IDF has drifted from what a refit would give is
measured (:meth:`SparseSignal.drift`) and reported; the pipeline refits past a
threshold. A signal whose field is empty in every article cannot be fitted: it is
switched off, and the reason is reported instead of a crash. An article without
the field has a zero vector: zero similarity on that signal.

The ``mentions`` signal is TF-IDF over *names*: an article whose title is one
token (``systemd.unit(5)`` is ``systemd.unit``, ``git-rebase`` is itself) is a name,
and an article's row holds the names its title and text use. Two articles are
close when one names the other, or both name the same pages: the "see also"
evidence of reference sites, read from the content. Where almost no article
names another (Q&A sites, whose titles are questions), it is switched off.

Rows are L2-normalised, so products of rows are cosines in [0, 1]. Everything is
saved as JSON and NumPy files (no pickles) and checked when read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize

from recommender.corpus import Article
from recommender.errors import IndexCorrupt
from recommender.index import check_array, load_array
from recommender.text import article_text

KEYWORD_SEP = "\x1f"
#: the sparse signals, their kind of text and the fields they read (lexical: configured)
SPARSE_SIGNALS = {"lexical": "words", "description": "words", "keywords": "keywords",
                  "mentions": "mentions"}
#: a token that may be a page's name: letters, digits and the . - _ + : of command names
_NAME_TOKEN = re.compile(r"[a-z0-9][\w.+:-]*[\w+]|[a-z0-9]")
_TRAILING_PARENTHESIS = re.compile(r"\s*\([^()]*\)\s*$")
#: the mentions signal is switched off when fewer articles than this share name another
MIN_MENTIONING_SHARE = 0.01
#: names used by more than this share of articles are common words, not references
MAX_NAME_SHARE = 0.05
#: weight of an article's own name against the names it uses (see SparseSignal._rows)
OWN_NAME_WEIGHT = 10.0


def name_tokens(text: str) -> list[str]:
    """The tokens of ``text`` that could be page names (lowercased)."""
    return _NAME_TOKEN.findall(text.lower())


def page_name(title: str) -> str | None:
    """An article's name when its title is one name-like token (a trailing ``(5)`` dropped)."""
    tokens = name_tokens(_TRAILING_PARENTHESIS.sub("", title))
    return tokens[0] if len(tokens) == 1 and len(tokens[0]) >= 2 else None


def _split_keywords(text: str) -> list[str]:
    return [k for k in text.split(KEYWORD_SEP) if k]


def _vectorizer(kind: str, vocabulary: dict[str, int] | None = None,
                every_term: bool = False) -> TfidfVectorizer:
    if kind == "keywords":
        return TfidfVectorizer(tokenizer=_split_keywords, token_pattern=None, lowercase=True,
                               sublinear_tf=True, vocabulary=vocabulary, dtype=np.float32)
    if kind == "mentions":  # rows are weighted and normalised by SparseSignal._mention_rows
        return TfidfVectorizer(analyzer=name_tokens, sublinear_tf=True, vocabulary=vocabulary,
                               norm=None, dtype=np.float32)
    if every_term:
        return TfidfVectorizer(sublinear_tf=True, vocabulary=vocabulary, dtype=np.float32)
    return TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, max_df=0.5,
                           vocabulary=vocabulary, dtype=np.float32)


def document(article: Article, kind: str, fields: Sequence[str]) -> str:
    """The text one signal reads of an article."""
    if kind == "keywords":
        return KEYWORD_SEP.join(article.keywords)
    return article_text(article, tuple(fields))


class SignalOff(ValueError):
    """A signal cannot be fitted because its field is empty in every article."""


class SparseSignal:
    """A fitted, frozen TF-IDF vectorizer for one kind of text (no article vectors)."""

    def __init__(self, kind: str, fields: Sequence[str], vectorizer: TfidfVectorizer,
                 every_term: bool = False):
        self.kind, self.fields = kind, tuple(fields)
        self.vectorizer = vectorizer
        self.every_term = every_term  # the corpus was too small to prune rare/common terms

    @property
    def vocabulary_size(self) -> int:
        vocabulary = getattr(self.vectorizer, "vocabulary_", None)
        return len(vocabulary if vocabulary is not None else self.vectorizer.vocabulary)

    def documents(self, articles: Sequence[Article]) -> list[str]:
        return [document(a, self.kind, self.fields) for a in articles]

    @classmethod
    def fit(cls, articles: Sequence[Article], kind: str, fields: Sequence[str]
            ) -> tuple[SparseSignal, sp.csr_matrix]:
        """Fit on ``articles`` and return the signal with their (n, vocabulary) matrix.

        Raises :class:`SignalOff` when no article has any term in the field.
        """
        if kind == "mentions":
            return cls._fit_mentions(articles, fields)
        docs = [document(a, kind, fields) for a in articles]
        for every_term in (False, True):  # a tiny corpus may lose every term to pruning
            if every_term and kind == "keywords":
                break
            vectorizer = _vectorizer(kind, every_term=every_term)
            try:
                matrix = vectorizer.fit_transform(docs)
            except ValueError:  # scikit-learn: "empty vocabulary"
                continue
            return cls(kind, fields, vectorizer, every_term), _csr(matrix)
        what = "keyword phrases" if kind == "keywords" else "+".join(fields)
        raise SignalOff(f"no article has any {what}")

    @classmethod
    def _fit_mentions(cls, articles: Sequence[Article], fields: Sequence[str]
                      ) -> tuple[SparseSignal, sp.csr_matrix]:
        """Names: single-token titles that some other article uses, and few articles do."""
        names = sorted({name for a in articles if (name := page_name(a.title))})
        if len(names) < MIN_MENTIONING_SHARE * len(articles):
            raise SignalOff(f"{len(names)} of {len(articles)} articles have a title that is a "
                            f"name (one token) others could use (fewer than "
                            f"{MIN_MENTIONING_SHARE:.0%})")
        docs = [document(a, "mentions", fields) for a in articles]
        counts = CountVectorizer(analyzer=name_tokens, vocabulary=names).transform(docs)
        df = np.diff(counts.tocsc().indptr)
        keep = (df >= 2) & (df <= max(2.0, MAX_NAME_SHARE * len(docs)))
        names = [n for n, k in zip(names, keep, strict=True) if k]
        kept = set(names)
        used = np.asarray((counts[:, keep] > 0).sum(axis=1)).ravel()
        own = np.array([page_name(a.title) in kept for a in articles], dtype=np.int64)
        mentioning = int((used - own >= 1).sum())
        if mentioning < MIN_MENTIONING_SHARE * len(docs):
            raise SignalOff(f"{mentioning} of {len(docs)} articles name another article "
                            f"(fewer than {MIN_MENTIONING_SHARE:.0%})")
        vectorizer = _vectorizer("mentions", {n: i for i, n in enumerate(names)})
        signal = cls("mentions", fields, vectorizer.fit(docs))
        return signal, signal._rows(articles, docs)

    def _rows(self, articles: Sequence[Article] | None, docs: list[str]) -> sp.csr_matrix:
        """Signal rows of ``docs``; for ``mentions``, each article's own name (from
        ``articles``) outweighs the names it uses, so that the product of two rows is led
        by one naming the other, not by both naming a third page."""
        matrix = self.vectorizer.transform(docs)
        if self.kind != "mentions":
            return _csr(matrix)
        if articles is not None:
            vocabulary = self.vectorizer.vocabulary_
            own = [(i, vocabulary[name]) for i, a in enumerate(articles)
                   if (name := page_name(a.title)) in vocabulary]
            idf = np.asarray(self.vectorizer.idf_, dtype=np.float32)
            rows, cols = (np.array(x, dtype=np.int64) for x in zip(*own, strict=True)) \
                if own else (np.zeros(0, np.int64), np.zeros(0, np.int64))
            boost = sp.csr_matrix((OWN_NAME_WEIGHT * idf[cols], (rows, cols)),
                                  shape=matrix.shape, dtype=np.float32)
            matrix = matrix + boost
        return _csr(normalize(matrix))

    def transform(self, articles: Sequence[Article]) -> sp.csr_matrix:
        """Rows of ``articles`` under the frozen vocabulary and IDF (unknown terms dropped)."""
        if not articles:
            return sp.csr_matrix((0, self.vocabulary_size), dtype=np.float32)
        return self._rows(articles, self.documents(articles))

    def transform_text(self, text: str) -> sp.csr_matrix:
        """Vector of free text; keyword signals read no free text and give an empty vector."""
        if self.kind == "keywords":
            return sp.csr_matrix((1, self.vocabulary_size), dtype=np.float32)
        return self._rows(None, [text])

    def drift(self, matrix: sp.csr_matrix) -> float:
        """How far the frozen IDF is from the IDF of the articles now in ``matrix``.

        The mean relative change of a term's IDF, weighted by its document
        frequency now (terms that are used weigh most); 0 right after a fit.
        Terms a refit would add to the vocabulary are not seen (they are dropped by
        the frozen vocabulary), which is why the pipeline also counts changed
        articles.
        """
        n = matrix.shape[0]
        df = np.bincount(matrix.indices, minlength=self.vocabulary_size).astype(np.float64)
        if n == 0 or df.sum() == 0:
            return 0.0
        idf_now = np.log((1.0 + n) / (1.0 + df)) + 1.0
        idf_fit = np.asarray(self.vectorizer.idf_, dtype=np.float64)
        return float((df * np.abs(idf_now - idf_fit) / idf_fit).sum() / df.sum())

    # -- storage -------------------------------------------------------------------------

    def save(self, directory: Path, matrix: sp.csr_matrix) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        vocab = {t: int(i) for t, i in self.vectorizer.vocabulary_.items()}
        meta = {"kind": self.kind, "fields": list(self.fields), "every_term": self.every_term,
                "vocabulary": vocab}
        (directory / "vectorizer.json").write_text(json.dumps(meta), encoding="utf-8")
        np.save(directory / "idf.npy", np.asarray(self.vectorizer.idf_))
        sp.save_npz(directory / "matrix.npz", matrix, compressed=False)

    @classmethod
    def load(cls, directory: Path, n_articles: int) -> tuple[SparseSignal, sp.csr_matrix]:
        """The signal and its matrix, checked: one row per article, finite, in range."""
        path = directory / "vectorizer.json"
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            vocab = {str(t): int(i) for t, i in meta["vocabulary"].items()}
            kind, fields = meta["kind"], meta["fields"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise IndexCorrupt(f"{path}: cannot be read: {error!r}") from None
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise IndexCorrupt(f"{path}: the vocabulary's term numbers are not 0..{len(vocab) - 1}")
        idf = check_array(directory / "idf.npy", "idf", load_array(directory / "idf.npy"),
                          (len(vocab),), "f", finite=True)
        vectorizer = _vectorizer(kind, vocab, meta.get("every_term", False))
        vectorizer.idf_ = idf
        matrix_path = directory / "matrix.npz"
        try:
            matrix = _csr(sp.load_npz(matrix_path))
            matrix.check_format(full_check=True)
        except (OSError, ValueError, EOFError, KeyError, IndexError) as error:
            raise IndexCorrupt(f"{matrix_path}: cannot be read: {error}") from None
        if matrix.shape != (n_articles, len(vocab)):
            raise IndexCorrupt(f"{matrix_path}: matrix has shape {matrix.shape}, expected "
                               f"{n_articles}x{len(vocab)} (one row per article)")
        if not np.isfinite(matrix.data).all():
            raise IndexCorrupt(f"{matrix_path}: matrix holds values that are not finite")
        return cls(kind, fields, vectorizer, meta.get("every_term", False)), matrix


def _csr(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Canonical float32 CSR (sorted indices), which makes row products reproducible."""
    m = sp.csr_matrix(matrix, dtype=np.float32)
    m.sum_duplicates()
    m.sort_indices()
    return m
