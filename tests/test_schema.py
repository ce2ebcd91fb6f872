"""Schemas as data: shipped files, validation that names the file and key, urls from paths,
detection, list links, and what an article keeps for later filters."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import typer

from recommender.cli import app
from recommender.cli.options import load_schema
from recommender.corpus import load_corpus, parse_article
from recommender.errors import SchemaError
from recommender.schema import (
    BUILTIN,
    Schema,
    UrlFromPath,
    builtin_schema,
    builtin_schema_path,
    detect_schema,
)

from .conftest import DEMO, FIXTURES

SITES = FIXTURES / "sites"


@pytest.mark.parametrize("name", BUILTIN)
def test_shipped_schemas_are_package_data_and_round_trip(name: str):
    path = builtin_schema_path(name)
    assert path.is_file() and path.parent.name == "schemas"
    assert path.parent.parent.name == "recommender"  # inside the package: in the wheel
    schema = builtin_schema(name)
    again = Schema.from_text(schema.to_yaml())
    assert again == schema and again.identity() == schema.identity()
    assert Schema.from_yaml(path) == schema


def test_identity_changes_with_what_changes_reading_not_with_the_name():
    qt = builtin_schema("quicktakes")
    assert qt.model_copy(update={"name": "other"}).identity() == qt.identity()
    assert qt.model_copy(update={"title": ("headline",)}).identity() != qt.identity()


@pytest.mark.parametrize("text,key", [
    ("link: permalink\n", "'link': Extra inputs are not permitted"),
    ("links:\n  write: sideways\n", "'links.write': Input should be 'numbered' or 'list'"),
    ("url_from_path:\n  trailing_slash: perhaps\n", "'url_from_path.trailing_slash'"),
    ("title: {a: 1}\n", "'title'"),
    ("fallback: [wordpress]\n", "'fallback': unknown schema(s) ['wordpress']"),
    ("links: {write: list}\n", "'links.write': 'list' needs a 'links.lists' key"),
])
def test_a_bad_schema_file_names_the_file_and_the_key(tmp_path: Path, text: str, key: str):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(SchemaError) as caught:
        Schema.from_yaml(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and key in message


def test_unreadable_or_invalid_schema_files(tmp_path: Path):
    with pytest.raises(SchemaError, match="cannot read schema file"):
        Schema.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("title: [unclosed\n")
    with pytest.raises(SchemaError, match=r"bad\.yaml: invalid YAML at line"):
        Schema.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- title\n")
    with pytest.raises(SchemaError, match="a schema is a mapping of fields, not a list"):
        Schema.from_yaml(tmp_path / "list.yaml")


@pytest.mark.parametrize("rule,rel,url", [
    ({}, "man5/systemd.swap.5.md", "/man5/systemd.swap.5/"),
    ({}, "posts/index.md", "/posts/"),
    ({}, "_index.md", "/"),
    ({"trailing_slash": False}, "a/b.md", "/a/b"),
    ({"extension": "keep", "trailing_slash": False}, "a/b.md", "/a/b.md"),
    ({"prefix": "/docs/"}, "a/b.md", "/docs/a/b/"),
    ({"suffix": ".html", "trailing_slash": False}, "_posts/hello.md", "/_posts/hello.html"),
    ({"lowercase": True}, "Man3/Getopt.3.md", "/man3/getopt.3/"),
])
def test_urls_derived_from_paths(rule: dict, rel: str, url: str):
    assert UrlFromPath(**rule).url_of(rel) == url


def test_detection_names_the_schema_and_why():
    qt, why = detect_schema(sorted(DEMO.rglob("*.md")), DEMO)
    assert qt.name == "quicktakes" and why == "quicktakes: 61 of 61 sampled files look like " \
                                               "quicktakes"
    assert qt.fallback == ("hugo",)
    hugo, why = detect_schema(sorted((SITES / "list-links").rglob("*.md")), SITES / "list-links")
    assert hugo.name == "hugo" and "7 have no url field" in why and "3 have `related` lists" in why
    _, why = load_schema(None, SITES / "mixed")
    assert why.startswith("quicktakes: 3 of 6") and "3 like hugo" in why


def test_schema_option_takes_a_shipped_name_or_a_file(tmp_path: Path):
    schema, why = load_schema("hugo", tmp_path)
    assert schema == builtin_schema("hugo") and why == "hugo: the shipped schema"
    path = tmp_path / "mine.yaml"
    shutil.copy(builtin_schema_path("jekyll"), path)
    schema, why = load_schema(str(path), tmp_path)
    assert schema.name == "jekyll" and why == f"jekyll: from {path}"


def test_a_hugo_page_read_with_the_hugo_schema():
    text = ("---\ntitle: \"cp(1)\"\ndescription: \"copy files\"\nsection: \"User Commands\"\n"
            "date: 2024-01-02\ndraft: false\nweight: 3\nrelated:\n  - /man1/mv.1/\n---\n\n"
            "## Description\n\nCopy SOURCE to DEST.\n")
    a = parse_article(Path("man1/cp.1.md"), text, builtin_schema("hugo"), "man1/cp.1.md")
    assert (a.url, a.title, a.question, a.subject, a.description) == (
        "/man1/cp.1/", "cp(1)", "cp(1)", "User Commands", "copy files")
    assert a.answer.startswith("## Description") and a.id is None and not a.no_index
    assert [(c.url, c.source) for c in a.curated] == [("/man1/mv.1/", "related[0]")]
    assert a.fields == {"title": "cp(1)", "description": "copy files",
                        "section": "User Commands", "date": "2024-01-02", "draft": "false",
                        "weight": "3"}
    assert a.group is None and a.schema == "hugo"


def test_quicktakes_articles_keep_their_fields_and_group(demo_corpus):
    a = demo_corpus.articles[0]
    assert a.schema == "quicktakes" and a.group == a.fields["date"] == a.date
    assert a.fields["url"] == a.url and "seo" not in a.fields and "answer" in a.fields


def test_list_items_resolve_by_url_path_and_unique_slug(tmp_path: Path):
    def page(rel: str, front: str = "") -> None:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"---\ntitle: {path.stem}\n{front}---\nText about {path.stem}.\n")

    page("a/one.md", "related:\n  - /a/two/\n  - a/three.md\n  - ./four\n  - b/four.md\n"
                     "  - five\n  - ../a/two.md#section\n  - same\n  - /nowhere/\n")
    page("a/two.md")
    page("a/three.md")
    page("a/four.md")
    page("b/four.md")
    page("c/five.md")
    page("b/same.md")
    page("c/same.md")
    corpus = load_corpus(tmp_path, schema=builtin_schema("hugo"))
    one = corpus.by_url["/a/one/"]
    assert one.links == ("/a/two/", "/a/three/", "/a/four/", "/b/four/", "/c/five/")
    r = corpus.report
    assert (r.links_by_url, r.links_by_path, r.links_by_slug, r.repeated_links) == (1, 4, 1, 1)
    assert [d.reason for d in r.dangling] == [
        "related[6] -> same resolves to no article by url, path or slug (slug 'same' is "
        "ambiguous)",
        "related[7] -> /nowhere/ resolves to no article by url, path or slug"]


def test_suggest_defaults_to_the_products_ranking():
    from recommender.cli import evaluate  # noqa: F401  (registers the command)

    command = typer.main.get_command(app)
    method = next(p for p in command.commands["suggest"].params if p.name == "method")
    assert method.default == "product"
