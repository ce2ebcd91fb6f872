"""The review API: explanations, editors' decisions (admin token), accepts written into the
files, and the /review page as served HTML."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from recommender.config import BuildConfig
from recommender.corpus import load_corpus
from tests.api_fixtures import (
    LEUKEMIA,
    TOKEN,
    assert_error,
    build_demo_index,
    client_for,
    copy_demo,
    settings_for,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
REF = LEUKEMIA.lstrip("/")
PSYCH = ("/learn/psychology/questions/"
         "what-are-the-psychological-impacts-of-a-leukemia-diagnosis-on-patients-and-their-families")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    """A client over a hashing-encoder index of a writable copy of the demo corpus."""
    content = copy_demo(tmp_path / "content")
    index = build_demo_index(tmp_path / "index", BuildConfig(model="hashing"), content)
    with client_for(create_app(settings_for(index))) as client:
        yield client, content


def suggested(client: TestClient, **params: object) -> list[dict]:
    response = client.get(f"/v1/articles/{REF}/related", params={"k": 5, **params})
    assert response.status_code == 200, response.text
    return response.json()["suggestions"]


def test_explain_on_and_off(site: tuple[TestClient, Path]):
    client, _ = site
    plain = suggested(client)
    assert all("explanation" not in s for s in plain)
    explained = suggested(client, explain="true")
    assert [s["url"] for s in explained] == [s["url"] for s in plain]
    psych = next(s for s in explained if s["url"] == PSYCH)
    why = psych["explanation"]
    assert why["curated"] is True and psych["curated"] is True
    assert why["same_subject"] is False and why["subjects"] == ["Medicine", "Psychology"]
    assert "dense" in why["proposed_by"] and why["signals"]["dense"] > 0
    assert "leukemia" in why["shared_terms"]


@pytest.mark.parametrize("action", ["accept", "reject", "pin", "block"])
def test_each_decision_needs_the_admin_token(site: tuple[TestClient, Path], action: str):
    client, content = site
    target = next(s["url"] for s in suggested(client) if not s["curated"])
    body = {"action": action, "target": target}
    assert_error(client.post(f"/v1/articles/{REF}/decisions", json=body), 401)
    assert_error(client.post(f"/v1/articles/{REF}/decisions", json=body,
                             headers={"Authorization": "Bearer wrong"}), 403)
    assert not (content / ".recommender" / "decisions.yaml").exists()
    done = client.post(f"/v1/articles/{REF}/decisions", json=body, headers=AUTH)
    assert done.status_code == 200, done.text
    assert done.json()["action"] == action and done.json()["target"] == target
    after = {s["url"]: s for s in suggested(client)}
    if action in ("reject", "block"):
        assert target not in after
    elif action == "pin":
        assert next(iter(after)) == target and after[target].get("pinned") is True
    else:
        assert after[target]["curated"]
    recorded = yaml.safe_load((content / ".recommender" / "decisions.yaml").read_text())
    assert recorded["decisions"][-1]["action"] == action


def test_a_decision_on_an_unknown_article_is_404(site: tuple[TestClient, Path]):
    client, _ = site
    assert_error(client.post("/v1/articles/no-such-article/decisions", headers=AUTH,
                             json={"action": "reject", "target": PSYCH}), 404)
    assert_error(client.post(f"/v1/articles/{REF}/decisions", headers=AUTH,
                             json={"action": "reject", "target": "no-such-article"}), 404)
    assert_error(client.post(f"/v1/articles/{REF}/decisions", headers=AUTH,
                             json={"action": "delete", "target": PSYCH}), 422)


def test_accepting_a_curated_link_again_is_a_conflict(site: tuple[TestClient, Path]):
    client, _ = site
    assert_error(client.post(f"/v1/articles/{REF}/decisions", headers=AUTH,
                             json={"action": "accept", "target": PSYCH}), 409)


def test_concurrent_accepts_on_one_file_lose_no_link(site: tuple[TestClient, Path]):
    client, content = site
    targets = [s["url"] for s in suggested(client, k=8) if not s["curated"]][:4]
    path = content / "medicine" / f"{LEUKEMIA.rsplit('/', 1)[1]}.md"
    before = path.read_bytes()
    answers: list[int] = []

    def accept(target: str) -> None:
        answers.append(client.post(f"/v1/articles/{REF}/decisions", headers=AUTH,
                                   json={"action": "accept", "target": target}).status_code)

    threads = [threading.Thread(target=accept, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * len(targets)
    article = next(a for a in load_corpus(content) if a.url == LEUKEMIA)
    assert set(targets) <= set(article.links)
    after = path.read_bytes()
    assert after.startswith(before[: before.index(b"\n---", 4)])  # only appended blocks
    assert after.endswith(before[before.index(b"\n---", 4):])


def test_review_pages_render_read_only_without_a_token(site: tuple[TestClient, Path]):
    client, _ = site
    listing = client.get("/review", params={"q": "leukemia radiation"})
    assert listing.status_code == 200 and "radiation therapy for leukemia" in listing.text
    no_links = client.get("/review", params={"show": "no-links"}).text
    assert "radiation therapy for leukemia" not in no_links
    page = client.get(f"/review/article/{REF}")
    assert page.status_code == 200
    assert "psychological impacts of a leukemia diagnosis" in page.text
    assert page.text.count("disabled") >= 4 and 'aria-label="Accept:' in page.text
    assert client.get("/review/static/review.js").status_code == 200
