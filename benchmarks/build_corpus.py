"""Cold and warm index build of a content folder, timed, with the load report.

Run: ``python -m benchmarks.build_corpus ../shared/corpora/quicktakes-dev
--out results/build_dev_corpus.json [--config FILE.yaml]``

Cold: an empty embedding cache, so every article is embedded. Warm: the same
build again, as ``recommender build`` runs it: the index is current, so nothing is
embedded or rebuilt. Warm, forced: ``recommender build --force``, every vector
from the cache and the ranking state recomputed. Edit-one: one article's title
and question changed in a copy of the folder, to show a rebuild embeds only that
article.
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
from recommender.corpus import load_corpus
from recommender.index import build_index
from recommender.pipeline import index_is_current


def _timed_build(content: Path, config: BuildConfig, index_dir: Path, cache: Path,
                 force: bool = True) -> dict:
    started = time.perf_counter()
    corpus = load_corpus(content)
    load_s = time.perf_counter() - started
    if not force and index_is_current(index_dir, corpus, config):
        return {"load_seconds": round(load_s, 2), "embedded": 0, "index_reused": True,
                "total_seconds": round(time.perf_counter() - started, 2), "load_report": {}}
    index = build_index(corpus, config, index_dir, cache)
    m = index.manifest
    return {
        "load_seconds": round(load_s, 2),
        "embed_seconds": m["embedding"]["seconds"],
        "embedded": m["counts"]["embedded"],
        "from_cache": m["counts"]["from_cache"],
        "embedding_rate_per_s": m["embedding"]["rate_per_s"],
        "build_seconds_after_load": m["build_seconds"],
        "total_seconds": round(time.perf_counter() - started, 2),
        "load_report": corpus.report.as_dict() | {"dangling_links": len(corpus.report.dangling)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("content", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/build_dev_corpus.json"))
    parser.add_argument("--config", type=Path)
    args = parser.parse_args()
    config = BuildConfig.from_yaml(args.config) if args.config else BuildConfig()
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        cache, index_dir = work / "cache", work / "index"
        cold = _timed_build(args.content, config, index_dir, cache)
        print(f"cold: {cold['total_seconds']} s, embedded {cold['embedded']}")
        warm = _timed_build(args.content, config, index_dir, cache, force=False)
        print(f"warm: {warm['total_seconds']} s, embedded {warm['embedded']}")
        forced = _timed_build(args.content, config, index_dir, cache)
        print(f"warm, forced: {forced['total_seconds']} s, embedded {forced['embedded']}")
        edited = work / "content"
        shutil.copytree(args.content, edited)
        victim = sorted(edited.rglob("*.md"))[0]
        text = victim.read_text(encoding="utf-8")
        victim.write_text(text.replace("question: >-\n    ", "question: >-\n    Edited: ", 1)
                          .replace("title: >-\n    ", "title: >-\n    Edited: ", 1),
                          encoding="utf-8")
        edit = _timed_build(edited, config, index_dir, cache)
        print(f"edit one: {edit['total_seconds']} s, embedded {edit['embedded']} "
              f"in {edit['embed_seconds']} s")
        for run in (warm, forced, edit):
            run.pop("load_report")
        write_results(args.out, {
            **stamp({"content": str(args.content), "config": config.model_dump(mode="json")}),
            "cold": cold, "warm": warm, "warm_forced": forced, "edit_one_article": edit,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
