"""Paired bootstrap confidence intervals for the difference between two methods.

Both methods are scored on the same queries, so the honest question is about
the per-query *differences*: resampling queries with replacement and keeping
each query's pair together removes the between-query variance that dominates
an unpaired comparison. Every metric is resampled with the same draws, and the
draws are seeded, so a report can be reproduced exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """Mean difference (method - reference) of one metric with its bootstrap CI."""

    method: str
    reference: str
    metric: str
    difference: float
    low: float
    high: float
    p_value: float  # two-sided: how often the resampled difference crosses zero
    queries: int

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "significant": self.significant}


def resample_counts(n_queries: int, n_resamples: int, seed: int) -> np.ndarray:
    """How often each query is drawn in each resample, shape (resamples, queries)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, n_queries), dtype=np.float64)
    for b in range(n_resamples):
        out[b] = np.bincount(rng.integers(0, n_queries, n_queries), minlength=n_queries)
    return out


def paired_bootstrap(method: str, per_query: Mapping[str, np.ndarray], reference: str,
                     reference_per_query: Mapping[str, np.ndarray], metrics: Sequence[str],
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                     counts: np.ndarray | None = None) -> list[Interval]:
    """Percentile CIs of mean(method - reference) for each metric, queries paired.

    ``counts`` (from :func:`resample_counts`) may be shared between calls so all
    methods are compared on the same resamples; NaN values (undefined for a
    query) are left out of that metric's means.
    """
    n_q = len(next(iter(per_query.values())))
    if counts is None:
        counts = resample_counts(n_q, n_resamples, seed)
    alpha = (1.0 - confidence) / 2.0
    out: list[Interval] = []
    for metric in metrics:
        diff = np.asarray(per_query[metric], np.float64) - np.asarray(
            reference_per_query[metric], np.float64)
        defined = ~np.isnan(diff)
        if not defined.any():
            continue
        d = np.where(defined, diff, 0.0)
        drawn = counts.sum(axis=1) - counts[:, ~defined].sum(axis=1)
        means = (counts @ d) / np.maximum(drawn, 1.0)
        observed = float(diff[defined].mean())
        low, high = np.quantile(means, [alpha, 1.0 - alpha])
        crossing = min((means <= 0).mean(), (means >= 0).mean())
        out.append(Interval(method, reference, metric, observed, float(low), float(high),
                            float(min(1.0, 2.0 * crossing)), int(defined.sum())))
    return out
