"""A site whose signals differ from the shipped model's gets a re-ranker fitted on its own
curated links at build time; a site without enough links gets the documented blend. The
``mentions`` signal (pages that name each other) switches on for reference sites and off
for Q&A sites, whose titles are questions."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from recommender.corpus import load_corpus
from recommender.lexical import SignalOff, SparseSignal, name_tokens, page_name
from recommender.pipeline import load_index, open_index
from recommender.recommender import Recommender

from .conftest import DEMO, HASHING

FAMILIES = ["alpha", "bravo", "delta", "gamma", "kilo", "lima", "oscar", "papa", "romeo",
            "sierra", "tango", "victor", "whiskey", "yankee", "zulu", "hotel"]
VERBS = ["add", "list", "remove", "show", "sync"]
FILLER = ("records entries values options files streams buffers devices users groups keys "
          "tables queues sockets signals limits paths modes flags ports").split()


def write_tool_site(root: Path, links: bool = True, seed: int = 0) -> None:
    """80 man-page-like pages in 16 families; each names two of its family in its text and,
    with ``links``, lists its family as ``related``."""
    rng = random.Random(seed)
    for family in FAMILIES:
        for verb in VERBS:
            name = f"{family}-{verb}"
            others = [f"{family}-{v}" for v in VERBS if v != verb]
            named = rng.sample(others, 2)
            words = " ".join(rng.choice(FILLER) for _ in range(40))
            related = "".join(f"  - /man1/{o}.1/\n" for o in others[:3]) if links else ""
            text = (f"---\ntitle: \"{name}(1)\"\ndescription: \"{verb} {family} things\"\n"
                    f"section: \"User Commands\"\n" + ("related:\n" + related if links else "")
                    + f"---\n\n## Description\n\n{name} works on {words}. See {named[0]}(1) "
                    f"and {named[1]}(1).\n")
            path = root / "man1" / f"{name}.1.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


def test_page_names_are_one_token_titles():
    assert page_name("systemd.unit(5)") == "systemd.unit"
    assert page_name("git-rebase") == "git-rebase"
    assert page_name("What is photosynthesis?") is None
    assert "systemd.unit" in name_tokens("See systemd.unit(5) and ls(1).")


def test_mentions_are_off_for_question_titles():
    corpus = load_corpus(DEMO)
    with pytest.raises(SignalOff, match="title that is a name"):
        SparseSignal.fit(corpus.articles, "mentions", ("title", "description", "answer"))


def test_a_site_with_other_signals_gets_a_ranker_fitted_on_its_own_links(tmp_path: Path):
    write_tool_site(tmp_path / "site")
    snapshot = open_index(tmp_path / "site", HASHING, tmp_path / "index").snapshot
    manifest = snapshot.manifest
    assert "mentions" in manifest["signals"]["active"]
    assert "keywords" in manifest["signals"]["off"]
    ranker = manifest["ranker"]
    assert ranker["kind"] == "learned" and "file" not in ranker
    assert "curated links" in ranker["reason"] and "at build time" in ranker["reason"]
    # the fitted model is saved with the index and used after a reload
    reloaded = load_index(tmp_path / "index")
    assert reloaded.ranking.model is not None
    assert reloaded.ranking.model.features == snapshot.ranking.model.features
    rec = Recommender(reloaded)
    found = [s.article.title for s in rec.related("/man1/kilo-add.1/", 4)]
    assert sum(t.startswith("kilo-") for t in found) >= 3, found
    assert np.isfinite([s.score for s in rec.related("/man1/kilo-add.1/", 4)]).all()


def test_a_site_without_links_gets_the_blend_and_says_why(tmp_path: Path):
    write_tool_site(tmp_path / "site", links=False)
    manifest = open_index(tmp_path / "site", HASHING, tmp_path / "index").snapshot.manifest
    assert manifest["ranker"]["kind"] == "blend"
    assert "too few curated links" in manifest["ranker"]["reason"]
