"""Batch-fill a copy of a real content folder and prove that nothing but the new links changed.

The fill's promise to editors is "one reviewable insertion per file, no stray
byte", so this benchmark measures the time of a full run and then checks EVERY
file of the copy against the untouched original, independently of the fill's
own bookkeeping: unchanged files must be byte-identical; changed ones must be
the original plus one contiguous insertion whose YAML only adds links, in the
schema's style: ``related_articleN`` keys just before the closing ``---``
(numbered on) for QuickTakes, or items of the ``related:`` list (appended to it,
or a new key at the end) for Hugo-style sites. Every new link points to an
indexable article of the folder, never the article, a copy of it or an existing
link. A second run must change nothing.

The suggester is the product itself: the Recommender over an index built here
from the copy (``--suggester product``, with ``--config``), or over an existing
index (``--index DIR``); or, so that a run takes minutes without an embedding
model, a TF-IDF nearest-neighbour suggester built with scikit-learn
(``--suggester tfidf``). The safety checks do not depend on which.

The copy is made writable (``chmod u+w``): a shared corpus's files may be
read-only, and the fill skips read-only files unless forced.

Usage::

    python benchmarks/fill_dev_corpus.py ../shared/corpora/quicktakes-dev --suggester tfidf
    python benchmarks/fill_dev_corpus.py ../shared/corpora/quicktakes-dev --index INDEX_DIR
    python benchmarks/fill_dev_corpus.py ../shared/corpora/manpages-dev --suggester product \\
        --config CONFIG.yaml --out results/fill_manpages.json

Writes ``results/fill_dev_corpus.json`` (override with ``--out``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.cli.options import load_schema  # noqa: E402
from recommender.corpus import (  # noqa: E402
    Article,
    Corpus,
    find_article_files,
    load_corpus,
    split_front_matter,
)
from recommender.fill import (  # noqa: E402
    LOCK_NAME,
    TEMP_SUFFIX,
    FillLock,
    Suggest,
    apply_fill,
    clean_temp_files,
    plan_fill,
    recommender_suggester,
    select_articles,
)
from recommender.text import clean_text  # noqa: E402

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader


# --------------------------------------------------------------------------- suggesters


def tfidf_suggester(corpus: Corpus, sources: list[Article], depth: int = 64) -> Suggest:
    """Cosine nearest neighbours over TF-IDF of question and answer, precomputed for ``sources``.

    A quick stand-in for the embedding recommender: it lets the fill run over the
    whole dev corpus in minutes; its ranking quality is not what is measured.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    articles = corpus.articles
    row = {a.url: i for i, a in enumerate(articles)}
    texts = [clean_text(f"{a.title}\n{a.question}\n{a.answer}") for a in articles]
    matrix = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, max_df=0.5,
                             dtype=np.float32).fit_transform(texts).tocsr()
    blocked = np.array([a.no_index for a in articles])
    top: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for start in range(0, len(sources), 512):
        chunk = sources[start : start + 512]
        scores = (matrix[[row[a.url] for a in chunk]] @ matrix.T).toarray()
        scores[:, blocked] = -1.0
        best = np.argpartition(-scores, depth, axis=1)[:, :depth]
        for a, rows, sc in zip(chunk, best, scores, strict=True):
            order = rows[np.argsort(-sc[rows], kind="stable")]
            top[a.url] = (order, sc[order])

    def suggest(article: Article, k: int, exclude_urls: set[str]) -> list[tuple[Article, float]]:
        if article.url not in top:
            scores = (matrix[row[article.url]] @ matrix.T).toarray()[0]
            scores[blocked] = -1.0
            order = np.argsort(-scores, kind="stable")[: depth * 4]
            top[article.url] = (order, scores[order])
        rows, scores = top[article.url]
        out = []
        for r, s in zip(rows.tolist(), scores.tolist(), strict=True):
            a = articles[r]
            if a.url in exclude_urls or a.no_index or s <= 0:
                continue
            out.append((a, float(s)))
            if len(out) == k:
                break
        return out

    return suggest


def index_suggester(index_dir: Path) -> Suggest:
    """The real Recommender over a built index."""
    from recommender.pipeline import load_index
    from recommender.recommender import Recommender

    return recommender_suggester(Recommender(load_index(index_dir.expanduser())))


def product_suggester(corpus: Corpus, config: Path | None, work: Path) -> Suggest:
    """The real Recommender over an index of ``corpus`` built here with ``config``."""
    from recommender.config import BuildConfig
    from recommender.pipeline import build_index
    from recommender.recommender import Recommender

    cfg = BuildConfig.from_yaml(config) if config else BuildConfig()
    return recommender_suggester(Recommender(build_index(corpus, cfg, work / "index")))


# --------------------------------------------------------------------------- verification


def _insertion(old: bytes, new: bytes) -> tuple[int, bytes] | None:
    """(offset, inserted bytes) if ``new`` is ``old`` plus one contiguous insertion."""
    if len(new) <= len(old):
        return None
    prefix = len(os.path.commonprefix([old, new]))
    suffix = len(os.path.commonprefix([old[::-1], new[::-1]]))
    if prefix + suffix < len(old):
        return None
    at = min(prefix, len(old))
    block = new[at : at + len(new) - len(old)]
    return (at, block) if old[:at] + block + old[at:] == new else None


def _meta(data: bytes) -> dict[str, Any]:
    return yaml.load(split_front_matter(data.decode("utf-8"))[0], Loader=_Loader)


def _check_targets(corpus: Corpus, article: Article, urls: list[Any],
                   k: int) -> list[str]:
    """Problems with the new targets: in the folder, indexable, new, at most ``k`` in all."""
    problems = []
    if len(article.curated) + len(urls) > k:
        problems.append("more than k links")
    seen = {article.content_key} | {corpus.by_url[u].content_key for u in article.links}
    for url in urls:
        target = corpus.by_url.get(url) if isinstance(url, str) else None
        if target is None:
            problems.append(f"link {url!r} does not point to an article of the folder")
            continue
        if target.no_index:
            problems.append(f"link to no_index article {target.url}")
        if target.content_key in seen:
            problems.append(f"link to itself, a copy or an existing link: {target.url}")
        seen.add(target.content_key)
    return problems


def check_file(old: bytes, new: bytes, corpus: Corpus, article: Article | None,
               k: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Problems with one changed file, and the links it gained (as ``{"url": ...}`` at least)."""
    found = _insertion(old, new)
    if found is None:
        return ["not the old bytes plus one contiguous insertion"], []
    at, block = found
    nl = b"\r\n" if b"\r\n" in old[: old.find(b"\n", 4) + 1] else b"\n"
    problems = []
    if block.count(b"\n") != block.count(nl):
        problems.append("inserted lines do not use the file's line ending")
    if article is None:
        return [*problems, "changed file is not an article of the corpus"], []
    before, after = _meta(old), _meta(new)
    added = [key for key in after if key not in before]
    if list(after) != list(before) + added:
        problems.append("keys are not the old keys plus new ones at the end")
    schema = corpus.schema_of(article)
    if schema.links.write == "list":
        key = schema.links.lists[0]
        if added not in ([], [key]):
            problems.append(f"keys other than {key!r} added: {added}")
        if any(after[name] != value for name, value in before.items() if name != key):
            problems.append("an existing field changed")
        old_items = before.get(key) or []
        new_items = after.get(key)
        if not isinstance(new_items, list) or new_items[: len(old_items)] != old_items:
            problems.append(f"the {key!r} list is not the old list plus new items")
            return problems, []
        links = [{"url": url} for url in new_items[len(old_items) :]]
        return problems + _check_targets(corpus, article, new_items[len(old_items) :], k), links
    if not block.startswith(b"related_article") or not old[at:].startswith(b"---"):
        problems.append("insertion is not a block just before the closing '---'")
    if any(after[key] != value for key, value in before.items()):
        problems.append("an existing field changed")
    numbers = [int(str(key)[15:]) for key in before if str(key).startswith("related_article")
               and str(key)[15:].isdigit()]
    first = max(numbers, default=0) + 1
    if added != [f"related_article{n}" for n in range(first, first + len(added))]:
        problems.append(f"new keys {added} are not numbered on from {first}")
    links = [after[key] for key in added]
    urls = [link.get("url") if isinstance(link, dict) else None for link in links]
    problems += _check_targets(corpus, article, urls, k)
    for link, url in zip(links, urls, strict=True):
        target = corpus.by_url.get(url) if isinstance(url, str) else None
        if target is None:
            continue
        integer = target.id is not None and re.fullmatch(r"-?[1-9][0-9]*|0", target.id)
        ident = int(target.id) if integer else target.id
        expected = {"id": ident, "title": target.title, "subject": target.subject,
                    "url": target.url}
        if link != {key: value for key, value in expected.items() if value is not None}:
            problems.append(f"link fields {link!r} differ from the target {expected!r}")
    return problems, links


# --------------------------------------------------------------------------- run


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return f"{head}+dirty" if dirty else head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("content", type=Path, help="content folder (it is copied, not touched)")
    parser.add_argument("--suggester", choices=["tfidf", "index", "product"], default=None)
    parser.add_argument("--index", type=Path, help="index directory for the real Recommender")
    parser.add_argument("--config", type=Path, help="BuildConfig YAML of --suggester product")
    parser.add_argument("--schema", help="a shipped schema name or a schema file "
                                         "[default: detected]")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--top-up", action="store_true")
    parser.add_argument("--min-score", type=float, default=None)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to make the copy [default: a temporary folder]")
    parser.add_argument("--keep", action="store_true", help="keep the filled copy")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "fill_dev_corpus.json")
    args = parser.parse_args(argv)
    kind = args.suggester or ("index" if args.index else "tfidf")
    if kind == "index" and not args.index:
        parser.error("--suggester index needs --index DIR")

    source = args.content.resolve()
    work = Path(tempfile.mkdtemp(prefix="fill-bench-", dir=args.workdir))
    copy = work / source.name
    timings: dict[str, float] = {}
    started = time.perf_counter()
    shutil.copytree(source, copy, symlinks=True)
    subprocess.run(["chmod", "-R", "u+w", str(copy)], check=True)
    timings["copy_s"] = time.perf_counter() - started
    try:
        t = time.perf_counter()
        schema, schema_reason = load_schema(args.schema, copy)
        corpus = load_corpus(copy, schema=schema, schema_reason=schema_reason)
        timings["load_s"] = time.perf_counter() - t
        print(f"schema: {schema_reason}", file=sys.stderr)
        selected = select_articles(corpus, args.k, args.top_up)
        t = time.perf_counter()
        if kind == "tfidf":
            suggest = tfidf_suggester(corpus, selected)
        elif kind == "product":
            suggest = product_suggester(corpus, args.config, work)
        else:
            suggest = index_suggester(args.index)
        timings["suggester_build_s"] = time.perf_counter() - t

        t = time.perf_counter()
        with FillLock(copy):
            cleaned = clean_temp_files(copy)
            t_plan = time.perf_counter()
            plans = plan_fill(corpus, suggest, args.k, args.top_up, args.min_score)
            timings["plan_s"] = time.perf_counter() - t_plan
            t_write = time.perf_counter()
            result = apply_fill(plans)
            timings["write_s"] = time.perf_counter() - t_write
        timings["fill_total_s"] = time.perf_counter() - t
        result.cleaned_temp_files = cleaned
        print(f"filled {result.files_filled} files with {result.links_written} links in "
              f"{timings['fill_total_s']:.1f}s; verifying every file...", file=sys.stderr)

        # verify every file of the copy against the original folder
        t = time.perf_counter()
        by_path = {str(a.path.resolve()): a for a in corpus}
        written = {str(p.path.resolve()): p for p in result.written}
        src_files = {p.relative_to(source).as_posix() for p in find_article_files(source)}
        all_src = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
        all_copy = {p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()
                    and p.name != LOCK_NAME}  # the lock's empty file stays, by design
        problems: list[dict[str, Any]] = []
        unchanged = changed = 0
        links_found = 0
        same_subject = 0
        for rel in sorted(all_src):
            old, new = (source / rel).read_bytes(), (copy / rel).read_bytes()
            path = str((copy / rel).resolve())
            if old == new:
                unchanged += 1
                if path in written:
                    problems.append({"path": rel, "problem": "reported written, bytes unchanged"})
                continue
            changed += 1
            article = by_path.get(path)
            issues, links = check_file(old, new, corpus, article, args.k)
            links_found += len(links)
            if article is not None:
                targets = [corpus.by_url.get(link.get("url")) for link in links
                           if isinstance(link, dict)]
                same_subject += sum(1 for t in targets
                                    if t is not None and t.subject == article.subject)
            plan = written.get(path)
            if plan is None:
                issues.append("changed but not reported written")
            elif [link.get("url") for link in links if isinstance(link, dict)] != [
                    link.url for link in plan.links]:
                issues.append("links in the file differ from the report")
            problems.extend({"path": rel, "problem": issue} for issue in issues)
        extra = sorted(all_copy - all_src)
        missing = sorted(all_src - all_copy)
        if extra or missing:
            problems.append({"path": "*", "problem": f"files added {extra[:5]} / removed "
                                                     f"{missing[:5]}"})
        leftovers = [p for p in extra if p.endswith(TEMP_SUFFIX)]
        timings["verify_s"] = time.perf_counter() - t

        # a second run must change nothing
        def tree() -> dict[str, str]:
            return {p.relative_to(copy).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in copy.rglob("*") if p.is_file() and p.name != LOCK_NAME}

        first_tree = tree()
        t = time.perf_counter()
        again_corpus = load_corpus(copy, schema=schema, schema_reason=schema_reason)
        again_plans = plan_fill(again_corpus, suggest, args.k, args.top_up, args.min_score)
        with FillLock(copy):
            again = apply_fill(again_plans)
        timings["second_run_s"] = time.perf_counter() - t
        second_tree = tree()
        second_changed = sum(1 for rel in set(first_tree) | set(second_tree)
                             if first_tree.get(rel) != second_tree.get(rel))

        scores = [link.score for p in result.written for link in p.links]
        stats = {
            "files": len(all_src),
            "article_files": len(src_files),
            "articles": len(corpus),
            "load_errors": len(corpus.report.errors),
            "load_warnings": len(corpus.report.warnings),
            "schema_files": corpus.report.by_schema,
            "no_index": corpus.report.no_index,
            "selected": len(selected),
            "files_filled": result.files_filled,
            "links_written": result.links_written,
            "links_per_filled_file": Counter(len(p.links) for p in result.written),
            "skipped": result.skipped_by_kind(),
            "failed": len(result.failed),
            "skipped_examples": [vars(s) for s in result.skipped[:10]],
            "same_subject_share": round(same_subject / links_found, 4) if links_found else None,
            "score": {"min": min(scores), "median": statistics.median(scores),
                      "max": max(scores)} if scores else None,
        }
        verification = {
            "files_checked": len(all_src),
            "unchanged_byte_identical": unchanged,
            "changed": changed,
            "changed_all_valid": changed - len({p["path"] for p in problems if p["path"] != "*"}),
            "links_found_in_files": links_found,
            "problems": len(problems),
            "problem_examples": problems[:20],
            "leftover_temp_or_lock_files": leftovers,
            "second_run": {"selected": len(again_plans), "files_written": again.files_filled,
                           "files_changed": second_changed},
        }
        out = {
            "benchmark": "fill_dev_corpus",
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "platform": {"system": platform.platform(), "machine": platform.machine(),
                         "cpus": os.cpu_count(), "python": platform.python_version()},
            "parameters": {"content": str(args.content), "suggester": kind,
                           "index": str(args.index) if args.index else None,
                           "config": args.config.read_text() if args.config else None,
                           "schema": schema_reason, "k": args.k,
                           "top_up": args.top_up, "min_score": args.min_score},
            "timings_s": {key: round(value, 3) for key, value in timings.items()},
            "throughput": {
                "files_written_per_s": round(result.files_filled / timings["write_s"], 1)
                if timings["write_s"] else None,
                "articles_planned_per_s": round(len(plans) / timings["plan_s"], 1)
                if timings["plan_s"] else None,
            },
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "result": stats,
            "verification": verification,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=dict) + "\n", encoding="utf-8")
        print(json.dumps({"timings_s": out["timings_s"], "result": {
            k: v for k, v in stats.items() if k != "skipped_examples"},
            "verification": {k: v for k, v in verification.items()
                             if k != "problem_examples"}}, indent=2, default=dict))
        ok = not problems and not leftovers and second_changed == 0
        print(f"{'OK' if ok else 'FAILED'}: results in {args.out}", file=sys.stderr)
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"filled copy kept in {copy}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
