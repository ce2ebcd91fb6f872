"""The learned re-ranker's model: its features, its parameters, fitting and storage.

A model is a standardised logistic regression or an ensemble of trees over the
features :func:`feature_names` lists for the active signals (see
:mod:`recommender.ranking` for what they mean), stored as plain JSON (no pickle).
The ranking state keeps a model together with where it came from
(:class:`~recommender.ranking_state.RankerChoice`): the configuration names a file
(:func:`resolve_model_path`), or the evaluation passes one fitted on training
folds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.model_files import ranker_path

#: the repository's models folder (shipped learned-ranker parameters live in models/ranker/)
#: signals in feature order; those switched off are left out
SIGNALS = ("lexical", "description", "keywords", "mentions", "dense")
#: signals that also get a 2-hop (neighbours of neighbours) feature
TWO_HOP = ("lexical", "dense")
PER_SIGNAL = ("cos", "rank_q", "rank_c", "z_q", "z_c", "gap_q", "gap_c")


def feature_names(signals: Sequence[str]) -> list[str]:
    """Names of the learned ranker's features for the given active signals, in order."""
    names = [f"{s}_{f}" for s in signals for f in PER_SIGNAL]
    names += [f"{s}_2hop" for s in signals if s in TWO_HOP]
    return names + ["same_subject", "n_signals"]


@dataclass
class LearnedModel:
    """Parameters of the re-ranker: a logistic regression or an ensemble of trees.

    Stored as JSON (no pickle). Trees use scikit-learn's convention: go left when
    ``x[feature] <= threshold``; the score is ``baseline + sum of leaf values``.
    """

    features: list[str]
    kind: str  # "logistic" | "trees"
    params: dict[str, Any]
    note: str = ""

    def score(self, x: np.ndarray) -> np.ndarray:
        """Raw (log-odds) scores of feature rows ``x`` (n, len(features))."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "logistic":
            mean = np.asarray(self.params["mean"])
            scale = np.asarray(self.params["scale"])
            coef = np.asarray(self.params["coef"])
            return ((x - mean) / scale) @ coef + float(self.params["intercept"])
        if self.kind == "trees":
            return self._trees(x)
        raise ValueError(f"unknown learned model kind {self.kind!r}")

    def _trees(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        if "_arrays" not in p:  # padded (trees, nodes) arrays, built once
            trees = p["trees"]
            width = max(len(t["feature"]) for t in trees)
            arrays = {}
            for key, dtype in (("feature", np.int64), ("threshold", np.float64),
                               ("left", np.int64), ("right", np.int64),
                               ("leaf", bool), ("value", np.float64)):
                a = np.zeros((len(trees), width), dtype=dtype)
                for i, t in enumerate(trees):
                    a[i, : len(t[key])] = t[key]
                arrays[key] = a
            arrays["depth"] = int(max(t["depth"] for t in trees))
            p["_arrays"] = arrays
        a = p["_arrays"]
        n_trees = a["feature"].shape[0]
        out = np.full(len(x), float(p["baseline"]))
        tree_ix = np.arange(n_trees)[None, :]
        for start in range(0, len(x), 20000):
            xb = x[start : start + 20000]
            node = np.zeros((len(xb), n_trees), dtype=np.int64)
            rows = np.arange(len(xb))[:, None]
            for _ in range(a["depth"] + 1):
                leaf = a["leaf"][tree_ix, node]
                if leaf.all():
                    break
                f = a["feature"][tree_ix, node]
                go_left = xb[rows, f] <= a["threshold"][tree_ix, node]
                nxt = np.where(go_left, a["left"][tree_ix, node], a["right"][tree_ix, node])
                node = np.where(leaf, node, nxt)
            out[start : start + 20000] += a["value"][tree_ix, node].sum(axis=1)
        return out

    def to_json(self) -> str:
        params = {k: v for k, v in self.params.items() if not k.startswith("_")}
        return json.dumps({"kind": self.kind, "features": self.features, "note": self.note,
                           "params": params})

    @classmethod
    def from_json(cls, text: str) -> LearnedModel:
        """Parse and check a model; raises ValueError saying what is wrong with it."""
        try:
            data = json.loads(text)
            model = cls(list(data["features"]), data["kind"], data["params"],
                        data.get("note", ""))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"not a learned-ranker model ({error!r})") from None
        model.check()
        return model

    def check(self) -> None:
        """Parameters agree with the features, and are finite."""
        width = len(self.features)
        p = self.params
        if self.kind == "logistic":
            for key in ("mean", "scale", "coef"):
                values = np.asarray(p.get(key, []), dtype=np.float64)
                if values.shape != (width,) or not np.isfinite(values).all():
                    raise ValueError(f"logistic '{key}' must be {width} finite numbers")
            if not np.isfinite(float(p.get("intercept", np.nan))):
                raise ValueError("logistic 'intercept' must be a finite number")
        elif self.kind == "trees":
            trees = p.get("trees")
            if not isinstance(trees, list) or "baseline" not in p:
                raise ValueError("trees need 'baseline' and a list of 'trees'")
            for t in trees:
                if max(t.get("feature", [0]), default=0) >= width:
                    raise ValueError("a tree splits on a feature the model does not have")
        else:
            raise ValueError(f"unknown learned model kind {self.kind!r}")

    @classmethod
    def load(cls, path: str | Path) -> LearnedModel:
        """The model in ``path``; ValueError (naming the file) if it cannot be used."""
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(self.to_json(), encoding="utf-8")


def resolve_model_path(name: str) -> Path:
    """``default`` or another bare name = ``ranker/<name>.json`` on the models search path;
    else a file path. Missing: :class:`~recommender.errors.ModelNotAvailable`, never a
    silent fallback (see :func:`recommender.model_files.ranker_path`)."""
    return ranker_path(name)


def fit_model(x: np.ndarray, y: np.ndarray, features: list[str], kind: str = "logistic",
              seed: int = 0, note: str = "") -> LearnedModel:
    """Fit the re-ranker on candidate feature rows ``x`` and 0/1 labels ``y``.

    ``trees``: scikit-learn's HistGradientBoostingClassifier, exported node by node;
    ``logistic``: a standardised logistic regression.
    """
    y = np.asarray(y, dtype=np.int64)
    if kind == "logistic" or len(np.unique(y)) < 2:
        from sklearn.linear_model import LogisticRegression

        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        if len(np.unique(y)) < 2:  # nothing to learn from: fall back to the raw cosines
            coef = np.array([1.0 if f.endswith("_cos") else 0.0 for f in features]) * scale
            return LearnedModel(features, "logistic", {
                "mean": mean.tolist(), "scale": scale.tolist(), "coef": coef.tolist(),
                "intercept": 0.0}, note or "no positive labels: sum of cosines")
        lr = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y)
        return LearnedModel(features, "logistic", {
            "mean": mean.tolist(), "scale": scale.tolist(), "coef": lr.coef_[0].tolist(),
            "intercept": float(lr.intercept_[0])}, note)
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, max_leaf_nodes=31,
                                         min_samples_leaf=40, random_state=seed)
    clf.fit(x, y)
    trees = []
    for (predictor,) in clf._predictors:
        nodes = predictor.nodes
        trees.append({
            "feature": nodes["feature_idx"].tolist(),
            "threshold": nodes["num_threshold"].tolist(),
            "left": nodes["left"].astype(np.int64).tolist(),
            "right": nodes["right"].astype(np.int64).tolist(),
            "leaf": nodes["is_leaf"].astype(bool).tolist(),
            "value": nodes["value"].tolist(),
            "depth": int(nodes["depth"].max()),
        })
    return LearnedModel(features, "trees", {
        "baseline": float(np.ravel(clf._baseline_prediction)[0]), "trees": trees}, note)
