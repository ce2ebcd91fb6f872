"""Load a content folder of markdown articles into a :class:`Corpus`.

An article is keyed by its ``url``, which is unique; its ``id`` identifies the
*content*, so files that share an id are copies of one article filed under
several subjects. Curated ``related_articleN`` links are resolved to articles
(by url, then by id), with self-links and repeats dropped and dangling ones
reported. One broken file never stops a load: it becomes one entry of the
:class:`LoadReport` (path and reason) and the rest loads.

Example:
    >>> corpus = load_corpus("demo/content")          # doctest: +SKIP
    >>> corpus.get("what-are-the-latest-advancements-in-radiation-therapy-for-leukemia").subject
    'Medicine'
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recommender.errors import CorpusError
from recommender.references import References

try:  # the C loader is ~20x faster; pure Python takes minutes on 28k files
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

_FRONT_MATTER_END = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)


@dataclass(frozen=True)
class CuratedLink:
    """One ``related_articleN`` block as written in a file."""

    n: int
    id: str | None
    title: str
    subject: str
    url: str | None


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

    @property
    def content_key(self) -> str:
        """Identity of the content: copies of one article share it."""
        return f"id:{self.id}" if self.id is not None else f"url:{self.url}"

    @property
    def slug(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class LoadIssue:
    """A file that could not be loaded, or a link that could not be resolved."""

    path: str
    reason: str


@dataclass
class LoadReport:
    """What a load found: counts, quirks and every problem, with the file it is in."""

    files: int = 0
    articles: int = 0
    errors: list[LoadIssue] = field(default_factory=list)
    duplicate_urls: list[LoadIssue] = field(default_factory=list)
    copy_groups: int = 0  # ids shared by more than one file
    copy_files: int = 0  # files in such groups
    no_index: int = 0
    with_links: int = 0
    without_links: int = 0
    links_total: int = 0
    links_by_url: int = 0
    links_by_id: int = 0
    dangling: list[LoadIssue] = field(default_factory=list)
    self_links: int = 0
    repeated_links: int = 0
    subjects: int = 0
    subject_spellings: int = 0
    negative_ids: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "articles": self.articles,
            "errors": [vars(e) for e in self.errors],
            "duplicate_urls": [vars(e) for e in self.duplicate_urls],
            "copies": {"ids": self.copy_groups, "files": self.copy_files},
            "no_index": self.no_index,
            "articles_with_links": self.with_links,
            "articles_without_links": self.without_links,
            "links": {
                "total": self.links_total,
                "resolved_by_url": self.links_by_url,
                "resolved_by_id": self.links_by_id,
                "dangling": len(self.dangling),
                "self_links_dropped": self.self_links,
                "repeats_dropped": self.repeated_links,
            },
            "dangling_links": [vars(e) for e in self.dangling],
            "subjects": {"distinct": self.subjects, "spellings": self.subject_spellings},
            "negative_ids": self.negative_ids,
        }


class ArticleParseError(ValueError):
    """Why one file is not an article; becomes a :class:`LoadIssue`."""


def split_front_matter(text: str) -> tuple[str, str]:
    """Return (front matter, body). Raises :class:`ArticleParseError` if absent."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.startswith("---"):
        raise ArticleParseError("no front matter: file does not start with '---'")
    first_nl = text.find("\n")
    if first_nl < 0 or text[:first_nl].strip() != "---":
        raise ArticleParseError("no front matter: first line is not '---'")
    end = _FRONT_MATTER_END.search(text, first_nl + 1)
    if end is None:
        raise ArticleParseError("unterminated front matter: no closing '---' line")
    return text[first_nl + 1 : end.start()], text[end.end() :].lstrip("\r\n")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value).strip()


def _ident(value: Any) -> str | None:
    """Ids are compared as strings: ``2143`` and ``"2143"`` are the same article."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


@dataclass(frozen=True)
class FieldMap:
    """Where each article field is read from in the front matter: the schema, as data.

    Each entry lists dotted paths tried in order (``seo.page_keywords`` reads key
    ``page_keywords`` of mapping ``seo``). The default reads QuickTakes files and
    common blog front matter (``description``, ``tags``, ``category``); another
    site's schema is a YAML file of overrides (:meth:`from_yaml`), not new code.
    """

    url: tuple[str, ...] = ("url",)
    id: tuple[str, ...] = ("id",)
    title: tuple[str, ...] = ("title", "article_title")
    question: tuple[str, ...] = ("question",)
    answer: tuple[str, ...] = ("answer",)
    subject: tuple[str, ...] = ("subject", "category")
    keywords: tuple[str, ...] = ("seo.page_keywords", "keywords", "tags")
    description: tuple[str, ...] = ("description", "seo.page_description")
    no_index: tuple[str, ...] = ("no_index",)
    date: tuple[str, ...] = ("date",)
    related_prefix: str = "related_article"

    @classmethod
    def from_yaml(cls, path: str | Path) -> FieldMap:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise CorpusError(f"{path}: unknown field(s) {sorted(unknown)} in the field map")
        return cls(**{k: (v if k == "related_prefix" else tuple(
            [v] if isinstance(v, str) else v)) for k, v in data.items()})

    def get(self, meta: Mapping[str, Any], name: str) -> Any:
        """The first path of field ``name`` that is present and not empty."""
        for path in getattr(self, name):
            value: Any = meta
            for part in path.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if value not in (None, "", []):
                return value
        return None


QUICKTAKES = FieldMap()


def _keywords(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else _text(raw).split(",")
    return tuple(k for k in (_text(i).lower() for i in items) if k)


def _curated(meta: Mapping[str, Any], prefix: str) -> tuple[CuratedLink, ...]:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    links = []
    for key, value in meta.items():
        m = pattern.match(str(key))
        if not m or not isinstance(value, Mapping):
            continue
        links.append(
            CuratedLink(
                n=int(m.group(1)),
                id=_ident(value.get("id")),
                title=_text(value.get("title")),
                subject=_text(value.get("subject")),
                url=_text(value.get("url")) or None,
            )
        )
    return tuple(sorted(links, key=lambda link: link.n))


def parse_article(path: Path, text: str, fields: FieldMap = QUICKTAKES) -> Article:
    """Parse one file's text. Raises :class:`ArticleParseError` saying what is wrong."""
    front, body = split_front_matter(text)
    try:
        meta = yaml.load(front, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ArticleParseError(f"invalid YAML front matter{where}: {problem}") from None
    if not isinstance(meta, Mapping):
        raise ArticleParseError(
            f"front matter is a {type(meta).__name__}, not a mapping of fields"
        )
    url = _text(fields.get(meta, "url"))
    if not url:
        raise ArticleParseError(f"missing required field {fields.url[0]!r}")
    title = _text(fields.get(meta, "title"))
    question = _text(fields.get(meta, "question")) or title
    if not question:
        raise ArticleParseError("missing required field 'title' or 'question'")
    body = body.strip()
    if body == "&nbsp;":
        body = ""
    description = _text(fields.get(meta, "description"))
    # a post without an answer is its body, else its own summary: the first description
    # path only, since an SEO blurb alone is no article
    summary = _text(FieldMap(description=fields.description[:1]).get(meta, "description"))
    answer = _text(fields.get(meta, "answer")) or body or summary
    if not answer:
        raise ArticleParseError("missing required field 'answer' (or a markdown body)")
    date = fields.get(meta, "date")
    return Article(
        url=url,
        id=_ident(fields.get(meta, "id")),
        title=title or question,
        question=question,
        answer=answer,
        subject=_text(fields.get(meta, "subject")),
        keywords=_keywords(fields.get(meta, "keywords")),
        path=path,
        no_index=bool(fields.get(meta, "no_index") or False),
        description=description,
        date=str(date) if date is not None else None,
        curated=_curated(meta, fields.related_prefix),
    )


def read_article(path: Path, fields: FieldMap = QUICKTAKES) -> Article:
    """Read and parse one file; any problem becomes an :class:`ArticleParseError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArticleParseError(f"cannot read file: {exc.strerror or exc}") from None
    if not data.strip():
        raise ArticleParseError("empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArticleParseError(f"not valid UTF-8 (byte {exc.start})") from None
    return parse_article(path, text, fields)


def _read_many(paths: list[Path], fields: FieldMap = QUICKTAKES) -> list[Article | LoadIssue]:
    out: list[Article | LoadIssue] = []
    for path in paths:
        try:
            out.append(read_article(path, fields))
        except ArticleParseError as exc:
            out.append(LoadIssue(str(path), str(exc)))
    return out


def subject_key(subject: str) -> str:
    """Case- and space-insensitive key: 'Computer science' and 'Computer Science' match."""
    return " ".join(subject.split()).casefold()


class Corpus:
    """The articles of one content folder, with the indexes needed to resolve references."""

    def __init__(self, root: Path, articles: list[Article], report: LoadReport):
        self.root = root
        self.articles = articles
        self.report = report
        self.by_url: dict[str, Article] = {a.url: a for a in articles}
        self.by_id: dict[str, list[Article]] = defaultdict(list)
        for a in articles:
            if a.id is not None:
                self.by_id[a.id].append(a)
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


def _normalise_subjects(articles: list[Article], report: LoadReport) -> None:
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for a in articles:
        if a.subject:
            spellings[subject_key(a.subject)][a.subject] += 1
    # the most used spelling wins; ties go to the capitalised one, which sorts first
    display = {k: min(c, key=lambda s: (-c[s], s)) for k, c in spellings.items()}
    for a in articles:
        if a.subject:
            a.subject = display[subject_key(a.subject)]
    report.subjects = len(display)
    report.subject_spellings = sum(len(c) for c in spellings.values())


def _resolve_links(articles: list[Article], by_url: Mapping[str, Article],
                   by_id: Mapping[str, list[Article]], report: LoadReport) -> None:
    for a in articles:
        seen: set[str] = set()
        resolved: list[str] = []
        for link in a.curated:
            report.links_total += 1
            target = by_url.get(link.url) if link.url else None
            if target is not None:
                report.links_by_url += 1
            elif link.id is not None and link.id in by_id:
                candidates = by_id[link.id]
                same_subject = [c for c in candidates
                                if subject_key(c.subject) == subject_key(link.subject)]
                target = (same_subject or candidates)[0]
                report.links_by_id += 1
            else:
                report.dangling.append(LoadIssue(
                    str(a.path), f"related_article{link.n} -> {link.url or link.id}"
                    " resolves to no article by url or id"))
                continue
            if target.content_key == a.content_key:
                report.self_links += 1
                continue
            if target.content_key in seen:
                report.repeated_links += 1
                continue
            seen.add(target.content_key)
            resolved.append(target.url)
        a.links = tuple(resolved)
        if a.curated:
            report.with_links += 1
        else:
            report.without_links += 1


def build_corpus(root: Path, parsed: Iterable[Article | LoadIssue], files: int) -> Corpus:
    """Assemble a corpus from parsed files: dedupe urls, normalise subjects, resolve links."""
    report = LoadReport(files=files)
    articles: list[Article] = []
    by_url: dict[str, Article] = {}
    for item in parsed:
        if isinstance(item, LoadIssue):
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
    _normalise_subjects(articles, report)
    _resolve_links(articles, by_url, by_id, report)
    report.articles = len(articles)
    return Corpus(root, articles, report)


def find_article_files(root: Path) -> list[Path]:
    """Every ``*.md`` under ``root``, in a stable order (hidden folders skipped)."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        paths.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".md"))
    return paths


def load_corpus(root: str | Path, workers: int | None = None,
                fields: FieldMap = QUICKTAKES) -> Corpus:
    """Load every ``*.md`` under ``root``. Raises :class:`CorpusError` only if unusable."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"content folder {root} does not exist or is not a folder")
    paths = find_article_files(root)
    if not paths:
        raise CorpusError(f"content folder {root} holds no *.md files")
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    if workers > 1 and len(paths) > 2000:
        size = -(-len(paths) // (workers * 4))
        chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
        with ProcessPoolExecutor(workers) as pool:
            parsed = [item for chunk in pool.map(_read_many, chunks, [fields] * len(chunks))
                      for item in chunk]
    else:
        parsed = _read_many(paths, fields)
    corpus = build_corpus(root, parsed, files=len(paths))
    if not corpus.articles:
        raise CorpusError(f"content folder {root}: none of its {len(paths)} files is an article")
    return corpus
