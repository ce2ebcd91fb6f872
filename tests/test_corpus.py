"""Loading a content folder: the schema, its quirks, and every kind of broken file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recommender.corpus import load_corpus
from recommender.errors import ArticleNotFound, CorpusError, SchemaError
from recommender.schema import Schema

from .conftest import DEMO, FIXTURES

LEUKEMIA = "what-are-the-latest-advancements-in-radiation-therapy-for-leukemia"
PSYCH_URL = ("/learn/psychology/questions/what-are-the-psychological-impacts-of-a-"
             "leukemia-diagnosis-on-patients-and-their-families")

BROKEN = {
    "not-utf8.md": "not valid UTF-8",
    "no-front-matter.md": "no front matter",
    "unterminated-front-matter.md": "unterminated front matter",
    "invalid-yaml.md": "invalid YAML front matter",
    "front-matter-not-mapping.md": "not a mapping",
    "missing-url.md": "missing required field 'url'",
    "missing-answer.md": "missing required field 'answer'",
    "missing-title-and-question.md": "missing required field 'title' or 'question'",
    "empty.md": "empty file",
}


def test_demo_corpus_loads_with_its_quirks(demo_corpus):
    r = demo_corpus.report
    assert r.errors == [] and r.files == r.articles == len(demo_corpus) == 61
    assert (r.copy_groups, r.copy_files) == (3, 6)
    assert r.no_index == 1
    assert len(r.dangling) == 1 and "quantum-teleportation" in r.dangling[0].reason
    assert r.repeated_links == 1
    assert r.negative_ids == 1
    assert r.subjects == 10 and r.subject_spellings == 11


def test_subject_spellings_share_one_display_name(demo_corpus):
    names = {a.subject for a in demo_corpus if a.subject.lower() == "computer science"}
    assert names == {"Computer Science"}


def test_curated_links_resolve_without_repeats_or_self(demo_corpus):
    source = demo_corpus.get(LEUKEMIA)
    assert source.links == (PSYCH_URL,)
    for a in demo_corpus:
        assert len(set(a.links)) == len(a.links)
        assert all(demo_corpus.by_url[u].content_key != a.content_key for u in a.links)


def test_articles_are_found_by_url_id_path_and_slug(demo_corpus):
    a = demo_corpus.get(LEUKEMIA)
    assert demo_corpus.get(a.url) is a
    assert demo_corpus.get(a.id) is a
    assert demo_corpus.get(str(a.path)) is a
    assert demo_corpus.get(f"medicine/{LEUKEMIA}.md") is a
    with pytest.raises(ArticleNotFound, match="no-such-article"):
        demo_corpus.get("no-such-article")


def test_copies_share_content_key(demo_corpus):
    copies = [a for a in demo_corpus if demo_corpus.copies(a)]
    assert len(copies) == 6
    for a in copies:
        (twin,) = demo_corpus.copies(a)
        assert twin.content_key == a.content_key and twin.subject != a.subject


def test_literal_newlines_are_kept_raw_in_the_article(demo_corpus):
    assert "\\n" in demo_corpus.get(LEUKEMIA).answer  # text preparation decodes them


@pytest.mark.parametrize("name,reason", sorted(BROKEN.items()))
def test_each_broken_file_is_reported_and_the_rest_loads(tmp_path: Path, name: str, reason: str):
    content = tmp_path / "content"
    shutil.copytree(DEMO, content)
    shutil.copy(FIXTURES / "broken" / name, content / name)
    corpus = load_corpus(content)
    assert len(corpus) == 61
    (issue,) = corpus.report.errors
    assert issue.path.endswith(name)
    assert reason in issue.reason


def test_all_broken_files_together(tmp_path: Path):
    shutil.copytree(FIXTURES / "broken", tmp_path / "broken")
    shutil.copytree(DEMO / "biology", tmp_path / "biology")
    corpus = load_corpus(tmp_path)
    assert {Path(e.path).name for e in corpus.report.errors} == set(BROKEN)
    assert len(corpus) == len(list((DEMO / "biology").glob("*.md")))


def test_duplicate_url_is_reported_not_loaded_twice(tmp_path: Path):
    shutil.copytree(DEMO / "physics", tmp_path / "physics")
    first = sorted((tmp_path / "physics").glob("*.md"))[0]
    shutil.copy(first, tmp_path / "physics" / "zz-duplicate.md")
    corpus = load_corpus(tmp_path)
    (dup,) = corpus.report.duplicate_urls
    assert dup.path.endswith("zz-duplicate.md") and "already used" in dup.reason


def test_blog_posts_outside_the_schema_load(tmp_path: Path):
    corpus = load_corpus(FIXTURES / "blog")
    assert len(corpus) == 2 and corpus.report.errors == []
    for a in corpus:
        assert a.title and len(a.answer) > 200 and a.description and a.keywords


def test_unusable_folders_raise_corpus_error(tmp_path: Path):
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(tmp_path / "missing")
    with pytest.raises(CorpusError, match="no \\*.md files"):
        load_corpus(tmp_path)
    shutil.copy(FIXTURES / "broken" / "empty.md", tmp_path / "empty.md")
    with pytest.raises(CorpusError, match="none of its 1 files"):
        load_corpus(tmp_path)


def test_parallel_and_serial_loading_agree(tmp_path: Path):
    serial = load_corpus(DEMO, workers=1)
    assert [a.url for a in serial] == [a.url for a in load_corpus(DEMO, workers=2)]


def test_another_schema_is_mapped_by_configuration(tmp_path: Path):
    (tmp_path / "post.md").write_text(
        "---\npermalink: /blog/sourdough\nheadline: Baking sourdough\n"
        "meta:\n  tags: [bread, baking]\ntopic: Cooking\nsee_also1:\n  url: /blog/rye\n---\n"
        "Feed the starter the night before.\n")
    (tmp_path / "rye.md").write_text(
        "---\npermalink: /blog/rye\nheadline: Rye bread\ntopic: Cooking\n---\nRye is dense.\n")
    mapping = tmp_path / "fields.yaml"
    mapping.write_text("url: permalink\ntitle: headline\nkeywords: meta.tags\n"
                       "subject: topic\nlinks: {numbered: see_also}\n")
    corpus = load_corpus(tmp_path, schema=Schema.from_yaml(mapping))
    post = corpus.get("/blog/sourdough")
    assert (post.title, post.subject, post.keywords) == ("Baking sourdough", "Cooking",
                                                         ("bread", "baking"))
    assert post.answer == "Feed the starter the night before." and post.links == ("/blog/rye",)
    bad = tmp_path / "bad.yaml"
    bad.write_text("link: permalink\n")
    with pytest.raises(SchemaError, match=r"bad\.yaml: key 'link': Extra inputs"):
        Schema.from_yaml(bad)
