"""Batch-fill: only the new blocks change, byte for byte, whatever happens during the run.

Every check of a filled file goes through :func:`assert_only_blocks_added`, which
does not trust the fill's own bookkeeping: it finds the inserted bytes by
comparing old and new files, and re-loads both front matters with PyYAML.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from recommender.corpus import Article, Corpus, load_corpus, parse_article, split_front_matter
from recommender.errors import FillError
from recommender.fill import (
    DEFAULT_STYLE,
    LOCK_NAME,
    TEMP_SUFFIX,
    FillLock,
    LinkStyle,
    PlannedLink,
    apply_fill,
    detect_style,
    fill,
    plan_fill,
    render_block,
    render_diff,
    word_overlap_suggester,
    write_report,
    yaml_scalar,
)

from .conftest import ROOT, cli_env

# --------------------------------------------------------------------------- helpers

Link = tuple[Any, str, str, str]  # id, title, subject, url


def article_text(
    slug: str,
    subject: str = "Chemistry",
    ident: Any = 1,
    title: str | None = None,
    answer: str | None = None,
    links: list[Link] = (),  # type: ignore[assignment]
    no_index: bool = False,
    nl: str = "\n",
    url: str | None = None,
    subject_yaml: str | None = None,
) -> str:
    """A file in the QuickTakes format (as in quicktakes-dev), ending in '&nbsp;' and no newline."""
    title = title or slug.replace("-", " ").capitalize() + "?"
    folder = subject.lower().replace(" ", "-")
    url_yaml = yaml_scalar(url) if url else f"/learn/{folder}/questions/{slug}"
    lines = [
        "---", "_schema: default", f"id: {ident}", "date: 2024-11-21", "title: >-",
        f"    {title}", "article_title: >-", f"    {title}", "date_format: MMM DD, YYYY",
        "post_on_text: Posted on", "seo:", f"  title: {yaml_scalar('QuickTakes | ' + subject)}",
        "  page_description: >-", f"    About {title}", "  page_keywords: >-",
        "    one, two", "author: QuickTakes", "question: >-", f"    {title}",
        *(["no_index: True"] if no_index else []),
        "answer: >-", f"    {answer or 'An answer about ' + title}",
        f"subject: {subject_yaml or subject}", f"file_name: {slug}.md", f"url: {url_yaml}",
        "score: -1.0",
    ]
    for n, (tid, ttitle, tsubject, turl) in enumerate(links, 1):
        lines += [f"related_article{n}:", f"    id: {tid}", "    title: >-", f"        {ttitle}",
                  f"    subject: {tsubject}", f"    url: {turl}"]
    lines += ["---", "", "&nbsp;"]
    return nl.join(lines)


def url_of(slug: str, subject: str = "Chemistry") -> str:
    return f"/learn/{subject.lower().replace(' ', '-')}/questions/{slug}"


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file's bytes, but the (empty) lock file, which stays after a fill by design."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}


def inserted_block(old: bytes, new: bytes) -> bytes:
    """The bytes ``new`` has in addition to ``old``, which must be one contiguous insertion."""
    prefix = len(os.path.commonprefix([old, new]))
    suffix = len(os.path.commonprefix([old[::-1], new[::-1]]))
    assert len(new) > len(old), "file did not grow"
    assert prefix + suffix >= len(old), "more than one contiguous insertion"
    at = min(prefix, len(old))
    block = new[at : at + len(new) - len(old)]
    assert old[:at] + block + old[at:] == new
    return block


def front_meta(data: bytes) -> dict[str, Any]:
    return yaml.safe_load(split_front_matter(data.decode("utf-8"))[0])


def assert_only_blocks_added(old: bytes, new: bytes, n_links: int | None = None) -> list[dict]:
    """``new`` is ``old`` plus related_articleN blocks before the closing '---', nothing else."""
    block = inserted_block(old, new)
    at = new.index(block)
    assert block.startswith(b"related_article")
    assert old[at:].startswith(b"---"), "not inserted just before the closing '---'"
    before, after = front_meta(old), front_meta(new)
    added = [key for key in after if key not in before]
    assert list(after) == list(before) + added
    assert all(after[key] == value for key, value in before.items())
    assert all(key.startswith("related_article") for key in added)
    if n_links is not None:
        assert len(added) == n_links
    parse_article(Path("x.md"), new.decode("utf-8"))  # still an article
    return [after[key] for key in added]


def corpus_of(files: dict[str, str], root: Path) -> Corpus:
    for rel, text in files.items():
        write(root, rel, text)
    return load_corpus(root)


def small_corpus(root: Path, n: int = 12) -> Corpus:
    """``n`` chemistry articles without links, sharing words so overlap finds neighbours."""
    topics = ["acid base titration", "acid rain effects", "base strength ranking",
              "titration curve shape", "rain water chemistry", "curve fitting in labs"]
    files = {}
    for i in range(n):
        words = topics[i % len(topics)]
        slug = f"what-is-{words.replace(' ', '-')}-{i}"
        files[f"chemistry/{slug}.md"] = article_text(slug, ident=100 + i,
                                                     title=f"What is {words} {i}?")
    return corpus_of(files, root)


class Scripted:
    """A suggester that returns a fixed list, ignoring ``exclude_urls`` (the fill must not)."""

    def __init__(self, corpus: Corpus, urls: list[str]):
        self.corpus, self.urls, self.calls = corpus, urls, []

    def __call__(self, article: Article, k: int, exclude_urls: set[str]):
        self.calls.append((article.url, k, set(exclude_urls)))
        found = [self.corpus.by_url[u] for u in self.urls if u in self.corpus.by_url]
        return [(a, 1.0 - i / 100) for i, a in enumerate(found)][:k]


# --------------------------------------------------------------------------- bytes


def test_fill_adds_only_the_blocks_byte_for_byte(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c")
    before = snapshot(corpus.root)
    result = fill(corpus, word_overlap_suggester(corpus), k=5)
    after = snapshot(corpus.root)
    assert result.files_filled == 12 and result.links_written == 60
    assert set(after) == set(before)  # no lock, temp or other file left behind
    for rel, old in before.items():
        blocks = assert_only_blocks_added(old, after[rel], n_links=5)
        assert [b["url"] for b in blocks] == [
            link.url for p in result.written if p.rel == rel for link in p.links]
    text = after["chemistry/what-is-acid-base-titration-0.md"].decode()
    assert "\nscore: -1.0\nrelated_article1:\n    id: 1" in text
    assert "\nrelated_article5:\n    id: " in text and text.endswith("\n---\n\n&nbsp;")


def test_default_block_is_the_quicktakes_layout():
    link = PlannedLink(3, "/learn/psychology/questions/x", "2164", "What are the impacts?",
                       "Psychology", 0.5)
    assert render_block(link, DEFAULT_STYLE, "\n") == (
        "related_article3:\n    id: 2164\n    title: >-\n        What are the impacts?\n"
        "    subject: Psychology\n    url: /learn/psychology/questions/x\n")


def test_crlf_file_keeps_crlf_and_lf_file_keeps_lf(tmp_path: Path):
    root = tmp_path / "c"
    crlf = write(root, "a/crlf-article.md", article_text("crlf-article", ident=1, nl="\r\n"))
    lf = write(root, "a/lf-article.md", article_text("lf-article", ident=2))
    old_crlf, old_lf = crlf.read_bytes(), lf.read_bytes()
    corpus = load_corpus(root)
    fill(corpus, word_overlap_suggester(corpus), k=5)
    block = inserted_block(old_crlf, crlf.read_bytes())
    assert block.count(b"\r\n") == block.count(b"\n") == 6  # one link: key, 4 fields, title
    assert_only_blocks_added(old_crlf, crlf.read_bytes(), n_links=1)
    assert b"\r" not in inserted_block(old_lf, lf.read_bytes())


def test_comments_quoting_key_order_and_bom_are_kept(tmp_path: Path):
    root = tmp_path / "c"
    odd = (
        "\ufeff---\n"
        "# a comment editors keep\n"
        "url: '/learn/chemistry/questions/odd'   # quoted, with a comment\n"
        'subject: "Chemistry"\n'
        "id: 7\n"
        "title: \"What's odd: quoting?\"\n"
        "tags: [a, 'b', \"c\"]\n"
        "answer: |\n"
        "  Line one\n"
        "\n"
        "  Line three with trailing spaces   \n"
        "empty:\n"
        "nan: .nan\n"
        "# last comment\n"
        "---   \n"
        "Body text *kept*.\n"
    )
    path = write(root, "chemistry/odd.md", odd)
    write(root, "chemistry/other.md", article_text("other", ident=8, title="What is odd?"))
    old = path.read_bytes()
    corpus = load_corpus(root)
    fill(corpus, word_overlap_suggester(corpus), k=5)
    new = path.read_bytes()
    assert new.startswith(b"\xef\xbb\xbf---\n# a comment editors keep\n")
    blocks = assert_only_blocks_added(old.replace(b"nan: .nan\n", b""),
                                      new.replace(b"nan: .nan\n", b""), n_links=1)
    assert blocks[0]["url"] == url_of("other")
    assert new.endswith(b"# last comment\n" + inserted_block(old, new) + b"---   \nBody text "
                        b"*kept*.\n")


def test_special_characters_stay_valid_yaml(tmp_path: Path):
    root = tmp_path / "c"
    tricky = [
        ("t1", 5, "What's \"it\": a #1 test -- really?", "Chemistry", None, None),
        ("t2", "-5", "- starts like a list item & has *stars*", "Yes", '"Yes"', None),
        ("t3", "'00123'", "Résumé — naïve ☃ {braces} [brackets] % @ `", "Math: Advanced",
         '"Math: Advanced"', "/learn/chemistry/questions/odd #1: yes"),
        ("t4", 9, "Breaks\u2028inside\u0085too", "null", "'null'", None),
    ]
    for slug, ident, title, subject, subject_yaml, url in tricky:
        text = article_text(slug, ident=ident, title="PLACEHOLDER", subject=subject,
                            subject_yaml=subject_yaml, url=url)
        text = text.replace("title: >-\n    PLACEHOLDER", f"title: {yaml_scalar(title)}", 1)
        write(root, f"chemistry/{slug}.md", text)
    source = write(root, "chemistry/source.md", article_text("source", ident=1))
    old = source.read_bytes()
    corpus = load_corpus(root)
    targets = [a.url for a in corpus if a.slug != "source"]
    fill(corpus, Scripted(corpus, targets), k=5)
    blocks = assert_only_blocks_added(old, source.read_bytes(), n_links=4)
    assert [corpus.by_url[u].title for u in targets] == [t[2] for t in tricky]
    ids: list[Any] = [5, -5, "00123", 9]  # integers stay integers, the quoted id a string
    for block, url, ident in zip(blocks, targets, ids, strict=True):
        target = corpus.by_url[url]
        assert block == {"id": ident, "title": target.title, "subject": target.subject,
                         "url": target.url}
    again = load_corpus(root).get("source")
    assert [c.url for c in again.curated] == targets
    assert [c.id for c in again.curated] == [corpus.by_url[u].id for u in targets]


@pytest.mark.parametrize("value", [
    "", "Yes", "no", "null", "~", "123", "-7", "1e3", "0x1F", "2024-11-21", ".nan", ": x",
    "- x", "#x", "a: b", "a #b", "'q'", '"q"', "x\ny", "\u2028", "  lead", "trail ", "@at",
    "`t", "%p", "!b", "&a", "*s", "|", ">", "[", "{", "?", "\t", "é", "\x85", "a\\b", 0, -12,
])
def test_yaml_scalar_round_trips_on_one_line(value: str | int):
    text = yaml_scalar(value)
    assert "\n" not in text
    assert yaml.safe_load(f"k: {text}\nnext: 1\n") == {"k": value, "next": 1}


def test_style_is_learnt_from_the_corpus(tmp_path: Path):
    root = tmp_path / "c"
    two_space = article_text("a-linked", ident=1).replace(
        "score: -1.0\n", "score: -1.0\nrelated_article1:\n  url: /learn/chemistry/questions/b\n"
        "  title: >-\n      What is b?\n  id: 2\n")
    write(root, "chemistry/a-linked.md", two_space)
    write(root, "chemistry/b.md", article_text("b", ident=2, title="What is b?"))
    target = write(root, "chemistry/c.md", article_text("c", ident=3, title="What is b or c?"))
    assert detect_style(two_space) == LinkStyle(2, ">-", 6, ("url", "title", "id", "subject"))
    old = target.read_bytes()
    corpus = load_corpus(root)
    fill(corpus, Scripted(corpus, [url_of("b")]), k=5)
    assert inserted_block(old, target.read_bytes()).decode() == (
        "related_article1:\n  url: /learn/chemistry/questions/b\n  title: >-\n      What is b?\n"
        "  id: 2\n  subject: Chemistry\n")
    assert detect_style(article_text("none")) is None


# --------------------------------------------------------------------------- selection


def test_idempotent_second_run_changes_nothing(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c")
    fill(corpus, word_overlap_suggester(corpus), k=5)
    filled = snapshot(corpus.root)
    for top_up in (False, True):
        again = load_corpus(corpus.root)
        result = fill(again, word_overlap_suggester(again), k=5, top_up=top_up)
        assert result.plans == [] and result.files_filled == 0
        assert snapshot(corpus.root) == filled


def test_top_up_numbers_on_and_never_repeats_a_link(tmp_path: Path):
    root = tmp_path / "c"
    slugs = [f"s{i}" for i in range(8)]
    for i, slug in enumerate(slugs):
        write(root, f"chemistry/{slug}.md", article_text(slug, ident=10 + i))
    # a copy of s1 under another subject: the same content, another url
    write(root, "physics/s1.md", article_text("s1", subject="Physics", ident=11))
    links = [(11, "S1?", "Chemistry", url_of("s1")), (12, "S2?", "Chemistry", url_of("s2"))]
    path = write(root, "chemistry/top.md", article_text("top", ident=99, links=links))
    old = path.read_bytes()
    corpus = load_corpus(root)
    order = [url_of("top"), url_of("s1", "Physics"), url_of("s1"), url_of("s2"),
             url_of("s3"), url_of("s3"), url_of("s4"), url_of("s5"), url_of("s6")]
    suggest = Scripted(corpus, order)
    plans = plan_fill(corpus, suggest, k=5, top_up=True)
    plan = next(p for p in plans if p.url == url_of("top"))
    assert [(link.n, link.url) for link in plan.links] == [
        (3, url_of("s3")), (4, url_of("s4")), (5, url_of("s5"))]
    calls = {url: exclude for url, _, exclude in suggest.calls}
    assert {url_of("top"), url_of("s1"), url_of("s1", "Physics"), url_of("s2")} <= calls[
        url_of("top")]
    apply_fill(plans)
    blocks = assert_only_blocks_added(old, path.read_bytes(), n_links=3)
    assert [b["url"] for b in blocks] == [url_of("s3"), url_of("s4"), url_of("s5")]
    assert [c.n for c in load_corpus(root).get("top").curated] == [1, 2, 3, 4, 5]


def test_default_fills_only_articles_without_links_and_never_no_index(tmp_path: Path):
    root = tmp_path / "c"
    linked = write(root, "c/linked.md", article_text(
        "linked", ident=1, links=[(2, "Plain?", "Chemistry", url_of("plain"))]))
    hidden = write(root, "c/hidden.md", article_text("hidden", ident=3, no_index=True))
    write(root, "c/plain.md", article_text("plain", ident=2))
    write(root, "c/other.md", article_text("other", ident=4))
    before = snapshot(root)
    corpus = load_corpus(root)
    suggest = Scripted(corpus, [url_of("hidden"), url_of("linked"), url_of("other"),
                                url_of("plain")])
    result = fill(corpus, suggest, k=5)
    assert sorted(p.url for p in result.written) == [url_of("other"), url_of("plain")]
    assert linked.read_bytes() == before["c/linked.md"]
    assert hidden.read_bytes() == before["c/hidden.md"]
    for plan in result.written:  # the suggester offered no_index; it was dropped
        assert url_of("hidden") not in [link.url for link in plan.links]
        assert plan.url not in [link.url for link in plan.links]  # never itself


def test_copies_of_the_article_are_never_suggested(tmp_path: Path):
    root = tmp_path / "c"
    write(root, "chemistry/a.md", article_text("a", ident=1))
    write(root, "physics/a.md", article_text("a", subject="Physics", ident=1))
    write(root, "chemistry/b.md", article_text("b", ident=2))
    write(root, "physics/b.md", article_text("b", subject="Physics", ident=2))
    corpus = load_corpus(root)
    order = [url_of("a"), url_of("a", "Physics"), url_of("b"), url_of("b", "Physics")]
    plans = plan_fill(corpus, Scripted(corpus, order), k=5)
    by_url = {p.url: [link.url for link in p.links] for p in plans}
    assert by_url[url_of("a")] == [url_of("b")]  # one copy of b, not two; never a's copy
    assert by_url[url_of("b", "Physics")] == [url_of("a")]


def test_asks_again_when_copies_crowd_out_the_first_answer(tmp_path: Path):
    root = tmp_path / "c"
    subjects = [f"Subject {i}" for i in range(12)]
    for subject in subjects:  # one article filed under 12 subjects
        write(root, f"{subject}/dup.md", article_text("dup", subject=subject, ident=7))
    for i in range(5):
        write(root, f"chemistry/d{i}.md", article_text(f"d{i}", ident=20 + i))
    target = write(root, "chemistry/t.md", article_text("t", ident=1))
    corpus = load_corpus(root)
    suggest = Scripted(corpus, [url_of("dup", s) for s in subjects]
                       + [url_of(f"d{i}") for i in range(5)])
    plan = next(p for p in plan_fill(corpus, suggest, k=5) if p.path == target)
    assert [link.url for link in plan.links] == [url_of("dup", subjects[0])] + [
        url_of(f"d{i}") for i in range(4)]
    assert [k for url, k, _ in suggest.calls if url == url_of("t")] == [10, 40]


def test_min_score_and_no_suggestion_are_skips(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c", n=4)
    before = snapshot(corpus.root)

    def low(article: Article, k: int, exclude_urls: set[str]):
        return [(a, 0.1) for a in corpus if a.url not in exclude_urls][:k]

    result = fill(corpus, low, k=5, min_score=0.5)
    assert result.files_filled == 0 and result.skipped_by_kind() == {"no-suggestions": 4}
    assert "below min score" in result.skipped[0].detail
    assert snapshot(corpus.root) == before


def test_suggestions_from_another_folder_are_dropped(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c", n=3)
    stranger = parse_article(Path("x.md"), article_text("elsewhere", ident=500))

    def foreign(article: Article, k: int, exclude_urls: set[str]):
        return [(stranger, 0.9)] + [(a, 0.5) for a in corpus if a.url not in exclude_urls]

    plans = plan_fill(corpus, foreign, k=5)
    assert all(stranger.url not in [link.url for link in p.links] for p in plans)
    assert all(len(p.links) == 2 for p in plans)


def test_unsafe_front_matter_is_skipped_not_written(tmp_path: Path):
    root = tmp_path / "c"
    indented = article_text("indented", ident=1).replace("\n", "\n  ").replace("\n  ---", "\n---")
    path = write(root, "chemistry/indented.md", indented)
    write(root, "chemistry/ok.md", article_text("ok", ident=2))
    write(root, "broken/not-yaml.md", "---\nurl: [unclosed\n---\n")
    before = snapshot(root)
    corpus = load_corpus(root)
    assert corpus.get("indented")  # a valid article whose keys are indented
    result = fill(corpus, word_overlap_suggester(corpus), k=5)
    assert path.read_bytes() == before["chemistry/indented.md"]
    assert (root / "broken/not-yaml.md").read_bytes() == before["broken/not-yaml.md"]
    assert sorted(s.kind for s in result.skipped) == ["not-loaded", "verify-failed"]
    assert [s.path for s in result.failed] == ["broken/not-yaml.md", "chemistry/indented.md"]
    assert [p.url for p in result.written] == [url_of("ok")]


def test_symlinked_file_is_skipped_and_one_out_of_the_folder_is_not_read(tmp_path: Path):
    root = tmp_path / "c"
    inside = write(root, "sources/real.txt", article_text("real", ident=1))
    outside = write(tmp_path, "outside/stranger.md", article_text("stranger", ident=3))
    (root / "chemistry").mkdir(parents=True)
    (root / "chemistry" / "real.md").symlink_to(inside)
    (root / "chemistry" / "stranger.md").symlink_to(outside)
    write(root, "chemistry/ok.md", article_text("ok", ident=2))
    old, old_outside = inside.read_bytes(), outside.read_bytes()
    corpus = load_corpus(root)
    assert corpus.get("real") and url_of("stranger") not in corpus.by_url
    result = fill(corpus, word_overlap_suggester(corpus), k=5)
    assert (root / "chemistry" / "real.md").is_symlink() and inside.read_bytes() == old
    assert outside.read_bytes() == old_outside
    assert result.skipped_by_kind() == {"not-loaded": 1, "symlink": 1}
    (loaded,) = [s for s in result.skipped if s.kind == "not-loaded"]
    assert loaded.path == "chemistry/stranger.md" and "outside the content folder" in loaded.detail


# --------------------------------------------------------------------------- safety


def test_mode_is_preserved(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c", n=3)
    modes = [0o640, 0o755, 0o600]
    for article, mode in zip(corpus, modes, strict=True):
        article.path.chmod(mode)
    fill(corpus, word_overlap_suggester(corpus), k=5)
    for article, mode in zip(corpus, modes, strict=True):
        assert (article.path.stat().st_mode & 0o7777) == mode
        assert load_corpus(corpus.root).get(article.url).curated


@pytest.mark.parametrize("stage", ["between", "before_write", "before_replace"])
def test_file_changed_on_disk_is_skipped(tmp_path: Path, stage: str):
    corpus = small_corpus(tmp_path / "c", n=3)
    victim = corpus.articles[1].path
    edited = victim.read_bytes().replace(b"one, two", b"one, two, three")
    plans = plan_fill(corpus, word_overlap_suggester(corpus), k=5)

    def editor(at: str, plan) -> None:
        if at == stage and plan.path == victim:
            victim.write_bytes(edited)

    if stage == "between":
        victim.write_bytes(edited)
    result = apply_fill(plans, hook=editor)
    assert victim.read_bytes() == edited  # the editor's save wins, untouched
    assert [(s.path, s.kind) for s in result.skipped] == [
        (victim.relative_to(corpus.root).as_posix(), "changed-on-disk")]
    assert result.files_filled == 2
    assert not list(corpus.root.rglob(f"*{TEMP_SUFFIX}"))


def test_dry_run_touches_nothing_and_its_diff_is_the_fill(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c")
    write(corpus.root, "chemistry/crlf.md", article_text("crlf", ident=999, nl="\r\n"))
    corpus = load_corpus(corpus.root)
    twin = tmp_path / "twin"
    shutil.copytree(corpus.root, twin)
    def stats() -> dict[Path, tuple[int, ...]]:
        return {p: (s.st_mtime_ns, s.st_ctime_ns, s.st_ino, s.st_size, s.st_mode)
                for p in corpus.root.rglob("*") for s in [p.stat()]}

    stats_before = stats()
    before = snapshot(corpus.root)
    result = fill(corpus, word_overlap_suggester(corpus), k=5, dry_run=True)
    patch = render_diff(result.plans)
    assert snapshot(corpus.root) == before
    assert stats() == stats_before  # no lock file, no mtime change
    assert result.dry_run and len(result.changes) == 13 and result.files_filled == 0
    assert patch.startswith("--- a/") and patch.count("\n+++ b/") == 13
    assert "\\ No newline at end of file" in patch
    (tmp_path / "fill.patch").write_text(patch, encoding="utf-8", newline="")
    subprocess.run(["patch", "-p1", "-s", "-i", str(tmp_path / "fill.patch")], cwd=twin,
                   check=True)
    fill(corpus, word_overlap_suggester(corpus), k=5)
    assert snapshot(twin) == snapshot(corpus.root)


def test_report_csv_and_json(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c", n=4)
    result = fill(corpus, word_overlap_suggester(corpus), k=2)
    write_report(result, tmp_path / "r.csv")
    write_report(result, tmp_path / "r.json")
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and list(rows[0]) == ["path", "url", "n", "suggested_url",
                                                "suggested_id", "title", "subject", "score"]
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["summary"]["files_filled"] == 4 and data["summary"]["links_written"] == 8
    assert [r["suggested_url"] for r in data["filled"]] == [r["suggested_url"] for r in rows]
    for row in data["filled"]:
        article = load_corpus(corpus.root).get(row["url"])
        link = next(c for c in article.curated if c.n == row["n"])
        assert (link.url, link.title) == (row["suggested_url"], row["title"])
        assert (corpus.root / row["path"]).exists() and isinstance(row["score"], float)
    with pytest.raises(FillError, match=r"\.csv or \.json"):
        write_report(result, tmp_path / "r.txt")


# --------------------------------------------------------------------------- lock


def test_second_fill_while_locked_raises_and_names_the_lock(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c", n=3)
    before = snapshot(corpus.root)
    with FillLock(corpus.root):
        with pytest.raises(FillError, match=LOCK_NAME.replace(".", r"\.")):
            fill(corpus, word_overlap_suggester(corpus), k=5)
    assert snapshot(corpus.root) == before
    assert (corpus.root / LOCK_NAME).read_bytes() == b""  # an flock: no pid is written


@pytest.mark.parametrize("content", ["live pid", "dead pid", "garbage", "empty"])
def test_a_lock_file_nobody_holds_never_blocks(tmp_path: Path, content: str):
    """Left by a killed fill, a full disk, or a pid that was reused: only a held flock counts."""
    corpus = small_corpus(tmp_path / "c", n=3)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    text = {"live pid": f"{os.getpid()}\n", "dead pid": f"{dead.pid}\n",
            "garbage": "not a pid", "empty": ""}[content]
    (corpus.root / LOCK_NAME).write_text(text)
    result = fill(corpus, word_overlap_suggester(corpus), k=5)
    assert result.files_filled == 3


def test_cli_exits_non_zero_while_locked(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c", n=3)
    before = snapshot(corpus.root)
    with FillLock(corpus.root):
        done = subprocess.run([sys.executable, "-m", "recommender.cli", "fill",
                               str(corpus.root)], capture_output=True, text=True,
                              env=cli_env(tmp_path), cwd=ROOT, timeout=300)
    assert done.returncode == 9, done.stderr
    assert done.stderr.startswith("error: another fill is running") and LOCK_NAME in done.stderr
    assert snapshot(corpus.root) == before


# --------------------------------------------------------------------------- kill -9

KILLABLE = """
import sys, time
from pathlib import Path
from recommender.corpus import load_corpus
from recommender.fill import fill, word_overlap_suggester

corpus = load_corpus(Path(sys.argv[1]))
stall_at = int(sys.argv[2])  # 0: never stall
count = 0
def hook(stage, plan):
    global count
    if stage == "before_write":
        print("writing", plan.rel, flush=True)
        return
    count += 1  # a temporary file with the complete new text exists now
    if count == stall_at:
        print("stalled", plan.rel, flush=True)
        time.sleep(600)
    time.sleep(0.004)  # widen the window in which a temporary file exists
fill(corpus, word_overlap_suggester(corpus), k=5, hook=hook)
print("done", flush=True)
"""


@pytest.mark.parametrize("when", ["anytime", "temp-file-written"])
def test_fill_killed_mid_run_leaves_old_or_complete_files(tmp_path: Path, when: str):
    """SIGKILL at a random moment, or just before a rename: no file is ever half-written."""
    root = tmp_path / "c"
    rng = random.Random(7)
    vocab = ["acid", "base", "titration", "enzyme", "protein", "orbital", "quantum", "market",
             "inflation", "memory", "sleep", "climate", "ocean", "matrix", "vector", "graph"]
    for i in range(300):
        words = " ".join(rng.sample(vocab, 4))
        slug = f"article-{i:03d}"
        write(root, f"s{i % 5}/{slug}.md", article_text(
            slug, subject=f"S{i % 5}", ident=1000 + i, title=f"What about {words} {i}?",
            nl="\r\n" if i % 7 == 0 else "\n"))
    original = snapshot(root)
    script = tmp_path / "killable.py"
    script.write_text(KILLABLE)
    stall = 120 if when == "temp-file-written" else 0
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(stall)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(120):  # let it write ~120 files, then kill it without warning
        assert proc.stdout.readline().startswith("writing")
    if stall:
        assert proc.stdout.readline().startswith("stalled")
    else:
        time.sleep(rng.uniform(0, 0.02))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    now = snapshot(root)
    temps = [p for p in now if p.endswith(TEMP_SUFFIX)]
    with FillLock(root):  # the kernel released the dead fill's lock
        pass
    filled = 0
    for rel, old in original.items():
        if now[rel] != old:
            assert_only_blocks_added(old, now[rel], n_links=5)
            filled += 1
    assert 100 <= filled < 300
    assert set(now) - set(original) <= set(temps) and len(temps) <= 1
    if stall:  # killed with the 120th file's complete new text in a temporary file
        assert filled == 119 and len(temps) == 1
    reloaded = load_corpus(root)  # leftover temporary files are not articles
    assert len(reloaded) == 300 and not reloaded.report.errors

    result = fill(reloaded, word_overlap_suggester(reloaded), k=5)
    assert len(result.cleaned_temp_files) == len(temps)
    assert result.files_filled == 300 - filled
    final = snapshot(root)
    assert set(final) == set(original)  # no lock, no temporary file
    for rel, old in original.items():
        assert_only_blocks_added(old, final[rel], n_links=5)


# --------------------------------------------------------------------------- end to end


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for rel, data in snapshot(root).items():
        digest.update(rel.encode() + b"\0" + data)
    return digest.hexdigest()


def test_cli_end_to_end_with_the_real_recommender(tmp_path: Path, demo_copy: Path):
    pytest.importorskip("recommender.recommender")
    from recommender.pipeline import build_index
    from recommender.recommender import Recommender

    from .conftest import HASHING

    index_dir = tmp_path / "index"
    corpus = load_corpus(demo_copy)
    build_index(corpus, HASHING, index_dir, tmp_path / "cache")
    before = snapshot(demo_copy)
    run = [sys.executable, "-m", "recommender.cli", "fill", str(demo_copy), "--index",
           str(index_dir)]
    env = cli_env(tmp_path)

    dry = subprocess.run([*run, "--dry-run"], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert snapshot(demo_copy) == before and dry.stdout.startswith("--- a/")
    assert "would be filled" in dry.stderr

    done = subprocess.run([*run, "--report", str(tmp_path / "r.csv"), "--diff",
                           str(tmp_path / "w.diff")], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "files filled" in done.stdout and "load errors" in done.stdout
    assert (tmp_path / "w.diff").read_text() == dry.stdout
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    unlinked = [a for a in corpus if not a.curated and not a.no_index]
    assert {r["url"] for r in rows} == {a.url for a in unlinked}
    after = snapshot(demo_copy)
    for rel, old in before.items():
        if after[rel] != old:
            assert_only_blocks_added(old, after[rel], n_links=5)
    rec = Recommender(build_index(corpus, HASHING))
    for row in rows:
        target = corpus.by_url[row["suggested_url"]]
        assert not target.no_index
        assert target.content_key != corpus.by_url[row["url"]].content_key
        assert row["suggested_url"] in [
            s.article.url for s in rec.related(row["url"], k=5 + 5)]
    settled = _tree_hash(demo_copy)
    again = subprocess.run(run, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _tree_hash(demo_copy) == settled


@pytest.mark.slow
def test_cli_without_index_builds_one_of_the_folder_with_the_real_model(
        tmp_path: Path, demo_copy: Path):
    pytest.importorskip("recommender.recommender")
    before = snapshot(demo_copy)
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "fill", str(demo_copy),
                           "--k", "3", "--report", str(tmp_path / "r.json")],
                          capture_output=True, text=True, env=cli_env(tmp_path), cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert "building an index" in done.stdout
    assert (tmp_path / "index" / "manifest.json").exists()  # the default index, from the env
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["summary"]["files_filled"] > 0
    after = snapshot(demo_copy)
    changed = [rel for rel in before if after[rel] != before[rel]]
    assert len(changed) == report["summary"]["files_filled"]
    for rel in changed:
        assert_only_blocks_added(before[rel], after[rel], n_links=3)
