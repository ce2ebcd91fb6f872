"""Batch-fill: write suggested ``related_articleN`` blocks into articles that lack them.

Editors review the result as a git diff over thousands of files, so the one
promise this module keeps above all is that *nothing but the inserted block
changes*: no re-serialised YAML, no changed line endings, quoting, key order,
comments or body. To keep it, a file is never loaded and dumped again; the new
block is rendered as text in the style the content already uses and inserted
just before the closing ``---`` of the front matter. Every change is checked
twice before it replaces a file: the bytes with the block cut out must equal the
old bytes, and the re-parsed front matter must equal the old one plus the new
keys only.

Writes are crash-safe (temporary file in the same folder, fsync, ``os.replace``),
refuse files edited since they were planned, and are serialised per content
folder by a lock file, so a killed fill leaves every file either as it was or
completely filled, and a second run only finishes what the first did not.

Example:
    >>> corpus = load_corpus("demo/content")                        # doctest: +SKIP
    >>> result = fill(corpus, word_overlap_suggester(corpus), k=5)  # doctest: +SKIP
    >>> result.files_filled, result.links_written                   # doctest: +SKIP
    (12, 60)
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import logging
import math
import os
import re
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recommender.corpus import (
    Article,
    ArticleParseError,
    Corpus,
    parse_article,
    split_front_matter,
)
from recommender.errors import ArticleNotFound, FillError

try:  # the lock arbitrates take-overs with flock where the platform has it
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

log = logging.getLogger(__name__)

#: ``suggest(article, k, exclude_urls) -> [(article, score), ...]``, best first
Suggest = Callable[[Article, int, set[str]], Sequence[tuple[Article, float]]]

LOCK_NAME = ".recommender-fill.lock"
#: temporary files are hidden and do not end in ``.md``, so a loader never reads one
TEMP_SUFFIX = ".recommender-fill.tmp"
LINK_FIELDS = ("id", "title", "subject", "url")

# the same closing line as recommender.corpus.split_front_matter looks for
_FRONT_MATTER_END = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)
_RELATED_KEY = re.compile(r"^related_article(\d+)$")
_BLOCK_START = re.compile(r"^related_article\d+:[ \t]*(?:#.*)?$")
_INT_ID = re.compile(r"-?[1-9][0-9]*|0")
# what YAML may hold at all (PyYAML's reader), and what a one-line block scalar may not
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_LINE_BREAKS = re.compile("[\r\n\x85\u2028\u2029\ufeff]")
# how many suggestions beyond the needed ones are asked for, to survive dropped ones,
# and the most ever asked for one article
_SLACK = 5
_MAX_ASK = 500


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class LinkStyle:
    """How a file set writes its curated blocks, so new ones look like the old ones.

    ``indent`` is the indentation of the child keys, ``title_block`` the block
    scalar header used for titles (``">-"``; ``None`` writes a plain or quoted
    scalar), ``block_indent`` the absolute indentation of that scalar's content.
    """

    indent: int = 4
    title_block: str | None = ">-"
    block_indent: int = 8
    order: tuple[str, ...] = LINK_FIELDS


#: the QuickTakes layout, used when no file of the corpus has a curated block
DEFAULT_STYLE = LinkStyle()


@dataclass(frozen=True)
class PlannedLink:
    """One new ``related_articleN`` block: which article it points to, and why."""

    n: int
    url: str
    id: str | None
    title: str
    subject: str
    score: float


@dataclass(frozen=True)
class Skip:
    """An article that was selected but not (completely) written, and why."""

    path: str
    url: str
    kind: str  # short machine-readable cause, e.g. "changed-on-disk"
    detail: str


@dataclass
class FilePlan:
    """The planned change of one file: the bytes to insert, where, and over what.

    Only the hash of the old bytes is kept (not the bytes), so a plan over
    thousands of files stays small; the write re-reads the file and refuses to
    go on if the hash differs.
    """

    path: Path
    rel: str
    url: str
    sha256: str
    insert_at: int = 0  # byte offset of the closing '---' line
    block: bytes = b""
    links: tuple[PlannedLink, ...] = ()
    existing: int = 0  # curated blocks the file already had
    skip: Skip | None = None

    @property
    def changes(self) -> bool:
        return self.skip is None and bool(self.links)

    def apply(self, old: bytes) -> bytes:
        """The new bytes: ``old`` with the block inserted, nothing else touched."""
        return old[: self.insert_at] + self.block + old[self.insert_at :]


@dataclass
class FillResult:
    """What a fill did (or, for a dry run, would do)."""

    plans: list[FilePlan]
    written: list[FilePlan] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    cleaned_temp_files: list[str] = field(default_factory=list)
    lock_taken_over: str | None = None
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
            "cleaned_temp_files": len(self.cleaned_temp_files),
            "lock_taken_over": self.lock_taken_over,
        }


# --------------------------------------------------------------------------- style


def detect_style(text: str) -> LinkStyle | None:
    """Learn the layout of the first curated block in ``text``; ``None`` if it has none.

    Only block mappings are learnt (the form editors write); a file with flow
    mappings or no blocks says nothing about the style.
    """
    try:
        front, _ = split_front_matter(text)
    except ArticleParseError:
        return None
    lines = front.splitlines()
    for i, line in enumerate(lines):
        if not _BLOCK_START.match(line):
            continue
        children: list[tuple[int, str]] = []
        for child in lines[i + 1 :]:
            if not child.strip():
                continue
            indent = len(child) - len(child.lstrip(" "))
            if indent == 0:
                break
            children.append((indent, child.strip()))
        if not children:
            continue
        key_indent = children[0][0]
        keys: list[str] = []
        title_block: str | None = DEFAULT_STYLE.title_block
        block_indent: int | None = None
        for j, (indent, child) in enumerate(children):
            if indent != key_indent:
                continue
            key, _, value = child.partition(":")
            keys.append(key.strip())
            if key.strip() != "title":
                continue
            value = value.split(" #", 1)[0].strip()
            if value in (">-", "|-"):
                title_block = value
                if j + 1 < len(children) and children[j + 1][0] > key_indent:
                    block_indent = children[j + 1][0]
            else:
                title_block = None
        order = tuple(k for k in keys if k in LINK_FIELDS)
        order = tuple(dict.fromkeys(order + LINK_FIELDS))
        return LinkStyle(
            indent=key_indent,
            title_block=title_block,
            block_indent=block_indent or key_indent * 2,
            order=order,
        )
    return None


def corpus_style(corpus: Corpus, tries: int = 20) -> LinkStyle:
    """The style of the corpus's first file that has a curated block, else the default.

    The files themselves are the reference: editors diff against them, so new
    blocks must look like the blocks already there.
    """
    for article in corpus:
        if not article.curated:
            continue
        try:
            style = detect_style(article.path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError):
            style = None
        if style is not None:
            return style
        tries -= 1
        if tries <= 0:
            break
    return DEFAULT_STYLE


# --------------------------------------------------------------------------- rendering


def yaml_scalar(value: str | int) -> str:
    """``value`` as one line of YAML that loads back to exactly ``value``.

    PyYAML's own emitter chooses plain style when that is safe and quotes
    otherwise; anything it would spread over several lines is double-quoted
    with escapes instead, so the block stays one line per key.

    Example:
        >>> yaml_scalar("Psychology"), yaml_scalar("Yes"), yaml_scalar(2164)
        ('Psychology', "'Yes'", '2164')
        >>> yaml_scalar("Q: why?")
        "'Q: why?'"
    """
    text = yaml.safe_dump(value, allow_unicode=True, width=sys.maxsize)
    text = text.removesuffix("\n").removesuffix("\n...")
    if "\n" in text or yaml.load(f"k: {text}", Loader=_Loader) != {"k": value}:
        text = yaml.safe_dump(
            value, allow_unicode=True, width=sys.maxsize, default_style='"'
        ).removesuffix("\n")
    return text


def _id_value(ident: str) -> str | int:
    """Ids are written as the integers QuickTakes uses; any other id as a string."""
    return int(ident) if _INT_ID.fullmatch(ident) else ident


def _block_safe(title: str) -> bool:
    """Whether ``title`` can be the one content line of a ``>-`` scalar unchanged."""
    return (
        bool(title)
        and title == title.strip(" \t")
        and not _LINE_BREAKS.search(title)
        and not _NON_PRINTABLE.search(title)
    )


def expected_fields(link: PlannedLink) -> dict[str, Any]:
    """What the YAML of a rendered block must load to (checked before any write)."""
    values: dict[str, Any] = {
        "id": _id_value(link.id) if link.id is not None else None,
        "title": link.title,
        "subject": link.subject,
        "url": link.url,
    }
    if link.id is None:
        del values["id"]
    return values


def render_block(link: PlannedLink, style: LinkStyle, newline: str) -> str:
    """One ``related_articleN`` block in ``style``, every line ending in ``newline``."""
    pad = " " * style.indent
    values = expected_fields(link)
    lines = [f"related_article{link.n}:"]
    for key in style.order:
        if key not in values:
            continue
        value = values[key]
        if key == "title" and style.title_block and _block_safe(value):
            lines.append(f"{pad}title: {style.title_block}")
            lines.append(" " * max(style.block_indent, style.indent + 1) + value)
        else:
            lines.append(f"{pad}{key}: {yaml_scalar(value)}")
    return "".join(line + newline for line in lines)


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


def _load_meta(text: str) -> dict[Any, Any]:
    meta = yaml.load(split_front_matter(text)[0], Loader=_Loader)
    if not isinstance(meta, dict):
        raise ArticleParseError("front matter is not a mapping")
    return meta


def verify_change(
    path: Path, old: bytes, new: bytes, plan: FilePlan
) -> str | None:
    """Why ``new`` is not exactly ``old`` plus the planned blocks; ``None`` if it is.

    Two independent checks: the bytes (cut the block out, get the old file) and
    the meaning (the re-parsed front matter is the old one plus the new keys,
    in order, with the values that were planned).
    """
    cut = len(plan.block)
    if len(new) != len(old) + cut or new[: plan.insert_at] != old[: plan.insert_at]:
        return "bytes before the inserted block differ"
    if new[plan.insert_at + cut :] != old[plan.insert_at :]:
        return "bytes after the inserted block differ"
    try:
        old_text, new_text = old.decode("utf-8"), new.decode("utf-8")
        parse_article(path, new_text)
        old_meta, new_meta = _load_meta(old_text), _load_meta(new_text)
    except (UnicodeDecodeError, ArticleParseError, yaml.YAMLError) as exc:
        return f"new text does not parse: {exc}"
    added = {f"related_article{link.n}": expected_fields(link) for link in plan.links}
    if list(new_meta) != list(old_meta) + list(added):
        return "front matter keys are not the old keys plus the new blocks"
    for key, value in old_meta.items():
        if not _same(new_meta[key], value):
            return f"field {key!r} changed"
    for key, value in added.items():
        if not _same(new_meta[key], value):
            return f"{key} does not load to the planned link"
    return None


# --------------------------------------------------------------------------- planning


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rel(corpus: Corpus, path: Path) -> str:
    try:
        return path.resolve().relative_to(Path(corpus.root).resolve()).as_posix()
    except ValueError:
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


def _locate_end(text: str) -> int:
    """Offset (in characters) of the closing ``---`` line, as the corpus loader finds it."""
    first_nl = text.find("\n")
    match = _FRONT_MATTER_END.search(text, first_nl + 1) if first_nl >= 0 else None
    if match is None:
        raise ArticleParseError("no closing '---' line")
    return match.start()


def plan_file(
    corpus: Corpus,
    article: Article,
    suggest: Suggest,
    *,
    k: int = 5,
    min_score: float | None = None,
    style: LinkStyle = DEFAULT_STYLE,
) -> FilePlan:
    """Plan the blocks of one article (which must need some); never writes anything."""
    rel = _rel(corpus, article.path)

    def skipped(kind: str, detail: str, sha: str = "") -> FilePlan:
        return FilePlan(
            article.path, rel, article.url, sha, skip=Skip(rel, article.url, kind, detail)
        )

    if article.path.is_symlink():
        return skipped("symlink", "is a symbolic link; replacing it would change the tree")
    try:
        old = article.path.read_bytes()
        nlink = os.stat(article.path).st_nlink
    except OSError as exc:
        return skipped("unreadable", f"cannot read file: {exc.strerror or exc}")
    sha = _sha256(old)
    if nlink > 1:
        return skipped("hard-link", f"has {nlink} hard links; a rewrite would split them", sha)
    try:
        text = old.decode("utf-8")
        fresh = parse_article(article.path, text)
        meta = _load_meta(text)
        end = _locate_end(text)
    except (UnicodeDecodeError, ArticleParseError, yaml.YAMLError) as exc:
        return skipped("unparseable", f"file no longer parses: {exc}", sha)
    if fresh.url != article.url or fresh.curated != article.curated:
        return skipped("changed-on-disk", "file changed since the corpus was loaded", sha)

    needed = k - len(article.curated)
    keys, exclude = _excluded(corpus, article)
    ask = needed + _SLACK
    while True:  # ask for more while dropped suggestions (e.g. copies) leave too few
        try:
            suggestions = list(suggest(article, ask, set(exclude)))
        except ArticleNotFound as exc:
            return skipped("not-in-index", str(exc), sha)
        chosen, dropped = _choose(corpus, suggestions, keys, needed, min_score)
        exhausted = len(suggestions) < ask or ask >= _MAX_ASK
        if len(chosen) == needed or exhausted or dropped["below min score"]:
            break  # best first: past one under min_score, more would all be under it too
        ask = min(ask * 4, _MAX_ASK)
    if not chosen:
        why = ", ".join(f"{n} {reason}" for reason, n in dropped.items()) or "none returned"
        return skipped("no-suggestions", f"no usable suggestion ({why})", sha)

    numbers = [int(m.group(1)) for m in map(_RELATED_KEY.match, map(str, meta)) if m]
    first = max(numbers, default=0) + 1
    links = tuple(
        PlannedLink(
            n=first + i,
            url=target.url,
            id=target.id,
            title=target.title,
            subject=target.subject,
            score=score,
        )
        for i, (target, score) in enumerate(chosen)
    )
    own = detect_style(text) if article.curated else None
    newline = _newline_before(text, end)
    block = "".join(render_block(link, own or style, newline) for link in links)
    plan = FilePlan(
        path=article.path,
        rel=rel,
        url=article.url,
        sha256=sha,
        insert_at=len(text[:end].encode("utf-8")),
        block=block.encode("utf-8"),
        links=links,
        existing=len(article.curated),
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
    style: LinkStyle | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[FilePlan]:
    """Plan the fill of a corpus: one :class:`FilePlan` per selected article.

    Nothing is written. Plans that cannot be carried out carry a ``skip``; the
    rest hold the verified bytes to insert and the hash of the file they were
    computed from. ``style`` defaults to the corpus's own (see :func:`corpus_style`).
    """
    chosen = select_articles(corpus, k, top_up)
    style = style or corpus_style(corpus)
    plans = []
    for i, article in enumerate(chosen):
        plans.append(plan_file(corpus, article, suggest, k=k, min_score=min_score, style=style))
        if progress is not None:
            progress(i + 1, len(chosen))
    return plans


# --------------------------------------------------------------------------- writing


def _write_one(plan: FilePlan, hook: Callable[[str, FilePlan], None] | None) -> Skip | None:
    """Replace one file atomically with its filled version, or say why not."""

    def skip(kind: str, detail: str) -> Skip:
        return Skip(plan.rel, plan.url, kind, detail)

    if hook is not None:
        hook("before_write", plan)
    path = plan.path
    try:
        old = path.read_bytes()
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        return skip("unreadable", f"cannot read file: {exc.strerror or exc}")
    if _sha256(old) != plan.sha256:
        return skip("changed-on-disk", "file changed on disk since it was planned")
    new = plan.apply(old)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(new)
                out.flush()
                os.fchmod(out.fileno(), mode)
                os.fsync(out.fileno())
            written = tmp.read_bytes()
        except OSError as exc:
            return skip("write-error", f"cannot write temporary file: {exc.strerror or exc}")
        problem = verify_change(path, old, written, plan)
        if problem is not None:
            return skip("verify-failed", problem)
        if hook is not None:
            hook("before_replace", plan)
        try:  # last look: an editor may have saved the file while we wrote ours
            if _sha256(path.read_bytes()) != plan.sha256:
                return skip("changed-on-disk", "file changed on disk while it was written")
            os.replace(tmp, path)
        except OSError as exc:
            return skip("write-error", f"cannot replace file: {exc.strerror or exc}")
        return None
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def apply_fill(
    plans: Sequence[FilePlan],
    *,
    hook: Callable[[str, FilePlan], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FillResult:
    """Write the planned blocks. A file edited since it was planned is skipped, not merged.

    ``hook(stage, plan)`` is called at ``"before_write"`` and ``"before_replace"``;
    it exists so tests can edit a file or kill the process at those moments.
    The caller should hold the folder's :class:`FillLock`.
    """
    result = FillResult(plans=list(plans))
    folders: set[Path] = set()
    todo = [p for p in plans if p.changes]
    result.skipped.extend(p.skip for p in plans if p.skip is not None)
    for i, plan in enumerate(todo):
        problem = _write_one(plan, hook)
        if problem is None:
            result.written.append(plan)
            folders.add(plan.path.parent)
        else:
            log.info("skipped %s: %s", plan.rel, problem.detail)
            result.skipped.append(problem)
        if progress is not None:
            progress(i + 1, len(todo))
    for folder in folders:  # make the renames durable, once per folder
        _fsync_dir(folder)
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


class FillLock:
    """One fill per content folder: ``.recommender-fill.lock`` created with O_EXCL.

    The file holds the pid of its owner, who also keeps an ``flock`` on it. A
    lock whose pid is dead is stale (the fill was killed) and is taken over
    with a warning; the flock makes sure only one of several fills that find
    the same stale lock takes it. A lock held by a live pid raises
    :class:`FillError`, naming the file to delete if that pid is not a fill.
    """

    def __init__(self, content_dir: str | Path):
        self.path = Path(content_dir) / LOCK_NAME
        self.taken_over_from: str | None = None
        self._fd: int | None = None

    def __enter__(self) -> FillLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _busy(self, holder: str) -> FillError:
        return FillError(
            f"another fill is running on {self.path.parent}: lock file {self.path} is held by"
            f" {holder}. Wait for it to finish; if no fill is running, delete {self.path}."
        )

    def _flock(self, fd: int) -> bool:
        if fcntl is None:  # pragma: no cover
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def _take_existing(self) -> int | None:
        """Open an existing lock; its fd if it is stale and now ours, ``None`` if it vanished."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FillError(f"cannot open lock file {self.path}: {exc.strerror or exc}") from None
        try:
            raw = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            if not self._flock(fd):
                raise self._busy(f"pid {raw or '?'} (a running fill)")
            if not raw:  # being created right now by another fill
                raise self._busy("a fill that is starting")
            try:
                pid = int(raw.split()[0])
            except ValueError:
                raise FillError(
                    f"lock file {self.path} does not hold a pid ({raw[:20]!r});"
                    f" if no fill is running, delete {self.path}"
                ) from None
            if _pid_alive(pid):
                raise self._busy(f"pid {pid}, which is still running")
        except BaseException:
            os.close(fd)
            raise
        self.taken_over_from = f"pid {pid}"
        log.warning("took over stale lock %s from pid %s, which is not running", self.path, pid)
        return fd

    def acquire(self) -> None:
        """Take the lock or raise :class:`FillError`; safe against concurrent fills."""
        if self._fd is not None:
            raise self._busy("this process")
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                maybe = self._take_existing()
                if maybe is None:
                    continue
                fd = maybe
            except OSError as exc:
                raise FillError(
                    f"cannot create lock file {self.path}: {exc.strerror or exc}"
                ) from None
            else:
                if not self._flock(fd):  # another fill took it between our create and flock
                    os.close(fd)
                    raise self._busy("a fill that is starting")
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the lock was released and deleted under us: start again
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            os.fsync(fd)
            self._fd = fd
            return
        raise FillError(f"could not take lock file {self.path}: it keeps changing")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None


# --------------------------------------------------------------------------- whole job


def fill(
    corpus: Corpus,
    suggest: Suggest,
    *,
    k: int = 5,
    top_up: bool = False,
    min_score: float | None = None,
    dry_run: bool = False,
    hook: Callable[[str, FilePlan], None] | None = None,
) -> FillResult:
    """Plan and write a fill of ``corpus`` under its folder's lock (none for a dry run).

    A dry run plans and returns the plans (see :func:`render_diff`) without
    creating, writing or deleting anything, not even the lock file.
    """
    if dry_run:
        return FillResult.planned(plan_fill(corpus, suggest, k, top_up, min_score))
    with FillLock(corpus.root) as lock:
        cleaned = clean_temp_files(Path(corpus.root))
        plans = plan_fill(corpus, suggest, k, top_up, min_score)
        result = apply_fill(plans, hook=hook)
        result.cleaned_temp_files = cleaned
        result.lock_taken_over = lock.taken_over_from
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
        old = plan.path.read_bytes()
    except OSError:
        return ""
    if _sha256(old) != plan.sha256:
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


def recommender_suggester(recommender: Any) -> Suggest:
    """Adapt a :class:`~recommender.recommender.Recommender` to the ``suggest`` callable.

    The fill depends only on the callable, so it can be tested with a fake and
    run with any ranking; this is the one place that knows the real API.
    """
    from recommender.recommender import Filters

    def suggest(article: Article, k: int, exclude_urls: set[str]) -> list[tuple[Article, float]]:
        found = recommender.related(article, k, Filters(exclude_urls=frozenset(exclude_urls)))
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
    "LOCK_NAME",
    "FilePlan",
    "FillLock",
    "FillResult",
    "LinkStyle",
    "PlannedLink",
    "Skip",
    "Suggest",
    "apply_fill",
    "check_report_path",
    "clean_temp_files",
    "corpus_style",
    "detect_style",
    "diff_file",
    "fill",
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
