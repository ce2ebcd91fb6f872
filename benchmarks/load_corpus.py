"""Time the corpus load of this tree against a baseline commit, and record what it finds.

The hardened loader (regular files only, a size cap, YAML measured before it is
expanded, fields type-checked, schema detected) must still load a real folder
fast and find the same things. This script loads the folder in a fresh
interpreter per run, with one process (``workers=1``, the pure cost) and with the
default pool, for this tree and (``--baseline REV``) for a ``git archive`` of
another commit, and reports wall time, CPU time (user + system, pool workers
included: less sensitive to a busy machine than wall time) and the load report's
figures of each.

Usage::

    python -m benchmarks.load_corpus ../shared/corpora/quicktakes-dev --baseline 548f4a7

Writes ``results/load_dev_corpus.json`` (override with ``--out``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import stamp, write_results

ROOT = Path(__file__).resolve().parents[1]

#: run in a fresh interpreter with the tree under test first on sys.path
PROBE = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from recommender.corpus import load_corpus

def cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

workers = None if sys.argv[3] == "default" else int(sys.argv[3])
c0, t0 = cpu(), time.perf_counter()
corpus = load_corpus(sys.argv[2], workers=workers)
wall, used = time.perf_counter() - t0, cpu() - c0
r = corpus.report.as_dict()
print(json.dumps({"wall_s": wall, "cpu_s": used, "figures": {
    "files": r["files"], "articles": r["articles"], "errors": len(r["errors"]),
    "warnings": len(r.get("warnings", [])), "copies": r["copies"], "no_index": r["no_index"],
    "links": r["links"], "subjects": r["subjects"], "negative_ids": r["negative_ids"],
    "schema": r.get("schema", {}).get("reason")}}))
"""


def measure(tree: Path, content: Path, workers: str, repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", PROBE, str(tree), str(content), workers],
                              capture_output=True, text=True, check=True, cwd=tree)
        runs.append(json.loads(done.stdout))
    return {
        "wall_s": {"min": round(min(r["wall_s"] for r in runs), 2),
                   "all": [round(r["wall_s"], 2) for r in runs]},
        "cpu_s": {"min": round(min(r["cpu_s"] for r in runs), 2),
                  "all": [round(r["cpu_s"], 2) for r in runs]},
        "figures": runs[0]["figures"],
    }


def export(rev: str, into: Path) -> Path:
    """The ``recommender`` package of commit ``rev``, unpacked under ``into``."""
    archive = subprocess.run(["git", "archive", rev, "recommender"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("content", type=Path)
    parser.add_argument("--baseline", help="a commit to compare with (e.g. before hardening)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "load_dev_corpus.json")
    args = parser.parse_args(argv)
    content = args.content.resolve()
    results: dict[str, Any] = stamp({"content": str(args.content), "baseline": args.baseline,
                                     "repeats": args.repeats})
    with tempfile.TemporaryDirectory(prefix="load-baseline-") as tmp:
        trees = {"this tree": ROOT}
        if args.baseline:
            trees[f"baseline {args.baseline}"] = export(args.baseline, Path(tmp))
        for label, tree in trees.items():
            results[label] = {workers: measure(tree, content, workers, args.repeats)
                              for workers in ("1", "default")}
            print(label, json.dumps({w: {"wall_s": m["wall_s"]["min"],
                                         "cpu_s": m["cpu_s"]["min"]}
                                     for w, m in results[label].items()}), file=sys.stderr)
    if args.baseline:
        now, then = results["this tree"]["1"], results[f"baseline {args.baseline}"]["1"]
        results["cpu_ratio_one_process"] = round(now["cpu_s"]["min"] / then["cpu_s"]["min"], 3)
        same = {k: v for k, v in now["figures"].items() if k not in ("schema", "warnings", "links")}
        old = {k: v for k, v in then["figures"].items() if k not in ("schema", "warnings", "links")}
        links_now = {k: v for k, v in now["figures"]["links"].items()
                     if k in then["figures"]["links"]}
        results["same_figures"] = same == old and links_now == then["figures"]["links"]
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
