"""Load a content folder of markdown articles into a :class:`Corpus`.

An article is keyed by its url, which is unique; its ``id`` (where the schema
has one) identifies the *content*, so files that share an id are copies of one
article filed under several subjects. Which front-matter field holds what is the
folder's :class:`~recommender.schema.Schema`: given, or detected from a sample of
the files. Curated links, numbered ``related_articleN`` blocks (by url, then by
id) or ``related: [...]`` lists (by url, path or slug), are resolved to
articles, with self-links and repeats dropped and dangling ones reported.

One broken or hostile file never stops a load: only regular files inside the
folder are read, with a size cap, and their YAML is measured before it is
expanded (:mod:`recommender.frontmatter`). Anything else becomes one entry of
the :class:`LoadReport` (path and reason) and the rest loads. A field of the
wrong type (``url: [1, 2]``) is reported too: a required one drops the file, an
optional one is ignored with a warning.

Example:
    >>> corpus = load_corpus("demo/content")          # doctest: +SKIP
    >>> corpus.get("what-are-the-latest-advancements-in-radiation-therapy-for-leukemia").subject
    'Medicine'
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
import stat
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from recommender.errors import CorpusError
from recommender.frontmatter import (
    ArticleParseError,
    decode,
    kind_of,
    load_front_matter,
    read_regular_file,
    split_front_matter,
)
from recommender.references import References
from recommender.schema import Schema, builtin_schema, detect_schema, lookup


@dataclass(frozen=True)
class CuratedLink:
    """One curated link as written in a file: a numbered block, or one item of a list."""

    n: int
    id: str | None
    title: str
    subject: str
    url: str | None  # for a list item: the item as written (a url, a path or a slug)
    source: str = ""  # where it is written: "related_article3", "related[2]"


@dataclass
class Article:
    """One article (one file). ``url`` is the key; ``content_key`` groups copies."""

    url: str
    id: str | None
    title: str
    question: str
    answer: str
    subject: str
    keywords: tuple[str, ...]
    path: Path
    no_index: bool = False
    description: str = ""
    date: str | None = None  # kept for display only: never a ranking signal
    curated: tuple[CuratedLink, ...] = ()
    links: tuple[str, ...] = ()  # resolved target urls, deduplicated, no self
    #: every top-level scalar of the front matter, as text (dates ISO, booleans true/false),
    #: for filters such as "same section"; never a ranking signal
    fields: dict[str, str] = field(default_factory=dict, repr=False)
    group: str | None = None  # the schema's grouping field (evaluation folds only)
    schema: str = ""  # name of the schema the file was read with

    @cached_property
    def content_key(self) -> str:
        """Identity of the content: copies of one article share it (kept once computed: a
        corpus asks it of every article and link at every update)."""
        return f"id:{self.id}" if self.id is not None else f"url:{self.url}"

    @property
    def slug(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class LoadIssue:
    """A file that could not be loaded, or a link that could not be resolved."""

    path: str
    reason: str


@dataclass(frozen=True)
class FieldWarning(LoadIssue):
    """A field that was ignored (wrong type), in a file that did load."""


@dataclass
class LoadReport:
    """What a load found: counts, quirks and every problem, with the file it is in."""

    files: int = 0
    articles: int = 0
    errors: list[LoadIssue] = field(default_factory=list)
    warnings: list[LoadIssue] = field(default_factory=list)
    duplicate_urls: list[LoadIssue] = field(default_factory=list)
    copy_groups: int = 0  # ids shared by more than one file
    copy_files: int = 0  # files in such groups
    no_index: int = 0
    with_links: int = 0
    without_links: int = 0
    links_total: int = 0
    links_by_url: int = 0
    links_by_id: int = 0
    links_by_path: int = 0
    links_by_slug: int = 0
    dangling: list[LoadIssue] = field(default_factory=list)
    self_links: int = 0
    repeated_links: int = 0
    subjects: int = 0
    subject_spellings: int = 0
    negative_ids: int = 0
    schema: str = ""
    schema_reason: str = ""
    by_schema: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "articles": self.articles,
            "schema": {"name": self.schema, "reason": self.schema_reason,
                       "files": dict(self.by_schema)},
            "errors": [vars(e) for e in self.errors],
            "warnings": [vars(e) for e in self.warnings],
            "duplicate_urls": [vars(e) for e in self.duplicate_urls],
            "copies": {"ids": self.copy_groups, "files": self.copy_files},
            "no_index": self.no_index,
            "articles_with_links": self.with_links,
            "articles_without_links": self.without_links,
            "links": {
                "total": self.links_total,
                "resolved_by_url": self.links_by_url,
                "resolved_by_id": self.links_by_id,
                "resolved_by_path": self.links_by_path,
                "resolved_by_slug": self.links_by_slug,
                "dangling": len(self.dangling),
                "self_links_dropped": self.self_links,
                "repeats_dropped": self.repeated_links,
            },
            "dangling_links": [vars(e) for e in self.dangling],
            "subjects": {"distinct": self.subjects, "spellings": self.subject_spellings},
            "negative_ids": self.negative_ids,
        }


#: the schema :func:`parse_article` reads with when none is given
QUICKTAKES = builtin_schema("quicktakes")
#: a folder with more files than this is read by a pool of worker processes
PARALLEL_MIN_FILES = 2000


# --------------------------------------------------------------------------- values


class _WrongType(ValueError):
    """A field holds a list or mapping (or a bad item) where text was expected."""


_TEXT_TYPES = (str, int, float, dt.date)  # bool is an int; datetime is a date


def _kind(value: Any) -> str:
    return {list: "list", dict: "mapping"}.get(type(value), type(value).__name__)


def _text(value: Any, path: str) -> str:
    """A scalar as text; :class:`_WrongType` for a list or mapping (``url: [1, 2]``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _TEXT_TYPES):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    raise _WrongType(f"field {path!r} is a {_kind(value)}, not text")


def _ident(value: Any, path: str) -> str | None:
    """Ids are compared as strings: ``2143`` and ``"2143"`` are the same article."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _text(value, path) or None


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0", ""}


def _flag(value: Any, path: str) -> bool:
    """A yes/no field: a YAML boolean, a number, or a word such as ``"true"`` or ``"no"``."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int, float)):
        return value != 0
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise _WrongType(f"field {path!r} is {value!r}, not true or false")


def _keywords(raw: Any, path: str) -> tuple[str, ...]:
    """A list of phrases, or one comma-separated string of them."""
    if isinstance(raw, list):
        items = [_text(i, f"{path}[{n}]") for n, i in enumerate(raw)]
    else:
        items = _text(raw, path).split(",")
    return tuple(k for k in (i.strip().lower() for i in items) if k)


def _subject(raw: Any, path: str) -> str:
    """A subject or section; of a list (Jekyll's ``categories``), the first item."""
    if isinstance(raw, list):
        return _text(raw[0], f"{path}[0]") if raw else ""
    return _text(raw, path)


def _raw_fields(meta: Mapping[Any, Any]) -> dict[str, str]:
    """Every top-level scalar as text, for ``same=FIELD`` filters (lists and mappings left out)."""
    out = {}
    for key, value in meta.items():
        if isinstance(key, str) and isinstance(value, _TEXT_TYPES):
            out[key] = _text(value, key)
    return out


def _optional(value: Any, path: str, convert: Any, default: Any, warnings: list[str]) -> Any:
    """``convert(value)``, or ``default`` with a warning when the value has the wrong type."""
    if value is None:
        return default
    try:
        return convert(value, path)
    except _WrongType as exc:
        warnings.append(f"{exc}: ignored")
        return default


class _Fields:
    """Reads one file's fields under a schema, collecting warnings for optional ones."""

    def __init__(self, meta: Mapping[str, Any], schema: Schema, warnings: list[str]):
        self.meta, self.schema, self.warnings = meta, schema, warnings

    def required(self, name: str) -> str:
        path, value = self.schema.get(self.meta, name)
        try:
            return _text(value, path)
        except _WrongType as exc:
            raise ArticleParseError(str(exc)) from None

    def optional(self, name: str, convert: Any = _text, default: Any = "") -> Any:
        path, value = self.schema.get(self.meta, name)
        return _optional(value, path, convert, default, self.warnings)


def _block_links(meta: Mapping[Any, Any], schema: Schema,
                 warnings: list[str]) -> list[CuratedLink]:
    prefix = schema.links.numbered
    if not prefix:
        return []
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    names = schema.links.block
    links = []
    for key, value in meta.items():
        m = pattern.match(str(key))
        if not m:
            continue
        if not isinstance(value, Mapping):
            warnings.append(f"field {key!r} is a {_kind(value)}, not a block of link fields:"
                            " ignored")
            continue
        def sub(name: str, convert: Any = _text, default: Any = "",
                block: Mapping[Any, Any] = value, key: str = str(key)) -> Any:
            return _optional(block.get(name), f"{key}.{name}", convert, default, warnings)

        links.append(CuratedLink(
            n=int(m.group(1)),
            id=sub(names.id, _ident, None),
            title=sub(names.title),
            subject=sub(names.subject),
            url=sub(names.url) or None,
            source=str(key),
        ))
    return sorted(links, key=lambda link: link.n)


def _list_links(meta: Mapping[Any, Any], schema: Schema, first: int,
                warnings: list[str]) -> list[CuratedLink]:
    links = []
    for key in schema.links.lists:
        value = lookup(meta, key)
        if value is None:
            continue
        if not isinstance(value, list):
            warnings.append(f"field {key!r} is a {_kind(value)}, not a list of links: ignored")
            continue
        for i, item in enumerate(value):
            if isinstance(item, Mapping):  # [{url: ...}], as some themes write them
                item = item.get("url")
            try:
                ref = _text(item, f"{key}[{i}]")
            except _WrongType as exc:
                warnings.append(f"{exc}: ignored")
                continue
            if ref:
                links.append(CuratedLink(n=first + len(links), id=None, title="", subject="",
                                         url=ref, source=f"{key}[{i}]"))
    return links


# --------------------------------------------------------------------------- one file


def parse_article(path: Path, text: str, schema: Schema = QUICKTAKES, rel: str | None = None,
                  warnings: list[str] | None = None) -> Article:
    """Parse one file's text. Raises :class:`ArticleParseError` saying what is wrong.

    ``rel`` is the path under the content folder (urls derived from paths need
    it; the file name is used without it). Problems with optional fields are
    appended to ``warnings`` and the field is ignored.
    """
    meta, body = load_front_matter(text)
    schema = schema.for_file(meta)
    warnings = warnings if warnings is not None else []
    f = _Fields(meta, schema, warnings)
    url = f.required("url")
    if not url and schema.url_from_path is not None:
        url = schema.url_from_path.url_of(rel or path.name)
    if not url:
        raise ArticleParseError(f"missing required field {schema.url[0]!r}"
                                if schema.url else "no url (no url field, none from the path)")
    title = f.required("title")
    question = f.required("question") or title
    if not question:
        names = " or ".join(repr(p) for p in (schema.title[:1] + schema.question[:1]))
        raise ArticleParseError(f"missing required field {names}")
    body = body.strip() if schema.markdown_body else ""
    if body == "&nbsp;":
        body = ""
    description = f.optional("description")
    # a post without a body is its own summary: the first description path only, since an
    # SEO blurb alone is no article
    summary = description if schema.get(meta, "description")[0] in schema.description[:1] else ""
    answer = f.required("body") or body or summary
    if not answer:
        if schema.body:
            more = " (or a markdown body)" if schema.markdown_body else ""
            raise ArticleParseError(f"missing required field {schema.body[0]!r}{more}")
        raise ArticleParseError("no text: the markdown body is empty and there is no "
                                f"{(schema.description or ('description',))[0]!r}")
    curated = _block_links(meta, schema, warnings)
    curated += _list_links(meta, schema, max((c.n for c in curated), default=0) + 1, warnings)
    group = _optional(lookup(meta, schema.group), schema.group, _text, None, warnings) \
        if schema.group else None
    return Article(
        url=url,
        id=f.optional("id", _ident, None),
        title=title or question,
        question=question,
        answer=answer,
        subject=f.optional("subject", _subject),
        keywords=f.optional("keywords", _keywords, ()),
        path=path,
        no_index=f.optional("no_index", _flag, False),
        description=description,
        date=f.optional("date", _text, None) or None,
        curated=tuple(curated),
        fields=_raw_fields(meta),
        group=group or None,
        schema=schema.name,
    )


def read_article(path: Path, schema: Schema = QUICKTAKES, rel: str | None = None,
                 warnings: list[str] | None = None) -> Article:
    """Read and parse one regular file; any problem becomes an :class:`ArticleParseError`."""
    return parse_article(path, decode(read_regular_file(path)), schema, rel, warnings)


def read_one(path: Path, schema: Schema, rel: str | None = None
             ) -> tuple[Article | LoadIssue, list[FieldWarning]]:
    """One file as an article (or why it is not one), with the warnings of its fields."""
    warnings: list[str] = []
    try:
        item: Article | LoadIssue = read_article(path, schema, rel, warnings)
    except ArticleParseError as exc:
        item = LoadIssue(str(path), str(exc))
    return item, [FieldWarning(str(path), w) for w in warnings]


def _read_many(paths: list[Path], schema: Schema, rels: list[str]) -> list[Article | LoadIssue]:
    out: list[Article | LoadIssue] = []
    for path, rel in zip(paths, rels, strict=True):
        item, warnings = read_one(path, schema, rel)
        out.append(item)
        out.extend(warnings)
    return out


def subject_key(subject: str) -> str:
    """Case- and space-insensitive key: 'Computer science' and 'Computer Science' match."""
    return " ".join(subject.split()).casefold()


class Corpus:
    """The articles of one content folder, with the indexes needed to resolve references."""

    def __init__(self, root: Path, articles: list[Article], report: LoadReport,
                 schema: Schema = QUICKTAKES, by_url: dict[str, Article] | None = None,
                 by_id: dict[str, list[Article]] | None = None):
        self.root = root
        self.articles = articles
        self.report = report
        self.schema = schema  # what the folder was read with (detected or given)
        # ``by_url`` and ``by_id``: given by build_corpus, which made them for the links
        self.by_url: dict[str, Article] = by_url if by_url is not None else {
            a.url: a for a in articles}
        if by_id is None:
            by_id = defaultdict(list)
            for a in articles:
                if a.id is not None:
                    by_id[a.id].append(a)
        self.by_id = by_id
        self.links: LinkMemo | None = None  # how the links were resolved, for the next scan
        self.written_subjects: dict[str, str] = {}  # by url, where the file spells it otherwise
        self._references: References | None = None

    def __len__(self) -> int:
        return len(self.articles)

    def __iter__(self) -> Iterator[Article]:
        return iter(self.articles)

    def copies(self, article: Article) -> list[Article]:
        """Other files holding the same content (same id), not the article itself."""
        if article.id is None:
            return []
        return [a for a in self.by_id.get(article.id, []) if a.url != article.url]

    def get(self, ref: str) -> Article:
        """Find an article by url, id, path or slug (:mod:`recommender.references`).

        Raises :class:`ArticleNotFound`.
        """
        if self._references is None:
            self._references = References(self.articles, self.root)
        return self.articles[self._references.row(ref)]

    def schema_of(self, article: Article) -> Schema:
        """The schema ``article``'s file was read with (the folder's, or a fallback)."""
        if article.schema in ("", self.schema.name):
            return self.schema
        return builtin_schema(article.schema)


def _normalise_subjects(articles: list[Article], report: LoadReport) -> dict[str, str]:
    """Give each subject its most used spelling; returns the spellings replaced, by url
    (what the files say, so an index built from this corpus can normalise afresh later)."""
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for a in articles:
        if a.subject:
            spellings[subject_key(a.subject)][a.subject] += 1
    # the most used spelling wins; ties go to the capitalised one, which sorts first
    display = {k: min(c, key=lambda s: (-c[s], s)) for k, c in spellings.items()}
    written: dict[str, str] = {}
    for a in articles:
        if a.subject and (shown := display[subject_key(a.subject)]) != a.subject:
            written[a.url] = a.subject
            a.subject = shown
    report.subjects = len(display)
    report.subject_spellings = sum(len(c) for c in spellings.values())
    return written


#: what resolving one article's links adds to the report: links_total, by url, by path, by
#: slug, by id, self links, repeated links; and its dangling links
_TALLY_FIELDS = ("links_total", "links_by_url", "links_by_path", "links_by_slug",
                 "links_by_id", "self_links", "repeated_links")


@dataclass(frozen=True)
class LinkTally:
    """What resolving one article's links added to the load report."""

    counts: tuple[int, ...]  # as _TALLY_FIELDS
    dangling: tuple[LoadIssue, ...] = ()


@dataclass
class LinkMemo:
    """A load's link resolution, kept in memory for the next scan of the folder.

    Each article's tally (by url), and who names each url and id in a link. A scan that
    read a few files again then resolves only the links of those files and of the
    articles that name one of them (or named one of the articles that went away): a
    server following its folder does not resolve the 100k links of a large site at every
    edit. Sites that write links as list items (paths, slugs) are resolved in full: any
    new or departed file can change what a slug means.
    """

    tallies: dict[str, LinkTally] = field(default_factory=dict)
    citing: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    list_items: bool = False


@dataclass(frozen=True)
class LinkChanges:
    """What changed since the load a :class:`LinkMemo` is of: the urls read again (or new),
    and every url and id of an article that was added, read again or went away."""

    memo: LinkMemo
    fresh: frozenset[str]
    names: frozenset[str]


def _resolve_links(root: Path, articles: list[Article], by_url: Mapping[str, Article],
                   by_id: Mapping[str, list[Article]], report: LoadReport,
                   changes: LinkChanges | None = None) -> LinkMemo:
    """Resolve every article's curated links to article urls (``Article.links``) and count
    how, reusing ``changes.memo`` for the articles that no change can reach."""
    redo: set[str] = set()
    if changes is not None and not changes.memo.list_items:
        # a new memo: the previous snapshot's stays as it was (an update may fail and the
        # next one start from it again). ``citing`` is shared: entries are only ever added,
        # and one too many only resolves an article again
        memo = LinkMemo(dict(changes.memo.tallies), changes.memo.citing)
        redo = set(changes.fresh)
        for name in changes.names:
            redo |= memo.citing.get(name, set())
    else:
        memo = LinkMemo()
    refs: _ListRefs | None = None  # built at the first list item (QuickTakes has none)
    tallies = memo.tallies
    for a in articles:
        if a.url not in redo and a.url in tallies:
            continue  # no change reaches its links: the copy's links and tally stand
        counts = [0] * len(_TALLY_FIELDS)
        dangling: list[LoadIssue] = []
        seen: set[str] = set()
        resolved: list[str] = []
        for link in a.curated:
            counts[0] += 1
            if link.url:
                memo.citing[link.url].add(a.url)
            if link.id is not None:
                memo.citing[link.id].add(a.url)
            target = by_url.get(link.url) if link.url else None
            if target is not None:
                counts[1] += 1
            elif link.source.endswith("]"):  # a list item: a url in another spelling, a path
                memo.list_items = True
                refs = refs or _ListRefs(root, articles)
                target, how = refs.find(link.url or "", a)
                if target is None:
                    dangling.append(LoadIssue(str(a.path), f"{link.source} -> {link.url}"
                                              " resolves to no article by url, path or"
                                              f" slug{how}"))
                    continue
                counts[1] += how == "url"
                counts[2] += how == "path"
                counts[3] += how == "slug"
            elif link.id is not None and link.id in by_id:
                candidates = by_id[link.id]
                same_subject = [c for c in candidates
                                if subject_key(c.subject) == subject_key(link.subject)]
                target = (same_subject or candidates)[0]
                counts[4] += 1
            else:
                dangling.append(LoadIssue(
                    str(a.path), f"{link.source or f'related_article{link.n}'} -> "
                    f"{link.url or link.id} resolves to no article by url or id"))
                continue
            if target.content_key == a.content_key:
                counts[5] += 1
                continue
            if target.content_key in seen:
                counts[6] += 1
                continue
            seen.add(target.content_key)
            resolved.append(target.url)
        a.links = tuple(resolved)
        tallies[a.url] = LinkTally(tuple(counts), tuple(dangling))
    ordered = [tallies[a.url] for a in articles]
    totals = [sum(column) for column in zip(*(t.counts for t in ordered), strict=True)]
    for name, total in zip(_TALLY_FIELDS, totals or [0] * len(_TALLY_FIELDS), strict=True):
        setattr(report, name, getattr(report, name) + total)
    report.dangling += [d for t in ordered if t.dangling for d in t.dangling]
    linked = sum(1 for a in articles if a.curated)
    report.with_links += linked
    report.without_links += len(articles) - linked
    if len(tallies) > 2 * len(articles):  # articles come and go: forget the departed
        memo.tallies = {a.url: tallies[a.url] for a in articles}
    return memo


class _ListRefs:
    """Finds the article a list item names: a url spelt differently, a path, or a slug.

    Hugo and Jekyll sites write ``related`` items as urls (``/man1/ls.1/``), as
    paths of the content folder (``man1/ls.1.md``, ``../man1/ls.1.md``) or as
    bare slugs (``ls.1``); a slug counts only if one article has it.
    """

    def __init__(self, root: Path, articles: list[Article]):
        self.root = root
        self.by_url = {a.url.strip("/"): a for a in articles}
        self.by_rel: dict[str, Article] = {}
        slugs: dict[str, list[Article]] = defaultdict(list)
        for a in articles:
            rel = self.rel(a)
            self.by_rel[rel.removesuffix(".md")] = a
            for slug in {a.slug, a.path.stem}:
                slugs[slug].append(a)
        self.by_slug = {s: found[0] for s, found in slugs.items() if len(found) == 1}
        self.ambiguous = {s for s, found in slugs.items() if len(found) > 1}

    def rel(self, a: Article) -> str:
        try:
            return a.path.relative_to(self.root).as_posix()
        except ValueError:
            return a.path.as_posix()

    def find(self, item: str, source: Article) -> tuple[Article | None, str]:
        """(article, how it was found), or (None, a hint why not)."""
        ref = item.strip().split("#", 1)[0]
        if ref.strip("/") in self.by_url:
            return self.by_url[ref.strip("/")], "url"
        plain = ref.removeprefix("./").strip("/").removesuffix(".md")
        if plain in self.by_rel:
            return self.by_rel[plain], "path"
        here = posixpath.dirname(self.rel(source))
        near = posixpath.normpath(posixpath.join(here, ref)).removesuffix(".md")
        if near in self.by_rel:
            return self.by_rel[near], "path"
        slug = plain.rsplit("/", 1)[-1]
        if slug in self.by_slug:
            return self.by_slug[slug], "slug"
        return None, (f" (slug {slug!r} is ambiguous)" if slug in self.ambiguous else "")


def build_corpus(root: Path, parsed: Iterable[Article | LoadIssue], files: int,
                 schema: Schema | None = None, schema_reason: str = "",
                 links: LinkChanges | None = None) -> Corpus:
    """Assemble a corpus from parsed files: dedupe urls, normalise subjects, resolve links.

    ``links``: the previous load's resolution and what changed since (a scan of a folder
    already indexed): only the links a change can reach are resolved again.
    """
    report = LoadReport(files=files)
    articles: list[Article] = []
    by_url: dict[str, Article] = {}
    for item in parsed:
        if isinstance(item, FieldWarning):
            report.warnings.append(item)
        elif isinstance(item, LoadIssue):
            report.errors.append(item)
        elif item.url in by_url:
            report.duplicate_urls.append(LoadIssue(
                str(item.path), f"url {item.url} already used by {by_url[item.url].path}"))
        else:
            by_url[item.url] = item
            articles.append(item)
    by_id: dict[str, list[Article]] = defaultdict(list)
    for a in articles:
        if a.id is not None:
            by_id[a.id].append(a)
    groups = [g for g in by_id.values() if len(g) > 1]
    report.copy_groups, report.copy_files = len(groups), sum(len(g) for g in groups)
    report.no_index = sum(a.no_index for a in articles)
    report.negative_ids = sum(1 for a in articles if a.id and a.id.startswith("-"))
    report.by_schema = dict(Counter(a.schema for a in articles).most_common())
    schema = schema or QUICKTAKES
    report.schema, report.schema_reason = schema.name, schema_reason
    written = _normalise_subjects(articles, report)
    memo = _resolve_links(root, articles, by_url, by_id, report, links)
    report.articles = len(articles)
    corpus = Corpus(root, articles, report, schema, by_url, by_id)
    corpus.links = memo
    corpus.written_subjects = written
    return corpus


# --------------------------------------------------------------------------- the folder


@dataclass
class FolderListing:
    """The readable article files of a folder with their ``stat``, and what was not read."""

    files: list[tuple[Path, os.stat_result]]
    issues: list[LoadIssue]
    names: int  # ``*.md`` names seen, read or not

    @property
    def paths(self) -> list[Path]:
        return [path for path, _ in self.files]


def list_folder(root: Path) -> FolderListing:
    """Every regular ``*.md`` file inside ``root`` with its ``stat``, in a stable order.

    A folder's files by name, then its sub-folders by name. Hidden folders are
    skipped silently; symlinked folders are not followed; a symlinked file is
    read only if it resolves to a regular file inside ``root``; FIFOs, devices,
    sockets, unreadable folders and names that are not UTF-8 are reported.
    """
    real_root = root.resolve()
    files: list[tuple[Path, os.stat_result]] = []
    issues: list[LoadIssue] = []
    names = 0

    def unreadable(exc: OSError) -> None:
        reason = f"cannot read folder: {exc.strerror or exc}: its files are not read"
        issues.append(LoadIssue(str(exc.filename), reason))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                issues.append(LoadIssue(os.path.join(dirpath, d),
                                        "symbolic link to a folder: not followed"))
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if not name.endswith(".md"):
                continue
            names += 1
            path = Path(dirpath) / name
            problem, st = check_file(path, real_root)
            if problem or st is None:
                issues.append(LoadIssue(str(path), problem or "cannot be read"))
            else:
                files.append((path, st))
    return FolderListing(files, issues, names)


def scan_folder(root: Path) -> tuple[list[Path], list[LoadIssue], int]:
    """(article files to read, files and folders not read with the reason, ``*.md`` names seen).

    See :func:`list_folder`, which also gives each file's ``stat``.
    """
    listing = list_folder(root)
    return listing.paths, listing.issues, listing.names


def check_file(path: Path, real_root: Path) -> tuple[str | None, os.stat_result | None]:
    """(why ``path`` must not be read, or ``None``; its ``stat`` when it may be).

    Only a regular file inside the folder (``real_root``, resolved) may be read.
    """
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8: not read", None
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            target = path.resolve(strict=True)
            if not target.is_relative_to(real_root):
                return f"symbolic link to {target}, outside the content folder: not read", None
            st = os.stat(path)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        return (f"broken symbolic link or unreadable entry: {getattr(exc, 'strerror', exc)}",
                None)
    if not stat.S_ISREG(st.st_mode):
        return f"is {kind_of(st.st_mode)}, not a regular file: not read", None
    return None, st


def find_article_files(root: Path) -> list[Path]:
    """Every readable ``*.md`` under ``root``, in a stable order (see :func:`scan_folder`)."""
    return scan_folder(Path(root))[0]


def load_corpus(root: str | Path, workers: int | None = None,
                schema: Schema | None = None, schema_reason: str = "") -> Corpus:
    """Load every ``*.md`` under ``root``. Raises :class:`CorpusError` only if unusable.

    ``schema`` says which field holds what; without one it is detected from a
    sample of the files (:func:`~recommender.schema.detect_schema`), and
    ``corpus.report.schema_reason`` says what was chosen and why (or is
    ``schema_reason``, when the caller chose).
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"content folder {root} does not exist or is not a folder")
    paths, issues, names = scan_folder(root)
    if not names:
        raise CorpusError(f"content folder {root} holds no *.md files")
    if schema is None:
        schema, reason = detect_schema(paths, root)
    else:
        reason = schema_reason or f"{schema.name}: given"
    rels = [p.relative_to(root).as_posix() for p in paths]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    if workers > 1 and len(paths) > PARALLEL_MIN_FILES:
        size = -(-len(paths) // (workers * 4))
        starts = range(0, len(paths), size)
        with ProcessPoolExecutor(workers) as pool:
            parsed = [item for chunk in pool.map(
                _read_many, [paths[i : i + size] for i in starts], [schema] * len(starts),
                [rels[i : i + size] for i in starts]) for item in chunk]
    else:
        parsed = _read_many(paths, schema, rels)
    corpus = build_corpus(root, [*issues, *parsed], files=names, schema=schema,
                          schema_reason=reason)
    if not corpus.articles:
        raise CorpusError(f"content folder {root}: none of its {names} files is an article")
    return corpus


__all__ = [
    "Article",
    "ArticleParseError",
    "Corpus",
    "CuratedLink",
    "FieldWarning",
    "LoadIssue",
    "LoadReport",
    "QUICKTAKES",
    "build_corpus",
    "FolderListing",
    "check_file",
    "find_article_files",
    "list_folder",
    "load_corpus",
    "parse_article",
    "read_article",
    "read_one",
    "scan_folder",
    "split_front_matter",
    "subject_key",
]
