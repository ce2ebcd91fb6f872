"""Why an article is suggested for another: what editors read before they accept a link.

For a (query, suggestion) pair, from the index's own ranking state:

- each active signal's cosine, and which signals *proposed* the suggestion (it is in
  that signal's nearest ``depth`` for the query: the learned ranking draws its
  candidates from there);
- the terms that contribute most to the lexical cosine, and the keyword phrases
  the two share;
- whether it stays in the query's subject or crosses to another;
- whether an editor already linked it.

Nothing here changes a score: it reads what the ranking used.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.corpus import Article, subject_key
from recommender.ranking import Ranker

#: terms and phrases listed per explanation
TOP_TERMS = 5


def _vocabulary(ranker: Ranker, name: str) -> list[str] | None:
    signal = ranker.state.signals.get(name)
    if signal is None:
        return None
    vocabulary = getattr(signal.vectorizer, "vocabulary_", None) or signal.vectorizer.vocabulary
    terms = [""] * len(vocabulary)
    for term, i in vocabulary.items():
        terms[int(i)] = str(term)
    return terms


def shared_terms(ranker: Ranker, name: str, query: int, candidate: int,
                 top: int = TOP_TERMS) -> list[str]:
    """The terms whose products add most to one sparse signal's cosine of the pair."""
    if name not in ranker.state.matrices:
        return []
    m: sp.csr_matrix = ranker.matrix(name)
    product = m[query].multiply(m[candidate]).tocoo()
    if product.nnz == 0:
        return []
    terms = _vocabulary(ranker, name) or []
    order = np.argsort(-product.data, kind="stable")[:top]
    return [terms[int(product.col[i])] for i in order if int(product.col[i]) < len(terms)]


def shared_keywords(query: Article, candidate: Article, top: int = TOP_TERMS) -> list[str]:
    """Keyword phrases both articles carry (as the query writes them)."""
    theirs = {k.casefold() for k in candidate.keywords}
    return [k for k in query.keywords if k.casefold() in theirs][:top]


def explain_pair(ranker: Ranker, query: int, candidate: int, curated: bool) -> dict[str, object]:
    """The explanation of suggesting row ``candidate`` for row ``query`` (JSON-ready)."""
    left, right = np.array([query]), np.array([candidate])
    signals: dict[str, float] = {}
    proposed: list[str] = []
    for name in ranker.signals:
        signals[name] = round(float(ranker.pair_cosines(name, left, right)[0]), 4)
        lists = ranker.state.lists.get(name)
        listed = lists is not None and candidate in lists.rows[query].tolist()
        if listed or (lists is None and signals[name] > 0):
            proposed.append(name)
    a, b = ranker.index.articles[query], ranker.index.articles[candidate]
    same = bool(a.subject) and subject_key(a.subject) == subject_key(b.subject)
    return {
        "proposed_by": proposed,
        "signals": signals,
        "shared_terms": shared_terms(ranker, "lexical", query, candidate),
        "shared_keywords": shared_keywords(a, b),
        "same_subject": same,
        "subjects": [a.subject, b.subject],
        "curated": curated,
    }
