"""The /review page in a real headless Chromium, against a real ``recommender serve`` of a
copy of the demo corpus (the default model): find an article, read why a link is
suggested, accept one (the file changes only by the inserted block), reject one (gone from
``related`` and ``fill``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.browser import CHROMEDRIVER, CHROMIUM, ServedFolder, headless_chromium
from tests.conftest import DEMO, cli_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs the system's chromium and chromium-driver"),
]
TOKEN = "browser-test-token"
LEUKEMIA = "what-are-the-latest-advancements-in-radiation-therapy-for-leukemia"
PSYCH_TITLE = "What are the psychological impacts of a leukemia diagnosis"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServedFolder, Path]]:
    work = tmp_path_factory.mktemp("review-browser")
    shutil.copytree(DEMO, work / "content")
    env = cli_env(work)
    server = ServedFolder(work / "content", work, TOKEN, env)
    try:
        server.wait_ready()
        yield server, work / "content"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    driver = headless_chromium()
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()


def related_urls(server: ServedFolder) -> list[str]:
    with urllib.request.urlopen(f"{server.base}/v1/articles/{LEUKEMIA}/related?k=8") as r:
        return [s["url"] for s in json.load(r)["suggestions"]]


def test_an_editor_reviews_accepts_and_rejects(served: tuple[ServedFolder, Path], browser,
                                               tmp_path: Path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server, content = served
    # find the article from the searchable list
    browser.get(server.base + "/review")
    search = browser.find_element(By.ID, "q")
    search.send_keys("radiation therapy leukemia")
    # each click loads a new page: wait for the old one to go, or an element found on it
    # (the list before the search holds the same link) goes stale under the click
    submit = browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]")
    submit.click()
    WebDriverWait(browser, 20).until(ec.staleness_of(submit))
    result = browser.find_element(By.PARTIAL_LINK_TEXT, "radiation therapy for leukemia")
    result.click()
    WebDriverWait(browser, 20).until(ec.staleness_of(result))
    # the psychological-impact article, curated, with its explanation
    link = browser.find_element(By.PARTIAL_LINK_TEXT, PSYCH_TITLE)
    item = link.find_element(By.XPATH, "./ancestor::li[1]")
    assert "Proposed by" in item.text and "dense" in item.text
    assert "crosses from Medicine to Psychology" in item.text
    # read-only until the token is entered
    buttons = browser.find_elements(By.CSS_SELECTOR, "button.decide")
    assert buttons and all(not b.is_enabled() for b in buttons)
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    assert browser.find_element(By.ID, "mode").text == "actions enabled"

    # accept the first suggestion: the file changes only by the inserted block
    path = content / "medicine" / f"{LEUKEMIA}.md"
    before = path.read_bytes()
    first = browser.find_elements(By.CSS_SELECTOR, "li.suggestion")[0]
    accepted_url = first.get_attribute("data-url")
    first.find_element(By.CSS_SELECTOR, "button.accept").click()
    WebDriverWait(browser, 20).until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, f'li.link[data-url="{accepted_url}"]')))
    after = path.read_bytes()
    end = before.index(b"\n---", 4)
    inserted = after[end : len(after) - (len(before) - end)]
    assert after == before[:end] + inserted + before[end:]
    assert accepted_url.encode() in inserted and inserted.count(b"url:") == 1

    # reject another: gone from related and from a fill
    second = browser.find_elements(By.CSS_SELECTOR, "li.suggestion")[0]
    rejected_url = second.get_attribute("data-url")
    assert rejected_url in related_urls(server)
    second.find_element(By.CSS_SELECTOR, "button.reject").click()
    WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: rejected_url not in [
            e.get_attribute("data-url")
            for e in b.find_elements(By.CSS_SELECTOR, "li.suggestion")])
    assert rejected_url not in related_urls(server)
    fill = subprocess.run([sys.executable, "-m", "recommender.cli", "fill", str(content),
                           "--dry-run", "--top-up", "--k", "8", "--index",
                           str(content.parent / "index")],
                          capture_output=True, text=True, env=cli_env(tmp_path), timeout=600)
    assert fill.returncode == 0, fill.stderr
    section = fill.stdout.split(f"+++ b/medicine/{LEUKEMIA}.md", 1)[1].split("\n--- ", 1)[0]
    added = [line for line in section.splitlines() if line.startswith("+")]
    assert any("url:" in line for line in added)  # the fill does top the article up
    assert not [line for line in added if accepted_url in line or rejected_url in line]
