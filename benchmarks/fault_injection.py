"""Fault injection: killed fills, corrupted indexes and hostile files, counted.

Issue 14's promise is that nothing an attacker or an unlucky operator does to a
content folder or an index crashes, hangs, locks out, damages a file or serves a
5xx. This script tries it many times, with a seed, on a COPY of the content
folder given (the argument is never written to), and counts what went wrong:

- **kills**: ``recommender fill`` on the copy is SIGKILLed at a random moment:
  during the corpus load and index work, during the writes (the moment the first
  file changes, plus a random delay), or anywhere; either the fill's process
  alone (forked loader workers, if any, live on) or its whole process group.
  Then every file must be byte-identical to its original or a complete, valid
  fill result (the old bytes plus one insertion, whose re-parsed front matter is
  the old one plus new links: ``benchmarks.fill_dev_corpus.check_file``), no
  lock may block the next fill, and that next fill must complete and leave
  every article that needed links filled. Some kills start without an index,
  so they land in the index build and its save.
- **indexes**: a real ``recommender serve`` (uvicorn subprocess) serves a copy
  of the index; the copy is corrupted in varied ways (truncated files, rows cut
  from ``neighbours.npz``, garbage bytes, wrong dtype or shape, a deleted file,
  bad manifest JSON, inconsistent records) and ``POST /v1/admin/reload`` is
  asked while a stream of requests runs. The reload must answer a documented
  409/422/503 (or 200 for a change that leaves a valid index), ``/readyz`` must
  stay ready with the same generation, and the stream must get no 5xx and the
  old suggestions. Requests with lone surrogates and bytes that are not UTF-8
  are sent too.
- **hostile**: one hostile file per trial is added to a fresh copy (alias bombs,
  deep nesting, a FIFO, symlinks to ``/dev/zero``, out of the folder and to a
  folder, names and bytes that are not UTF-8, wrong field types, huge fields,
  lone surrogates, unreadable files and folders, ...); then, with all of them at
  once. ``build`` and ``fill`` must finish within the timeout, exit 0 (``build``)
  or 0/11 (``fill``), print no traceback, and the hostile file must appear in
  the load report (or load as an article, for the few that are valid).

Usage::

    python -m benchmarks.fault_injection demo/content
    nice -n 10 python -m benchmarks.fault_injection ../shared/corpora/quicktakes-dev \\
        --kills 6 --indexes 0 --hostile 0 --out results/fault_injection_dev.json

Writes ``results/fault_injection.json`` (``--out``): counts (kills, corrupted
indexes, hostile files, damaged files, crashes, hangs, 5xx) and every trial.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import stamp, write_results  # noqa: E402
from benchmarks.fill_dev_corpus import check_file  # noqa: E402
from recommender.corpus import Corpus, load_corpus  # noqa: E402
from recommender.errors import FillError  # noqa: E402
from recommender.fill import LOCK_NAME, TEMP_SUFFIX, FillLock  # noqa: E402

TOKEN = "fault-injection-admin-token"


# --------------------------------------------------------------------------- processes


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "recommender.cli", *args]


def environment(work: Path) -> dict[str, str]:
    """The CLI's environment: this checkout, offline, a cache and default index of its own."""
    env = dict(os.environ)
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", RECOMMENDER_CACHE=str(work / "cache"),
               RECOMMENDER_INDEX=str(work / "default-index"), COLUMNS="200")
    return env


def descendants(pid: int) -> list[int]:
    """Every living descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [c for c, p in parents.items() if p in frontier]
        found += children
        frontier = children
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def drop_dac_caps() -> None:
    """In a child about to exec: lose root's power to read any file (CAP_DAC_*)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run(args: list[str], env: dict[str, str], timeout: float, log: Path,
        as_user: bool = False) -> dict[str, Any]:
    """Run a command in its own process group; a timeout kills the group and is a hang."""
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                preexec_fn=drop_dac_caps if as_user else None)
        try:
            rc: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait()
            rc = None
    kill_group(proc.pid)  # nothing it started outlives it
    text = log.read_text(errors="replace")
    return {"rc": rc, "hang": rc is None, "seconds": round(time.monotonic() - started, 2),
            "traceback": "Traceback (most recent call last)" in text, "log_tail": text[-600:]}


# --------------------------------------------------------------------------- files


def copy_folder(source: Path, target: Path) -> None:
    """A writable copy (a shared corpus's files may be read-only; a fill skips those)."""
    if target.exists():
        make_removable(target)
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)
    subprocess.run(["chmod", "-R", "u+w", str(target)], check=True)


def make_removable(root: Path) -> None:
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file's bytes by relative path (the lock file too: it must stay empty)."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    out[os.path.relpath(path, root)] = f.read()
    return out


def stamps(root: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            st = os.stat(os.path.join(folder, name))
            out[os.path.join(folder, name)] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def changed(root: Path, before: dict[str, tuple[int, int, int]]) -> int:
    """How many files of ``root`` differ from ``before`` (stamps), temporary files included."""
    count = 0
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(TEMP_SUFFIX):
                count += 1
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if name != LOCK_NAME and before.get(path) != (st.st_ino, st.st_mtime_ns, st.st_size):
                count += 1
    return count


def wait_first_write(root: Path, before: dict[str, tuple[int, int, int]],
                     proc: subprocess.Popen[bytes], deadline: float) -> float | None:
    """Poll until a file of ``root`` changes or a temporary file appears; its time or None."""
    while time.monotonic() < deadline and proc.poll() is None:
        polled = time.monotonic()
        if changed(root, before):
            return time.monotonic()
        time.sleep(max(0.001, 2 * (time.monotonic() - polled)))  # a large folder: a third
    return None


def last_write(root: Path, before: dict[str, tuple[int, int, int]],
               proc: subprocess.Popen[bytes]) -> float:
    """Poll until ``proc`` exits; the time the count of changed files last grew."""
    seen, at = changed(root, before), time.monotonic()
    while proc.poll() is None:
        polled = time.monotonic()
        now = changed(root, before)
        if now != seen:
            seen, at = now, time.monotonic()
        time.sleep(max(0.001, 2 * (time.monotonic() - polled)))
    return at


def damage(original: dict[str, bytes], now: dict[str, bytes], corpus: Corpus,
           k: int) -> tuple[list[str], set[str]]:
    """Problems of files that are neither their original nor a valid fill; files filled."""
    by_rel = {a.path.relative_to(corpus.root).as_posix(): a for a in corpus.articles}
    problems, filled = [], set()
    for rel, old in original.items():
        if rel == LOCK_NAME:
            continue
        new = now.get(rel)
        if new is None:
            problems.append(f"{rel}: missing")
        elif new != old:
            found, _ = check_file(old, new, corpus, by_rel.get(rel), k)
            problems += [f"{rel}: {p}" for p in found]
            filled.add(rel)
    for rel in set(now) - set(original):
        if rel == LOCK_NAME:
            if now[rel]:
                problems.append(f"{rel}: the lock file holds bytes")
        elif not rel.endswith(TEMP_SUFFIX):
            problems.append(f"{rel}: a new file that is neither the lock nor a temporary file")
    return problems, filled


def lock_is_free(root: Path) -> bool:
    try:
        with FillLock(root):
            return True
    except FillError:
        return False


# --------------------------------------------------------------------------- kills


def kill_trials(pristine: Path, work: Path, n: int, rng: random.Random, timeout: float,
                k: int) -> dict[str, Any]:
    """SIGKILL fills at random moments; check every file, the lock, and the next fill."""
    base = work / "kills"
    base.mkdir()
    content, index, env = base / "content", base / "index", environment(work)
    original = snapshot(pristine)
    corpus = load_corpus(pristine)
    fill_args = cli("fill", str(content), "--index", str(index), "--k", str(k))

    # calibration: a fill that is not killed, timed, from the state each trial starts in
    copy_folder(pristine, content)
    first = run(fill_args, env, timeout, base / "first-fill.log")  # builds the index
    copy_folder(pristine, content)
    before = stamps(content)
    started = time.monotonic()
    proc = subprocess.Popen(fill_args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    wrote = wait_first_write(content, before, proc, started + timeout)
    ended = last_write(content, before, proc)
    proc.wait(timeout=timeout)
    total_s = time.monotonic() - started
    reference = damage(original, snapshot(content), corpus, k)
    if first["rc"] != 0 or proc.returncode != 0 or reference[0] or wrote is None:
        raise SystemExit(f"the unkilled fill failed: {first}, rc {proc.returncode}, "
                         f"{reference[0][:5]}")
    to_fill = reference[1]
    load_s, write_s = wrote - started, ended - wrote
    print(f"calibration: {len(to_fill)} files filled; first write after {load_s:.2f} s, "
          f"writes {write_s:.3f} s", flush=True)

    trials = []
    phases = ["load", "write", "anytime"]
    for i in range(n):
        phase = phases[i % 3]
        whole_group = rng.random() < 0.5
        cold = i % 5 == 4  # no index: the kill lands in the build, or its save
        copy_folder(pristine, content)
        if cold:
            shutil.rmtree(index, ignore_errors=True)
        before = stamps(content)
        log = open(base / f"kill-{i}.log", "wb")
        started = time.monotonic()
        proc = subprocess.Popen(fill_args, cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        if phase == "write":
            at = wait_first_write(content, before, proc, started + timeout)
            delay = rng.uniform(0, write_s)
        else:
            at = started
            span = (load_s if phase == "load" else total_s) * (3 if cold else 1)
            delay = rng.uniform(0.05 * span, 0.97 * span)
        if at is not None:
            time.sleep(max(0.0, at + delay - time.monotonic()))
        finished_first = proc.poll() is not None
        workers = descendants(proc.pid)
        if whole_group:
            kill_group(proc.pid)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
        killed_at = round(time.monotonic() - started, 3)
        survivors = [p for p in workers if alive(p)]
        problems, filled = damage(original, snapshot(content), corpus, k)
        temps = [p for p in snapshot(content) if p.endswith(TEMP_SUFFIX)]
        free = lock_is_free(content)  # while any surviving worker still lives
        after = run(fill_args, env, timeout, base / f"after-kill-{i}.log")
        kill_group(proc.pid)  # the survivors, now
        final_problems, final_filled = damage(original, snapshot(content), corpus, k)
        landed = ("during the writes" if temps or 0 < len(filled) < len(to_fill) else
                  "before the writes" if not filled else "after the writes")
        trial = {
            "trial": i, "phase": phase, "landed": landed,
            "target": "process group" if whole_group else "process",
            "cold": cold, "killed_after_s": killed_at, "exited_before_kill": finished_first,
            "processes_at_kill": 1 + len(workers), "survivors": len(survivors),
            "files_filled_at_kill": len(filled), "temporary_files_left": len(temps),
            "damaged": problems[:10], "lock_free_after_kill": free,
            "next_fill": {key: after[key] for key in ("rc", "hang", "seconds", "traceback")},
            "after_next_fill": {"damaged": final_problems[:10],
                                "files_filled": len(final_filled),
                                "missing_fills": sorted(to_fill - final_filled)[:10]},
        }
        trial["ok"] = (not problems and free and after["rc"] == 0 and not final_problems
                       and final_filled == to_fill)
        if not trial["ok"]:
            trial["next_fill_log"] = after["log_tail"]
        trials.append(trial)
        print(f"kill {i}: {phase} ({landed}), {trial['target']}{' cold' if cold else ''} at "
              f"{killed_at:.2f} s: {len(filled)} filled, {len(temps)} temp, "
              f"{len(survivors)} survivors, lock free {free}, next fill rc {after['rc']}, "
              f"ok {trial['ok']}", flush=True)
    copy_folder(pristine, content)
    final = run(fill_args, env, timeout, base / "final-fill.log")
    final_problems, final_filled = damage(original, snapshot(content), corpus, k)
    return {
        "calibration": {"files_to_fill": len(to_fill), "first_write_after_s": round(load_s, 2),
                        "writes_s": round(write_s, 3), "run_s": round(total_s, 2)},
        "trials": trials,
        "damaged_files": sum(len(t["damaged"]) + len(t["after_next_fill"]["damaged"])
                             for t in trials) + len(final_problems),
        "locked_out": sum(not t["lock_free_after_kill"] or t["next_fill"]["rc"] == 9
                          for t in trials),
        "crashes": sum(t["next_fill"]["traceback"] or t["next_fill"]["rc"] not in (0, 9, None)
                       for t in trials) + (final["traceback"] or final["rc"] != 0),
        "hangs": sum(t["next_fill"]["hang"] for t in trials) + final["hang"],
        "by_phase": dict(Counter(t["phase"] for t in trials)),
        "landed": dict(Counter(t["landed"] for t in trials)),
        "killed_with_survivors": sum(t["survivors"] > 0 for t in trials),
        "files_filled_at_kill": dict(sorted(Counter(t["files_filled_at_kill"]
                                                    for t in trials).items())),
        "final_fill": {"rc": final["rc"], "files_filled": len(final_filled),
                       "complete": final_filled == to_fill and not final_problems},
    }


# --------------------------------------------------------------------------- indexes


def _npz(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Apply ``change`` to every numeric array of a ``.npz`` (not to e.g. a sparse format)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays = {k: change(v) if v.dtype.kind in "fiub" and v.ndim else v
              for k, v in arrays.items()}
    with open(path, "wb") as f:  # np.savez would add ".npz" to a name without it
        np.savez(f, **arrays)


def _pick(rng: random.Random, files: list[Path], suffix: str = "") -> Path:
    return rng.choice([f for f in files if f.name.endswith(suffix)] or files)


def _manifest(index: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    path = index / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(change(manifest)))


def corruptions(rng: random.Random) -> list[tuple[str, Callable[[Path, list[Path]], str]]]:
    """(name, corrupt(index_dir, files) -> what was done) for every way of breaking an index.

    Each way takes its variants in turn (in an order the seed shuffles), so every
    variant is tried once the way has been tried as often as it has variants.
    """
    turns: dict[str, Iterator[str]] = {}

    def variant(way: str, options: list[str]) -> str:
        if way not in turns:
            order = options[:]
            rng.shuffle(order)
            turns[way] = itertools.cycle(order)
        return next(turns[way])

    def truncate(index: Path, files: list[Path]) -> str:
        path = rng.choice([f for f in files if f.stat().st_size] or files)
        size = path.stat().st_size
        keep = rng.randrange(0, max(1, size))
        with open(path, "r+b") as f:
            f.truncate(keep)
        return f"{path.relative_to(index)} cut from {size} to {keep} bytes"

    def cut_rows(index: Path, files: list[Path]) -> str:
        path = index / "ranking" / "neighbours.npz"
        with np.load(path) as npz:
            n = len(npz[npz.files[0]])
        keep = rng.choice([1, rng.randrange(1, n), n - 1])
        _npz(path, lambda v: v[:keep])
        return f"ranking/neighbours.npz cut to {keep} of {n} rows"

    def garbage(index: Path, files: list[Path]) -> str:
        path = rng.choice(files)
        data = bytearray(path.read_bytes())
        if not data:
            data = bytearray(b"\0")
        at = rng.randrange(len(data))
        length = rng.randint(1, 64)
        data[at : at + length] = bytes(rng.randrange(256) for _ in range(length))
        path.write_bytes(bytes(data))
        return f"{length} garbage bytes at {at} of {path.relative_to(index)}"

    def wrong_dtype(index: Path, files: list[Path]) -> str:
        path = _pick(rng, files, rng.choice([".npz", ".npy"]))
        dtype = rng.choice([np.float16, np.float64, np.int8, np.int64, np.uint8, np.bool_])
        if path.suffix == ".npy":
            np.save(path, np.load(path).astype(dtype))
        else:
            _npz(path, lambda v: v.astype(dtype))
        return f"{path.relative_to(index)} as {np.dtype(dtype).name}"

    def wrong_shape(index: Path, files: list[Path]) -> str:
        path = _pick(rng, files, rng.choice([".npz", ".npy"]))
        how = variant("shape", ["transpose", "flatten", "drop a column", "add a row"])

        def reshape(v: np.ndarray) -> np.ndarray:
            if v.ndim < 2 and how != "add a row":
                return v[:-1]
            if how == "transpose":
                return v.T
            if how == "flatten":
                return v.reshape(-1)
            if how == "drop a column":
                return v[:, :-1]
            return np.concatenate([v, v[-1:]])

        if path.suffix == ".npy":
            np.save(path, reshape(np.load(path)))
        else:
            _npz(path, reshape)
        return f"{path.relative_to(index)}: {how}"

    def delete(index: Path, files: list[Path]) -> str:
        path = rng.choice(files) if variant("delete", ["any", "manifest"]) == "any" \
            else index / "manifest.json"
        path.unlink()
        return f"{path.relative_to(index)} deleted"

    def bad_manifest(index: Path, files: list[Path]) -> str:
        how = variant("manifest", ["truncated", "not JSON", "a list", "no config",
                                   "counts off", "dim a string", "format 99",
                                   "config wrong type", "empty"])
        path = index / "manifest.json"
        text = path.read_text()
        if how == "truncated":
            path.write_text(text[: rng.randrange(1, len(text))])
        elif how == "not JSON":
            path.write_text("{not json")
        elif how == "a list":
            path.write_text("[1, 2]")
        elif how == "empty":
            path.write_text("")
        elif how == "no config":
            _manifest(index, lambda m: {k: v for k, v in m.items() if k != "config"})
        elif how == "counts off":
            _manifest(index, lambda m: {**m, "counts": {**m["counts"],
                                                        "articles": m["counts"]["articles"] + 1}})
        elif how == "dim a string":
            _manifest(index, lambda m: {**m, "dim": "many"})
        elif how == "format 99":
            _manifest(index, lambda m: {**m, "format_version": 99})
        else:
            _manifest(index, lambda m: {**m, "config": {"text": {"max_tokens": "many"}}})
        return f"manifest.json {how}"

    def bad_records(index: Path, files: list[Path]) -> str:
        path = index / rng.choice(["articles.jsonl", "files.jsonl"])
        lines = path.read_bytes().splitlines(keepends=True)
        how = variant("records", ["drop a line", "bad JSON line", "wrong types", "add a line"])
        if how == "drop a line" and lines:
            del lines[rng.randrange(len(lines))]
        elif how == "bad JSON line":
            lines.insert(rng.randrange(len(lines) + 1), b"{oops\n")
        elif how == "wrong types" and lines:
            at = rng.randrange(len(lines))
            record = json.loads(lines[at])
            for key in list(record)[:3]:
                record[key] = [1, 2]
            lines[at] = json.dumps(record).encode() + b"\n"
        else:
            lines.append(lines[0] if lines else b'{"x": 1}\n')
        path.write_bytes(b"".join(lines))
        return f"{path.name}: {how}"

    def bad_state(index: Path, files: list[Path]) -> str:
        path = _pick(rng, files, ".json")
        how = variant("state", ["not JSON", "a list", "keys dropped"])
        if how == "not JSON":
            path.write_text("{")
        elif how == "a list":
            path.write_text("[]")
        else:
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                data = {k: v for k, v in list(data.items())[::2]}
            path.write_text(json.dumps(data))
        return f"{path.relative_to(index)}: {how}"

    def bad_yaml(index: Path, files: list[Path]) -> str:
        path = index / rng.choice(["config.yaml", "schema.yaml"])
        how = variant("yaml", ["not YAML", "a list", "alias bomb"])
        if how == "not YAML":
            path.write_text("a: [unclosed\n")
        elif how == "a list":
            path.write_text("- 1\n- 2\n")
        else:
            path.write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
                f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)))
        return f"{path.name}: {how}"

    return [("truncate", truncate), ("cut rows of neighbours.npz", cut_rows),
            ("garbage bytes", garbage), ("wrong dtype", wrong_dtype),
            ("wrong shape", wrong_shape), ("delete a file", delete),
            ("bad manifest", bad_manifest), ("bad records", bad_records),
            ("bad ranking state", bad_state), ("bad YAML", bad_yaml)]


#: answers a reload may give (README: 409 / 422 / 503 on failure), and 200 if still valid
RELOAD_OK = {200, 409, 422, 503}
HOSTILE_REQUESTS: list[tuple[str, str, bytes | None]] = [
    ("POST", "/v1/related", b'{"title": "\\ud800"}'),
    ("POST", "/v1/related", b'{"text": "ok \\udfff ok"}'),
    ("POST", "/v1/related", b'{"question": "x", "subject": ["\\ud83d"]}'),
    ("POST", "/v1/related", b'{"title": "x", "exclude_url": ["/a\\udc80"]}'),
    ("POST", "/v1/related", b'{"title": "\xff\xfe not utf-8"}'),
    ("POST", "/v1/related", b'{"title": ' + b'[' * 5000 + b']' * 5000 + b'}'),
    ("POST", "/v1/related", b'{"title": "x", "k": 1e400}'),
    ("GET", "/v1/articles/%ED%A0%80/related", None),
    ("GET", "/v1/articles/%FF%FE/related?k=3", None),
    ("GET", "/v1/articles/x/related?subject=%ED%A0%80", None),
]


class Stream:
    """Related-article requests in a loop (a thread), recording statuses and answers."""

    def __init__(self, base: str, refs: list[str], expected: dict[str, list[str]]):
        import httpx

        self.client = httpx.Client(base_url=base, timeout=60)
        self.refs, self.expected = refs, expected
        self.statuses: Counter[int] = Counter()
        self.changed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        i = 0
        while not self._stop.is_set():
            ref = self.refs[i % len(self.refs)]
            i += 1
            try:
                r = self.client.get(f"/v1/articles/{ref}/related", params={"k": 5})
            except Exception:  # noqa: BLE001 - a dropped connection counts as a 5xx
                self.statuses[599] += 1
                continue
            self.statuses[r.status_code] += 1
            if r.status_code == 200 and urls(r.json()) != self.expected[ref]:
                self.changed += 1

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.05)
        self._stop.set()
        self._thread.join()
        self.client.close()


def urls(body: dict[str, Any]) -> list[str]:
    return [s["url"] for s in body["suggestions"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def index_trials(pristine: Path, work: Path, n: int, rng: random.Random,
                 timeout: float) -> dict[str, Any]:
    """Corrupt the served index's files in varied ways and reload, under requests."""
    import httpx

    base = work / "indexes"
    base.mkdir()
    env = environment(work)
    content, good, served = base / "content", base / "good-index", base / "served-index"
    copy_folder(pristine, content)
    built = run(cli("build", str(content), "--index", str(good), "--quiet"), env, timeout * 3,
                base / "build.log")
    if built["rc"] != 0:
        raise SystemExit(f"build failed: {built}")
    shutil.copytree(good, served)
    token = base / "token"
    token.write_text(TOKEN)
    port = free_port()
    log = open(base / "server.log", "wb")
    server = subprocess.Popen(
        cli("serve", str(served), "--port", str(port), "--admin-token-file", str(token),
            "--log-level", "warning"), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=120)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    trials, statuses, fivexx, stream_total = [], Counter(), 0, Counter()
    hostile_requests = Counter()
    try:
        deadline = time.monotonic() + timeout * 3
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {(base / 'server.log').read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    break
            time.sleep(0.2)
        records = [json.loads(line) for line in (good / "articles.jsonl").open("rb")]
        indexable = [r["url"] for r in records if not r["no_index"]]
        refs = rng.sample(indexable, min(12, len(indexable)))
        expected = {}
        for ref in refs:
            r = client.get(f"/v1/articles/{ref}/related", params={"k": 5})
            assert r.status_code == 200, (ref, r.status_code, r.text)
            expected[ref] = urls(r.json())
        generation = client.get("/readyz").json()["generation"]
        kinds = corruptions(rng)
        for i in range(n):
            name, corrupt = kinds[i % len(kinds)]
            shutil.rmtree(served)
            shutil.copytree(good, served)
            files = sorted(p for p in served.rglob("*") if p.is_file())
            what = corrupt(served, files)
            with Stream(url, refs, expected) as stream:
                r = client.post("/v1/admin/reload", headers=auth)
            body = r.json() if r.headers.get("content-type", "").startswith(
                "application/json") else {"raw": r.text[:300]}
            ready = client.get("/readyz")
            now = ready.json().get("generation") if ready.status_code == 200 else None
            after = {ref: client.get(f"/v1/articles/{ref}/related", params={"k": 5})
                     for ref in refs}
            after_5xx = sum(a.status_code >= 500 for a in after.values())
            kept = all(a.status_code == 200 and urls(a.json()) == expected[ref]
                       for ref, a in after.items())
            hostile = {}
            for method, path, data in HOSTILE_REQUESTS:
                h = client.request(method, path, content=data,
                                   headers={"Content-Type": "application/json"})
                hostile[f"{method} {path[:40]} {(data or b'')[:30]!r}"] = h.status_code
                hostile_requests[h.status_code] += 1
            bad_hostile = sum(s >= 500 for s in hostile.values())
            info = client.get("/v1/index").json()
            # a reload that succeeded (the change left a valid index) is a new generation
            consistent = ready.status_code == 200 and (
                now == generation if r.status_code != 200 else now == generation + 1)
            if r.status_code == 200:
                generation += 1
            stream_5xx = sum(c for s, c in stream.statuses.items() if s >= 500)
            trial = {
                "trial": i, "corruption": name, "what": what, "reload_status": r.status_code,
                "reload_error": (body.get("error") or {}).get("type") if isinstance(
                    body, dict) else None,
                "message": str((body.get("error") or {}).get("message", ""))[:300],
                "readyz": ready.status_code, "generation": now, "ready_consistent": consistent,
                "last_error_recorded": bool(info["reload"]["last_error"]) == (r.status_code
                                                                             != 200),
                "stream": dict(stream.statuses), "stream_changed_answers": stream.changed,
                "old_suggestions_kept": kept, "hostile_requests_5xx": bad_hostile,
            }
            trial["5xx"] = (stream_5xx + after_5xx + bad_hostile
                            + (r.status_code >= 500 and r.status_code != 503))
            trial["ok"] = (r.status_code in RELOAD_OK and consistent and kept
                           and trial["5xx"] == 0 and stream.changed == 0
                           and trial["last_error_recorded"])
            fivexx += trial["5xx"]
            statuses[r.status_code] += 1
            stream_total.update(stream.statuses)
            trials.append(trial)
            print(f"index {i}: {what}: reload {r.status_code} "
                  f"{trial['reload_error'] or ''}, stream {dict(stream.statuses)}, "
                  f"ok {trial['ok']}", flush=True)
        # the good index still reloads
        shutil.rmtree(served)
        shutil.copytree(good, served)
        final = client.post("/v1/admin/reload", headers=auth).status_code
    finally:
        client.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_group(server.pid)
            server.wait()
        log.close()
    server_log = (base / "server.log").read_text(errors="replace")
    return {
        "trials": trials, "reload_statuses": dict(sorted(statuses.items())),
        "stream_statuses": dict(sorted(stream_total.items())),
        "stream_requests": sum(stream_total.values()),
        "hostile_request_statuses": dict(sorted(hostile_requests.items())),
        "5xx": fivexx, "tracebacks_in_server_log": server_log.count("Traceback"),
        "good_index_reloads_after": final,
        "failed_trials": sum(not t["ok"] for t in trials),
    }


# --------------------------------------------------------------------------- hostile files


QT = ("---\nid: {ident}\ntitle: {title}\nquestion: What about {slug}?\n"
      "answer: A short answer about {slug}.\nsubject: Testing\nurl: /learn/testing/{slug}\n")


def bomb(levels: int = 9, width: int = 9) -> str:
    names = "abcdefghijklmnop"[:levels]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(['"lol"'] * width) + "]"]
    for prev, name in zip(names, names[1:], strict=False):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * width) + "]")
    return "\n".join(lines)


def article(slug: str, ident: int, extra: str = "", title: str | None = None) -> str:
    return QT.format(ident=ident, slug=slug, title=title or f"What about {slug}?") + extra


#: each maker adds one hostile thing to ``root`` and returns (name relative to root, what
#: the load report must say: "error", "warning" or "loaded")
Maker = Callable[[Path, str, random.Random, Path], tuple[bytes, str]]


def hostile_makers() -> list[tuple[str, Maker]]:
    def write(root: Path, rel: str, data: str | bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    def alias_bomb(field: str) -> Maker:
        def make(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
            inner = bomb(rng.randint(8, 10), rng.randint(8, 12)).replace("\n", ", ")
            text = article(stem, 900)
            if field in ("title", "answer"):
                text = text.replace(f"{field}: ", f"{field}_old: ", 1)
            write(root, f"{stem}.md", text + f"{field}: {{{inner}}}\n---\n")
            return f"{stem}.md".encode(), "error"
        return make

    def bomb_unused(root: Path, stem: str, rng: random.Random, outside: Path
                    ) -> tuple[bytes, str]:
        write(root, f"{stem}.md", article(stem, 901, bomb(rng.randint(8, 10)) + "\n---\n"))
        return f"{stem}.md".encode(), "error"

    def merge_bomb(root: Path, stem: str, rng: random.Random, outside: Path
                   ) -> tuple[bytes, str]:
        lines = ["m0: &m0 {a: lol, b: lol}"] + [
            f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}], k{i}: x}}" for i in range(1, 9)]
        write(root, f"{stem}.md", article(stem, 902, "\n".join(lines) + "\n---\n"))
        return f"{stem}.md".encode(), "error"

    def deep(style: str) -> Maker:
        def make(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
            depth = rng.choice([350, 500, 2000, 20000])
            nested = ("[" * depth + "x" + "]" * depth if style == "flow"
                      else "\n  " + "- " * depth + "x")
            key = rng.choice(["title", "keywords", "unused"])
            text = article(stem, 903).replace("title: ", "title_old: ", 1) if key == "title" \
                else article(stem, 903)
            write(root, f"{stem}.md", text + f"{key}: {nested}\n---\n")
            return f"{stem}.md".encode(), "error"
        return make

    def fifo(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
        os.mkfifo(root / f"{stem}.md")
        return f"{stem}.md".encode(), "error"

    def dev_zero(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
        (root / f"{stem}.md").symlink_to(rng.choice(["/dev/zero", "/dev/urandom"]))
        return f"{stem}.md".encode(), "error"

    def link_out(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
        target = outside / f"{stem}-secret.md"
        target.write_text(article(f"{stem}-secret", 904) + "---\n")
        (root / f"{stem}.md").symlink_to(target)
        return f"{stem}.md".encode(), "error"

    def link_folder(root: Path, stem: str, rng: random.Random, outside: Path
                    ) -> tuple[bytes, str]:
        target = rng.choice([root, outside, Path("/")])
        (root / stem).symlink_to(target, target_is_directory=True)
        return stem.encode(), "error"

    def dangling(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
        (root / f"{stem}.md").symlink_to(outside / "nowhere.md")
        return f"{stem}.md".encode(), "error"

    def non_utf8_name(root: Path, stem: str, rng: random.Random, outside: Path
                      ) -> tuple[bytes, str]:
        name = stem.encode() + b"-caf\xe9\xff.md"
        with open(os.fsencode(root) + b"/" + name, "wb") as f:
            f.write(article(stem, 905).encode() + b"---\n")
        return name, "error"

    def non_utf8_bytes(root: Path, stem: str, rng: random.Random, outside: Path
                       ) -> tuple[bytes, str]:
        data = article(stem, 906).encode().replace(b"A short", b"A \xff\xfe\xc3 short")
        write(root, f"{stem}.md", data + b"---\n")
        return f"{stem}.md".encode(), "error"

    def binary(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
        write(root, f"{stem}.md", rng.choice([b"", b"\0" * 4096, b"---\n",
                                              bytes(rng.randrange(256) for _ in range(5000))]))
        return f"{stem}.md".encode(), "error"

    def wrong_url(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
        value = rng.choice(["[1, 2]", "{a: 1}", "null", "2024-13-45", "0x_", "[]"])
        write(root, f"{stem}.md", article(stem, 907).replace(f"url: /learn/testing/{stem}",
                                                            f"url: {value}") + "---\n")
        return f"{stem}.md".encode(), "error"

    def wrong_title(root: Path, stem: str, rng: random.Random, outside: Path
                    ) -> tuple[bytes, str]:
        value = rng.choice(["[a, b]", "{a: 1}", "!!binary aGVsbG8=", "!!python/object:os.system"
                            " {}"])
        text = article(stem, 908).replace("title: ", "title_old: ", 1)
        write(root, f"{stem}.md", text + f"title: {value}\n---\n")
        return f"{stem}.md".encode(), "error"

    def wrong_minor(root: Path, stem: str, rng: random.Random, outside: Path
                    ) -> tuple[bytes, str]:
        extra = rng.choice(["keywords: {a: 1}\n", "no_index: maybe\n",
                            "related_article1: just a string\n",
                            "related_article1:\n    url: [3, 4]\n    title: Fine\n"])
        write(root, f"{stem}.md", article(stem, 909, extra) + "---\n")
        return f"{stem}.md".encode(), "warning"

    def huge_field(root: Path, stem: str, rng: random.Random, outside: Path
                   ) -> tuple[bytes, str]:
        words = rng.randint(200_000, 1_200_000)  # 1-7 MB: under the file size cap
        write(root, f"{stem}.md", article(stem, 910).replace(
            "answer: A short answer", "answer: " + "word " * words + "A short answer") + "---\n")
        return f"{stem}.md".encode(), "loaded"

    def over_cap(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
        write(root, f"{stem}.md", article(stem, 911) + "---\n" + "body " * 2_000_000)
        return f"{stem}.md".encode(), "error"

    def surrogate(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
        value = rng.choice(['"a \\ud800 b"', '"\\udfff"', '"x\\ud83d"'])
        text = article(stem, 912).replace("title: ", "title_old: ", 1)
        write(root, f"{stem}.md", text + f"title: {value}\n---\n")
        return f"{stem}.md".encode(), "error"

    def unreadable_file(root: Path, stem: str, rng: random.Random, outside: Path
                        ) -> tuple[bytes, str]:
        write(root, f"{stem}.md", article(stem, 913) + "---\n")
        (root / f"{stem}.md").chmod(0)
        return f"{stem}.md".encode(), "error"

    def unreadable_folder(root: Path, stem: str, rng: random.Random, outside: Path
                          ) -> tuple[bytes, str]:
        write(root, f"{stem}/inside.md", article(stem, 914) + "---\n")
        (root / stem).chmod(0)
        return stem.encode(), "error"

    def folder_named_md(root: Path, stem: str, rng: random.Random, outside: Path
                        ) -> tuple[bytes, str]:
        (root / f"{stem}.md").mkdir()
        write(root, f"{stem}.md/real.md", article(stem, 915) + "---\n")
        return f"{stem}.md/real.md".encode(), "loaded"

    def many_links(root: Path, stem: str, rng: random.Random, outside: Path
                   ) -> tuple[bytes, str]:
        blocks = "".join(f"related_article{i}:\n    url: /nowhere/{i}\n    title: T{i}\n"
                         for i in range(1, rng.randint(2000, 20000)))
        write(root, f"{stem}.md", article(stem, 916, blocks) + "---\n")
        return f"{stem}.md".encode(), "loaded"

    def huge_numbers(root: Path, stem: str, rng: random.Random, outside: Path
                     ) -> tuple[bytes, str]:
        value = rng.choice(["1e400", "99999999999999999999999999999", "-.inf", ".nan"])
        write(root, f"{stem}.md", article(stem, 917).replace("id: 917", f"id: {value}")
              + "---\n")
        return f"{stem}.md".encode(), "loaded"

    def unbuildable(root: Path, stem: str, rng: random.Random, outside: Path
                    ) -> tuple[bytes, str]:
        value = rng.choice(["2024-13-45", "2024-01-01 25:61:00", "0x_", "0b_"])
        write(root, f"{stem}.md", article(stem, 920, f"date: {value}\n") + "---\n")
        return f"{stem}.md".encode(), "error"

    def unterminated(root: Path, stem: str, rng: random.Random, outside: Path
                     ) -> tuple[bytes, str]:
        write(root, f"{stem}.md", article(stem, 918) + rng.choice(["", "title: [unclosed\n",
                                                                    "\t- bad\n"]))
        return f"{stem}.md".encode(), "error"

    def long_name(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
        name = stem + "-" + "x" * (250 - len(stem)) + ".md"
        write(root, name, article(stem, 919) + "---\n")
        return name.encode(), "loaded"

    def duplicate(root: Path, stem: str, rng: random.Random, outside: Path) -> tuple[bytes, str]:
        first = next(p for p in sorted(root.rglob("*.md")) if p.is_file())
        shutil.copy(first, root / f"{stem}.md")
        return f"{stem}.md".encode(), "duplicate"

    return [("alias bomb in answer", alias_bomb("answer")),
            ("alias bomb in title", alias_bomb("title")),
            ("alias bomb in keywords", alias_bomb("keywords")),
            ("alias bomb in an unused key", bomb_unused),
            ("merge-key bomb", merge_bomb),
            ("deep flow nesting", deep("flow")), ("deep block nesting", deep("block")),
            ("FIFO named .md", fifo), ("symlink to /dev/zero", dev_zero),
            ("symlink out of the folder", link_out), ("symlink to a folder", link_folder),
            ("dangling symlink", dangling), ("file name not UTF-8", non_utf8_name),
            ("bytes not UTF-8", non_utf8_bytes), ("empty or binary file", binary),
            ("url of a wrong type", wrong_url), ("title of a wrong type or tag", wrong_title),
            ("minor fields of wrong types", wrong_minor), ("huge field", huge_field),
            ("file over the size cap", over_cap), ("lone surrogate escape", surrogate),
            ("unreadable file", unreadable_file), ("unreadable folder", unreadable_folder),
            ("folder named .md", folder_named_md), ("thousands of link blocks", many_links),
            ("huge numbers", huge_numbers), ("a date or integer YAML cannot build", unbuildable),
            ("unterminated or invalid front matter", unterminated),
            ("255-byte file name", long_name), ("duplicate url", duplicate)]


def reported(report: dict[str, Any], name: bytes, expect: str, root: Path) -> bool:
    """Whether the load report (``build --report``) shows the hostile file as expected."""
    stem = name.split(b"-caf")[0].split(b"/")[0].decode()
    def hit(entries: list[dict[str, Any]]) -> bool:  # a duplicate may name it in its reason
        return any(stem in e["path"] or stem in e.get("reason", "") for e in entries)

    if expect == "error":
        return hit(report["errors"])
    if expect == "warning":
        return hit(report["warnings"])
    if expect == "duplicate":
        return hit(report["duplicate_urls"]) or hit(report["errors"])
    return report["articles"] >= 1 and not hit(report["errors"])


def hostile_trials(pristine: Path, work: Path, n: int, rng: random.Random,
                   timeout: float) -> dict[str, Any]:
    """Hostile files, one per trial, then all at once: build and fill must finish cleanly."""
    base = work / "hostile"
    base.mkdir()
    outside = base / "outside"
    outside.mkdir()
    content, index, env = base / "content", base / "index", environment(work)
    as_user = os.geteuid() == 0  # root reads unreadable files: run without that power
    makers = hostile_makers()
    trials = []

    def attempt(label: str, made: list[tuple[str, bytes, str]]) -> dict[str, Any]:
        report = base / "report.json"
        report.unlink(missing_ok=True)
        build = run(cli("build", str(content), "--index", str(index), "--quiet", "--report",
                        str(report)), env, timeout, base / "build.log", as_user)
        try:
            load = json.loads(report.read_text())
        except (OSError, ValueError):
            load = None
        fill = run(cli("fill", str(content), "--index", str(index)), env, timeout,
                   base / "fill.log", as_user)
        seen = {kind: load is not None and reported(load, name, expect, content)
                for kind, name, expect in made}
        result = {
            "trial": label, "hostile": [kind for kind, _, _ in made],
            "build": {k: build[k] for k in ("rc", "hang", "seconds", "traceback")},
            "fill": {k: fill[k] for k in ("rc", "hang", "seconds", "traceback")},
            "in_load_report": seen,
        }
        result["crash"] = (build["traceback"] or fill["traceback"]
                           or build["rc"] not in (0, None) or fill["rc"] not in (0, 11, None))
        result["hang"] = build["hang"] or fill["hang"]
        result["ok"] = not result["crash"] and not result["hang"] and all(seen.values())
        if not result["ok"]:
            result["build_log"] = build["log_tail"]
            result["fill_log"] = fill["log_tail"]
        print(f"hostile {label}: {', '.join(result['hostile'])[:80]}: build "
              f"{build['rc']} ({build['seconds']} s), fill {fill['rc']} ({fill['seconds']} s),"
              f" reported {all(seen.values())}, ok {result['ok']}", flush=True)
        return result

    everything: list[tuple[str, Maker, str]] = []
    for i in range(n):
        kind, make = makers[i % len(makers)]
        stem = f"hostile-{i:02d}"
        copy_folder(pristine, content)
        name, expect = make(content, stem, random.Random(rng.random()), outside)
        trials.append(attempt(str(i), [(kind, name, expect)]))
        everything.append((kind, make, stem))
    if everything:
        copy_folder(pristine, content)
        made = []
        for kind, make, stem in everything:
            name, expect = make(content, stem, random.Random(rng.random()), outside)
            made.append((kind, name, expect))
        trials.append(attempt("all at once", made))
    make_removable(content)
    return {
        "trials": trials, "hostile_files": n,
        "crashes": sum(t["crash"] for t in trials), "hangs": sum(t["hang"] for t in trials),
        "not_in_load_report": sum(not v for t in trials for v in t["in_load_report"].values()),
        "fill_exit_codes": dict(Counter(str(t["fill"]["rc"]) for t in trials)),
        "failed_trials": sum(not t["ok"] for t in trials),
    }


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="fault-injection-"))
    try:
        yield work
    finally:
        if not keep:
            make_removable(work)
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("content", type=Path, help="content folder (only copied, never written)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--indexes", type=int, default=30)
    parser.add_argument("--hostile", type=int, default=30)
    parser.add_argument("--k", type=int, default=5, help="links per filled article")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds before a command counts as hung")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "fault_injection.json")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    source = args.content.resolve()
    if not source.is_dir():
        parser.error(f"{source} is not a folder")
    rng = random.Random(args.seed)
    started = time.monotonic()
    results: dict[str, Any] = stamp({k: str(v) if isinstance(v, Path) else v
                                     for k, v in vars(args).items()})
    with workspace(args.keep) as work:
        pristine = work / "pristine"
        copy_folder(source, pristine)  # the argument is read once, here, and never written
        kills = kill_trials(pristine, work, args.kills, rng, args.timeout, args.k) \
            if args.kills else None
        indexes = index_trials(pristine, work, args.indexes, rng, args.timeout) \
            if args.indexes else None
        hostile = hostile_trials(pristine, work, args.hostile, rng, args.timeout) \
            if args.hostile else None
    counts = {
        "kills": args.kills, "corrupted_indexes": args.indexes, "hostile_files": args.hostile,
        "damaged_files": kills["damaged_files"] if kills else 0,
        "locked_out": kills["locked_out"] if kills else 0,
        "crashes": (kills["crashes"] if kills else 0) + (hostile["crashes"] if hostile else 0)
        + (indexes["tracebacks_in_server_log"] if indexes else 0),
        "hangs": (kills["hangs"] if kills else 0) + (hostile["hangs"] if hostile else 0),
        "5xx": indexes["5xx"] if indexes else 0,
        "failed_trials": sum(part["failed_trials"] if "failed_trials" in part
                             else sum(not t["ok"] for t in part["trials"])
                             for part in (kills, indexes, hostile) if part),
    }
    results.update(counts=counts, seconds=round(time.monotonic() - started, 1),
                   kills=kills, indexes=indexes, hostile=hostile)
    write_results(args.out, results)
    print(json.dumps(counts))
    return 0 if counts["failed_trials"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
