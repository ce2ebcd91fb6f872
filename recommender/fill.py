"""Batch-fill: write suggested related links into articles that lack them.

Editors review the result as a git diff over thousands of files, so the one
promise this module keeps above all is that *nothing but the inserted links
changes*: no re-serialised YAML, no changed line endings, quoting, key order,
comments or body. To keep it, a file is never loaded and dumped again; the new
links are rendered as text in the style the site already uses
(:mod:`recommender.link_style`: numbered ``related_articleN`` blocks just before
the closing ``---``, or items of a ``related:`` list) and inserted. Every change
is checked twice before it replaces a file: the bytes with the insertion cut out
must equal the old bytes, and the re-parsed front matter must equal the old one
with only the planned keys added or extended.

Writes are crash-safe and never lose an editor's save
(:mod:`recommender.safe_replace`: temporary file, fsync, atomic exchange,
ownership and mode kept), each folder is fsynced before its files count as
done, and fills of one folder are serialised by an ``flock`` on
``.recommender-fill.lock`` (the ``filelock`` package): the kernel releases it
when its holder dies, however it dies, so a killed fill never locks the folder
out, and a second run only finishes what the first did not. A file that cannot
be read, parsed or written is one entry of the result; the rest is filled.

Example:
    >>> corpus = load_corpus("demo/content")                        # doctest: +SKIP
    >>> result = fill(corpus, word_overlap_suggester(corpus), k=5)  # doctest: +SKIP
    >>> result.files_filled, result.links_written                   # doctest: +SKIP
    (12, 60)
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock

from recommender.corpus import Article, ArticleParseError, Corpus, parse_article
from recommender.errors import ArticleNotFound, FillError
from recommender.frontmatter import decode, front_matter_end, load_front_matter, read_regular_file
from recommender.link_style import (
    DEFAULT_STYLE,
    Insertion,
    LinkStyle,
    ListStyle,
    PlannedLink,
    UnsupportedLayout,
    detect_list_style,
    detect_style,
    list_insertion,
    numbered_insertion,
    render_block,
    yaml_scalar,
)
from recommender.safe_replace import (
    TEMP_SUFFIX,
    Refused,
    check_target,
    fsync_dir,
    replace_file,
    sha256,
)
from recommender.schema import Schema

log = logging.getLogger(__name__)

#: ``suggest(article, k, exclude_urls) -> [(article, score), ...]``, best first
Suggest = Callable[[Article, int, set[str]], Sequence[tuple[Article, float]]]

LOCK_NAME = ".recommender-fill.lock"
# how many suggestions beyond the needed ones are asked for, to survive dropped ones,
# and the most ever asked for one article
_SLACK = 5
_MAX_ASK = 500

#: skips that mean a file could not be done (the fill exits with its own code):
#: the others (no suggestion, read-only, symlink, hard link, not in the index) are choices
FAILED_KINDS = frozenset({"not-loaded", "unreadable", "unparseable", "write-error",
                          "verify-failed", "changed-on-disk", "owner"})


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Skip:
    """An article (or file) that was selected but not (completely) written, and why."""

    path: str
    url: str
    kind: str  # short machine-readable cause, e.g. "changed-on-disk"
    detail: str


@dataclass
class FilePlan:
    """The planned change of one file: the text to insert, where, and over what.

    Only the hash of the old bytes is kept (not the bytes), so a plan over
    thousands of files stays small; the write re-reads the file and refuses to
    go on if the hash differs. ``expect`` maps each key the insertion adds or
    extends to the value it must load to afterwards.
    """

    path: Path
    rel: str
    url: str
    sha256: str
    insert_at: int = 0  # byte offset of the insertion
    block: bytes = b""
    links: tuple[PlannedLink, ...] = ()
    existing: int = 0  # curated links the file already had
    skip: Skip | None = None
    expect: dict[str, Any] = field(default_factory=dict, repr=False)
    schema: Schema | None = field(default=None, repr=False)

    @property
    def changes(self) -> bool:
        return self.skip is None and bool(self.links)

    def apply(self, old: bytes) -> bytes:
        """The new bytes: ``old`` with the insertion, nothing else touched."""
        return old[: self.insert_at] + self.block + old[self.insert_at :]


@dataclass
class FillResult:
    """What a fill did (or, for a dry run, would do)."""

    plans: list[FilePlan]
    written: list[FilePlan] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    cleaned_temp_files: list[str] = field(default_factory=list)
    dry_run: bool = False

    @classmethod
    def planned(cls, plans: list[FilePlan]) -> FillResult:
        """The result of a dry run: the plans, their skips, nothing written."""
        return cls(plans=plans, skipped=[p.skip for p in plans if p.skip is not None],
                   dry_run=True)

    @property
    def files_filled(self) -> int:
        return len(self.written)

    @property
    def links_written(self) -> int:
        return sum(len(p.links) for p in self.written)

    @property
    def changes(self) -> list[FilePlan]:
        """Plans that insert something (for a dry run: what would be written)."""
        return [p for p in self.plans if p.changes]

    @property
    def failed(self) -> list[Skip]:
        """Files that could not be read, parsed or written (not skipped by choice)."""
        return [s for s in self.skipped if s.kind in FAILED_KINDS]

    def skipped_by_kind(self) -> dict[str, int]:
        return dict(Counter(s.kind for s in self.skipped).most_common())

    def summary(self) -> dict[str, Any]:
        done = self.changes if self.dry_run else self.written
        return {
            "dry_run": self.dry_run,
            "files_selected": len(self.plans),
            "files_filled": len(done),
            "links_written": sum(len(p.links) for p in done),
            "skipped": self.skipped_by_kind(),
            "failed": len(self.failed),
            "cleaned_temp_files": len(self.cleaned_temp_files),
        }


def load_skips(corpus: Corpus) -> list[Skip]:
    """The files of the folder that did not load, as skips: a fill cannot do them either."""
    return [Skip(_rel(corpus, Path(issue.path)), "", "not-loaded", issue.reason)
            for issue in [*corpus.report.errors, *corpus.report.duplicate_urls]]


# --------------------------------------------------------------------------- style


def _read_text(path: Path) -> str | None:
    try:
        return decode(read_regular_file(path))
    except ArticleParseError:
        return None


def _names(schema: Schema) -> tuple[str, str, str, str]:
    block = schema.links.block
    return block.id, block.title, block.subject, block.url


def corpus_style(corpus: Corpus, tries: int = 20, schema: Schema | None = None) -> LinkStyle:
    """The style of the first file (read with ``schema``) that has a numbered block.

    The files themselves are the reference: editors diff against them, so new
    blocks must look like the blocks already there. Without one, the QuickTakes
    layout under the schema's prefix and names.
    """
    schema = schema or corpus.schema
    prefix = schema.links.numbered or DEFAULT_STYLE.prefix
    for article in corpus:
        if article.schema != schema.name or not any(
                c.source.startswith(prefix) for c in article.curated):
            continue
        text = _read_text(article.path)
        style = detect_style(text, prefix, _names(schema)) if text is not None else None
        if style is not None:
            return style
        tries -= 1
        if tries <= 0:
            break
    return LinkStyle(prefix=prefix, names=_names(schema))


def corpus_list_style(corpus: Corpus, key: str, tries: int = 20) -> ListStyle:
    """The indentation of the corpus's first block list under ``key``, else two spaces."""
    for article in corpus:
        if not any(c.source.startswith(f"{key}[") for c in article.curated):
            continue
        text = _read_text(article.path)
        style = detect_list_style(text, key) if text is not None else None
        if style is not None:
            return style
        tries -= 1
        if tries <= 0:
            break
    return ListStyle(key=key)


def schema_style(corpus: Corpus, schema: Schema) -> LinkStyle | ListStyle:
    """The style new links take in files read with ``schema``, learnt from the corpus."""
    if schema.links.write == "list":
        return corpus_list_style(corpus, schema.links.lists[0])
    return corpus_style(corpus, schema=schema)


# --------------------------------------------------------------------------- checks


def _same(a: Any, b: Any) -> bool:
    """Equality of loaded YAML where ``.nan`` equals itself (it does in the file)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def verify_change(path: Path, old: bytes, new: bytes, plan: FilePlan) -> str | None:
    """Why ``new`` is not exactly ``old`` plus the planned insertion; ``None`` if it is.

    Two independent checks: the bytes (cut the insertion out, get the old file)
    and the meaning (the re-parsed front matter is the old one with only the
    planned keys added, at the end, or extended, with the values planned).
    """
    cut = len(plan.block)
    if len(new) != len(old) + cut or new[: plan.insert_at] != old[: plan.insert_at]:
        return "bytes before the insertion differ"
    if new[plan.insert_at + cut :] != old[plan.insert_at :]:
        return "bytes after the insertion differ"
    try:
        old_text, new_text = old.decode("utf-8"), new.decode("utf-8")
        parse_article(path, new_text, plan.schema or Schema(), plan.rel)
        old_meta, _ = load_front_matter(old_text)
        new_meta, _ = load_front_matter(new_text)
    except (UnicodeDecodeError, ArticleParseError) as exc:
        return f"new text does not parse: {exc}"
    added = [key for key in plan.expect if key not in old_meta]
    if list(new_meta) != list(old_meta) + added:
        return "front matter keys are not the old keys plus the new ones"
    for key, value in old_meta.items():
        if key not in plan.expect and not _same(new_meta[key], value):
            return f"field {key!r} changed"
    for key, value in plan.expect.items():
        if not _same(new_meta[key], value):
            return f"{key} does not load to the planned links"
    return None


# --------------------------------------------------------------------------- planning


def _rel(corpus: Corpus, path: Path) -> str:
    """The path under the content folder, as written there (a symlink is not followed)."""
    for base in (Path(corpus.root), Path(corpus.root).absolute()):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return str(path)


def _excluded(corpus: Corpus, article: Article) -> tuple[set[str], set[str]]:
    """Content keys and urls a new link must not point to: itself, its copies, its links."""
    keys = {article.content_key}
    urls = {article.url}
    for link in article.curated:
        if link.url:
            urls.add(link.url)
            target = corpus.by_url.get(link.url)
            if target is not None:
                keys.add(target.content_key)
        if link.id is not None:
            keys.add(f"id:{link.id}")
    for url in article.links:
        keys.add(corpus.by_url[url].content_key if url in corpus.by_url else f"url:{url}")
    for key in keys:
        if key.startswith("id:"):
            urls.update(a.url for a in corpus.by_id.get(key[3:], []))
        else:
            urls.add(key[4:])
    return keys, urls


def _choose(
    corpus: Corpus,
    suggestions: Iterable[tuple[Any, float]],
    keys: set[str],
    needed: int,
    min_score: float | None,
) -> tuple[list[tuple[Article, float]], Counter[str]]:
    """Take the best ``needed`` suggestions that are usable links, counting the rest.

    The suggester is not trusted: a link must point to an indexable article of
    this very folder, and never to the article, a copy of it, or a target it
    already links to (directly or through a copy).
    """
    chosen: list[tuple[Article, float]] = []
    dropped: Counter[str] = Counter()
    keys = set(keys)
    for suggested, score in suggestions:
        target = corpus.by_url.get(getattr(suggested, "url", None) or str(suggested))
        if target is None:
            dropped["not in this folder"] += 1
        elif target.no_index:
            dropped["no_index"] += 1
        elif target.content_key in keys:
            dropped["already linked, self or copy"] += 1
        elif min_score is not None and score < min_score:
            dropped["below min score"] += 1
        else:
            chosen.append((target, float(score)))
            keys.add(target.content_key)
            if len(chosen) == needed:
                break
    return chosen, dropped


def _newline_before(text: str, pos: int) -> str:
    return "\r\n" if text[max(0, pos - 2) : pos] == "\r\n" else "\n"


def _suggest(corpus: Corpus, article: Article, suggest: Suggest, needed: int,
             min_score: float | None) -> tuple[list[tuple[Article, float]], str]:
    """The chosen targets, or none and why (asking for more while dropped ones leave too few)."""
    keys, exclude = _excluded(corpus, article)
    ask = needed + _SLACK
    while True:
        suggestions = list(suggest(article, ask, set(exclude)))
        chosen, dropped = _choose(corpus, suggestions, keys, needed, min_score)
        exhausted = len(suggestions) < ask or ask >= _MAX_ASK
        if len(chosen) == needed or exhausted or dropped["below min score"]:
            break  # best first: past one under min_score, more would all be under it too
        ask = min(ask * 4, _MAX_ASK)
    why = ", ".join(f"{n} {reason}" for reason, n in dropped.items()) or "none returned"
    return chosen, why


def _insertion(corpus: Corpus, article: Article, text: str, meta: dict[Any, Any],
               links: tuple[PlannedLink, ...], style: LinkStyle | ListStyle | None,
               newline: str) -> Insertion:
    """Where and how the new links go, in the style of the article's schema."""
    schema = corpus.schema_of(article)
    if schema.links.write == "list":
        key = schema.links.lists[0]
        if "." in key:
            raise UnsupportedLayout(f"links key {key!r} is nested; a fill writes top-level lists")
        own = detect_list_style(text, key)
        base = style if isinstance(style, ListStyle) and style.key == key else ListStyle(key)
        return list_insertion(text, meta, key, links, own or base, newline)
    prefix = schema.links.numbered or DEFAULT_STYLE.prefix
    own_block = detect_style(text, prefix, _names(schema)) if article.curated else None
    base_block = style if isinstance(style, LinkStyle) and style.prefix == prefix else \
        LinkStyle(prefix=prefix, names=_names(schema))
    return numbered_insertion(text, links, own_block or base_block, newline)


def _next_number(meta: Mapping[Any, Any], schema: Schema, existing: int) -> int:
    if schema.links.write == "list":
        return existing + 1
    pattern = re.compile(rf"^{re.escape(schema.links.numbered or '')}(\d+)$")
    numbers = [int(m.group(1)) for m in map(pattern.match, map(str, meta)) if m]
    return max(numbers, default=0) + 1


def plan_file(
    corpus: Corpus,
    article: Article,
    suggest: Suggest,
    *,
    k: int = 5,
    min_score: float | None = None,
    style: LinkStyle | ListStyle | None = None,
    force: bool = False,
) -> FilePlan:
    """Plan the links of one article (which must need some); never writes anything."""
    rel = _rel(corpus, article.path)
    schema = corpus.schema_of(article)

    def skipped(kind: str, detail: str, sha: str = "") -> FilePlan:
        return FilePlan(article.path, rel, article.url, sha,
                        skip=Skip(rel, article.url, kind, detail), schema=schema)

    try:
        check_target(article.path, force)
        old = read_regular_file(article.path)
    except Refused as refused:
        return skipped(refused.kind, refused.detail)
    except ArticleParseError as exc:
        return skipped("unreadable", str(exc))
    sha = sha256(old)
    try:
        text = decode(old)
        fresh = parse_article(article.path, text, corpus.schema, rel)
        meta, _ = load_front_matter(text)
    except ArticleParseError as exc:
        return skipped("unparseable", f"file no longer parses: {exc}", sha)
    if fresh.url != article.url or fresh.curated != article.curated:
        return skipped("changed-on-disk", "file changed since the corpus was loaded", sha)
    try:
        chosen, why = _suggest(corpus, article, suggest, k - len(article.curated), min_score)
    except ArticleNotFound as exc:
        return skipped("not-in-index", str(exc), sha)
    if not chosen:
        return skipped("no-suggestions", f"no usable suggestion ({why})", sha)

    first = _next_number(meta, schema, len(article.curated))
    links = tuple(PlannedLink(n=first + i, url=target.url, id=target.id, title=target.title,
                              subject=target.subject, score=score)
                  for i, (target, score) in enumerate(chosen))
    try:
        newline = _newline_before(text, front_matter_end(text))
        ins = _insertion(corpus, article, text, meta, links, style, newline)
    except (UnsupportedLayout, ArticleParseError) as exc:
        return skipped("unsupported-layout", str(exc), sha)
    plan = FilePlan(
        path=article.path,
        rel=rel,
        url=article.url,
        sha256=sha,
        insert_at=len(text[: ins.at].encode("utf-8")),
        block=ins.text.encode("utf-8"),
        links=links,
        existing=len(article.curated),
        expect=ins.changes,
        schema=corpus.schema,
    )
    problem = verify_change(article.path, old, plan.apply(old), plan)
    if problem is not None:
        plan.skip = Skip(rel, article.url, "verify-failed", problem)
    return plan


def select_articles(corpus: Corpus, k: int = 5, top_up: bool = False) -> list[Article]:
    """The articles a fill touches: no links yet (or, with ``top_up``, fewer than ``k``).

    ``no_index`` articles are never filled: they decline to answer, and a page
    that is not indexed gains nothing from links.
    """
    if k < 1:
        raise FillError(f"k must be at least 1, not {k}")
    return [
        a
        for a in corpus
        if not a.no_index and (len(a.curated) < k if top_up else not a.curated)
    ]


def plan_fill(
    corpus: Corpus,
    suggest: Suggest,
    k: int = 5,
    top_up: bool = False,
    min_score: float | None = None,
    *,
    style: LinkStyle | ListStyle | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[FilePlan]:
    """Plan the fill of a corpus: one :class:`FilePlan` per selected article.

    Nothing is written. Plans that cannot be carried out carry a ``skip``; the
    rest hold the verified bytes to insert and the hash of the file they were
    computed from. ``style`` defaults to the corpus's own, per schema in use
    (see :func:`schema_style`); a file that has links of its own keeps its own
    layout. A problem with one file is a skip of that file, never an error of
    the fill.
    """
    chosen = select_articles(corpus, k, top_up)
    styles: dict[str, LinkStyle | ListStyle] = {}
    plans = []
    for i, article in enumerate(chosen):
        schema = corpus.schema_of(article)
        if style is None and schema.name not in styles:
            styles[schema.name] = schema_style(corpus, schema)
        plans.append(plan_file(corpus, article, suggest, k=k, min_score=min_score,
                               style=style or styles[schema.name], force=force))
        if progress is not None:
            progress(i + 1, len(chosen))
    return plans


# --------------------------------------------------------------------------- writing


def _write_one(plan: FilePlan, hook: Callable[[str, FilePlan], None] | None,
               force: bool) -> Skip | None:
    """Replace one file atomically with its filled version, or say why not."""
    if hook is not None:
        hook("before_write", plan)
    try:
        replace_file(plan.path, plan.sha256, plan.apply,
                     lambda old, new: verify_change(plan.path, old, new, plan), force=force,
                     before_replace=(lambda: hook("before_replace", plan)) if hook else None)
    except Refused as refused:
        return Skip(plan.rel, plan.url, refused.kind, refused.detail)
    return None


def apply_fill(
    plans: Sequence[FilePlan],
    *,
    hook: Callable[[str, FilePlan], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> FillResult:
    """Write the planned links. A file edited since it was planned is skipped, not merged.

    A file counts as written only once it and its folder are fsynced (files are
    written folder by folder, so that is one folder fsync per folder).
    ``hook(stage, plan)`` is called at ``"before_write"`` and ``"before_replace"``;
    it exists so tests can edit a file or kill the process at those moments.
    The caller should hold the folder's :class:`FillLock`.
    """
    result = FillResult(plans=list(plans))
    result.skipped.extend(p.skip for p in plans if p.skip is not None)
    todo = sorted((p for p in plans if p.changes), key=lambda p: str(p.path.parent))
    pending: list[FilePlan] = []

    def settle() -> None:
        if not pending:
            return
        try:
            fsync_dir(pending[0].path.parent)
        except OSError as exc:
            result.skipped.extend(Skip(p.rel, p.url, "write-error", "written, but its folder "
                                       f"could not be fsynced: {exc.strerror or exc}")
                                  for p in pending)
        else:
            result.written.extend(pending)
        pending.clear()

    for i, plan in enumerate(todo):
        if pending and plan.path.parent != pending[0].path.parent:
            settle()
        problem = _write_one(plan, hook, force)
        if problem is None:
            pending.append(plan)
        else:
            log.info("skipped %s: %s", plan.rel, problem.detail)
            result.skipped.append(problem)
        if progress is not None:
            progress(i + 1, len(todo))
    settle()
    return result


def clean_temp_files(content_dir: Path) -> list[str]:
    """Delete temporary files left by a fill that was killed; returns their paths.

    Only safe while holding the folder's lock. The loader never reads them
    (hidden, not ``*.md``), so leaving one is harmless to the content, but it
    would show up in ``git status``.
    """
    removed = []
    for dirpath, dirnames, filenames in os.walk(content_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                path = Path(dirpath) / name
                try:
                    path.unlink()
                except OSError:
                    continue
                removed.append(str(path))
    return removed


# --------------------------------------------------------------------------- lock


class FillLock:
    """One fill per content folder: an ``flock`` on ``<folder>/.recommender-fill.lock``.

    The lock is the kernel's (the ``filelock`` package, without its soft
    fallback): it is held only while the holding process lives, so a fill that
    is killed, or that crashes on a full disk, leaves no lock behind, and no pid
    is ever written or compared. Forked children (the loader's worker pool) do
    not keep it (filelock closes its descriptor in a forked child). The empty
    file stays after release, as flock-based locks must (waiters share its
    inode); it blocks nothing. A held lock raises :class:`FillError` at once.
    """

    def __init__(self, content_dir: str | Path):
        self.path = Path(content_dir) / LOCK_NAME
        self._lock = filelock.FileLock(self.path, timeout=0, thread_local=False,
                                       fallback_to_soft=False)

    def __enter__(self) -> FillLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock or raise :class:`FillError`; never waits."""
        if self._lock.is_locked:
            raise FillError(f"this process already holds {self.path}")
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise FillError(
                f"another fill is running on {self.path.parent}: it holds the lock on "
                f"{self.path}. Wait for it to finish (the lock goes when that process ends, "
                "even if it is killed)") from None
        except NotImplementedError:
            raise FillError(f"the file system of {self.path.parent} has no flock; "
                            "a fill cannot lock it") from None
        except OSError as exc:
            raise FillError(f"cannot create lock file {self.path}: "
                            f"{exc.strerror or exc}") from None

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()


# --------------------------------------------------------------------------- whole job


def fill(
    corpus: Corpus,
    suggest: Suggest,
    *,
    k: int = 5,
    top_up: bool = False,
    min_score: float | None = None,
    dry_run: bool = False,
    force: bool = False,
    hook: Callable[[str, FilePlan], None] | None = None,
) -> FillResult:
    """Plan and write a fill of ``corpus`` under its folder's lock (none for a dry run).

    A dry run plans and returns the plans (see :func:`render_diff`) without
    creating, writing or deleting anything, not even the lock file. Files of the
    folder that did not load are skips of kind ``not-loaded``.
    """
    if dry_run:
        result = FillResult.planned(plan_fill(corpus, suggest, k, top_up, min_score,
                                              force=force))
    else:
        with FillLock(corpus.root):
            cleaned = clean_temp_files(Path(corpus.root))
            plans = plan_fill(corpus, suggest, k, top_up, min_score, force=force)
            result = apply_fill(plans, hook=hook, force=force)
            result.cleaned_temp_files = cleaned
    result.skipped[:0] = load_skips(corpus)
    return result


# --------------------------------------------------------------------------- outputs


def _lines(text: str) -> list[str]:
    """Lines as git and patch see them: split at ``\\n`` only (not at \\u2028, \\x0c...)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def diff_file(plan: FilePlan, context: int = 3) -> str:
    """The unified diff (``a/`` and ``b/`` prefixes, like git) of one planned change.

    Lines without a final newline get git's ``\\ No newline at end of file``
    marker, so the diff applies with ``git apply`` or ``patch -p1``. Empty if
    the plan changes nothing or the file changed since it was planned.
    """
    if not plan.changes:
        return ""
    try:
        old = read_regular_file(plan.path)
    except ArticleParseError:
        return ""
    if sha256(old) != plan.sha256:
        return ""
    a, b = _lines(old.decode("utf-8")), _lines(plan.apply(old).decode("utf-8"))
    out = []
    for line in difflib.unified_diff(a, b, f"a/{plan.rel}", f"b/{plan.rel}", n=context):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def render_diff(plans: Iterable[FilePlan], context: int = 3) -> str:
    """One patch of every planned change (see :func:`diff_file`); nothing is written."""
    return "".join(diff_file(plan, context) for plan in plans)


REPORT_COLUMNS = ("path", "url", "n", "suggested_url", "suggested_id", "title", "subject", "score")


def report_rows(plans: Iterable[FilePlan]) -> list[dict[str, Any]]:
    """One row per link written (or planned, for a dry run)."""
    return [
        {
            "path": plan.rel,
            "url": plan.url,
            "n": link.n,
            "suggested_url": link.url,
            "suggested_id": link.id,
            "title": link.title,
            "subject": link.subject,
            "score": round(link.score, 6),
        }
        for plan in plans
        for link in plan.links
    ]


def check_report_path(path: str | Path) -> None:
    """Refuse a report name whose format is unknown before any work is done."""
    if Path(path).suffix.lower() not in (".csv", ".json"):
        raise FillError(f"report file {path} must end in .csv or .json")


def write_report(result: FillResult, path: str | Path) -> None:
    """Write what was filled as CSV (links only) or JSON (summary, links, skips)."""
    path = Path(path)
    check_report_path(path)
    rows = report_rows(result.changes if result.dry_run else result.written)
    if path.suffix.lower() == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=REPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    else:
        text = json.dumps(
            {
                "summary": result.summary(),
                "filled": rows,
                "skipped": [vars(s) for s in result.skipped],
            },
            indent=2,
            ensure_ascii=False,
        ) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise FillError(f"cannot write report {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- suggesters


def recommender_suggester(recommender: Any, same: str | None = None,
                          decisions: Any = None) -> Suggest:
    """Adapt a :class:`~recommender.recommender.Recommender` to the ``suggest`` callable.

    The fill depends only on the callable, so it can be tested with a fake and
    run with any ranking; this is the one place that knows the real API.
    ``same``: only suggest articles sharing this front-matter field's value (an
    unknown field is :class:`~recommender.errors.InvalidFilter` at once; an
    article without a value of it gets no suggestions, and is reported as such).
    ``decisions``: editors' decisions (:class:`~recommender.decisions.Rules`) to honour.
    """
    from recommender.recommender import Filters

    if same is not None and same not in recommender.field_names:
        recommender.same_value(recommender.articles[0], same)  # raises InvalidFilter

    def suggest(article: Article, k: int, exclude_urls: set[str]) -> list[tuple[Article, float]]:
        if same is not None and same not in recommender.get(article.url).fields:
            return []
        found = recommender.related(article, k, Filters(exclude_urls=frozenset(exclude_urls),
                                                        same=same), decisions=decisions)
        return [(s.article, s.score) for s in found]

    return suggest


def word_overlap_suggester(corpus: Corpus) -> Suggest:
    """A dependency-free suggester (shared words of the questions), for tests and demos.

    Not a recommender: it exists so the fill can be exercised without an index.
    """
    words = {a.url: set(re.findall(r"[a-z]{4,}", a.question.lower())) for a in corpus}

    def suggest(article: Article, k: int, exclude_urls: set[str]) -> list[tuple[Article, float]]:
        mine = words.get(article.url, set())
        scored = []
        for other in corpus:
            if other.url in exclude_urls or other.no_index:
                continue
            theirs = words[other.url]
            union = mine | theirs
            score = len(mine & theirs) / len(union) if union else 0.0
            scored.append((other, score))
        scored.sort(key=lambda pair: (-pair[1], pair[0].url))
        return scored[:k]

    return suggest


__all__ = [
    "DEFAULT_STYLE",
    "FAILED_KINDS",
    "LOCK_NAME",
    "TEMP_SUFFIX",
    "FilePlan",
    "FillLock",
    "FillResult",
    "LinkStyle",
    "ListStyle",
    "PlannedLink",
    "Skip",
    "Suggest",
    "apply_fill",
    "check_report_path",
    "clean_temp_files",
    "corpus_list_style",
    "corpus_style",
    "schema_style",
    "detect_style",
    "diff_file",
    "fill",
    "load_skips",
    "plan_file",
    "plan_fill",
    "recommender_suggester",
    "render_block",
    "render_diff",
    "report_rows",
    "select_articles",
    "verify_change",
    "write_report",
    "yaml_scalar",
]
