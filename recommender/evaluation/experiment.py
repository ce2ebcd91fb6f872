"""One evaluation run: every method through the protocol, scored, compared, timed.

Kept apart from the protocol (what is asked and what counts) and from the
report (how results are shown) so that tests and notebooks can run exactly the
evaluation the CLI runs and inspect the per-query numbers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recommender.corpus import Corpus
from recommender.evaluation import metrics as m
from recommender.evaluation.bootstrap import Interval, paired_bootstrap, resample_counts
from recommender.evaluation.protocol import (
    EvaluationProtocol,
    Method,
    build_protocol,
    publication_folds,
    run_method,
)

#: deepest rank scored: the recall-vs-k curve runs to it
CURVE_DEPTH = 20
#: shown in every report when present: the article the project was seeded with
EXAMPLE_SLUG = "what-are-the-latest-advancements-in-radiation-therapy-for-leukemia"


@dataclass
class MethodResult:
    """What one method achieved: means, per-query values, per-subject means, its lists."""

    name: str
    metrics: dict[str, float]
    per_query: dict[str, np.ndarray]
    per_subject: dict[str, dict[str, float]]
    recall_curve: list[float]
    suggestions: list[list[int]]  # collapsed article rows per query, best first
    seconds: float = 0.0
    fitted: bool = False  # trained on curated links (then scored fold by fold)


@dataclass
class EvaluationResult:
    """A whole run, as written to ``results.json`` and the HTML report."""

    protocol: EvaluationProtocol
    ks: tuple[int, ...]
    methods: list[MethodResult]
    reference: str | None
    intervals: list[Interval]
    fingerprint: str
    seed: int
    n_folds: int
    wall_seconds: float = 0.0
    settings: dict[str, object] = field(default_factory=dict)
    examples: EvaluationProtocol | None = None  # articles shown with every method's lists
    example_suggestions: dict[str, list[list[int]]] = field(default_factory=dict)
    #: the other protocols of the same run (within a field, drafts), in one file and report
    others: list[EvaluationResult] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.protocol.label

    def method(self, name: str) -> MethodResult:
        return next(r for r in self.methods if r.name == name)


def corpus_fingerprint(corpus: Corpus) -> str:
    """Hash of everything the evaluation depends on, so two reports can be compared."""
    h = hashlib.sha256()
    for a in sorted(corpus, key=lambda a: a.url):
        parts = (a.url, a.content_key, a.subject, a.title, a.answer, str(a.no_index),
                 "|".join(a.keywords), "|".join(a.links), a.date or "")
        h.update("\x1f".join(parts).encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()[:16]


def choose_examples(protocol: EvaluationProtocol, n: int = 5, seed: int = 0,
                    always: Sequence[str] = (EXAMPLE_SLUG,)) -> list[int]:
    """Rows to show in the report: ``always`` (by slug, when they have links) then
    seeded random scored queries, one per subject, so the examples are not cherry-picked."""
    corpus = protocol.corpus
    chosen: list[int] = []
    for i, a in enumerate(corpus):
        if a.slug in always and a.links and len(chosen) < n:
            chosen.append(i)
    subjects = {corpus.articles[i].subject for i in chosen}
    order = np.random.default_rng(seed).permutation(len(protocol.queries))
    for q in protocol.queries[order].tolist():
        if len(chosen) >= n:
            break
        subject = corpus.articles[q].subject
        if subject not in subjects and q not in chosen:
            chosen.append(q)
            subjects.add(subject)
    return chosen


def score_suggestions(protocol: EvaluationProtocol, name: str, suggestions: list[list[int]],
                      ks: Sequence[int], vectors: sp.spmatrix | np.ndarray) -> MethodResult:
    """All metrics of one method's collapsed suggestion lists (rows) on the protocol."""
    space, corpus = protocol.space, protocol.corpus
    depth = max(max(ks), CURVE_DEPTH)
    contents = [space.content[np.asarray(rows, dtype=np.int64)] for rows in suggestions]
    hits = m.hit_matrix(contents, protocol.relevant, depth)
    n_rel = np.array([len(r) for r in protocol.relevant])
    query_subjects = [corpus.articles[q].subject for q in protocol.queries.tolist()]
    row_subjects = [a.subject for a in corpus]
    listed_subjects = [[row_subjects[r] for r in rows] for rows in suggestions]
    per_query: dict[str, np.ndarray] = {}
    for k in ks:
        per_query.update(m.relevance_metrics(hits, n_rel, k))
    for k in ks:
        per_query[f"diversity@{k}"] = m.intra_list_diversity(suggestions, vectors, k)
        per_query[f"cross_subject@{k}"] = m.cross_subject_share(query_subjects, listed_subjects, k)
    means = {metric: m.mean(values) for metric, values in per_query.items()}
    n_cand = space.n_candidate_contents
    for k in ks:
        means[f"coverage@{k}"] = m.catalog_coverage(contents, n_cand, k)
    per_subject = m.group_means(per_query, query_subjects)
    subjects = np.asarray(query_subjects, dtype=object)
    for subject, values in per_subject.items():
        mask = subjects == subject
        chosen = [c for c, keep in zip(contents, mask, strict=True) if keep]
        for k in ks:
            values[f"coverage@{k}"] = m.catalog_coverage(chosen, n_cand, k)
    curve = m.recall_curve(hits, n_rel).tolist()
    return MethodResult(name, means, per_query, per_subject, curve, suggestions)


def evaluate(protocol: EvaluationProtocol, methods: Sequence[Method], ks: Sequence[int],
             vectors: sp.spmatrix | np.ndarray, reference: str | None = None,
             n_folds: int = 5, seed: int = 0, n_resamples: int = 1000,
             examples: Sequence[int] = (),
             on_method: Callable[[MethodResult], None] | None = None) -> EvaluationResult:
    """Run, score and compare ``methods``; ``vectors`` are the diversity yardstick.

    Methods with a ``fit`` step are run fold by fold (see
    :func:`~recommender.evaluation.protocol.run_method`); the others rank all
    queries at once. ``reference`` is the method every other one is compared to.
    ``examples`` are rows whose lists are kept for display (same runner, unscored).
    """
    ks = tuple(sorted(set(ks)))
    depth = max(max(ks), CURVE_DEPTH)
    fitted = [callable(getattr(x, "fit", None)) for x in methods]
    folds = (publication_folds(protocol.corpus, n_folds, seed, protocol.queries)
             if any(fitted) else None)
    shown = build_protocol(protocol.corpus, examples) if len(examples) else None
    shown_lists: dict[str, list[list[int]]] = {}
    results: list[MethodResult] = []
    for method, is_fitted in zip(methods, fitted, strict=True):
        start = time.perf_counter()
        if shown is not None:
            shown_lists[method.name] = run_method(shown, method, max(ks), folds)
        suggestions = run_method(protocol, method, depth, folds)
        result = score_suggestions(protocol, method.name, suggestions, ks, vectors)
        result.seconds = time.perf_counter() - start
        result.fitted = is_fitted
        results.append(result)
        if on_method is not None:
            on_method(result)
    intervals: list[Interval] = []
    names = [r.name for r in results]
    if reference is not None and reference in names and len(protocol.queries):
        ref = results[names.index(reference)]
        counts = resample_counts(len(protocol.queries), n_resamples, seed)
        compared = list(ref.per_query)
        for r in results:
            if r.name != reference:
                intervals.extend(paired_bootstrap(r.name, r.per_query, ref.name, ref.per_query,
                                                  compared, n_resamples, seed=seed,
                                                  counts=counts))
    n_used = int(len(np.unique(folds))) if folds is not None else 0
    return EvaluationResult(protocol, ks, results, reference, intervals,
                            corpus_fingerprint(protocol.corpus), seed, n_used,
                            examples=shown, example_suggestions=shown_lists)
