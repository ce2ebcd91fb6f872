"""Cold and warm index build of a content folder, timed, with the load report.

Run: ``python -m benchmarks.build_corpus ../shared/corpora/quicktakes-dev
--out results/build_dev_corpus.json [--config FILE.yaml]``

All runs go through :func:`recommender.pipeline.open_index`, as ``recommender
build`` does, on a copy of the folder. Cold: an empty embedding cache, so every
article is embedded. Warm: the same build again: the index is current, so nothing
is read, embedded or rebuilt. Warm, forced: ``recommender build --force``, every
vector from the cache and the ranking state recomputed. Edit-one: one article's
title and question changed, then ``recommender build``: an incremental update
that embeds only that article (``benchmarks/update_index.py`` measures updates in
detail).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import stamp, write_results
from recommender.config import BuildConfig
from recommender.pipeline import open_index


def _timed_build(content: Path, config: BuildConfig, index_dir: Path, cache: Path,
                 force: bool = True) -> dict:
    started = time.perf_counter()
    opened = open_index(content, config, index_dir, cache_dir=cache, rebuild=force)
    m = opened.snapshot.manifest
    last = m["last_change"]
    out = {
        "action": opened.action,
        "embed_seconds": m["embedding"]["seconds"] if opened.action != "current" else 0.0,
        "embedded": last.get("embedded", 0) if opened.action != "current" else 0,
        "from_cache": last.get("from_cache", 0),
        "embedding_rate_per_s": m["embedding"]["rate_per_s"],
        "total_seconds": round(time.perf_counter() - started, 2),
    }
    if opened.action == "built":
        out["load_report"] = (opened.corpus.report.as_dict()
                              | {"dangling_links": len(opened.corpus.report.dangling)})
    if opened.action == "updated":
        out["update"] = {k: last.get(k) for k in ("changed", "added", "deleted", "lists",
                                                   "suggestions_recomputed", "timings")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("content", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/build_dev_corpus.json"))
    parser.add_argument("--config", type=Path)
    args = parser.parse_args()
    config = BuildConfig.from_yaml(args.config) if args.config else BuildConfig()
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        cache, index_dir, content = work / "cache", work / "index", work / "content"
        shutil.copytree(args.content, content)
        cold = _timed_build(content, config, index_dir, cache)
        print(f"cold: {cold['total_seconds']} s, embedded {cold['embedded']}")
        warm = _timed_build(content, config, index_dir, cache, force=False)
        print(f"warm: {warm['total_seconds']} s, {warm['action']}")
        forced = _timed_build(content, config, index_dir, cache)
        print(f"warm, forced: {forced['total_seconds']} s, embedded {forced['embedded']}")
        victim = sorted(content.rglob("*.md"))[0]
        text = victim.read_text(encoding="utf-8")
        victim.write_text(text.replace("question: >-\n    ", "question: >-\n    Edited: ", 1)
                          .replace("title: >-\n    ", "title: >-\n    Edited: ", 1),
                          encoding="utf-8")
        edit = _timed_build(content, config, index_dir, cache, force=False)
        print(f"edit one: {edit['total_seconds']} s, embedded {edit['embedded']} "
              f"in {edit['embed_seconds']} s")
        write_results(args.out, {
            **stamp({"content": str(args.content), "config": config.model_dump(mode="json")}),
            "cold": cold, "warm": warm, "warm_forced": forced, "edit_one_article": edit,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
