"""Offline evaluation of related-article methods against the curated links.

``protocol`` says what is asked and what counts, ``methods`` holds the
baselines, ``metrics`` and ``bootstrap`` score and compare, ``experiment`` runs
it all, ``report`` writes it down. See ``recommender evaluate --help``.
"""

from recommender.evaluation.bootstrap import Interval, paired_bootstrap, resample_counts
from recommender.evaluation.experiment import (
    CURVE_DEPTH,
    EvaluationResult,
    MethodResult,
    choose_examples,
    corpus_fingerprint,
    evaluate,
    score_suggestions,
)
from recommender.evaluation.methods import (
    BM25Method,
    DenseMethod,
    ExactScorer,
    KeywordMethod,
    LexicalFeatures,
    RandomMethod,
    SuggestionsFile,
    SuggestionsFileError,
    TfidfMethod,
    export_suggestions,
    suggestion_lines,
    tie_breaker,
    top_rows,
)
from recommender.evaluation.metrics import (
    RELEVANCE_METRICS,
    catalog_coverage,
    cross_subject_share,
    hit_matrix,
    intra_list_diversity,
    recall_curve,
    relevance_metrics,
)
from recommender.evaluation.protocol import (
    CandidateSpace,
    EvaluationProtocol,
    FittedMethod,
    Method,
    build_protocol,
    link_pairs,
    links_between,
    publication_folds,
    publication_groups,
    read_query_file,
    run_method,
)
from recommender.evaluation.report import print_table, results_dict, write_html, write_json

__all__ = [
    "BM25Method",
    "CURVE_DEPTH",
    "CandidateSpace",
    "DenseMethod",
    "EvaluationProtocol",
    "EvaluationResult",
    "ExactScorer",
    "FittedMethod",
    "Interval",
    "KeywordMethod",
    "LexicalFeatures",
    "Method",
    "MethodResult",
    "RELEVANCE_METRICS",
    "RandomMethod",
    "SuggestionsFile",
    "SuggestionsFileError",
    "TfidfMethod",
    "build_protocol",
    "catalog_coverage",
    "choose_examples",
    "corpus_fingerprint",
    "cross_subject_share",
    "evaluate",
    "export_suggestions",
    "hit_matrix",
    "intra_list_diversity",
    "link_pairs",
    "links_between",
    "paired_bootstrap",
    "print_table",
    "publication_folds",
    "publication_groups",
    "read_query_file",
    "recall_curve",
    "relevance_metrics",
    "resample_counts",
    "results_dict",
    "run_method",
    "score_suggestions",
    "suggestion_lines",
    "tie_breaker",
    "top_rows",
    "write_html",
    "write_json",
]
