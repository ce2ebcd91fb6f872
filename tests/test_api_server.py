"""Real server processes over real HTTP: ``recommender serve`` and ``uvicorn --factory``.

Each server listens on 127.0.0.1 at a free port, with its own embedding cache
(``RECOMMENDER_CACHE``) in a temporary folder, and is stopped by its pid.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from recommender.config import BuildConfig
from recommender.index import read_manifest
from tests.api_fixtures import (
    LEUKEMIA,
    SUPERVISED,
    Server,
    assert_error,
    build_demo_index,
    cli,
    copy_demo,
    hash_index_in,
)

pytestmark = pytest.mark.slow

TOKEN = "server-test-token"
MODEL = "all-MiniLM-L6-v2"
#: exit codes of a graceful stop on SIGTERM: uvicorn re-raises the signal once it has
#: shut down, so the status says "terminated"; -9 would mean it had to be killed
GRACEFUL = (0, -signal.SIGTERM)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def hash_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hash_index_in(tmp_path_factory)


@pytest.fixture(scope="module")
def content_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """``recommender serve CONTENT`` with the real model, on a copy of the demo corpus.

    The model is named (the rest of the configuration is the default): the assertions
    are about its answers, and it is the one model every machine has (a pip package).
    """
    base = tmp_path_factory.mktemp("api-server")
    content = copy_demo(base / "content")
    server = Server(cli("serve", str(content), "--port", "{port}", "--index", str(base / "index"),
                        "--model", MODEL, "--admin-token", TOKEN, "--log-level", "warning"),
                    {"RECOMMENDER_CACHE": str(base / "cache")}, base / "server.log")
    try:
        server.wait_ready(timeout=300)
        yield server, content
    finally:
        code = server.stop()
    assert code in GRACEFUL, f"exit code {code}: {server.output()}"


def test_serve_content_folder_every_endpoint(content_server: tuple[Server, Path]) -> None:
    server, _ = content_server
    with httpx.Client(base_url=server.base, timeout=30) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["articles"] == 61
        info = client.get("/v1/index").json()
        assert info["model"] == MODEL and info["source"] == "content"

        by_path = client.get(f"/v1/articles/{LEUKEMIA}/related", params={"k": 5})
        assert by_path.status_code == 200
        suggestions = by_path.json()["suggestions"]
        assert len(suggestions) == 5
        assert {"id", "url", "title", "subject", "score", "curated"} == set(suggestions[0])
        by_query = client.get("/v1/related", params={"article": LEUKEMIA, "k": 5})
        assert by_query.json() == by_path.json()
        assert client.get(f"/v1/articles/{SUPERVISED}").json()["id"] == "9018"
        draft = client.post("/v1/related", json={"question": "How is leukemia treated?", "k": 3})
        assert draft.status_code == 200
        assert "leukemia" in draft.json()["suggestions"][0]["url"]

        assert_error(client.get("/v1/articles/nope/related"), 404, "ArticleNotFound")
        assert_error(client.get("/v1/articles/nope"), 404, "ArticleNotFound")
        assert_error(client.get(f"/v1/articles/{SUPERVISED}/related?k=0"), 422)
        assert_error(client.get(f"/v1/articles/{SUPERVISED}/related?k=101"), 422)
        assert_error(client.get(f"/v1/articles/{SUPERVISED}/related?subject=Nope"), 422,
                     "InvalidFilter")
        assert_error(client.post("/v1/related", json={"text": "a" * 20_001}), 413)
        assert_error(client.post("/v1/related", json={"text": "x", "k": 0}), 422)
        assert_error(client.post("/v1/admin/reload"), 401, "Unauthorized")
        assert_error(client.post("/v1/admin/reload", headers={"Authorization": "Bearer no"}),
                     403, "Forbidden")
        assert_error(client.delete("/v1/related"), 405)
        assert_error(client.get("/nowhere"), 404)

        metrics = client.get("/metrics").text
        assert 'route="/v1/articles/{ref}/related"' in metrics
        assert "recommender_index_articles 61.0" in metrics
        assert 'status="500"' not in metrics


def test_reload_while_serving_fails_no_request(content_server: tuple[Server, Path]) -> None:
    """Clients keep requesting while the index is rebuilt (an article edited) and swapped."""
    server, content = content_server
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    done = threading.Event()

    def keep_requesting(n: int) -> None:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            while not done.is_set():
                try:
                    if n % 2:
                        r = client.post("/v1/related", json={"title": "Leukemia care", "k": 3})
                    else:
                        r = client.get(f"/v1/articles/{SUPERVISED}/related", params={"k": 3})
                    statuses[r.status_code] += 1
                    if r.status_code != 200 or len(r.json()["suggestions"]) != 3:
                        errors.append(r.text)
                except httpx.HTTPError as error:
                    errors.append(repr(error))

    with httpx.Client(base_url=server.base, timeout=120) as admin:
        before = admin.get("/v1/index").json()
        clients = [threading.Thread(target=keep_requesting, args=(n,)) for n in range(4)]
        for t in clients:
            t.start()
        try:
            time.sleep(0.5)
            article = content / "computer-science" / "how-do-hash-tables-work.md"
            article.write_text(article.read_text().replace(
                "How do hash tables work?", "How does a hash map find a key so fast?"))
            reloaded = admin.post("/v1/admin/reload", headers=AUTH)
            assert reloaded.status_code == 200, reloaded.text
            forced = admin.post("/v1/admin/reload", params={"force": "true"}, headers=AUTH)
            assert forced.status_code == 200, forced.text
            time.sleep(0.5)
        finally:
            done.set()
            for t in clients:
                t.join()
        after = admin.get("/v1/index").json()
    assert errors == []
    assert sum(statuses.values()) > 20 and set(statuses) == {200}
    assert after["generation"] == before["generation"] + 2
    assert after["corpus_fingerprint"] != before["corpus_fingerprint"]
    assert after["built_at"] != before["built_at"]


def test_uvicorn_factory_from_environment(hash_index: Path, tmp_path: Path) -> None:
    server = Server([sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app",
                     "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"],
                    {"RECOMMENDER_INDEX_DIR": str(hash_index), "RECOMMENDER_ADMIN_TOKEN": TOKEN,
                     "RECOMMENDER_CACHE": str(tmp_path / "cache")}, tmp_path / "uvicorn.log")
    try:
        server.wait_ready(timeout=120)
        with httpx.Client(base_url=server.base, timeout=30) as client:
            assert client.get("/v1/index").json()["model"] == "hashing"
            assert client.get(f"/v1/articles/{SUPERVISED}/related").status_code == 200
            assert client.post("/v1/admin/reload", headers=AUTH).json()["generation"] == 2
    finally:
        code = server.stop()
        assert code in GRACEFUL, f"exit code {code}: {server.output()}"


def test_serve_index_dir_with_two_workers(tmp_path: Path) -> None:
    """Several workers: answers without Nagle delays, metrics add up across workers, and all
    follow a newer build."""
    index_dir = build_demo_index(tmp_path / "index", BuildConfig(model="hashing"))
    server = Server(cli("serve", str(index_dir), "--port", "{port}", "--workers", "2",
                        "--watch-interval", "0.2", "--admin-token", TOKEN,
                        "--log-level", "warning"),
                    {"RECOMMENDER_CACHE": str(tmp_path / "cache")}, tmp_path / "server.log")
    try:
        server.wait_ready(timeout=120)
        with httpx.Client(base_url=server.base, timeout=30) as client:
            deadline = time.monotonic() + 60  # the second worker may still be loading
            ready = 0
            while ready < 10:
                assert time.monotonic() < deadline, server.output()
                ready = ready + 1 if client.get("/readyz").status_code == 200 else 0
            latencies = []
            for _ in range(20):
                started = time.perf_counter()
                assert client.get(f"/v1/articles/{SUPERVISED}/related").status_code == 200
                latencies.append(time.perf_counter() - started)
            # uvicorn's worker sockets leave Nagle's algorithm on unless serve sets
            # TCP_NODELAY (api.protocols): each keep-alive request then took 44 ms
            assert sorted(latencies)[10] < 0.02, latencies
            metrics = client.get("/metrics").text
            line = next(x for x in metrics.splitlines() if x.startswith(
                "recommender_http_requests_total") and 'route="/v1/articles/{ref}/related"' in x)
            assert line.endswith(" 20.0"), line  # counted across both workers

            content = copy_demo(tmp_path / "content")
            (content / "physics" / "what-is-wave-particle-duality.md").unlink()
            build_demo_index(index_dir, BuildConfig(model="hashing"), content)
            fingerprint = read_manifest(index_dir)["corpus"]["fingerprint"]
            deadline = time.monotonic() + 30
            while True:  # every worker has followed once 20 answers in a row say so
                seen = [client.get("/v1/index").json()["corpus_fingerprint"] for _ in range(20)]
                if set(seen) == {fingerprint}:
                    break
                assert time.monotonic() < deadline, f"workers did not follow: {seen}"
                time.sleep(0.2)
            assert client.get("/readyz").json()["articles"] == 60
    finally:
        code = server.stop()
        assert code in GRACEFUL, f"exit code {code}: {server.output()}"


def test_serve_refuses_a_missing_folder(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(cli("serve", str(tmp_path / "nothing"), "--port", "1"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr  # CorpusError's exit code
    assert "neither an index directory" in result.stderr
