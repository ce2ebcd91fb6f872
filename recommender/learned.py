"""The learned re-ranker's model: its features, its parameters, fitting and storage.

A model is a standardised logistic regression (stored as JSON) or a LightGBM
LambdaRank ranker (stored as LightGBM's native model text, ``*.lgb.txt``) over
the features :func:`feature_names` lists for the active signals (see
:mod:`recommender.ranking` for what they mean); no pickle.
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

from recommender.model_files import LGB_SUFFIX, ranker_path

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
    """Parameters of the re-ranker: a logistic regression or a LightGBM ranker.

    ``logistic`` is stored as JSON; ``lambdarank`` (gradient-boosted trees fitted
    with LightGBM's pairwise LambdaRank objective, queries as groups) as LightGBM's
    own model text (``*.lgb.txt``), loaded by ``lightgbm.Booster``: no pickle, no
    hand-written tree walker. Scores are comparable within one query only.
    """

    features: list[str]
    kind: str  # "logistic" | "lambdarank"
    params: dict[str, Any]
    note: str = ""

    @property
    def suffix(self) -> str:
        """File name ending of this kind of model."""
        return LGB_SUFFIX if self.kind == "lambdarank" else ".json"

    def score(self, x: np.ndarray) -> np.ndarray:
        """Raw scores of feature rows ``x`` (n, len(features)): higher ranks first."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "logistic":
            mean = np.asarray(self.params["mean"])
            scale = np.asarray(self.params["scale"])
            coef = np.asarray(self.params["coef"])
            return ((x - mean) / scale) @ coef + float(self.params["intercept"])
        if self.kind == "lambdarank":
            if len(x) == 0:
                return np.zeros(0)
            return np.asarray(self._booster().predict(x, raw_score=True), dtype=np.float64)
        raise ValueError(f"unknown learned model kind {self.kind!r}")

    def _booster(self) -> Any:
        if "_booster" not in self.params:
            import lightgbm

            self.params["_booster"] = lightgbm.Booster(model_str=self.params["model_str"])
        return self.params["_booster"]

    def to_text(self) -> str:
        """The file's text: LightGBM's model text, or JSON for the logistic model."""
        if self.kind == "lambdarank":
            return str(self.params["model_str"])
        params = {k: v for k, v in self.params.items() if not k.startswith("_")}
        return json.dumps({"kind": self.kind, "features": self.features, "note": self.note,
                           "params": params})

    @classmethod
    def from_text(cls, text: str) -> LearnedModel:
        """Parse and check a model (JSON, or LightGBM's model text); raises ValueError
        saying what is wrong with it."""
        if not text.lstrip().startswith("{"):
            return cls._from_lightgbm(text)
        try:
            data = json.loads(text)
            model = cls(list(data["features"]), data["kind"], data["params"],
                        data.get("note", ""))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"not a learned-ranker model ({error!r})") from None
        if model.kind != "logistic":
            raise ValueError(f"unknown learned model kind {model.kind!r} (a JSON model is "
                             "logistic; ranker trees are LightGBM model files, *.lgb.txt)")
        model.check()
        return model

    @classmethod
    def _from_lightgbm(cls, text: str) -> LearnedModel:
        if not text.startswith("tree\n"):
            raise ValueError("neither a JSON model nor a LightGBM model file")
        import lightgbm

        try:
            booster = lightgbm.Booster(model_str=text)
        except lightgbm.basic.LightGBMError as error:
            raise ValueError(f"not a LightGBM model ({error})") from None
        if booster.num_trees() == 0:
            raise ValueError("the LightGBM model has no trees")
        objective = next((line.split("=", 1)[1] for line in text.splitlines()[:20]
                          if line.startswith("objective=")), "")
        if not objective.startswith(("lambdarank", "rank_xendcg")):
            raise ValueError(f"a LightGBM model with objective {objective!r}, not a ranker")
        return cls(list(booster.feature_name()), "lambdarank",
                   {"model_str": text, "_booster": booster},
                   f"LightGBM {objective.split()[0]}, {booster.num_trees()} trees")

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
        elif self.kind == "lambdarank":
            if self._booster().num_feature() != width:
                raise ValueError("the LightGBM model's features are not the model's")
        else:
            raise ValueError(f"unknown learned model kind {self.kind!r}")

    @classmethod
    def load(cls, path: str | Path) -> LearnedModel:
        """The model in ``path``; ValueError (naming the file) if it cannot be used."""
        try:
            return cls.from_text(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None

    def save(self, path: str | Path) -> None:
        """Write the model to ``path`` (which should end in :attr:`suffix`)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(self.to_text(), encoding="utf-8")


def resolve_model_path(name: str) -> Path:
    """``default`` or another bare name = ``ranker/<name>.lgb.txt`` or ``.json`` on the models
    search path; else a file path. Missing: :class:`~recommender.errors.ModelNotAvailable`, never a
    silent fallback (see :func:`recommender.model_files.ranker_path`)."""
    return ranker_path(name)


def fit_model(x: np.ndarray, y: np.ndarray, features: list[str], kind: str = "lambdarank",
              seed: int = 0, note: str = "", query: np.ndarray | None = None) -> LearnedModel:
    """Fit the re-ranker on candidate feature rows ``x`` and 0/1 labels ``y``.

    ``lambdarank``: LightGBM's LambdaRank over the candidates of each query
    (``query``: the query of each row, rows of one query contiguous), so what is
    learned is the order *within* a query's list, not what makes a pair positive
    across the whole corpus; ``logistic``: a standardised logistic regression.
    """
    y = np.asarray(y, dtype=np.int64)
    if kind not in ("logistic", "lambdarank"):
        raise ValueError(f"unknown learned model kind {kind!r}")
    if len(np.unique(y)) < 2:  # nothing to learn from: the raw cosines
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        coef = np.array([1.0 if f.endswith("_cos") else 0.0 for f in features]) * scale
        return LearnedModel(features, "logistic", {
            "mean": mean.tolist(), "scale": scale.tolist(), "coef": coef.tolist(),
            "intercept": 0.0}, note or "no positive labels: sum of cosines")
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        lr = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y)
        return LearnedModel(features, "logistic", {
            "mean": mean.tolist(), "scale": scale.tolist(), "coef": lr.coef_[0].tolist(),
            "intercept": float(lr.intercept_[0])}, note)
    if query is None or len(query) != len(y):
        raise ValueError("a lambdarank fit needs the query of every row")
    return _fit_lambdarank(np.asarray(x, np.float32), y, features, np.asarray(query), seed,
                           note)


#: LightGBM's settings for the ranker (chosen on quicktakes-dev folds, README)
LGB_PARAMS: dict[str, Any] = {
    "objective": "lambdarank", "metric": "ndcg", "eval_at": [5, 10],
    "lambdarank_truncation_level": 20, "num_leaves": 31, "learning_rate": 0.08,
    "min_data_in_leaf": 50, "feature_fraction": 0.9, "bagging_fraction": 0.8,
    "bagging_freq": 1, "lambda_l2": 1.0, "verbosity": -1, "deterministic": True,
    "force_row_wise": True,
}
#: boosting rounds of a fit
LGB_ROUNDS = 250


def _fit_lambdarank(x: np.ndarray, y: np.ndarray, features: list[str], query: np.ndarray,
                    seed: int, note: str) -> LearnedModel:
    """The LightGBM ranker; ``note`` is kept in memory (LightGBM's file has no place for
    it: a loaded model's note names its objective and trees)."""
    import lightgbm

    starts = np.flatnonzero(np.r_[True, query[1:] != query[:-1]])
    if len(np.unique(query)) != len(starts):
        raise ValueError("a query's rows must be contiguous")
    sizes = np.diff(np.r_[starts, len(query)])
    has_positive = np.add.reduceat(y, starts) > 0  # a list without a positive teaches nothing
    keep = np.repeat(has_positive, sizes)
    data = lightgbm.Dataset(x[keep], label=y[keep], group=sizes[has_positive],
                            feature_name=list(features), free_raw_data=True)
    params = {**LGB_PARAMS, "seed": seed, "num_threads": 0}
    booster = lightgbm.train(params, data, num_boost_round=LGB_ROUNDS)
    text = booster.model_to_string()
    what = f"LightGBM lambdarank, {booster.num_trees()} trees"
    return LearnedModel(features, "lambdarank", {"model_str": text},
                        f"{note} ({what})" if note else what)
