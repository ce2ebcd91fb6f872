"""Signals adapt to the corpus: a field empty everywhere switches its signal off (reported,
never a crash), a field some articles lack gives them zero similarity, and a learned model
that does not fit the active signals is replaced by the documented blend, said plainly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from recommender.config import BuildConfig
from recommender.pipeline import load_index, open_index
from recommender.recommender import Recommender

from .conftest import HASHING
from .test_cli import run

_SEO_FIELD = re.compile(r"^  page_(description|keywords): >-\n    .*\n", re.MULTILINE)


def strip_seo(root: Path, every: int = 1) -> int:
    """Remove the SEO description and keywords from every ``every``-th file."""
    stripped = 0
    for i, path in enumerate(sorted(root.rglob("*.md"))):
        if i % every:
            continue
        text = path.read_text(encoding="utf-8")
        new = _SEO_FIELD.sub("", text)
        stripped += new != text
        path.write_text(new, encoding="utf-8")
    return stripped


def test_a_field_empty_everywhere_switches_its_signal_off(demo_copy: Path, tmp_path: Path):
    assert strip_seo(demo_copy) == 61
    opened = open_index(demo_copy, HASHING, tmp_path / "index")
    m = opened.snapshot.manifest
    assert m["signals"]["active"] == ["lexical", "dense"]
    assert set(m["signals"]["off"]) == {"description", "keywords", "mentions"}
    assert "no article has any" in m["signals"]["off"]["keywords"]
    # the shipped model was fitted on four signals: not used, and the manifest says why
    assert m["ranker"]["kind"] == "blend"
    assert "fitted on signals" in m["ranker"]["reason"] and "'dense'" in m["ranker"]["reason"]
    rec = Recommender(load_index(tmp_path / "index"))
    found = rec.related("what-is-the-calvin-cycle", 5)
    assert len(found) == 5 and all(np.isfinite(s.score) for s in found)
    assert len(rec.related_to_text("How do plants make sugar?", 3)) == 3


def test_build_prints_the_signals_switched_off_and_the_ranker_used(demo_copy: Path,
                                                                   tmp_path: Path):
    strip_seo(demo_copy)
    config = tmp_path / "hashing.yaml"
    config.write_text("model: hashing\n")
    built = run(["build", str(demo_copy), "--config", str(config), "-q"], tmp_path)
    assert built.returncode == 0, built.stderr
    out = " ".join(built.stdout.split())
    assert "signal keywords switched off: no article has any keyword phrases" in out
    assert "signal description switched off: no article has any description" in out
    assert "ranking: unsupervised blend of the cosines (model" in out
    info = json.loads(run(["info", "--json"], tmp_path).stdout)
    assert info["ranker"]["kind"] == "blend" and info["signals"]["active"] == ["lexical",
                                                                                "dense"]


def test_articles_lacking_a_field_get_zero_similarity_and_finite_features(demo_copy: Path,
                                                                          tmp_path: Path):
    assert 0 < strip_seo(demo_copy, every=3) < 61
    snapshot = open_index(demo_copy, HASHING, tmp_path / "index").snapshot
    assert set(snapshot.manifest["signals"]["off"]) == {"mentions"}  # titles are questions
    assert snapshot.manifest["ranker"]["kind"] == "learned"
    keywords = snapshot.ranking.matrices["keywords"]
    lacking = [i for i, a in enumerate(snapshot.articles) if not a.keywords]
    assert lacking and all(keywords[i].nnz == 0 for i in lacking)
    ranker = snapshot.ranker()
    lists = snapshot.ranking.lists["keywords"]
    assert (lists.rows[lacking] == -1).all() and (lists.scores[lacking] == 0).all()
    cands = ranker.features_for_rows(np.arange(len(snapshot.articles)))
    assert np.isfinite(cands.features).all()
    assert np.isfinite(ranker.scores_for_rows(np.array(lacking[:3]))).any(axis=1).all()


def test_a_corpus_with_no_keywords_updates_and_keeps_the_blend(demo_copy: Path,
                                                               tmp_path: Path):
    strip_seo(demo_copy)
    config = BuildConfig(model="hashing", ranking={"depth": 10, "pool": 5})
    open_index(demo_copy, config, tmp_path / "index")
    path = demo_copy / "biology" / "why-are-plants-green.md"
    path.write_text(path.read_text().replace("chlorophyll", "chlorophyll (a pigment)"))
    updated = open_index(demo_copy, config, tmp_path / "index").snapshot
    assert updated.manifest["last_change"]["changed"] == 1
    assert updated.manifest["ranker"]["kind"] == "blend"
    assert set(updated.ranking.lists) == {"lexical", "dense"}
