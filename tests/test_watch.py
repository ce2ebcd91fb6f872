"""``serve --watch``: edits, additions and deletions in the content folder are served within
seconds, with no request failing, and a file that turns broken keeps its last good version
served while ``/readyz`` and the logs say so.

In process (the app and its watcher thread, real files, real ``watchfiles``), with the
hashing encoder; the real server process and the real model are in the ``slow`` test.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from recommender.config import BuildConfig
from recommender.errors import IndexNotFound
from recommender.pipeline import load_index, open_index

from .api_fixtures import Server, cli, client_for, copy_demo, settings_for

GREEN = "biology/why-are-plants-green.md"
GREEN_URL = "/learn/biology/questions/why-are-plants-green"
CALVIN_URL = "/learn/biology/questions/what-is-the-calvin-cycle"


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[TestClient, Path, Path]]:
    content = copy_demo(tmp_path / "content")
    index_dir = tmp_path / "index"
    open_index(content, BuildConfig(model="hashing"), index_dir, cache_dir=tmp_path / "cache")
    app = create_app(settings_for(index_dir, content_dir=content, model="hashing", watch=True,
                                  cache_dir=tmp_path / "cache", warmup=False))
    with client_for(app) as client:
        state = app.state.index_state
        eventually(lambda: any(t.name == "content-watch" and t.is_alive()
                               for t in state._threads))
        time.sleep(0.5)  # the watcher has subscribed to the folder's events
        yield client, content, index_dir


def title(client: TestClient, url: str) -> str | None:
    response = client.get(f"/v1/articles{url}")
    return response.json()["title"] if response.status_code == 200 else None


def test_an_edit_is_served_within_seconds_and_saved(watched):
    client, content, index_dir = watched
    path = content / GREEN
    path.write_text(path.read_text().replace("Why are plants green?",
                                             "Why are most plants green?"))
    started = time.monotonic()
    eventually(lambda: title(client, GREEN_URL) == "Why are most plants green?", 5)
    assert time.monotonic() - started < 5
    info = client.get("/v1/index").json()
    assert info["generation"] >= 2 and info["source"] == "content"
    # saved for other workers and the next start
    eventually(lambda: any(a.title == "Why are most plants green?"
                           for a in load_index(index_dir).articles))


def test_added_and_deleted_articles(watched):
    client, content, _ = watched
    calvin = content / "biology" / "what-is-the-calvin-cycle.md"
    calvin.unlink()
    eventually(lambda: client.get(f"/v1/articles{CALVIN_URL}").status_code == 404)
    for article in ("why-are-plants-green",
                    "how-does-photosynthesis-differ-from-cellular-respiration"):
        found = client.get(f"/v1/articles/{article}/related", params={"k": 60}).json()
        assert CALVIN_URL not in [s["url"] for s in found["suggestions"]]
    new = content / "biology" / "what-is-the-krebs-cycle.md"
    text = (content / GREEN).read_text()
    new.write_text(text.replace("why-are-plants-green", "what-is-the-krebs-cycle")
                   .replace("Why are plants green?", "What is the Krebs cycle?")
                   .replace("id: 9038", "id: 9900"))
    eventually(lambda: title(client, "/learn/biology/questions/what-is-the-krebs-cycle")
               == "What is the Krebs cycle?")


def test_a_file_that_turns_broken_keeps_its_last_version_served(watched, caplog):
    client, content, index_dir = watched
    caplog.set_level(logging.WARNING, logger="api")
    path = content / GREEN
    good = path.read_text()
    path.write_text(good.replace("title: >-", "title: [unclosed", 1))
    held = eventually(lambda: client.get("/readyz").json()["held"])
    assert held == [{"path": GREEN, "reason": held[0]["reason"]}]
    assert "invalid YAML" in held[0]["reason"]
    assert client.get("/readyz").status_code == 200
    assert title(client, GREEN_URL) == "Why are plants green?"  # the last good version
    assert client.get("/v1/index").json()["held"] == held
    assert any(GREEN in r.getMessage() and "last good version" in r.getMessage()
               for r in caplog.records)
    # other changes still apply, and the file stays held
    calvin = content / "biology" / "what-is-the-calvin-cycle.md"
    calvin.write_text(calvin.read_text().replace("What is the Calvin cycle?",
                                                 "What is the Calvin-Benson cycle?"))
    eventually(lambda: title(client, CALVIN_URL) == "What is the Calvin-Benson cycle?")
    assert client.get("/readyz").json()["held"] == held
    def saved_held() -> list[str] | None:  # the watcher saves off its thread: wait for it
        try:
            return [i.path for i in load_index(index_dir).index.issues if i.held] or None
        except IndexNotFound:  # between the two renames that put a saved index in place
            return None

    assert eventually(saved_held, timeout=30) == [GREEN]
    # fixed: served again as it is now, and no longer held
    path.write_text(good.replace("Why are plants green?", "Why are plants green, really?"))
    eventually(lambda: title(client, GREEN_URL) == "Why are plants green, really?")
    assert client.get("/readyz").json()["held"] == []


def test_requests_during_watched_updates_all_succeed(watched):
    client, content, _ = watched
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            for url in ("/v1/articles/what-is-the-calvin-cycle/related?k=5",
                        f"/v1/articles{GREEN_URL}"):
                statuses[client.get(url).status_code] += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        path = content / GREEN
        for i in range(5):
            path.write_text(path.read_text().replace("Why are plants green",
                                                     f"Why are plants green ({i})", 1))
            eventually(lambda i=i: (title(client, GREEN_URL) or "").startswith(
                f"Why are plants green ({i})"))
    finally:
        stop.set()
        worker.join()
    assert set(statuses) == {200} and sum(statuses.values()) > 10


@pytest.mark.slow
def test_serve_watch_serves_an_edit_within_five_seconds(tmp_path: Path):
    """The real thing: `recommender serve DIR --watch`, two workers, over HTTP."""
    content = copy_demo(tmp_path / "content")
    config = tmp_path / "hashing.yaml"
    config.write_text("model: hashing\n")
    server = Server(cli("serve", str(content), "--port", "{port}", "--index",
                        str(tmp_path / "index"), "--config", str(config), "--watch",
                        "--workers", "2", "--log-level", "info"),
                    {"RECOMMENDER_CACHE": str(tmp_path / "cache")}, tmp_path / "server.log")
    try:
        server.wait_ready(timeout=120)
        time.sleep(2)  # both workers up, one of them watching
        path = content / GREEN
        path.write_text(path.read_text().replace("Why are plants green?",
                                                 "Why are all plants green?"))
        started = time.monotonic()
        with httpx.Client(base_url=server.base, timeout=10) as client:
            def everywhere() -> bool:  # requests land on either worker
                return all(client.get(f"/v1/articles{GREEN_URL}").json()["title"]
                           == "Why are all plants green?" for _ in range(10))

            eventually(everywhere, 10)
        assert time.monotonic() - started < 5, server.output()
        # each worker loaded the new version: one applied the change, the other followed it
        eventually(lambda: server.output().count("index generation 2 ready") == 2, 10)
        assert "content change applied" in server.output()
    finally:
        server.stop()
