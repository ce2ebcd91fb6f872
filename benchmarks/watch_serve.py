"""``recommender serve DIR --watch`` on a real corpus: how soon a change is served, and
whether any request fails while changes keep coming.

Run: ``python -m benchmarks.watch_serve /work/shared/corpora/quicktakes-dev
--out results/watch_serve.json [--workers 1] [--updates 20] [--clients 4]``

On a copy of the folder (nothing of it is kept), the index is built, then the
server is started with ``--watch`` over real HTTP on 127.0.0.1:

1. **Latency**: five articles are edited one at a time (title and question). The
   time from the file's write to the first answer carrying the new title, then to
   a related-articles answer of the same version, is recorded (with several
   workers, until ten answers in a row carry it, whichever worker answers).
2. **Under load**: ``--clients`` threads keep asking for related articles of
   random articles (each waits ``--pause`` between requests: a bounded load), while
   ``--updates`` changes are made one after another: edits, additions (synthesised
   from two articles of one subject, as in ``benchmarks/update_index.py``) and
   deletions in turn, each waited for until served. Every request's status is
   counted; a failed request is an error, a 5xx, or a 404 for an article that was
   never deleted (the clients ask only for articles that are never deleted).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from benchmarks.common import stamp, write_results
from benchmarks.update_index import _field, _front, edit_one, synthesise, url_of
from recommender.config import BuildConfig
from recommender.pipeline import open_index

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def title_of(path: Path) -> str:
    lines, _ = _front(path.read_text(encoding="utf-8"))
    return _field(lines, "title")[1]  # type: ignore[index]


def article_path(url: str) -> str:
    return "/v1/articles/" + quote(url.lstrip("/"), safe="/")


def wait_until(check: Any, timeout: float, period: float = 0.02) -> float | None:
    """Seconds until ``check()`` holds, or None after ``timeout``."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            if check():
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(period)
    return None


class Load:
    """Client threads asking for related articles until stopped; every status counted."""

    def __init__(self, base: str, urls: list[str], clients: int, pause: float, seed: int):
        self.base, self.urls, self.pause = base, urls, pause
        self.statuses: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.deleted: set[str] = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(seed + i,))
                        for i in range(clients)]

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                url = rng.choice(self.urls)
                started = time.perf_counter()
                try:
                    response = client.get(article_path(url) + "/related", params={"k": 5})
                    status = str(response.status_code)
                except httpx.HTTPError as error:
                    status = f"error:{type(error).__name__}"
                elapsed = time.perf_counter() - started
                with self.lock:
                    self.statuses[status] += 1
                    self.latencies.append(elapsed)
                    if status != "200" and not (status == "404" and url in self.deleted):
                        self.failures.append(f"{url}: {status}")
                time.sleep(self.pause)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def served(client: httpx.Client, url: str, title: str, times: int) -> bool:
    for _ in range(times):
        response = client.get(article_path(url))
        if response.status_code != 200 or response.json()["title"] != title:
            return False
    return True


def gone(client: httpx.Client, url: str) -> bool:
    """The article is no longer served (its slug may now name a copy under another subject)."""
    response = client.get(article_path(url))
    return response.status_code == 404 or response.json()["url"] != url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("content", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/watch_serve.json"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    server = None
    try:
        content, index_dir = work / "content", work / "index"
        shutil.copytree(args.content, content)
        t = time.perf_counter()
        open_index(content, BuildConfig(), index_dir)
        build_s = time.perf_counter() - t
        print(f"index built in {build_s:.0f}s", flush=True)
        port = free_port()
        log = open(work / "server.log", "wb")  # noqa: SIM115
        server = subprocess.Popen(
            [sys.executable, "-m", "recommender.cli", "serve", str(content), "--index",
             str(index_dir), "--watch", "--port", str(port), "--workers", str(args.workers),
             "--log-level", "info"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=base, timeout=30)
        ready = wait_until(lambda: client.get("/readyz").status_code == 200, 600, 0.5)
        assert ready is not None, (work / "server.log").read_text()[-3000:]
        time.sleep(3)  # every worker up, the watcher subscribed
        files = sorted(content.rglob("*.md"))
        times = 10 if args.workers > 1 else 1

        latency = []
        for i, path in enumerate(rng.sample(files, 5)):
            url = url_of(path)
            edit_one(path)
            written = time.perf_counter()
            new_title = title_of(path)
            seen = wait_until(lambda url=url, t=new_title: served(client, url, t, times),
                              args.timeout)
            related = client.get(article_path(url) + "/related", params={"k": 5})
            related_s = time.perf_counter() - written
            latency.append({"edit": i, "title_served_s": round(seen, 3) if seen else None,
                            "related_served_s": round(related_s, 3),
                            "related_status": related.status_code})
            print(latency[-1], flush=True)

        urls = [url_of(p) for p in files]
        protected = set(rng.sample(urls, len(urls) // 2))  # only these are asked for
        updates = []
        with Load(base, sorted(protected), args.clients, args.pause, args.seed) as load:
            time.sleep(2)
            candidates = [p for p in files if url_of(p) not in protected]
            for n in range(args.updates):
                kind = ("edit", "add", "delete")[n % 3]
                if kind == "edit":
                    path = rng.choice([p for p in files if p.exists()])
                    edit_one(path)
                elif kind == "add":
                    first = rng.choice([p for p in files if p.exists()])
                    second = rng.choice([p for p in first.parent.glob("*.md") if p != first])
                    path = synthesise(first, second, 100 + n)
                else:
                    path = candidates.pop(rng.randrange(len(candidates)))
                    load.deleted.add(url_of(path))
                    url = url_of(path)
                    path.unlink()
                if kind == "delete":
                    seen = wait_until(lambda u=url: all(
                        gone(client, u) for _ in range(times)), args.timeout)
                else:
                    seen = wait_until(lambda u=url_of(path), w=title_of(path): served(
                        client, u, w, times), args.timeout)
                updates.append({"n": n, "kind": kind, "served_s": round(seen, 3)
                                if seen is not None else None})
                print(updates[-1], flush=True)
            time.sleep(1)
        served_s = [u["served_s"] for u in updates if u["served_s"] is not None]
        lat = sorted(load.latencies)
        log_text = (work / "server.log").read_text(errors="replace")
        results = {
            **stamp(vars(args) | {"content": str(args.content), "out": str(args.out)}),
            "index_build_seconds": round(build_s, 1),
            "latency_of_an_edit": latency,
            "edit_served_within_5s": all(x["title_served_s"] is not None
                                         and x["related_served_s"] <= 5 for x in latency),
            "under_load": {
                "updates": updates,
                "served_seconds": {"median": round(statistics.median(served_s), 3),
                                   "max": round(max(served_s), 3)} if served_s else None,
                "not_served_within_timeout": sum(u["served_s"] is None for u in updates),
                "requests": sum(load.statuses.values()),
                "statuses": dict(load.statuses),
                "failed_requests": len(load.failures),
                "failures": load.failures[:20],
                "latency_ms": {"p50": round(1000 * lat[len(lat) // 2], 2),
                               "p99": round(1000 * lat[int(len(lat) * 0.99)], 2),
                               "max": round(1000 * lat[-1], 2)} if lat else None,
            },
            "server_log_warnings": [line for line in log_text.splitlines()
                                    if "WARNING" in line][:20],
        }
        write_results(args.out, results)
        client.close()
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
