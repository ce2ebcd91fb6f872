"""Tuning the static encoder on curated links: what it learns, what it writes, and that
the evaluation never scores an article with a table that saw its links."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recommender.config import BuildConfig
from recommender.corpus import Corpus
from recommender.encoders import ModelSpec, StaticEncoder, model_spec
from recommender.evaluation import build_protocol, publication_folds, run_method
from recommender.evaluation.draft import refuse_tuned
from recommender.evaluation.tuned import TunedDenseMethod
from recommender.fitting import content_groups, link_pairs
from recommender.model_files import MODELS_DIR_ENV
from recommender.text import prepare_text
from recommender.tuning import (
    TokenisedTexts,
    TuningConfig,
    _batches,
    embed,
    read_table,
    tune_on_links,
    tune_table,
)

from .conftest import DEMO, cli_env

BASE = "minilm-static-m2v"
TUNED = "minilm-static-m2v-qt"  # in the registry; its weights are a local build


@pytest.fixture(scope="module")
def tuned_models(demo_corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding TUNED, tuned here on the demo's links (one epoch)."""
    models = tmp_path_factory.mktemp("models")
    tune_on_links(demo_corpus, BASE, models / "static" / "minilm-m2v-qt",
                  config=TuningConfig(epochs=1))
    return models


@pytest.fixture
def with_tuned(tuned_models: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tuned_models))
    return tuned_models


def _texts(corpus: Corpus) -> tuple[Path, TokenisedTexts]:
    folder = Path(model_spec(BASE).resolve_source())
    texts = [prepare_text(a, BuildConfig().text) for a in corpus.articles]
    return folder, TokenisedTexts.of(texts, folder / "tokenizer.json", 256)


def test_batches_hold_each_pair_once_and_no_content_twice() -> None:
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 40, size=(300, 2))
    content = np.arange(40) // 2  # rows 2k and 2k+1 are copies of one article
    pairs = pairs[content[pairs[:, 0]] != content[pairs[:, 1]]]
    batches = _batches(pairs, content, 8, np.random.default_rng(1))
    got = np.concatenate(batches)
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, pairs.tolist()))
    for batch in batches:
        assert len(batch) <= 8
        seen = content[batch].ravel()
        assert len(set(seen.tolist())) == len(seen)


def test_tuning_brings_linked_articles_closer_and_keeps_the_base(demo_corpus: Corpus) -> None:
    folder, texts = _texts(demo_corpus)
    table = read_table(folder)
    before = table.copy()
    links = link_pairs(demo_corpus.articles)
    tuned = tune_table(table, folder / "tokenizer.json", texts, links,
                       content_groups(demo_corpus.articles), TuningConfig(epochs=3, batch_size=16))
    assert np.array_equal(table, before)  # the base table is not changed in place
    assert tuned.shape == table.shape and tuned.dtype == np.float32
    old, new = embed(table, texts), embed(tuned, texts)
    linked = lambda v: float((v[links[:, 0]] * v[links[:, 1]]).sum(axis=1).mean())  # noqa: E731
    assert linked(new) > linked(old) + 0.01


def test_a_tuned_model_loads_as_a_static_model_and_embeds_as_tuned(demo_corpus: Corpus,
                                                                    tuned_models: Path) -> None:
    out = tuned_models / "static" / "minilm-m2v-qt"
    build = json.loads((out / "build.json").read_text())
    assert build["tuned_from"] == BASE and build["tuning"]["epochs"] == 1
    assert build["corpus"]["links"] == len(link_pairs(demo_corpus.articles))
    encoder = StaticEncoder(ModelSpec(name="t", backend="model2vec", source=str(out), dim=256),
                            256)
    _, texts = _texts(demo_corpus)
    ours = embed(read_table(out), texts)
    served = encoder.encode([prepare_text(a, BuildConfig().text) for a in demo_corpus.articles])
    assert np.allclose((ours * served).sum(axis=1), 1.0, atol=1e-3)


def test_the_evaluation_tunes_per_fold_on_training_links_only(demo_corpus: Corpus,
                                                              with_tuned: Path) -> None:
    """The shipped tuned table saw every link: the evaluation tunes its base again per
    fold, and no link with a held-out end (outgoing or incoming) is among a fold's."""
    protocol = build_protocol(demo_corpus)
    folds = publication_folds(demo_corpus, 3, 0)
    method = TunedDenseMethod(demo_corpus, BuildConfig(model=TUNED))
    base = method.tuner.table.copy()
    ranked = run_method(protocol, method, 5, folds)
    assert np.array_equal(method.tuner.table, base)  # each fold starts from the base
    assert len(ranked) == len(protocol.queries)
    tuner = method.tuner
    assert len(tuner.training_links) == len(np.unique(folds[protocol.queries]))
    for f in np.unique(folds[protocol.queries]):
        held = set(np.flatnonzero(folds == f).tolist())
        for links in tuner.training_links.values():
            if not (set(links.ravel().tolist()) & held):
                break
        else:
            pytest.fail(f"no fold's training links avoid fold {f}")
    all_links = set(map(tuple, link_pairs(demo_corpus.articles).tolist()))
    for links in tuner.training_links.values():
        assert set(map(tuple, links.tolist())) < all_links


def test_the_draft_protocol_refuses_a_tuned_model(with_tuned: Path) -> None:
    with pytest.raises(ValueError, match="tuned on curated links"):
        refuse_tuned(TUNED)
    refuse_tuned(BASE)


def test_recommender_tune_writes_a_model(tmp_path: Path) -> None:
    out = tmp_path / "site-model"
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "tune", str(DEMO),
                           "--out", str(out), "--epochs", "1"], capture_output=True, text=True,
                          env=cli_env(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "epoch 1/1" in done.stderr
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "tokenizer.json",
                                               "config.json", "build.json"}


def test_the_product_over_a_tuned_model_ranks_each_fold_with_that_fold_s_table(
        demo_corpus: Corpus, with_tuned: Path) -> None:
    from recommender.evaluation.product import ProductMethod

    protocol = build_protocol(demo_corpus)
    folds = publication_folds(demo_corpus, 3, 0)
    method = ProductMethod(demo_corpus, BuildConfig(model=TUNED), "product:tuned")
    assert method.tuner is not None and callable(getattr(method, "fit", None))
    ranked = run_method(protocol, method, 5, folds)
    assert all(len(r) == 5 for r in ranked)
    last_fold = next(reversed(method.tuner._fold.values()))
    assert np.allclose(method.ranker.index.vectors, last_fold, atol=1e-5)
    assert not np.allclose(method.ranker.index.vectors, method.tuner.untuned(), atol=1e-3)
