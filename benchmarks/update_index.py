"""Incremental updates of a real corpus's index, against cold and fresh builds, in one run.

Run: ``python -m benchmarks.update_index /work/shared/corpora/quicktakes-dev
--out results/update_index.json [--config FILE.yaml] [--resamples 1000]``

On a copy of the folder (in a temporary directory; nothing of it is kept):

1. a **cold build** (empty embedding cache), the yardstick of every ratio;
2. three changes, one after the other: **edit 1** article (title, question and a
   sentence of its answer), **add 10** articles, **delete 10** articles. The 10
   new articles are synthesised from existing ones of the copy: each takes one
   article's question with a new url and id, and mixes its answer's paragraphs with
   another article's of the same subject (so it is new text, not a duplicate).
   Each change is applied three ways and timed:

   - ``watch``: what ``serve --watch`` does, through the service's own code
     (:meth:`api.state.IndexState.apply_changes`): the served snapshot in memory,
     updated with the files the watcher names, a new Recommender over it, its
     warm-up queries, and the swap: the time until requests get the new version;
     ``save`` is the write that follows, off the request path;
   - ``library``: what ``recommender build`` does, in process: load the index from
     disk (a copy of it from before the change), scan the folder, update, save;
   - ``cli``: ``recommender build`` as a subprocess (interpreter start and imports
     included).

   After each change a **fresh full build** of the same folder is made (cached
   embeddings, TF-IDF refitted) and compared with the update: the top-10 that
   users see (copies collapsed) of the changed and added articles, and of the
   others: the share with an identical top-10 (same order), with the same ten,
   and the mean overlap, with the rows whose suggestions the update did not
   recompute apart. The update is also compared with its own state with every
   suggestion recomputed, which isolates what patching approximates from what the
   frozen TF-IDF (vocabulary and IDF) does.
3. **Quality** after the three changes, update against fresh build, paired
   bootstrap over the same queries: the suggestions as served (stored top 100;
   the shipped model saw these links, so absolute values are optimistic, the
   difference is what counts), and the product under the leakage-free protocol
   (refitted per publication-batch fold over each index's lists), whose recall@5
   is the README's headline number.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from api.settings import Settings
from api.state import IndexState
from benchmarks.common import stamp, write_results
from recommender.config import BuildConfig
from recommender.corpus import Corpus
from recommender.evaluation import build_protocol, evaluate
from recommender.evaluation.product import ProductMethod
from recommender.neighbours import compute_suggestions
from recommender.pipeline import Snapshot, open_index, save_index
from recommender.recommender import Recommender

K = 10


def _front(text: str) -> tuple[list[str], str]:
    head, _, body = text.partition("\n---\n")
    return head.split("\n"), body


def _field(lines: list[str], key: str) -> tuple[int, str] | None:
    """Position and value of a top-level scalar field (``key: value`` or folded ``>-``)."""
    for i, line in enumerate(lines):
        if line.startswith(f"{key}:"):
            value = line.split(":", 1)[1].strip()
            if value == ">-" and i + 1 < len(lines):
                return i + 1, lines[i + 1].strip()
            if value.startswith('"'):
                return i, json.loads(value)
            if value.startswith("'") and value.endswith("'"):
                return i, value[1:-1].replace("''", "'")
            return i, value
    return None


def _set(lines: list[str], key: str, value: str) -> None:
    """Set a field in place; a plain scalar is written double-quoted (JSON is YAML), so a
    value with ': ' in it stays valid."""
    found = _field(lines, key)
    assert found is not None, key
    i, _ = found
    lines[i] = (f"{key}: {json.dumps(value)}" if lines[i].startswith(f"{key}:")
                else f"    {value}")


def edit_one(path: Path) -> None:
    lines, body = _front(path.read_text(encoding="utf-8"))
    for key in ("title", "question"):
        found = _field(lines, key)
        if found:
            _set(lines, key, "Edited: " + found[1])
    found = _field(lines, "answer")
    assert found is not None
    _set(lines, "answer", found[1] + "\\n\\nThis answer was revised by the editors.")
    path.write_text("\n".join(lines) + "\n---\n" + body, encoding="utf-8")


def synthesise(first: Path, second: Path, n: int) -> Path:
    """A new article from two of one subject: the first's question, the answers mixed."""
    lines, body = _front(first.read_text(encoding="utf-8"))
    other, _ = _front(second.read_text(encoding="utf-8"))
    slug = f"{first.stem}-and-more-{n}"
    _set(lines, "url", _field(lines, "url")[1].rsplit("/", 1)[0] + "/" + slug)  # type: ignore[index]
    _set(lines, "id", str(990_000 + n))
    for key in ("title", "question"):
        found = _field(lines, key)
        if found:
            _set(lines, key, found[1].rstrip("?") + ", and what else should one know?")
    mine = _field(lines, "answer")[1].split("\\n\\n")  # type: ignore[index]
    theirs = _field(other, "answer")[1].split("\\n\\n")  # type: ignore[index]
    mixed = [p for pair in zip(mine, theirs) for p in pair] or mine
    _set(lines, "answer", "\\n\\n".join(mixed))
    target = first.parent / f"{slug}.md"
    target.write_text("\n".join(lines) + "\n---\n" + body, encoding="utf-8")
    return target


def url_of(path: Path) -> str:
    lines, _ = _front(path.read_text(encoding="utf-8"))
    return _field(lines, "url")[1]  # type: ignore[index]


def shown(snapshot: Snapshot) -> dict[str, list[str]]:
    """Every article's top-10 as users see it (the Recommender: copies collapsed)."""
    rec = Recommender(snapshot)
    return {a.url: [s.article.url for s in rec.related(a, K)] for a in rec.articles}


def agreement(updated: Snapshot, fresh: Snapshot, changed: set[str],
              recomputed: set[str]) -> dict[str, Any]:
    """How the top-10 users see after an update compare with another index's."""
    a, b = shown(updated), shown(fresh)
    assert set(a) == set(b)

    def block(urls: list[str]) -> dict[str, Any]:
        if not urls:
            return {"articles": 0}
        same = [u for u in urls if a[u] == b[u]]
        same_set = [u for u in urls if set(a[u]) == set(b[u])]
        overlap = [len(set(a[u]) & set(b[u])) / max(len(b[u]), 1) for u in urls]
        return {"articles": len(urls), "identical_top10": len(same),
                "identical_share": round(len(same) / len(urls), 5),
                "same_set_share": round(len(same_set) / len(urls), 5),
                "mean_overlap_at_10": round(float(np.mean(overlap)), 5)}

    others = [u for u in a if u not in changed]
    return {
        "changed_articles": block(sorted(changed & set(a))),
        "changed_differing": sorted(u for u in changed & set(a) if a[u] != b[u]),
        "other_articles": block(others),
        "other_recomputed": block([u for u in others if u in recomputed]),
        "other_kept": block([u for u in others if u not in recomputed]),
    }


def recomputed_rows(before: Snapshot, after: Snapshot) -> set[str]:
    """Articles whose stored suggestions the update rewrote (differ from before, renumbered)."""
    old = {a.url: i for i, a in enumerate(before.articles)}
    out = set()
    for i, a in enumerate(after.articles):
        j = old.get(a.url)
        if j is None:
            out.add(a.url)
            continue
        was = [before.articles[r].url for r in before.ranking.suggestions.rows[j] if r >= 0]
        now = [after.articles[r].url for r in after.ranking.suggestions.rows[i] if r >= 0]
        if was != now:
            out.add(a.url)
    return out


def apply(name: str, content: Path, rng: random.Random, touched: set[str]) -> tuple[
        list[Path], set[str]]:
    """Make one change in the folder; the paths a watcher would report, and the urls changed."""
    files = sorted(p for p in content.rglob("*.md") if url_of(p) not in touched)
    if name == "edit_1":
        victim = rng.choice(files)
        edit_one(victim)
        return [victim], {url_of(victim)}
    if name == "add_10":
        by_subject: dict[Path, list[Path]] = {}
        for p in files:
            by_subject.setdefault(p.parent, []).append(p)
        folders = [f for f, ps in by_subject.items() if len(ps) >= 2]
        made = []
        for n in range(10):
            first, second = rng.sample(by_subject[rng.choice(folders)], 2)
            made.append(synthesise(first, second, n))
        return made, {url_of(p) for p in made}
    victims = rng.sample(files, 10)
    urls = {url_of(p) for p in victims}
    for p in victims:
        p.unlink()
    return victims, urls


class Served:
    """The stored suggestions of a snapshot, as an evaluation method (rows aligned)."""

    def __init__(self, name: str, snapshot: Snapshot):
        self.name, self.rows = name, snapshot.ranking.suggestions.rows

    def rank(self, queries: np.ndarray, n: int) -> list[list[int]]:
        return [[r for r in self.rows[q].tolist() if r >= 0][:n] for q in queries]


def quality(corpus: Corpus, updated: Snapshot, fresh: Snapshot, config: BuildConfig,
            resamples: int, seed: int) -> dict[str, Any]:
    assert [a.url for a in updated.articles] == [a.url for a in fresh.articles] == [
        a.url for a in corpus.articles]
    protocol = build_protocol(corpus)
    yardstick = fresh.ranking.matrices["lexical"]
    out: dict[str, Any] = {"queries": len(protocol.queries)}
    pairs = {
        "served": (Served("served:fresh", fresh), Served("served:updated", updated)),
        "product": (ProductMethod(corpus, config, "product:fresh", seed=seed, snapshot=fresh),
                    ProductMethod(corpus, config, "product:updated", seed=seed,
                                  snapshot=updated)),
    }
    for kind, (ref, other) in pairs.items():
        started = time.perf_counter()
        result = evaluate(protocol, [ref, other], [5, 10], yardstick, ref.name, 5, seed,
                          resamples)
        out[kind] = {
            "fresh": {m: round(result.method(ref.name).metrics[m], 4)
                      for m in ("recall@5", "ndcg@10")},
            "updated": {m: round(result.method(other.name).metrics[m], 4)
                        for m in ("recall@5", "ndcg@10")},
            "difference": {i.metric: {"value": round(i.difference, 5), "low": round(i.low, 5),
                                      "high": round(i.high, 5), "significant": i.significant}
                           for i in result.intervals if i.metric in ("recall@5", "ndcg@10")},
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(f"quality ({kind}): {out[kind]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("content", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/update_index.json"))
    parser.add_argument("--config", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--no-quality", action="store_true")
    args = parser.parse_args()
    config = BuildConfig.from_yaml(args.config) if args.config else BuildConfig()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-update-"))
    try:
        content, index_dir, cache = work / "content", work / "index", work / "cache"
        shutil.copytree(args.content, content)
        t = time.perf_counter()
        cold = open_index(content, config, index_dir, cache_dir=cache, rebuild=True)
        cold_s = time.perf_counter() - t
        print(f"cold build: {cold_s:.1f}s", flush=True)
        served = cold.snapshot
        # the service, in process, serving the cold build and following the folder
        service = IndexState(Settings(index_dir=index_dir, content_dir=content, cache_dir=cache,
                                      watch=True, load_in_background=False))
        service.load(preloaded=served)
        steps: dict[str, Any] = {}
        touched: set[str] = set()
        for name in ("edit_1", "add_10", "delete_10"):
            before = work / "before"
            shutil.copytree(index_dir, before)  # the index as on disk before the change
            paths, urls = apply(name, content, rng, touched)
            touched |= urls
            # the command line, as a subprocess: interpreter, imports, load, update, save
            t = time.perf_counter()
            cli = subprocess.run(
                [sys.executable, "-m", "recommender.cli", "build", str(content), "--index",
                 str(index_dir), "--cache-dir", str(cache), "-q"]
                + (["--config", str(args.config)] if args.config else []),
                capture_output=True, text=True, env={**os.environ})
            cli_s = time.perf_counter() - t
            assert cli.returncode == 0, cli.stderr
            # the same in process: load the index from disk, scan, update, save
            t = time.perf_counter()
            library = open_index(content, None, before, cache_dir=cache)
            library_s = time.perf_counter() - t
            assert library.action == "updated"
            # serve --watch: the files the watcher names, applied to the served snapshot
            t = time.perf_counter()
            loaded = service.apply_changes({str(p) for p in paths})
            watch_s = time.perf_counter() - t
            assert loaded is not None, service.last_error
            opened = loaded
            t = time.perf_counter()
            save_index(opened.snapshot, work / "saved")
            save_s = time.perf_counter() - t
            last = opened.snapshot.manifest["last_change"]
            t = time.perf_counter()
            fresh = open_index(content, config, None, cache_dir=cache, rebuild=True)
            fresh_s = time.perf_counter() - t
            rewritten = recomputed_rows(served, opened.snapshot)
            compared = agreement(opened.snapshot, fresh.snapshot,
                                 urls if name != "delete_10" else set(), rewritten)
            # the same updated state with every suggestion recomputed: what patching alone
            # approximates (the rest of the difference to a fresh build is the frozen TF-IDF)
            state = opened.snapshot
            full = Snapshot(state.index, dataclasses.replace(
                state.ranking, suggestions=compute_suggestions(state.ranker())))
            patched_vs_full = agreement(state, full, set(), rewritten)
            steps[name] = {
                "files": len(paths),
                "change": {k: last[k] for k in ("changed", "added", "deleted", "embedded",
                                                "from_cache", "files_read", "refit")},
                "seconds": {"watch_ready": round(watch_s, 3), "save_after_swap": round(save_s, 3),
                            "library_build": round(library_s, 3), "cli_build": round(cli_s, 3),
                            "fresh_full_build": round(fresh_s, 2)},
                "ratio_to_cold_build": {"watch_ready": round(watch_s / cold_s, 5),
                                        "library_build": round(library_s / cold_s, 5),
                                        "cli_build": round(cli_s / cold_s, 5)},
                "within_2s": {"watch_ready": watch_s <= 2.0, "library_build": library_s <= 2.0,
                              "cli_build": cli_s <= 2.0},
                "update": {k: last.get(k) for k in ("lists", "suggestions_recomputed",
                                                     "timings", "drift")},
                "agreement_with_fresh_build": compared,
                "agreement_with_full_recompute_of_the_same_state": {
                    k: patched_vs_full[k] for k in ("other_articles", "other_kept")},
            }
            print(f"{name}: watch-ready {watch_s:.2f}s, save {save_s:.2f}s, library "
                  f"{library_s:.2f}s, cli {cli_s:.2f}s (cold {cold_s:.0f}s); changed top-10 "
                  f"{compared['changed_articles']}, others {compared['other_articles']}; "
                  f"patched vs full recompute {patched_vs_full['other_kept']}", flush=True)
            shutil.rmtree(before)
            shutil.rmtree(work / "saved")
            served = opened.snapshot
        final_quality = None
        if not args.no_quality:
            final_quality = quality(fresh.corpus, served, fresh.snapshot, config,
                                    args.resamples, args.seed)
        write_results(args.out, {
            **stamp({"content": str(args.content), "config": config.model_dump(mode="json"),
                     "seed": args.seed, "resamples": args.resamples}),
            "articles": len(cold.snapshot.articles),
            "cold_build_seconds": round(cold_s, 2),
            "cold_build": {k: cold.snapshot.manifest[k] for k in ("counts", "embedding",
                                                                  "build_seconds")},
            "steps": steps,
            "quality_after_all_steps": final_quality,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "wall_seconds": round(time.perf_counter() - started, 1),
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
