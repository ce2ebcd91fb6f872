"""Encoders tuned on curated links, evaluated without leakage.

A static model tuned on a site's links (:mod:`recommender.tuning`; the registry
names its base in ``tuned_from``) has seen every article's links. Scoring the
site with it would measure memory, not relatedness. So the evaluation never uses
the shipped tuned table: per publication-batch fold it tunes the *base* model
again, with the shipped model's own settings, on the links between training rows
only (:func:`~recommender.evaluation.protocol.links_between`), and embeds every
article with that fold's table. :class:`FoldTuner` keeps each fold's vectors, so
the dense method, the product and every protocol of one run share one tuning per
fold.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from recommender.config import BuildConfig
from recommender.corpus import Corpus
from recommender.encoders import ModelSpec, model_spec
from recommender.evaluation.methods import DenseMethod
from recommender.evaluation.protocol import links_between
from recommender.fitting import content_groups
from recommender.text import prepare_text
from recommender.tuning import TokenisedTexts, TuningConfig, embed, read_table, tune_table


def tuning_of(spec: ModelSpec) -> TuningConfig:
    """The settings a tuned model was made with (its ``build.json``), to tune again."""
    build = Path(spec.resolve_source()) / "build.json"
    settings = json.loads(build.read_text(encoding="utf-8")).get("tuning", {})
    return TuningConfig(**settings)


class FoldTuner:
    """Vectors of every article under a base static model tuned on a fold's links.

    One per (corpus, configuration) of a run; the tuned model's registry entry says
    which base to start from and its ``build.json`` how it was tuned.
    """

    def __init__(self, corpus: Corpus, config: BuildConfig):
        spec = model_spec(config.model)
        if spec.tuned_from is None:
            raise ValueError(f"model {config.model!r} is not a tuned model")
        self.corpus, self.config, self.spec = corpus, config, spec
        self.tuning = tuning_of(spec)
        base = Path(model_spec(spec.tuned_from).resolve_source())
        self.tokenizer = base / "tokenizer.json"
        self.table = read_table(base)
        self.texts = TokenisedTexts.of([prepare_text(a, config.text) for a in corpus.articles],
                                       self.tokenizer, min(config.text.max_tokens,
                                                           spec.max_tokens))
        self.content = content_groups(corpus.articles)
        self._fold: dict[str, np.ndarray] = {}
        self._untuned: np.ndarray | None = None
        #: the links each fold was tuned on, by fold key (tests check none is held out)
        self.training_links: dict[str, np.ndarray] = {}

    def untuned(self) -> np.ndarray:
        """The base model's vectors (what the tuning starts from); computed once, for the
        dense method and the product alike."""
        if self._untuned is None:
            self._untuned = embed(self.table, self.texts)
        return self._untuned

    def vectors(self, train_rows: np.ndarray) -> np.ndarray:
        """Every article's vector under the base tuned on the links between ``train_rows``."""
        rows = np.unique(np.asarray(train_rows, dtype=np.int64))
        key = hashlib.sha256(rows.tobytes()).hexdigest()
        if key not in self._fold:
            links = links_between(self.corpus, rows)
            self.training_links[key] = links
            table = tune_table(self.table, self.tokenizer, self.texts, links, self.content,
                               self.tuning)
            self._fold[key] = embed(table, self.texts)
        return self._fold[key]


#: one tuner per corpus and configuration, shared by the methods of a run
_TUNERS: dict[tuple[int, str], FoldTuner] = {}


def fold_tuner(corpus: Corpus, config: BuildConfig) -> FoldTuner:
    """The run's :class:`FoldTuner` for ``corpus`` and ``config`` (made on first use)."""
    key = (id(corpus), json.dumps(config.identity(), sort_keys=True, default=str))
    if key not in _TUNERS:
        _TUNERS.clear()  # one corpus at a time: a new run frees the last one's vectors
        _TUNERS[key] = FoldTuner(corpus, config)
    return _TUNERS[key]


class TunedDenseMethod(DenseMethod):
    """Dense alone with a tuned model: per fold, the base tuned on that fold's links."""

    def __init__(self, corpus: Corpus, config: BuildConfig, seed: int = 0,
                 name: str = "dense"):
        self.tuner = fold_tuner(corpus, config)
        super().__init__(self.tuner.untuned(), corpus, seed, name)

    def fit(self, corpus: Corpus, train_rows: np.ndarray) -> None:
        self.vectors = self.tuner.vectors(train_rows)
