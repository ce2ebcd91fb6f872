"""Load benchmark of the HTTP service: latency and throughput over real HTTP.

Starts ``recommender serve`` on an index (127.0.0.1, a free port) for each worker
count asked, then loads it from this separate process:

* **closed loop** (``wrk`` when installed, else an asyncio client): N connections
  each send the next request as soon as the previous answer arrives, for a fixed
  duration. This gives the most the server can answer; latency then includes the
  queueing that N outstanding requests imply (Little's law: p50 ≈ N / throughput).
* **open loop** (asyncio client): requests are *scheduled* at a fixed total rate
  over N connections and latency is measured from the scheduled time, so a
  server that falls behind is charged for it (no coordinated omission). This says
  what latency clients see at a given load, e.g. 500 req/s from 50 connections.
* **reload**: a closed loop during which ``POST /v1/admin/reload`` rebuilds (with
  ``--content``) or re-reads the index; every failed request is counted.

Queries: related-by-article for random articles (their url or id), and
related-by-text for random questions of the corpus. Results go to a JSON file
and a Markdown summary, stamped with the git commit, platform and parameters.

Run it alone on the machine (other engineers share its cores)::

    flock /tmp/cpu-bench.lock .venv/bin/python -m benchmarks.load_api --index /tmp/dev-index
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "load-benchmark-token"
GOALS = {"by_article_p99_ms_at_50": 10.0, "by_article_rps": 500.0, "by_text_p99_ms_at_1": 50.0}

# -- requests ----------------------------------------------------------------------------------


def load_queries(index_dir: Path, n: int, seed: int) -> tuple[list[str], list[bytes]]:
    """Paths of related-by-article requests and bodies of related-by-text requests."""
    articles = [json.loads(line) for line in
                (index_dir / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    rng = random.Random(seed)
    picked = rng.sample(articles, min(n, len(articles)))
    paths = []
    for a in picked:  # mostly urls as page templates send them, some ids
        ref = a["url"].lstrip("/") if (rng.random() < 0.8 or a["id"] is None) else a["id"]
        paths.append(f"/v1/articles/{quote(ref, safe='/')}/related?k=5")
    bodies = [json.dumps({"question": a["question"], "k": 5}).encode() for a in picked]
    return paths, bodies


# -- a small HTTP/1.1 keep-alive client (a few tens of microseconds of CPU a request) ------------


class Connection:
    """One keep-alive connection; far lighter than httpx, so the client steals less CPU."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        try:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("connection closed")
            status = int(line.split()[1])
            length = 0
            while True:
                header = await self.reader.readline()
                if header in (b"\r\n", b""):
                    break
                if header[:15].lower() == b"content-length:":
                    length = int(header[15:])
            await self.reader.readexactly(length)
            return status
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Samples:
    """Per-request records: when it was due, how long it took, and its status (0: error)."""

    started: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, started: float, latency: float, status: int) -> None:
        self.started.append(started)
        self.latency.append(latency)
        self.status.append(status)

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = np.array(self.latency) * 1000
        status = np.array(self.status)
        ok = status == 200
        out: dict[str, Any] = {
            "requests": int(len(status)), "ok": int(ok.sum()),
            "failed": int((~ok).sum()), "seconds": round(seconds, 2),
            "throughput_rps": round(float(ok.sum()) / seconds, 1),
            "statuses": {str(s): int((status == s).sum()) for s in np.unique(status)},
        }
        if len(lat):
            for p in (50, 90, 95, 99, 99.9):
                out[f"p{p:g}_ms"] = round(float(np.percentile(lat, p)), 2)
            out["max_ms"] = round(float(lat.max()), 2)
            out["mean_ms"] = round(float(lat.mean()), 2)
        if self.errors:
            out["error_examples"] = sorted(set(self.errors))[:5]
        return out


async def closed_loop(host: str, port: int, clients: int, seconds: float,
                      requests: list[tuple[str, str, bytes]], seed: int) -> Samples:
    """``clients`` connections, each sending the next request when an answer arrives."""
    samples = Samples()
    end = time.perf_counter() + seconds

    async def client(n: int) -> None:
        rng = random.Random(seed + n)
        conn = Connection(host, port)
        while time.perf_counter() < end:
            method, path, body = requests[rng.randrange(len(requests))]
            started = time.perf_counter()
            try:
                status = await conn.request(method, path, body)
            except Exception as error:  # counted as a failed request
                status = 0
                samples.errors.append(repr(error))
            samples.add(started, time.perf_counter() - started, status)
        conn.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return samples


async def open_loop(host: str, port: int, clients: int, rate: float, seconds: float,
                    requests: list[tuple[str, str, bytes]], seed: int) -> Samples:
    """Requests due at a fixed total ``rate``, spread over ``clients`` connections.

    Latency runs from when a request was due, not when it was sent: if the server
    (or a connection still waiting for an earlier answer) delays it, that counts.
    """
    samples = Samples()
    interval = clients / rate
    start = time.perf_counter() + 0.05

    async def client(n: int) -> None:
        rng = random.Random(seed + n)
        conn = Connection(host, port)
        due = start + n * interval / clients
        while due < start + seconds:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            method, path, body = requests[rng.randrange(len(requests))]
            try:
                status = await conn.request(method, path, body)
            except Exception as error:
                status = 0
                samples.errors.append(repr(error))
            samples.add(due, time.perf_counter() - due, status)
            due += interval
        conn.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return samples


# -- wrk ------------------------------------------------------------------------------------------

WRK_SCRIPT = r"""
local lines = {}
for line in io.lines(os.getenv("LOAD_API_REQUESTS")) do lines[#lines + 1] = line end
local method = os.getenv("LOAD_API_METHOD")
local headers = {["Content-Type"] = "application/json"}
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("seed", counter) end
init = function(args) math.randomseed(seed * 7919 + os.time()) end
request = function()
  local line = lines[math.random(#lines)]
  if method == "POST" then return wrk.format("POST", "/v1/related", headers, line) end
  return wrk.format("GET", line)
end
done = function(s, latency, requests)
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p99.9":%d,"max":%d,"mean":%.1f}\n',
    s.requests, s.duration, s.errors.connect, s.errors.read, s.errors.write, s.errors.status,
    s.errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
"""


def run_wrk(port: int, clients: int, seconds: float, method: str, lines: list[str],
            folder: Path) -> dict[str, Any]:
    """One closed-loop run of wrk (one thread: it is light, the server needs the cores)."""
    script, data = folder / "load_api.lua", folder / f"requests-{method}.txt"
    script.write_text(WRK_SCRIPT)
    data.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "LOAD_API_REQUESTS": str(data), "LOAD_API_METHOD": method}
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script),
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, env=env, check=True,
        timeout=seconds + 60).stdout
    raw = json.loads(next(x for x in out.splitlines() if x.startswith("JSON "))[5:])
    seconds_run = raw["duration_us"] / 1e6
    failed = raw["status"] + raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    result = {"requests": raw["requests"], "ok": raw["requests"] - raw["status"],
              "failed": failed, "seconds": round(seconds_run, 2),
              "throughput_rps": round((raw["requests"] - raw["status"]) / seconds_run, 1)}
    for key in ("p50", "p90", "p95", "p99", "p99.9"):
        result[f"{key}_ms"] = round(raw[key] / 1000, 2)
    result["max_ms"] = round(raw["max"] / 1000, 2)
    result["mean_ms"] = round(raw["mean"] / 1000, 2)
    result["errors"] = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")}
    return result


# -- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``recommender serve`` in a subprocess, stopped by its pid."""

    def __init__(self, args: argparse.Namespace, workers: int, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        source = [str(args.content), "--index", str(args.index)] if args.content else \
            [str(args.index)]
        command = [sys.executable, "-m", "recommender.cli", "serve", *source,
                   "--port", str(self.port), "--workers", str(workers),
                   "--admin-token", TOKEN, "--log-level", "warning"]
        self.log = open(log, "wb")
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float) -> float:
        """Until 20 answers in a row are ready (every worker has its index); seconds taken."""
        started = time.monotonic()
        ready = 0
        while ready < 20:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"server not ready after {timeout}s")
            try:
                ok = httpx.get(self.base + "/readyz", timeout=5).status_code == 200
            except httpx.HTTPError:
                ok = False
            ready = ready + 1 if ok else 0
            time.sleep(0.05 if ok else 0.5)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# -- scenarios ----------------------------------------------------------------------------------


def settle(server: Server, timeout: float = 120.0) -> None:
    """Wait until requests queued by the previous run are answered (a closed loop of text
    queries leaves a backlog in the server), so runs do not measure each other."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.base, timeout=timeout) as client:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            client.post("/v1/related", json={"question": "settle", "k": 1})
            if time.perf_counter() - t0 < 0.25:
                return
            time.sleep(0.5)


async def reload_run(server: Server, clients: int, seconds: float,
                     requests: list[tuple[str, str, bytes]], seed: int) -> dict[str, Any]:
    """A closed loop of ``seconds``; a reload is asked for after a third of it."""
    reload_info: dict[str, Any] = {}

    async def reload_later() -> None:
        await asyncio.sleep(seconds / 3)
        async with httpx.AsyncClient(base_url=server.base, timeout=600) as admin:
            before = (await admin.get("/v1/index")).json()
            t0 = time.perf_counter()
            response = await admin.post("/v1/admin/reload",
                                        headers={"Authorization": f"Bearer {TOKEN}"})
            t1 = time.perf_counter()
        reload_info.update(status=response.status_code, body=response.json(),
                           seconds=round(t1 - t0, 2), started=t0, ended=t1,
                           generation_before=before["generation"])

    started = time.perf_counter()
    samples, _ = await asyncio.gather(
        closed_loop("127.0.0.1", server.port, clients, seconds, requests, seed), reload_later())
    result = samples.summary(time.perf_counter() - started)
    if reload_info:  # latency of the requests answered while the reload ran
        t0, t1 = reload_info.pop("started"), reload_info.pop("ended")
        during = [lat * 1000 for s, lat in zip(samples.started, samples.latency) if t0 <= s <= t1]
        if during:
            reload_info["during_requests"] = len(during)
            reload_info["during_p50_ms"] = round(float(np.percentile(during, 50)), 2)
            reload_info["during_p99_ms"] = round(float(np.percentile(during, 99)), 2)
            reload_info["during_max_ms"] = round(float(max(during)), 2)
    result["reload"] = reload_info
    return result


def bench_workers(args: argparse.Namespace, workers: int, paths: list[str], bodies: list[bytes],
                  folder: Path) -> dict[str, Any]:
    use_wrk = args.tool == "wrk" or (args.tool == "auto" and shutil.which("wrk"))
    server = Server(args, workers, folder / f"server-{workers}.log")
    out: dict[str, Any] = {"workers": workers, "closed_loop_tool": "wrk" if use_wrk else
                           "python-asyncio"}
    try:
        out["startup_seconds"] = round(server.wait_ready(args.startup_timeout), 1)
        gets = [("GET", p, b"") for p in paths]
        posts = [("POST", "/v1/related", b) for b in bodies]
        asyncio.run(closed_loop("127.0.0.1", server.port, 4, 2.0, gets + posts, args.seed))
        runs = [("by_article", "GET", gets, paths, c) for c in args.clients]
        runs += [("open", "GET", gets, paths, rate) for rate in args.rates]
        runs += [("by_text", "POST", posts, [b.decode() for b in bodies], c) for c in args.clients]
        runs = [r for r in runs if r[0] in args.kinds]
        for name, method, requests, lines, load in runs:
            settle(server)
            if name == "open":
                print(f"  workers={workers} by_article open loop {load:g} req/s over "
                      f"{args.open_clients} connections ...", flush=True)
                t0 = time.perf_counter()
                samples = asyncio.run(open_loop("127.0.0.1", server.port, args.open_clients,
                                                load, args.duration, requests, args.seed))
                result = samples.summary(time.perf_counter() - t0)
                result["target_rps"] = load
                out.setdefault("by_article", {})[f"open_{args.open_clients}_at_{load:g}"] = result
            else:
                print(f"  workers={workers} {name} clients={load} closed loop ...", flush=True)
                if use_wrk:
                    result = run_wrk(server.port, load, args.duration, method, lines, folder)
                else:
                    t0 = time.perf_counter()
                    samples = asyncio.run(closed_loop("127.0.0.1", server.port, load,
                                                      args.duration, requests, args.seed))
                    result = samples.summary(time.perf_counter() - t0)
                out.setdefault(name, {})[f"closed_{load}"] = result
            # other processes on the machine skew a run: say how busy it was
            result["load_average_1m_after"] = round(os.getloadavg()[0], 2)
            print(f"    {format_row(result)}", flush=True)
        settle(server)
        if "reload" not in args.kinds:
            return out
        print(f"  workers={workers} reload during a closed loop of {args.reload_clients} "
              "clients ...", flush=True)
        result = asyncio.run(reload_run(server, args.reload_clients, args.reload_duration,
                                        gets, args.seed))
        result["load_average_1m_after"] = round(os.getloadavg()[0], 2)
        out["reload"] = result
        print(f"    {format_row(result)}; reload {result['reload']}", flush=True)
    finally:
        server.stop()
    return out


def format_row(r: dict[str, Any]) -> str:
    return (f"{r['throughput_rps']:8.1f} req/s  p50 {r.get('p50_ms', 0):7.2f}  p95 "
            f"{r.get('p95_ms', 0):7.2f}  p99 {r.get('p99_ms', 0):7.2f} ms  "
            f"failed {r['failed']}/{r['requests']}")


# -- report -------------------------------------------------------------------------------------


def stamp(args: argparse.Namespace) -> dict[str, Any]:
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except OSError:
            return ""

    manifest = json.loads((args.index / "manifest.json").read_text())
    return {
        "benchmark": "load_api",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": args.commit or git("rev-parse", "HEAD"),
        "git_dirty": True if args.commit else
        bool(git("status", "--porcelain", "--", "api", "recommender")),
        "note": args.note,
        "platform": platform.platform(), "python": platform.python_version(),
        "cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        if shutil.which("wrk") else None,
        "index": {"path": str(args.index), "model": manifest["model"],
                  "articles": manifest["counts"]["articles"],
                  "fingerprint": manifest["corpus"]["fingerprint"],
                  "text_fields": manifest["config"]["text"]["fields"]},
        "parameters": {"workers": args.workers, "clients": args.clients,
                       "duration_s": args.duration, "open_loop_rates": args.rates,
                       "open_loop_clients": args.open_clients,
                       "reload_clients": args.reload_clients,
                       "reload_duration_s": args.reload_duration,
                       "reload_source": "content folder (rebuild)" if args.content else
                       "index directory (re-read)", "queries": args.queries, "seed": args.seed,
                       "k": 5, "tool": args.tool, "kinds": args.kinds},
    }


def goals(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Whether the best worker count meets each goal."""
    out: dict[str, Any] = {}
    for run in runs:
        w = run["workers"]
        art, text = run.get("by_article", {}), run.get("by_text", {})
        closed50 = art.get("closed_50", {})
        open50 = next((v for k, v in art.items() if k.startswith("open_")), {})
        out[f"workers_{w}"] = {
            "by_article_closed_50": {"p99_ms": closed50.get("p99_ms"),
                                     "rps": closed50.get("throughput_rps")},
            "by_article_open_loop": {"p99_ms": open50.get("p99_ms"),
                                     "rps": open50.get("throughput_rps")},
            "by_text_closed_1_p99_ms": text.get("closed_1", {}).get("p99_ms"),
            "reload_failed_requests": run.get("reload", {}).get("failed"),
        }
    return out


def markdown(report: dict[str, Any]) -> str:
    s, lines = report["stamp"], []
    lines += ["# Load benchmark: HTTP service", "",
              f"{s['date']}, commit `{s['git_commit'][:12]}`"
              f"{' (with uncommitted changes)' if s['git_dirty'] else ''}, {s['platform']}, "
              f"Python {s['python']}, {s['cpus']} cores (load average at start "
              f"{s['load_average_at_start']}); index: {s['index']['articles']} articles, "
              f"model {s['index']['model']} (fields {s['index']['text_fields']}).", "",
              f"Parameters: `{json.dumps(s['parameters'])}`; closed-loop tool: "
              f"{s['wrk'] or 'python asyncio client'}.", "",
              *([s["note"], ""] if s.get("note") else []),
              "Goals: by-article p99 ≤ 10 ms at 50 concurrent clients and ≥ 500 req/s; "
              "by-text p99 ≤ 50 ms at 1 client; 0 failed requests during a reload.", ""]
    header = ("| workers | query | load | req/s | p50 ms | p95 ms | p99 ms | max ms | failed "
              "| load avg |\n|---|---|---|---|---|---|---|---|---|---|")
    lines.append(header)
    for run in report["runs"]:
        for name in ("by_article", "by_text"):
            for load, r in run.get(name, {}).items():
                label = load.replace("closed_", "closed loop, ").replace("open_", "open loop, ")
                label = label.replace("_at_", " clients at ") + (" clients" if
                                                                 "closed" in load else " req/s")
                lines.append(f"| {run['workers']} | {name.replace('_', '-')} | {label} | "
                             f"{r['throughput_rps']} | {r.get('p50_ms')} | {r.get('p95_ms')} | "
                             f"{r.get('p99_ms')} | {r.get('max_ms')} | {r['failed']} | "
                             f"{r.get('load_average_1m_after')} |")
        if "reload" in run:
            r = run["reload"]
            lines.append(f"| {run['workers']} | by-article during reload | closed loop, "
                         f"{report['stamp']['parameters']['reload_clients']} clients | "
                         f"{r['throughput_rps']} | {r.get('p50_ms')} | {r.get('p95_ms')} | "
                         f"{r.get('p99_ms')} | {r.get('max_ms')} | {r['failed']} | "
                         f"{r.get('load_average_1m_after')} |")
    lines.append("")
    for run in report["runs"]:
        r = run.get("reload", {}).get("reload", {})
        if r:
            lines.append(f"- workers={run['workers']}: reload answered {r.get('status')} in "
                         f"{r.get('seconds')} s (generation {r.get('generation_before')} → "
                         f"{r.get('body', {}).get('generation')}); {r.get('during_requests')} "
                         f"requests answered meanwhile, p99 {r.get('during_p99_ms')} ms, max "
                         f"{r.get('during_max_ms')} ms; failed requests in the whole run: "
                         f"{run['reload']['failed']}. Startup (to ready): "
                         f"{run['startup_seconds']} s.")
    lines += ["", "Closed loop: each connection sends its next request when the previous "
              "answer arrives, so latency includes queueing (p50 ≈ clients / throughput). "
              "Open loop: requests are due at a fixed rate and latency counts from when each "
              "was due. The load client shares the machine's cores with the server, and other "
              "people's jobs share them too: 'load avg' is the 1-minute load average after "
              "each run (2 cores: above ~2 the run competed for CPU).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=Path("/tmp/dev-index"))
    parser.add_argument("--content", type=Path, default=None,
                        help="serve this content folder (with --index as its index), so the "
                             "reload rebuilds from it")
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 2])
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 10, 50])
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")],
                        default=[500.0], help="open-loop request rates (req/s)")
    parser.add_argument("--open-clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--reload-clients", type=int, default=10)
    parser.add_argument("--reload-duration", type=float, default=30.0)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--kinds", type=lambda s: s.split(","),
                        default=["by_article", "open", "by_text", "reload"],
                        help="runs to make: by_article,open,by_text,reload")
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "load_api.json")
    parser.add_argument("--commit", default=None,
                        help="commit to record, when the code is not run from a git checkout")
    parser.add_argument("--note", default="", help="free text recorded in the results")
    args = parser.parse_args(argv)
    if not (args.index / "manifest.json").exists():
        parser.error(f"no index at {args.index}: run `recommender build` first")
    paths, bodies = load_queries(args.index, args.queries, args.seed)
    report: dict[str, Any] = {"stamp": stamp(args), "runs": []}
    with tempfile.TemporaryDirectory(prefix="load-api-") as tmp:
        for workers in args.workers:
            print(f"workers={workers}: starting the server ...", flush=True)
            report["runs"].append(bench_workers(args, workers, paths, bodies, Path(tmp)))
    report["stamp"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["goals"] = {"targets": GOALS, "measured": goals(report["runs"], args)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
