"""Which files of a content folder changed since an index was built, read only those.

Loading a whole folder means parsing every file (seconds for tens of thousands);
an update should cost what changed. A scan lists the folder with each file's size
and modification time (one ``stat`` each) and compares them with the stamps the
index stored: an unchanged file's article is taken from the index (its metadata;
its text is not needed, since its vectors are kept), a new or changed one is
read, and one that is gone is deleted. A file whose stamp is within
:data:`RACY_NS` of the previous scan is read again anyway, since it may have
changed again within the clock's resolution (git's "racily clean" rule). Files
that are not articles are remembered too, so they are not read again while they
stay broken; files with a duplicate url are always read again (rare, and the one
that wins may change).

The articles are then assembled exactly as :func:`~recommender.corpus.load_corpus`
assembles them (duplicate urls, subject spellings, curated links), over the whole
folder, in the same file order.

With ``keep_last_good``, a file that was an article and now fails to load keeps
its last good version (the service's rule: one broken save must not take an
article off the site); the scan reports it as *held*.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from recommender.corpus import (
    Article,
    Corpus,
    FieldWarning,
    LinkChanges,
    LinkMemo,
    LoadIssue,
    build_corpus,
    check_file,
    list_folder,
    read_one,
)
from recommender.errors import CorpusError
from recommender.schema import Schema, detect_schema

# -- stamps --------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    """A file's size and modification time: unchanged stamps mean an unchanged file."""

    mtime_ns: int
    size: int

    @classmethod
    def of(cls, stat: os.stat_result) -> Stamp:
        return cls(stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True)
class Source:
    """Where one row's article came from, and a fingerprint of what the ranking reads of it.

    ``subject`` is the subject as written in the file (the article's own is the
    spelling most files use), so a later update can normalise spellings afresh.
    """

    fingerprint: str
    stamp: Stamp
    subject: str


@dataclass(frozen=True)
class FileIssue:
    """A file of the content folder that does not load, with its stamp and why.

    ``held``: the file was an article and its last good version is still served
    (see ``keep_last_good``); otherwise it is simply not an article.
    """

    path: str  # relative to the content folder
    stamp: Stamp
    reason: str
    held: bool = False


def relative_path(path: str | Path, root: str | Path) -> str:
    """``path`` relative to ``root`` when inside it, else as given (no filesystem access).

    String operations only: it runs for every article of every update.
    """
    p, r = os.fspath(path), os.fspath(root)
    if p.startswith(r + os.sep):
        return p[len(r) + len(os.sep):]
    if os.path.isabs(p) and os.path.isabs(r):
        return p
    ap, ar = os.path.abspath(p), os.path.abspath(r)
    if ap.startswith(ar + os.sep):
        return ap[len(ar) + len(os.sep):]
    return p


#: a file stamped this close to the previous scan (or after it) is read again
RACY_NS = 2_000_000_000
DUPLICATE = "duplicate url"


@dataclass
class ScanCache:
    """What a scan learned that the next one can reuse (in memory, never saved): the
    folder's files in walk order with their stamps, and their full paths. A server
    updating its snapshot again and again then neither sorts nor builds paths anew."""

    listing: list[tuple[str, Stamp]]
    paths: dict[str, Path]
    links: LinkMemo | None = None  # how the scan's corpus resolved its links


@dataclass
class Known:
    """What an index knows of its folder's files, by path relative to the folder."""

    articles: dict[str, tuple[Article, Source]] = field(default_factory=dict)
    issues: dict[str, FileIssue] = field(default_factory=dict)
    scanned_at_ns: int = 0
    cache: ScanCache | None = None

    @classmethod
    def of(cls, root: Path, articles: Sequence[Article], sources: Sequence[Source],
           issues: Sequence[FileIssue], scanned_at_ns: int,
           cache: ScanCache | None = None) -> Known:
        # an index's paths are relative to its folder already
        return cls({p if not os.path.isabs(p) else relative_path(p, root): (a, s)
                    for a, s in zip(articles, sources) for p in [str(a.path)]},
                   {i.path: i for i in issues}, scanned_at_ns, cache)


@dataclass
class FolderScan:
    """A scanned folder: its corpus, and what was read afresh."""

    corpus: Corpus
    stamps: dict[str, Stamp]  # by article url
    subjects: dict[str, str]  # subject as written in the file, by article url
    read: set[str]  # urls of articles read from disk by this scan (their answers are loaded)
    issues: list[FileIssue]  # files that do not load (held ones included), to remember
    files_read: int = 0
    scanned_at_ns: int = 0
    cache: ScanCache | None = None

    @property
    def held(self) -> list[FileIssue]:
        """Files that turned broken; their last good version is kept."""
        return [i for i in self.issues if i.held]


def walk_articles(root: Path) -> tuple[list[tuple[str, Stamp]], list[LoadIssue]]:
    """Every readable ``*.md`` under ``root`` (relative path, stamp), in the order
    :func:`~recommender.corpus.list_folder` gives (a folder's files by name, then its
    sub-folders by name), and the entries that are not read, with why (FIFOs, links
    out of the folder, unreadable folders: see there)."""
    listing = list_folder(root)
    out = [(os.path.relpath(path, root), Stamp.of(st)) for path, st in listing.files]
    return out, listing.issues


def _copy(article: Article, subject: str, path: Path) -> Article:
    """A copy of an index's article to assemble a corpus with (which sets subjects and
    links on it): the index's own objects are never changed, a server may be reading them."""
    out = object.__new__(type(article))
    out.__dict__.update(article.__dict__)  # a shallow copy: every field is immutable
    out.subject, out.path = subject, path
    return out


def _walk_key(path: str) -> list[tuple[int, str]]:
    parts = path.split(os.sep)
    return [(1, p) for p in parts[:-1]] + [(0, parts[-1])]


def _known_stamp(known: Known, path: str) -> Stamp:
    """The stamp a file had at the last scan (a held file's: its broken version's)."""
    issue = known.issues.get(path)
    if issue is not None and (issue.held or path not in known.articles):
        return issue.stamp
    return known.articles[path][1].stamp


Read = tuple[Article | LoadIssue, list[FieldWarning]]
#: parses files (paths, relative paths, schema) into one :data:`Read` per file, in order:
#: this module's process pool by default, Ray workers under ``build --engine ray``
Reader = Callable[[list[Path], list[str], Schema], list[Read]]


def _read_all(paths: list[Path], rels: list[str], schema: Schema) -> list[Read]:
    return [read_one(path, schema, rel) for path, rel in zip(paths, rels, strict=True)]


def _read(paths: list[Path], rels: list[str], schema: Schema) -> list[Read]:
    """Parse files, on several processes when there are many (as a full load does)."""
    workers = min(os.cpu_count() or 1, 4)
    if workers < 2 or len(paths) <= 2000:
        return _read_all(paths, rels, schema)
    size = -(-len(paths) // (workers * 4))
    starts = range(0, len(paths), size)
    with ProcessPoolExecutor(workers) as pool:
        return [item for chunk in pool.map(
            _read_all, [paths[i : i + size] for i in starts], [rels[i : i + size] for i in starts],
            [schema] * len(starts)) for item in chunk]


def scan_folder(root: str | Path, known: Known | None = None, schema: Schema | None = None,
                only: Iterable[str | Path] | None = None, keep_last_good: bool = False,
                reread: bool = False, reader: Reader | None = None) -> FolderScan:
    """Scan ``root`` against what an index ``known``; read only new or changed files.

    ``only``: the files known to have changed (e.g. from a file watcher); every
    other file is taken as unchanged without a ``stat``. ``reread``: read every
    file (a full load). ``reader``: what parses the files to read (default: local
    processes). ``schema``: which field holds what (``None``: detected from a
    sample of the files; the corpus' report says which and why). Raises
    :class:`CorpusError` if the folder is unusable.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"content folder {root} does not exist or is not a folder")
    started = time.time_ns()
    known = known or Known()
    unread: list[LoadIssue] = []  # entries that are never read (FIFOs, links out, ...)
    if only is None:
        listing, unread = walk_articles(root)
    else:
        changed = {os.path.relpath(os.path.abspath(p), os.path.abspath(root)) for p in only}
        if known.cache is not None:  # the last scan's listing, in order: no sort
            listing = [item for item in known.cache.listing if item[0] not in changed]
        else:
            listing = [(p, _known_stamp(known, p))
                       for p in (set(known.articles) | set(known.issues)) - changed]
            listing.sort(key=lambda item: _walk_key(item[0]))
        real_root = root.resolve()
        for p in sorted(changed):
            if not p.endswith(".md") or not os.path.lexists(root / p):
                continue  # not an article file, or deleted
            problem, st = check_file(root / p, real_root)
            if problem or st is None:
                unread.append(LoadIssue(str(root / p), problem or "cannot be read"))
            else:
                bisect.insort(listing, (p, Stamp.of(st)), key=lambda item: _walk_key(item[0]))
    if not listing:
        raise CorpusError(f"content folder {root} holds no readable *.md files")
    reason = f"{schema.name}: given" if schema is not None else ""
    if schema is None:
        schema, reason = detect_schema([root / p for p, _ in listing], root)
    to_read: list[int] = []
    items: list[Article | LoadIssue | None] = []
    article_stamps: dict[int, Stamp] = {}  # when an article's stamp is not the file's
    held: list[FileIssue] = []
    racy_before = known.scanned_at_ns - RACY_NS
    paths = dict(known.cache.paths) if known.cache is not None else {}

    def full(path: str) -> Path:
        found = paths.get(path)
        if found is None:
            found = paths[path] = root / path
        return found

    for position, (path, stamp) in enumerate(listing):
        old = known.articles.get(path)
        issue = known.issues.get(path)
        fresh = not reread and stamp.mtime_ns < racy_before
        if fresh and old is not None and old[1].stamp == stamp:
            items.append(_copy(old[0], old[1].subject, full(path)))
        elif fresh and issue is not None and issue.stamp == stamp and issue.reason != DUPLICATE:
            if issue.held and keep_last_good and old is not None:  # still broken: keep holding
                items.append(_copy(old[0], old[1].subject, full(path)))
                article_stamps[position] = old[1].stamp
                held.append(issue)
            else:
                items.append(LoadIssue(str(root / path), issue.reason))
        else:
            items.append(None)
            to_read.append(position)
    parsed = (reader or _read)([full(listing[i][0]) for i in to_read],
                               [listing[i][0] for i in to_read], schema)
    read_urls: set[str] = set()
    warnings: list[FieldWarning] = []
    for position, (item, field_warnings) in zip(to_read, parsed, strict=True):
        warnings += field_warnings
        path, stamp = listing[position]
        old = known.articles.get(path)
        if isinstance(item, LoadIssue) and keep_last_good and old is not None:
            held.append(FileIssue(path, stamp, item.reason, held=True))
            item = _copy(old[0], old[1].subject, full(path))
            article_stamps[position] = old[1].stamp  # a fixed file will differ from it
        elif isinstance(item, Article):
            read_urls.add(item.url)
        items[position] = item
    stamps: dict[str, Stamp] = {}
    subjects: dict[str, str] = {}
    for position, ((_, stamp), item) in enumerate(zip(listing, items, strict=True)):
        if isinstance(item, Article):
            stamps.setdefault(item.url, article_stamps.get(position, stamp))
            subjects.setdefault(item.url, item.subject)
    links = None
    if known.cache is not None and known.cache.links is not None and not reread:
        fresh = [item for i in to_read if isinstance(item := items[i], Article)]
        links = _link_changes(known, listing, fresh, [listing[i][0] for i in to_read],
                              known.cache.links)
    corpus = build_corpus(root, [*unread, *(i for i in items if i is not None), *warnings],
                          files=len(listing) + len(unread), schema=schema, schema_reason=reason,
                          links=links)
    if not corpus.articles:
        raise CorpusError(f"content folder {root}: none of its {len(listing)} files is an "
                          "article")
    stamp_of = dict(listing)
    issues = list(held)
    for problems, reason in ((corpus.report.errors, None),
                             (corpus.report.duplicate_urls, DUPLICATE)):
        for e in problems:
            rel = os.path.relpath(e.path, root)
            if rel in stamp_of:
                issues.append(FileIssue(rel, stamp_of[rel], reason or e.reason))
    issues.sort(key=lambda i: _walk_key(i.path))
    if len(paths) > 2 * len(listing):  # files come and go: forget the departed
        paths = {p: paths[p] for p, _ in listing if p in paths}
    return FolderScan(corpus, stamps, subjects, read_urls, issues, len(to_read), started,
                      ScanCache(listing, paths, corpus.links))


def _link_changes(known: Known, listing: list[tuple[str, Stamp]], fresh: list[Article],
                  read_paths: list[str], memo: LinkMemo) -> LinkChanges:
    """What a scan changed that links can name: the urls and ids of every article read
    again (before and after) and of every article whose file went away."""
    listed = {path for path, _ in listing}
    departed = [path for path in known.articles if path not in listed]
    names: set[str] = set()
    for article in [*(known.articles[p][0] for p in [*read_paths, *departed]
                      if p in known.articles), *fresh]:
        names.add(article.url)
        if article.id is not None:
            names.add(article.id)
    return LinkChanges(memo, frozenset(a.url for a in fresh), frozenset(names))
