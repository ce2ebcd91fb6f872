"""The HTTP service in-process: every endpoint, every error, reloads and settings.

Most tests use the hashing-encoder index of the demo corpus (milliseconds); the
``slow`` ones at the end use the real model. Clients raise any unhandled server
exception, so a 500 cannot pass unnoticed.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from api.app import create_app
from api.errors import STATUS, status_for
from api.settings import Settings, get_settings, load_settings
from recommender import errors as lib_errors
from recommender.config import BuildConfig, TextConfig
from recommender.index import read_manifest
from recommender.recommender import Recommender
from tests.api_fixtures import (
    CLIMATE_BIO,
    CLIMATE_ENV,
    LEUKEMIA,
    NO_INDEX,
    SUPERVISED,
    TOKEN,
    assert_error,
    build_demo_index,
    client_for,
    copy_demo,
    hash_index_in,
    settings_for,
    started_client,
)

SUGGESTION_KEYS = {"id", "url", "title", "subject", "score", "curated"}
REAL = BuildConfig(model="all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def hash_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hash_index_in(tmp_path_factory)


@pytest.fixture(scope="module")
def hash_client(hash_index: Path) -> Iterator[TestClient]:
    yield from started_client(hash_index)


@pytest.fixture(scope="module")
def real_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The real model, named: the tests below are about its answers, whatever the default."""
    index_dir = build_demo_index(tmp_path_factory.mktemp("api-real") / "index", REAL)
    yield from started_client(index_dir)


def related(client: TestClient, ref: str, **params: object) -> dict:
    response = client.get(f"/v1/articles/{ref}/related", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def check_suggestions(body: dict, k: int) -> list[dict]:
    found = body["suggestions"]
    assert body["k"] == k and 0 < len(found) <= k
    for s in found:
        assert set(s) == SUGGESTION_KEYS
        assert isinstance(s["score"], float) and isinstance(s["curated"], bool)
    scores = [s["score"] for s in found]
    assert scores == sorted(scores, reverse=True)
    assert len({s["url"] for s in found}) == len(found)
    return found


# -- liveness, readiness, index info ---------------------------------------------------------


def test_healthz_and_readyz(hash_client: TestClient) -> None:
    assert hash_client.get("/healthz").json() == {"status": "ok"}
    ready = hash_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "articles": 61, "generation": 1, "held": []}


def test_not_ready_without_an_index(tmp_path: Path) -> None:
    app = create_app(Settings(index_dir=tmp_path / "missing"))  # loads in the background
    with client_for(app) as client:
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 10
        while app.state.index_state.last_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        error = assert_error(client.get("/readyz"), 503, "NotReady")
        assert "IndexNotFound" in error["message"]
        for path in ("/v1/index", f"/v1/articles/{SUPERVISED}/related", "/v1/articles/9021"):
            assert_error(client.get(path), 503, "NotReady")
        assert_error(client.post("/v1/related", json={"text": "x"}), 503, "NotReady")


def test_readyz_turns_ready_once_the_background_load_ends(hash_index: Path) -> None:
    app = create_app(Settings(index_dir=hash_index))
    with client_for(app) as client:
        app.state.index_state.wait_ready(30)
        assert client.get("/readyz").status_code == 200


def test_index_info_comes_from_the_manifest(hash_client: TestClient, hash_index: Path) -> None:
    info = hash_client.get("/v1/index").json()
    manifest = read_manifest(hash_index)
    assert info["model"] == "hashing" and info["dim"] == 512
    assert info["articles"] == 61 and info["suggestable"] == 60 and info["no_index"] == 1
    assert info["built_at"] == manifest["built_at"]
    assert info["corpus_fingerprint"] == manifest["corpus"]["fingerprint"]
    assert info["config"]["model"] == "hashing"
    assert "Computer Science" in info["subjects"] and len(info["subjects"]) == 10
    assert info["generation"] == 1 and info["source"] == "index"
    assert info["reload"]["in_progress"] is False


# -- related to an article ---------------------------------------------------------------------


@pytest.mark.parametrize("ref", [
    SUPERVISED,                                       # url (leading slash: a '//' path)
    SUPERVISED.lstrip("/"),                           # url without its leading slash
    "9018",                                           # id
    "what-is-supervised-learning",                    # slug
    "computer-science/what-is-supervised-learning.md",  # path in the content folder
    "https://www.example.com" + SUPERVISED,           # full url, as a template has it
    SUPERVISED + "/",                                 # trailing slash
])
def test_related_accepts_every_kind_of_reference(hash_client: TestClient, ref: str) -> None:
    body = related(hash_client, ref, k=3)
    assert body["source"] == {"id": "9018", "url": SUPERVISED,
                              "title": "What is supervised learning?",
                              "subject": "Computer Science"}
    check_suggestions(body, 3)


def test_related_by_query_parameter_is_the_same(hash_client: TestClient) -> None:
    by_path = related(hash_client, SUPERVISED, k=4)
    by_query = hash_client.get("/v1/related", params={"article": SUPERVISED, "k": 4})
    assert by_query.status_code == 200 and by_query.json() == by_path


def test_related_follows_the_library(hash_client: TestClient, hash_index: Path) -> None:
    rec = Recommender.load(hash_index)
    expected = rec.related(LEUKEMIA, 7)
    found = check_suggestions(related(hash_client, LEUKEMIA, k=7), 7)
    assert [s["url"] for s in found] == [s.article.url for s in expected]
    assert [s["curated"] for s in found] == [s.curated for s in expected]
    assert found[0]["score"] == pytest.approx(expected[0].score, abs=1e-6)


def test_never_itself_its_copy_or_a_no_index_article(hash_client: TestClient) -> None:
    for source in (CLIMATE_BIO, CLIMATE_ENV):
        found = check_suggestions(related(hash_client, source, k=60), 60)
        urls = {s["url"] for s in found}
        assert not urls & {CLIMATE_BIO, CLIMATE_ENV, NO_INDEX}
        assert all(s["id"] != "9055" for s in found)


def test_curated_flags_the_source_s_own_links(hash_client: TestClient) -> None:
    links = set(hash_client.get(f"/v1/articles/{SUPERVISED}").json()["links"])
    assert links
    found = related(hash_client, SUPERVISED, k=60)["suggestions"]
    assert {s["url"] for s in found if s["curated"]} == links


def test_subject_filters(hash_client: TestClient) -> None:
    only = related(hash_client, SUPERVISED, k=5, subject=["physics", "MATHEMATICS"])
    assert {s["subject"] for s in only["suggestions"]} <= {"Physics", "Mathematics"}
    assert len(only["suggestions"]) == 5
    excluded = related(hash_client, SUPERVISED, k=20, exclude_subject="Computer Science")
    assert all(s["subject"] != "Computer Science" for s in excluded["suggestions"])
    cross = related(hash_client, SUPERVISED, k=20, cross_subject="true")
    assert all(s["subject"] != "Computer Science" for s in cross["suggestions"])
    first = related(hash_client, SUPERVISED, k=1)["suggestions"][0]["url"]
    without = related(hash_client, SUPERVISED, k=5, exclude_url=first)
    assert first not in {s["url"] for s in without["suggestions"]}


def test_same_field_filter(hash_client: TestClient) -> None:
    source = hash_client.get(f"/v1/articles/{SUPERVISED}").json()
    found = related(hash_client, SUPERVISED, k=5, same="date")["suggestions"]
    assert len(found) == 5
    dates = {hash_client.get(f"/v1/articles/{s['id']}").json()["date"] for s in found}
    assert dates == {source["date"]}
    by_parameter = hash_client.get("/v1/related", params={"article": SUPERVISED, "k": 5,
                                                          "same": "date"}).json()
    assert by_parameter["suggestions"] == found
    error = assert_error(hash_client.get(f"/v1/articles/{SUPERVISED}/related?same=sektion"),
                         422, "InvalidFilter")
    assert "unknown field 'sektion'" in error["message"]


def test_diversity(hash_client: TestClient) -> None:
    plain = related(hash_client, SUPERVISED, k=5)["suggestions"]
    varied = related(hash_client, SUPERVISED, k=5, diversity=0.7)["suggestions"]
    assert len(varied) == 5 and varied[0]["url"] == plain[0]["url"]
    posted = hash_client.post("/v1/related", json={"text": "gradient descent", "k": 4,
                                                   "diversity": 0.5})
    assert posted.status_code == 200 and len(posted.json()["suggestions"]) == 4
    assert_error(hash_client.get(f"/v1/articles/{SUPERVISED}/related?diversity=1.5"), 422,
                 "ValidationError")


def test_unknown_article_is_a_404(hash_client: TestClient) -> None:
    for path in ("/v1/articles/no-such-article/related", "/v1/articles//learn/x/y/related",
                 "/v1/related?article=nope", "/v1/articles/%20/related"):
        assert_error(hash_client.get(path), 404, "ArticleNotFound")


@pytest.mark.parametrize("k", ["0", "101", "-1", "abc", "1.5", ""])
def test_k_outside_1_to_100_is_a_422(hash_client: TestClient, k: str) -> None:
    assert_error(hash_client.get(f"/v1/articles/9018/related?k={k}"), 422, "ValidationError")
    assert_error(hash_client.get(f"/v1/related?article=9018&k={k}"), 422, "ValidationError")


def test_k_limits_are_inclusive(hash_client: TestClient, hash_index: Path) -> None:
    assert len(related(hash_client, "9018", k=1)["suggestions"]) == 1
    body = related(hash_client, "9018", k=100)
    # 61 files are 58 contents (3 articles have a copy); less the source and the no_index one
    expected = Recommender.load(hash_index).related("9018", 100)
    assert body["k"] == 100 and len(body["suggestions"]) == len(expected) <= 56


def test_configured_max_k_is_enforced(hash_index: Path) -> None:
    with client_for(create_app(settings_for(hash_index, max_k=10))) as client:
        assert client.get("/v1/articles/9018/related?k=10").status_code == 200
        error = assert_error(client.get("/v1/articles/9018/related?k=11"), 422, "BadParameter")
        assert "10" in error["message"]
        assert_error(client.post("/v1/related", json={"text": "x", "k": 11}), 422)


def test_unknown_subject_is_a_422(hash_client: TestClient) -> None:
    error = assert_error(hash_client.get("/v1/articles/9018/related?subject=Astrology"), 422,
                         "InvalidFilter")
    assert "astrology" in error["message"] and "Physics" in error["message"]
    assert_error(hash_client.get("/v1/articles/9018/related?exclude_subject=Nope"), 422,
                 "InvalidFilter")
    assert_error(hash_client.get("/v1/articles/9018/related?cross_subject=perhaps"), 422,
                 "ValidationError")


def test_missing_article_parameter_is_a_422(hash_client: TestClient) -> None:
    assert_error(hash_client.get("/v1/related"), 422, "ValidationError")


# -- article metadata ----------------------------------------------------------------------------


def test_article_metadata(hash_client: TestClient) -> None:
    for ref in (SUPERVISED, "9018", "what-is-supervised-learning"):
        response = hash_client.get(f"/v1/articles/{ref}")
        assert response.status_code == 200, response.text
        a = response.json()
        assert a["url"] == SUPERVISED and a["id"] == "9018"
        assert a["path"] == "computer-science/what-is-supervised-learning.md"
        assert a["question"] == "What is supervised learning?" and a["no_index"] is False
        assert "machine learning" in a["keywords"]
        assert [c["n"] for c in a["curated"]] == [1, 2] and len(a["links"]) == 2
        assert "answer" not in a
    assert hash_client.get(f"/v1/articles/{NO_INDEX}").json()["no_index"] is True
    assert_error(hash_client.get("/v1/articles/nope"), 404, "ArticleNotFound")


# -- related to posted text ----------------------------------------------------------------------


def test_related_to_text(hash_client: TestClient) -> None:
    response = hash_client.post("/v1/related", json={
        "title": "How does gradient descent work?", "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] is None
    found = check_suggestions(body, 3)
    assert found[0]["url"].endswith("how-does-gradient-descent-work")
    assert not any(s["curated"] for s in found)


def test_related_to_text_fields_and_filters(hash_client: TestClient) -> None:
    draft = {"title": "Gradient descent", "question": "How does gradient descent work?",
             "answer": "The learning rate sets the step.", "text": "optimisation", "k": 5}
    assert hash_client.post("/v1/related", json=draft).status_code == 200
    only = hash_client.post("/v1/related", json={**draft, "subject": ["Physics"]}).json()
    assert {s["subject"] for s in only["suggestions"]} == {"Physics"}
    top = only["suggestions"][0]["url"]
    without = hash_client.post("/v1/related", json={
        **draft, "subject": ["Physics"], "exclude_url": [top],
        "exclude_subject": ["Biology"]}).json()
    assert top not in {s["url"] for s in without["suggestions"]}


def test_posted_text_over_the_limit_is_a_413(hash_index: Path) -> None:
    with client_for(create_app(settings_for(hash_index, max_text_bytes=1000))) as client:
        assert client.post("/v1/related", json={"text": "a" * 1000}).status_code == 200
        assert_error(client.post("/v1/related", json={"text": "a" * 1001}), 413,
                     "PayloadTooLarge")
        # the limit is in UTF-8 bytes: 400 three-byte characters are 1200 bytes
        assert_error(client.post("/v1/related", json={"answer": "€" * 400}), 413)
        assert_error(client.post("/v1/related", json={"title": "a" * 600, "text": "b" * 600}),
                     413)
        # a body far over any text limit is refused before it is parsed
        huge = json.dumps({"text": "a" * 200_000})
        assert_error(client.post("/v1/related", content=huge,
                                 headers={"content-type": "application/json"}), 413,
                     "PayloadTooLarge")


def test_body_limit_without_content_length(hash_index: Path) -> None:
    with client_for(create_app(settings_for(hash_index, max_text_bytes=100))) as client:
        def chunks():  # streamed: no content-length header
            for _ in range(100):
                yield b"a" * 1000

        assert_error(client.post("/v1/related", content=chunks(),
                                 headers={"content-type": "application/json"}), 413)


@pytest.mark.parametrize("body", [
    {},
    {"title": "   ", "text": ""},
    {"text": "x", "k": 0},
    {"text": "x", "k": 101},
    {"text": "x", "k": "five"},
    {"text": "x", "colour": "red"},
    {"text": 5},
    {"text": "x", "subject": "Physics"},
    [],
    "text",
])
def test_bad_draft_is_a_422(hash_client: TestClient, body: object) -> None:
    assert_error(hash_client.post("/v1/related", json=body), 422, "ValidationError")


def test_malformed_json_is_a_422(hash_client: TestClient) -> None:
    for content in (b"{", b"\xff\xfe", b"null"):
        assert_error(hash_client.post("/v1/related", content=content,
                                      headers={"content-type": "application/json"}), 422)


def test_unknown_subject_in_draft_is_a_422(hash_client: TestClient) -> None:
    assert_error(hash_client.post("/v1/related", json={"text": "x", "subject": ["Nope"]}),
                 422, "InvalidFilter")


def test_encoder_unavailable_is_a_503(hash_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*args: object, **kwargs: object) -> None:
        raise lib_errors.ModelNotAvailable("model 'x': weights not found")

    with client_for(create_app(settings_for(hash_index))) as client:
        monkeypatch.setattr(Recommender, "related_to_text", unavailable)
        assert_error(client.post("/v1/related", json={"text": "x"}), 503, "ModelNotAvailable")
        assert client.get(f"/v1/articles/{SUPERVISED}/related").status_code == 200


# -- admin: reload ------------------------------------------------------------------------------


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_reload_needs_the_token(hash_client: TestClient) -> None:
    missing = hash_client.post("/v1/admin/reload")
    assert_error(missing, 401, "Unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert_error(hash_client.post("/v1/admin/reload", headers={"Authorization": "Basic eDp5"}),
                 401)
    assert_error(hash_client.post("/v1/admin/reload", headers=auth("wrong")), 403, "Forbidden")
    assert_error(hash_client.post("/v1/admin/reload", headers=auth(TOKEN + "x")), 403)
    assert_error(hash_client.get("/v1/admin/reload", headers=auth()), 405)


def test_admin_disabled_without_a_token(hash_index: Path) -> None:
    for token in (None, "  "):
        with client_for(create_app(settings_for(hash_index, admin_token=token))) as client:
            for headers in ({}, auth(), auth("")):
                error = assert_error(client.post("/v1/admin/reload", headers=headers), 403,
                                     "Forbidden")
                assert "disabled" in error["message"]


def test_reload_of_the_index_dir_swaps_the_index(hash_index: Path) -> None:
    app = create_app(settings_for(hash_index))
    with client_for(app) as client:
        before = app.state.index_state.current
        response = client.post("/v1/admin/reload", headers=auth())
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "reloaded" and body["generation"] == 2
        assert body["articles"] == 61 and body["seconds"] >= 0
        after = app.state.index_state.current
        assert after is not before and after.generation == 2
        # a request that took the old index before the swap still finishes on it
        assert before.recommender.related(SUPERVISED, 3)
        info = client.get("/v1/index").json()
        assert info["generation"] == 2 and info["reload"]["last_reload_at"]


def test_reload_in_the_background(hash_index: Path) -> None:
    app = create_app(settings_for(hash_index))
    with client_for(app) as client:
        response = client.post("/v1/admin/reload?wait=false", headers=auth())
        assert response.status_code == 202 and response.json() == {"status": "started"}
        deadline = time.monotonic() + 20
        while client.get("/readyz").json()["generation"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_second_reload_while_one_runs_is_a_409(hash_index: Path) -> None:
    app = create_app(settings_for(hash_index))
    with client_for(app) as client:
        lock = app.state.index_state._reload_lock
        lock.acquire()  # as if a long rebuild were running
        try:
            assert_error(client.post("/v1/admin/reload", headers=auth()), 409,
                         "ReloadInProgress")
            assert client.get("/v1/index").json()["reload"]["in_progress"] is True
            assert client.get(f"/v1/articles/{SUPERVISED}/related").status_code == 200
        finally:
            lock.release()
        assert client.post("/v1/admin/reload", headers=auth()).status_code == 200


def test_reload_rebuilds_from_the_content_folder(tmp_path: Path) -> None:
    content = copy_demo(tmp_path / "content")
    config = BuildConfig(model="hashing")
    index_dir = build_demo_index(tmp_path / "index", config, content)
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    settings = settings_for(index_dir, content_dir=content, config_file=tmp_path / "config.yaml",
                            cache_dir=tmp_path / "cache")
    app = create_app(settings)
    with client_for(app) as client:
        before = client.get("/v1/index").json()
        unchanged = client.post("/v1/admin/reload", headers=auth()).json()
        assert unchanged["built_at"] == before["built_at"]  # index was current: reused
        article = content / "computer-science" / "what-is-supervised-learning.md"
        article.write_text(article.read_text().replace(
            "What is supervised learning?", "What is learning from labelled examples?"))
        response = client.post("/v1/admin/reload", headers=auth())
        assert response.status_code == 200, response.text
        after = client.get("/v1/index").json()
        assert after["corpus_fingerprint"] != before["corpus_fingerprint"]
        assert after["source"] == "content" and after["generation"] == 3
        title = client.get(f"/v1/articles/{SUPERVISED}").json()["title"]
        assert title == "What is learning from labelled examples?"
        assert read_manifest(index_dir)["corpus"]["fingerprint"] == after["corpus_fingerprint"]


def test_failed_reload_keeps_serving_the_old_index(tmp_path: Path) -> None:
    content = copy_demo(tmp_path / "content")
    index_dir = build_demo_index(tmp_path / "index", BuildConfig(model="hashing"), content)
    app = create_app(settings_for(index_dir, content_dir=content, model="hashing"))
    with client_for(app) as client:
        for path in content.rglob("*.md"):
            path.unlink()
        assert_error(client.post("/v1/admin/reload", headers=auth()), 503, "CorpusError")
        assert client.get(f"/v1/articles/{SUPERVISED}/related").status_code == 200
        info = client.get("/v1/index").json()
        assert info["generation"] == 1 and "CorpusError" in info["reload"]["last_error"]
        assert client.get("/readyz").status_code == 200


def test_reload_of_an_index_built_otherwise_is_a_409(tmp_path: Path) -> None:
    index_dir = build_demo_index(tmp_path / "index", BuildConfig(model="hashing"))
    app = create_app(settings_for(index_dir, model="hashing"))
    with client_for(app) as client:
        build_demo_index(index_dir, BuildConfig(model="hashing", text=TextConfig(
            fields=("title", "question"))))
        error = assert_error(client.post("/v1/admin/reload", headers=auth()), 409,
                             "IndexMismatch")
        assert "text.fields" in error["message"]
        assert client.get("/v1/index").json()["generation"] == 1


def test_index_mismatch_at_startup_is_not_ready(hash_index: Path) -> None:
    app = create_app(Settings(index_dir=hash_index, model="all-MiniLM-L6-v2"))
    with client_for(app) as client:
        deadline = time.monotonic() + 10
        while app.state.index_state.last_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "IndexMismatch" in assert_error(client.get("/readyz"), 503)["message"]


def test_requests_during_reloads_all_succeed(hash_index: Path) -> None:
    app = create_app(settings_for(hash_index))
    with client_for(app) as client:
        failures: list[str] = []
        done = threading.Event()

        def hammer() -> None:
            while not done.is_set():
                r = client.get(f"/v1/articles/{SUPERVISED}/related?k=3")
                if r.status_code != 200 or len(r.json()["suggestions"]) != 3:
                    failures.append(r.text)

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        for _ in range(5):
            assert client.post("/v1/admin/reload", headers=auth()).status_code == 200
        done.set()
        for t in threads:
            t.join()
        assert failures == []
        assert app.state.index_state.current.generation == 6


def test_watcher_follows_a_newer_build(tmp_path: Path) -> None:
    index_dir = build_demo_index(tmp_path / "index", BuildConfig(model="hashing"))
    app = create_app(settings_for(index_dir, watch_interval=0.05))
    with client_for(app) as client:
        first = client.get("/v1/index").json()
        content = copy_demo(tmp_path / "content")
        (content / "physics" / "what-is-wave-particle-duality.md").unlink()
        build_demo_index(index_dir, BuildConfig(model="hashing"), content)
        deadline = time.monotonic() + 10
        while client.get("/readyz").json()["articles"] == first["articles"]:
            assert time.monotonic() < deadline, "the watcher did not load the new build"
            time.sleep(0.05)
        info = client.get("/v1/index").json()
        assert info["articles"] == 60 and info["generation"] == 2


# -- metrics, CORS, errors, settings -------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in the Prometheus text format (labels in any order)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        sample, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample))
        if sample.split("{")[0] == name and found == labels:
            return float(value)
    return None


def test_metrics(hash_index: Path) -> None:
    with client_for(create_app(settings_for(hash_index))) as client:
        client.get(f"/v1/articles/{SUPERVISED}/related")
        client.get("/v1/articles/nope/related")
        client.get("/no/such/route")
        client.post("/v1/related", json={"text": "entropy"})
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
    route = "/v1/articles/{ref}/related"
    total = "recommender_http_requests_total"
    assert metric(text, total, route=route, method="GET", status="200") == 1
    assert metric(text, total, route=route, method="GET", status="404") == 1
    assert metric(text, total, route="<unmatched>", method="GET", status="404") == 1
    assert metric(text, "recommender_http_request_duration_seconds_count", route="/v1/related",
                  method="POST", status="200") == 1
    assert metric(text, "recommender_http_request_duration_seconds_bucket", route="/v1/related",
                  method="POST", status="200", le="10.0") == 1
    assert metric(text, "recommender_index_articles") == 61
    assert metric(text, "recommender_index_reloads_total", outcome="ok") == 1
    assert "nope" not in text  # raw paths never become labels


def test_cors(hash_index: Path) -> None:
    origin = "https://site.example"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    settings = settings_for(hash_index, cors_origins=[origin])
    with client_for(create_app(settings)) as client:
        response = client.options("/v1/related", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin
        simple = client.get("/healthz", headers={"Origin": origin})
        assert simple.headers["access-control-allow-origin"] == origin
        other = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    with client_for(create_app(settings_for(hash_index))) as client:
        assert "access-control-allow-origin" not in client.get(
            "/healthz", headers={"Origin": origin}).headers


def test_every_library_error_has_a_status() -> None:
    expected = {lib_errors.ArticleNotFound: 404, lib_errors.InvalidFilter: 422,
                lib_errors.IndexNotFound: 503, lib_errors.IndexMismatch: 409,
                lib_errors.ModelNotAvailable: 503, lib_errors.CorpusError: 503,
                lib_errors.FillError: 409, lib_errors.SuggestionsFileError: 500,
                lib_errors.RecommenderError: 500}
    for kind, status in expected.items():
        assert status_for(kind("x")) == status
    library = {c for c in vars(lib_errors).values()
               if isinstance(c, type) and issubclass(c, lib_errors.RecommenderError)}
    assert library <= set(STATUS)
    assert status_for(ValueError("x")) == 500


def test_unexpected_errors_answer_a_json_500(hash_index: Path) -> None:
    app = create_app(settings_for(hash_index))
    boom = APIRouter()

    @boom.get("/boom")
    def explode() -> None:
        raise RuntimeError("bug")

    app.include_router(boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        error = assert_error(client.get("/boom"), 500, "InternalError")
        assert "bug" not in error["message"]  # no internals leak


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECOMMENDER_INDEX_DIR", str(tmp_path))
    monkeypatch.setenv("RECOMMENDER_ADMIN_TOKEN", "abc")
    monkeypatch.setenv("RECOMMENDER_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("RECOMMENDER_MAX_TEXT_BYTES", "500")
    s = Settings()
    assert s.index_dir == tmp_path and s.admin_token_value() == "abc"
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.max_text_bytes == 500 and s.max_k == 100 and s.build_config() is None
    monkeypatch.setenv("RECOMMENDER_CORS_ORIGINS", '["https://c.example"]')
    assert Settings().cors_origins == ["https://c.example"]
    monkeypatch.setenv("RECOMMENDER_MAX_K", "101")
    with pytest.raises(ValueError):
        Settings()
    assert repr(s.admin_token) != "abc" and "abc" not in repr(s)


def test_factory_reads_cached_settings(monkeypatch: pytest.MonkeyPatch, hash_index: Path) -> None:
    monkeypatch.setenv("RECOMMENDER_INDEX_DIR", str(hash_index))
    monkeypatch.setenv("RECOMMENDER_LOAD_IN_BACKGROUND", "false")
    load_settings.cache_clear()
    try:
        app = create_app()
        assert load_settings() is load_settings() is app.state.settings
        with client_for(app) as client:
            assert client.get("/readyz").status_code == 200
            # a test overrides the dependency as FastAPI's docs show
            app.dependency_overrides[get_settings] = lambda: settings_for(hash_index, max_k=2)
            assert_error(client.get("/v1/articles/9018/related?k=3"), 422, "BadParameter")
            assert_error(client.post("/v1/related", json={"text": "x", "k": 3}), 422)
            app.dependency_overrides.clear()
            assert client.get("/v1/articles/9018/related?k=3").status_code == 200
    finally:
        load_settings.cache_clear()


def test_openapi_documents_every_route(hash_client: TestClient) -> None:
    spec = hash_client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/articles/{ref}/related", "/v1/related", "/v1/articles/{ref}",
                 "/v1/index", "/healthz", "/readyz", "/metrics", "/v1/admin/reload"):
        assert path in paths, path
        for operation in paths[path].values():
            assert operation.get("summary") and operation.get("description"), path
    related_get = paths["/v1/articles/{ref}/related"]["get"]
    assert {"404", "422", "503"} <= set(related_get["responses"])
    assert {"413", "422"} <= set(paths["/v1/related"]["post"]["responses"])
    assert {"401", "403", "409"} <= set(paths["/v1/admin/reload"]["post"]["responses"])


# -- the real model ------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_model_related_to_an_article(real_client: TestClient) -> None:
    info = real_client.get("/v1/index").json()
    assert info["model"] == "all-MiniLM-L6-v2" and info["dim"] == 384
    found = check_suggestions(related(real_client, LEUKEMIA, k=5), 5)
    urls = [s["url"] for s in found]
    assert sum("leukemia" in u for u in urls[:3]) >= 2, urls
    psych = ("/learn/psychology/questions/what-are-the-psychological-impacts-of-a-leukemia-"
             "diagnosis-on-patients-and-their-families")
    assert psych in urls
    cross = related(real_client, LEUKEMIA, k=3, cross_subject=True)["suggestions"]
    assert cross[0]["url"] == psych


@pytest.mark.slow
def test_real_model_related_to_text(real_client: TestClient) -> None:
    response = real_client.post("/v1/related", json={
        "title": "How do plants turn sunlight into sugar?", "k": 3})
    assert response.status_code == 200, response.text
    urls = [s["url"] for s in check_suggestions(response.json(), 3)]
    assert any("photosynthesis" in u or "calvin-cycle" in u for u in urls[:2]), urls
    only = real_client.post("/v1/related", json={
        "question": "Why do interest rates affect prices?", "k": 2,
        "subject": ["Economics"]}).json()["suggestions"]
    assert only[0]["url"].startswith("/learn/economics/")


@pytest.mark.slow
def test_real_model_text_latency(real_client: TestClient) -> None:
    """A loose bound in-process (the load benchmark measures the real figures)."""
    draft = {"question": "What is the role of the learning rate in training?", "k": 5}
    real_client.post("/v1/related", json=draft)
    started = time.perf_counter()
    for _ in range(10):
        assert real_client.post("/v1/related", json=draft).status_code == 200
    assert (time.perf_counter() - started) / 10 < 0.5
