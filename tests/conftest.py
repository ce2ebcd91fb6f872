"""Shared fixtures: the demo corpus, and indexes built from it with a fake and the real model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from recommender.config import BuildConfig
from recommender.corpus import Corpus, load_corpus
from recommender.pipeline import Snapshot, build_index

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "content"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: the fast fake encoder: feature hashing, no model (see models/registry.yaml)
HASHING = BuildConfig(model="hashing")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test reads or writes the user's ~/.cache/recommender."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("RECOMMENDER_CACHE", str(base / "cache"))
    monkeypatch.setenv("RECOMMENDER_INDEX", str(base / "default-index"))


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """A writable copy of the demo corpus."""
    target = tmp_path / "content"
    shutil.copytree(DEMO, target)
    return target


@pytest.fixture(scope="session")
def demo_corpus() -> Corpus:
    return load_corpus(DEMO)


@pytest.fixture(scope="session")
def hashing_index(demo_corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    directory = tmp_path_factory.mktemp("hashing-index")
    return build_index(demo_corpus, HASHING, directory / "index", directory / "cache")


@pytest.fixture(scope="session")
def real_index_dir(demo_corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpus indexed with the real default model (all-MiniLM-L6-v2)."""
    directory = tmp_path_factory.mktemp("real-index")
    build_index(demo_corpus, BuildConfig(), directory / "index", directory / "cache")
    return directory / "index"


def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a CLI subprocess: its own cache and default index."""
    env = dict(os.environ)
    env["RECOMMENDER_CACHE"] = str(tmp_path / "cache")
    env["RECOMMENDER_INDEX"] = str(tmp_path / "index")
    return env
