"""One resolver: url, id, slug and path name the same article from the CLI, the API and the
library (the corpus, the recommender, the evaluation's query files)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recommender.corpus import load_corpus
from recommender.errors import ArticleNotFound
from recommender.evaluation.protocol import read_query_file
from recommender.pipeline import load_index
from recommender.recommender import Recommender

from .api_fixtures import DEMO, client_for, hash_index_in, settings_for

URL = "/learn/biology/questions/what-is-the-calvin-cycle"
REFERENCES = [
    URL,
    URL + "/",
    URL.lstrip("/"),  # as a {ref:path} segment gives it
    "https://quicktakes.example.org" + URL + "/",
    "9037",  # its id
    "what-is-the-calvin-cycle",  # its slug
    "what-is-the-calvin-cycle.md",
    "biology/what-is-the-calvin-cycle.md",  # its path in the content folder
    str(DEMO / "biology" / "what-is-the-calvin-cycle.md"),  # ...and absolute
    "  what-is-the-calvin-cycle  ",
]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hash_index_in(tmp_path_factory)


@pytest.fixture(scope="module")
def client(index_dir: Path):
    with client_for(create_app_for(index_dir)) as c:
        yield c


def create_app_for(index_dir: Path):
    from api.app import create_app

    return create_app(settings_for(index_dir))


@pytest.mark.parametrize("ref", REFERENCES)
def test_every_kind_of_reference_resolves_the_same_everywhere(ref: str, index_dir: Path,
                                                              client: TestClient):
    # the library: the corpus and the recommender over the saved index
    assert load_corpus(DEMO).get(ref).url == URL
    rec = Recommender(load_index(index_dir))
    assert rec.get(ref).url == URL
    expected = [s.article.url for s in rec.related(URL, 5)]
    # the HTTP API: as a query parameter, and in the path where a path can carry it
    by_query = client.get("/v1/related", params={"article": ref, "k": 5})
    assert by_query.status_code == 200, by_query.text
    assert by_query.json()["source"]["url"] == URL
    assert [s["url"] for s in by_query.json()["suggestions"]] == expected
    if "://" not in ref and ref.strip() == ref:
        by_path = client.get(f"/v1/articles/{quote(ref.lstrip('/'), safe='/')}")
        assert by_path.status_code == 200, by_path.text
        assert by_path.json()["url"] == URL
    # the command line
    from recommender.cli import app, core  # noqa: F401  (core registers the commands)

    result = CliRunner().invoke(app, ["related", ref, "--index", str(index_dir), "--json",
                                      "--k", "5"])
    assert result.exit_code == 0, result.output
    assert [s["url"] for s in json.loads(result.stdout)] == expected


def test_an_unknown_reference_is_not_found_everywhere(index_dir: Path, client: TestClient,
                                                      tmp_path: Path):
    for ref in ("what-is-the-krebs-cycle", "99999", "biology/nothing.md", ""):
        with pytest.raises(ArticleNotFound):
            Recommender(load_index(index_dir)).get(ref)
        with pytest.raises(ArticleNotFound):
            load_corpus(DEMO).get(ref)
        if ref:
            assert client.get("/v1/related", params={"article": ref}).status_code == 404
    queries = tmp_path / "queries.txt"
    queries.write_text("9037\nbiology/why-are-plants-green.md\n# a comment\nno-such-slug\n")
    with pytest.raises(ArticleNotFound, match="queries.txt.*no-such-slug"):
        read_query_file(load_corpus(DEMO), queries)


def test_copies_resolve_by_url_to_each_file_and_by_id_to_the_first(index_dir: Path):
    rec = Recommender(load_index(index_dir))
    bio = "/learn/biology/questions/how-does-climate-change-affect-biodiversity"
    env = "/learn/environmental-science/questions/how-does-climate-change-affect-biodiversity"
    assert rec.get(bio).url == bio and rec.get(env).url == env
    assert rec.get(rec.get(bio).id).url == rec.get(rec.get(env).id).url
    assert rec.get("environmental-science/how-does-climate-change-affect-biodiversity.md"
                   ).url == env
