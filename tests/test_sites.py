"""Sites other than QuickTakes: each is loaded, filled, filled again, built and suggested.

The fixtures under ``tests/fixtures/sites/`` are small folders of our own writing:

- ``no-meta``: Hugo pages with a title and a body only (no description, tags or links);
- ``half-meta``: half the pages have a description and tags (a list or a comma string);
- ``list-links``: ``related`` lists of urls, paths, a slug, a flow list, an empty key,
  a dangling item;
- ``no-links``: QuickTakes articles without any ``related_articleN`` block;
- ``mixed``: QuickTakes articles and Hugo pages in one folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from recommender.corpus import Corpus, load_corpus, split_front_matter
from recommender.fill import fill, word_overlap_suggester
from recommender.pipeline import build_index
from recommender.recommender import Recommender

from .conftest import FIXTURES, HASHING, ROOT, cli_env
from .test_fill import inserted_block, snapshot

SITES = FIXTURES / "sites"
#: site -> (schema detected, articles, curated links resolved, dangling)
EXPECTED = {
    "no-meta": ("hugo", 6, 0, 0),
    "half-meta": ("hugo", 6, 0, 0),
    "list-links": ("hugo", 7, 5, 1),
    "no-links": ("quicktakes", 5, 0, 0),
    "mixed": ("quicktakes", 6, 2, 0),
}
#: sites whose articles have no description or keywords at all: those signals are switched off
EMPTY_FIELDS = {"no-meta", "no-links"}


def meta_of(data: bytes) -> dict[str, Any]:
    return yaml.safe_load(split_front_matter(data.decode("utf-8"))[0])


def assert_only_links_added(old: bytes, new: bytes, corpus: Corpus, path: Path) -> list[str]:
    """``new`` is ``old`` plus one insertion that only adds links; returns the new target urls."""
    inserted_block(old, new)  # one contiguous insertion, every other byte unchanged
    article = next(a for a in corpus if a.path == path)
    before, after = meta_of(old), meta_of(new)
    added_keys = [key for key in after if key not in before]
    assert list(after) == list(before) + added_keys
    if article.schema == "hugo":
        assert added_keys in ([], ["related"])
        assert {k: v for k, v in after.items() if k != "related"} == {
            k: v for k, v in before.items() if k != "related"}
        old_items = before.get("related") or []
        assert after["related"][: len(old_items)] == old_items
        urls = after["related"][len(old_items):]
    else:
        assert all(key.startswith("related_article") for key in added_keys)
        assert all(after[key] == before[key] for key in before)
        urls = [after[key]["url"] for key in added_keys]
    assert urls and all(url in corpus.by_url for url in urls)
    reloaded = load_corpus(corpus.root).by_url[article.url]
    assert set(urls) <= set(reloaded.links)  # the new links resolve like curated ones
    return urls


@pytest.fixture(params=sorted(EXPECTED))
def site(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    target = tmp_path / request.param
    shutil.copytree(SITES / request.param, target)
    return request.param, target


def test_site_loads_with_the_detected_schema(site: tuple[str, Path]):
    name, root = site
    corpus = load_corpus(root)
    report = corpus.report
    assert report.errors == [] and report.warnings == []
    assert (report.schema, len(corpus), sum(len(a.links) for a in corpus),
            len(report.dangling)) == EXPECTED[name]
    assert report.schema_reason.startswith(report.schema)
    if name == "mixed":
        assert report.by_schema == {"quicktakes": 3, "hugo": 3}
        assert "3 like hugo" in report.schema_reason


def test_site_is_filled_in_its_own_style_and_a_second_run_changes_nothing(
        site: tuple[str, Path]):
    name, root = site
    corpus = load_corpus(root)
    before = snapshot(root)
    result = fill(corpus, word_overlap_suggester(corpus), k=3)
    assert result.failed == [] and result.files_filled > 0
    after = snapshot(root)
    assert set(after) == set(before)
    changed = [rel for rel in before if after[rel] != before[rel]]
    assert len(changed) == result.files_filled
    for rel in changed:
        assert_only_links_added(before[rel], after[rel], corpus, root / rel)
    again = load_corpus(root)
    second = fill(again, word_overlap_suggester(again), k=3)
    assert second.files_filled == 0 and snapshot(root) == after


def test_list_links_keep_each_files_layout(tmp_path: Path):
    root = tmp_path / "list-links"
    shutil.copytree(SITES / "list-links", root)
    corpus = load_corpus(root)
    fill(corpus, word_overlap_suggester(corpus), k=4, top_up=True)
    green = (root / "tea/green.md").read_text()
    assert green.startswith('---\ntitle: "Brewing green tea"\ndescription: "Cooler water for '
                            'green tea"\nrelated:\n  - /tea/white/\n  - tea/black.md\n  - /')
    white = (root / "tea/white.md").read_text()
    assert white.startswith('---\ntitle: "Brewing white tea"\nrelated: [ /tea/green/, /')
    assert white.split("\n")[2].endswith("/ ]")
    oolong = (root / "tea/oolong.md").read_text()  # `related:` with no value: items below it
    assert oolong.startswith('---\ntitle: "Brewing oolong"\nrelated:\n  - /')
    teapots = (root / "brewing/teapots.md").read_text()  # no key: a new one, corpus indent
    assert teapots.startswith('---\ntitle: "Choosing a teapot"\nrelated:\n  - /')
    black = (root / "tea/black.md").read_text()  # 3 items (1 dangling): one more
    assert "  - /tea/does-not-exist/\n  - /" in black and black.count("\n  - ") == 4


def test_an_unindented_list_gets_unindented_items(tmp_path: Path):
    root = tmp_path / "mixed"
    shutil.copytree(SITES / "mixed", root)
    corpus = load_corpus(root)
    fill(corpus, word_overlap_suggester(corpus), k=3, top_up=True)
    leaves = (root / "garden/leaves.md").read_text()
    assert "related:\n- /garden/compost/\n- /" in leaves
    compost = (root / "garden/compost.md").read_text()  # learnt from leaves.md: `- ` items
    assert "\nrelated:\n- /" in compost


def test_site_builds_and_suggests(site: tuple[str, Path]):
    name, root = site
    corpus = load_corpus(root)
    index = build_index(corpus, HASHING, None, root.parent / "cache")
    if name in EMPTY_FIELDS:  # signals over fields no article has are off, and said so
        assert index.ranking.off
    found = Recommender(index).related(corpus.articles[0], k=3)
    assert found and all(s.article.url in corpus.by_url for s in found)


def test_site_cli_fill_exits_0_without_a_traceback(site: tuple[str, Path], tmp_path: Path):
    name, root = site
    index = tmp_path / "index"
    build_index(load_corpus(root), HASHING, index, tmp_path / "cache")
    env = cli_env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "fill", str(root), "--index",
                           str(index), "--k", "3"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert f"schema: {EXPECTED[name][0]}" in done.stdout
    assert "files filled" in done.stdout


def test_a_schema_file_that_is_not_a_schema_is_a_usage_error(tmp_path: Path):
    root = tmp_path / "list-links"
    shutil.copytree(SITES / "list-links", root)
    broken = tmp_path / "broken.yaml"
    broken.write_text("links:\n  write: sideways\n")
    env = cli_env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "fill", str(root),
                           "--schema", str(broken), "--dry-run"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {broken}: key 'links.write'")
    assert "Traceback" not in done.stderr
