"""``build --engine ray``: on a local Ray cluster the test starts, the same index as a local build.

One cluster for the module (starting one takes seconds); the builds use the real
default encoder, as users meet it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recommender.cli import app
from recommender.cli import core as _core  # noqa: F401  (registers build, related)
from recommender.config import BuildConfig, VectorConfig
from recommender.corpus import load_corpus
from recommender.pipeline import build_index, load_index
from recommender.recommender import Recommender

from .conftest import DEMO

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from recommender.ray_engine import build_on_ray  # noqa: E402  (needs ray)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    yield
    ray.shutdown()


def _suggested(snapshot) -> list[list[str]]:
    rec = Recommender(snapshot)
    return [[s.article.url for s in rec.related(a, 5)] for a in snapshot.articles
            if not a.no_index]


def test_ray_build_gives_the_local_build_s_index_and_suggestions(cluster, tmp_path: Path):
    config = BuildConfig()
    local = build_index(load_corpus(DEMO), config,
                        tmp_path / "local", tmp_path / "cache-local")
    opened = build_on_ray(DEMO, config, tmp_path / "ray", cache_dir=tmp_path / "cache-ray")
    on_ray = load_index(tmp_path / "ray", expected=config)
    assert opened.snapshot.manifest["engine"]["name"] == "ray"
    assert opened.snapshot.manifest["counts"]["embedded"] == len(
        {a.url for a in on_ray.articles}) - 3  # the demo's three articles of the same text
    assert [a.url for a in on_ray.articles] == [a.url for a in local.articles]
    np.testing.assert_allclose(on_ray.index.vectors, local.index.vectors, atol=1e-6)
    assert np.array_equal(on_ray.ranking.suggestions.rows, local.ranking.suggestions.rows)
    assert _suggested(on_ray) == _suggested(local)
    # a second Ray build takes every vector from the cache; sharded, the same suggestions
    sharded = config.model_copy(update={"vectors": VectorConfig(index="hnsw", shards=2)})
    again = build_on_ray(DEMO, sharded, tmp_path / "sharded", cache_dir=tmp_path / "cache-ray")
    assert again.snapshot.manifest["counts"]["embedded"] == 0
    assert again.snapshot.manifest["vectors"]["shards"]["rows"] == [30, 31]
    assert (tmp_path / "sharded" / "vectors.shard-001.faiss").exists()
    assert _suggested(load_index(tmp_path / "sharded")) == _suggested(local)


def test_cli_engine_ray_and_its_options(cluster, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    built = runner.invoke(app, ["build", str(DEMO), "--index", "idx", "-q", "--engine", "ray"])
    assert built.exit_code == 0, built.output
    assert "built (engine ray)" in built.output
    related = runner.invoke(app, ["related", "what-are-the-latest-advancements-in-radiation-"
                                  "therapy-for-leukemia", "--index", "idx", "--json"])
    assert related.exit_code == 0 and '"url"' in related.output
    wrong = runner.invoke(app, ["build", str(DEMO), "--index", "idx", "--address", "auto"])
    assert wrong.exit_code != 0 and "--engine ray" in wrong.output
