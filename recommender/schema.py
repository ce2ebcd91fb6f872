"""Which front-matter field holds what: a site's schema, as data (YAML), never as code.

A QuickTakes file keys an article by its ``url`` field and lists curated links as
numbered ``related_articleN`` blocks; a Hugo page is keyed by its path
(``man5/systemd.swap.5.md`` is ``/man5/systemd.swap.5/``), keeps its text in the
markdown body and lists related pages as ``related: [url, ...]``. A
:class:`Schema` says, for each article field, which dotted paths to read, how a
url is derived from a path, where links are and in which style a fill writes
them. Three schemas ship with the package (``recommender/schemas/*.yaml``:
``quicktakes``, ``hugo``, ``jekyll``); any other site is one YAML file
(``--schema FILE``). Without one, :func:`detect_schema` picks a shipped schema
from a sample of the folder's files and says why.

A schema is saved beside the index it built (:meth:`Schema.to_yaml`), and its
:meth:`Schema.identity` is part of what makes an index current.

Example:
    >>> s = builtin_schema("hugo")
    >>> s.url_from_path.url_of("man5/systemd.swap.5.md")
    '/man5/systemd.swap.5/'
    >>> s.links.write
    'list'
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from recommender.errors import SchemaError
from recommender.frontmatter import ArticleParseError, decode, load_front_matter, read_regular_file


def _paths(value: Any) -> Any:
    """A single dotted path is a list of one; ``null`` is no path."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return value


#: dotted paths tried in order (``seo.page_keywords`` is key ``page_keywords`` of ``seo``)
Paths = Annotated[tuple[str, ...], BeforeValidator(_paths)]

BUILTIN = ("quicktakes", "hugo", "jekyll")


class UrlFromPath(BaseModel):
    """How a page's url follows from its path under the content folder (Hugo, Jekyll)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = "/"
    trailing_slash: bool = True
    extension: Literal["drop", "keep"] = "drop"
    suffix: str = ""  # appended to a page's url (e.g. ".html"), not to a folder's
    index_files: Paths = ("index", "_index")  # stems that stand for their folder
    lowercase: bool = False

    def url_of(self, rel: str | PurePosixPath) -> str:
        """The url of the file at ``rel`` (a path relative to the content folder)."""
        rel = PurePosixPath(rel)
        parts = list(rel.parts[:-1])
        stem = rel.name.removesuffix(".md") if self.extension == "drop" else rel.name
        folder_page = rel.name.removesuffix(".md") in self.index_files
        if not folder_page:
            parts.append(stem + self.suffix)
        url = self.prefix.rstrip("/") + "/" + "/".join(parts)
        if (self.trailing_slash or folder_page) and not url.endswith("/"):
            url += "/"
        return url.lower() if self.lowercase else url


class BlockFields(BaseModel):
    """The sub-fields of one numbered link block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = "id"
    title: str = "title"
    subject: str = "subject"
    url: str = "url"


class Links(BaseModel):
    """Where curated links are, and the style a fill writes new ones in.

    ``numbered`` is the key prefix of numbered blocks (``related_article`` reads
    ``related_article1``, ``related_article2``, ...), ``lists`` the keys that
    hold lists of urls, paths or slugs. ``write`` is what a fill adds: numbered
    blocks, or items of the first ``lists`` key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    numbered: str | None = "related_article"
    block: BlockFields = BlockFields()
    lists: Paths = ()
    write: Literal["numbered", "list"] = "numbered"


class Schema(BaseModel):
    """Where each article field is read from: one site's front-matter schema.

    ``body`` fields come first, then (``markdown_body``) the markdown after the
    front matter, then the first ``description`` path. ``url`` fields come first,
    then ``url_from_path``. ``group`` names the field whose values evaluation
    folds never split (``date``, the publication batch, for QuickTakes); it is
    never a ranking signal. ``signature`` keys mark a file as written in this
    schema; a file without them is read with the first ``fallback`` schema whose
    signature it carries, else with a fallback that has none (so one folder can
    mix QuickTakes articles and Hugo pages).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    url: Paths = ("url",)
    url_from_path: UrlFromPath | None = None
    id: Paths = ("id",)
    title: Paths = ("title", "article_title")
    question: Paths = ("question",)
    body: Paths = ("answer",)
    markdown_body: bool = True
    description: Paths = ("description", "seo.page_description")
    keywords: Paths = ("seo.page_keywords", "keywords", "tags")
    subject: Paths = ("subject", "category")
    no_index: Paths = ("no_index",)
    date: Paths = ("date",)
    group: str | None = "date"
    signature: Paths = ()
    fallback: Paths = Field((), description="names of shipped schemas")
    links: Links = Links()

    # ------------------------------------------------------------------ files

    @classmethod
    def from_yaml(cls, path: str | Path) -> Schema:
        """Read a schema file; :class:`SchemaError` names the file and the key at fault."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaError(f"cannot read schema file {path}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        return cls.from_text(text, str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<schema>") -> Schema:
        try:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise SchemaError(f"{source}: invalid YAML{where}: "
                              f"{getattr(exc, 'problem', None) or exc}") from None
        except (ValueError, OverflowError) as exc:  # e.g. the date 2024-13-45
            raise SchemaError(f"{source}: invalid YAML: a value cannot be read ({exc})"
                              ) from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SchemaError(f"{source}: a schema is a mapping of fields, not a "
                              f"{type(data).__name__}")
        try:
            schema = cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"key {'.'.join(str(p) for p in e['loc']) or '(top)'!r}: {e['msg']}"
                for e in exc.errors())
            raise SchemaError(f"{source}: {problems}") from None
        unknown = [n for n in schema.fallback if n not in BUILTIN]
        if unknown:
            raise SchemaError(f"{source}: key 'fallback': unknown schema(s) {unknown}; "
                              f"choose from {', '.join(BUILTIN)}")
        if schema.links.write == "list" and not schema.links.lists:
            raise SchemaError(f"{source}: key 'links.write': 'list' needs a 'links.lists' key")
        if schema.links.write == "numbered" and not schema.links.numbered:
            raise SchemaError(f"{source}: key 'links.write': 'numbered' needs "
                              "'links.numbered' (the key prefix)")
        return schema

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def identity(self) -> str:
        """A short hash of everything that changes how files are read (not the name)."""
        data = self.model_dump(mode="json", exclude={"name"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ reading

    def get(self, meta: Mapping[str, Any], name: str) -> tuple[str, Any]:
        """(path, value) of the first path of field ``name`` present and not empty."""
        for path in getattr(self, name):
            value = lookup(meta, path)
            if value not in (None, "", [], {}):
                return path, value
        return "", None

    def carries_signature(self, meta: Mapping[Any, Any]) -> bool:
        """Whether a file's keys mark it as written in this schema."""
        if any(key in meta for key in self.signature):
            return True
        prefix = self.links.numbered
        return bool(self.signature and prefix and any(
            isinstance(k, str) and k.startswith(prefix) and k[len(prefix):].isdigit()
            for k in meta))

    def for_file(self, meta: Mapping[Any, Any]) -> Schema:
        """The schema to read this file with: this one, or a fallback the file fits better."""
        if not self.fallback or (self.signature and self.carries_signature(meta)):
            return self
        candidates = [self, *(builtin_schema(n) for n in self.fallback)]
        for schema in candidates:
            if schema.signature and schema.carries_signature(meta):
                return schema
        return next((s for s in candidates if not s.signature), self)


def lookup(meta: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, ``None`` where any step is missing."""
    value: Any = meta
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


@cache
def builtin_schema(name: str) -> Schema:
    """One of the schemas shipped in ``recommender/schemas/`` (package data)."""
    if name not in BUILTIN:
        raise SchemaError(f"no shipped schema {name!r}; choose from {', '.join(BUILTIN)}")
    text = resources.files("recommender").joinpath("schemas", f"{name}.yaml").read_text(
        encoding="utf-8")
    return Schema.from_text(text, f"recommender/schemas/{name}.yaml")


def builtin_schema_path(name: str) -> Path:
    """Where a shipped schema file is, to copy it as a starting point for another site."""
    return Path(str(resources.files("recommender").joinpath("schemas", f"{name}.yaml")))


# --------------------------------------------------------------------------- detection

#: how many files detection reads, spread evenly over the folder
SAMPLE = 64
_NUMBERED = re.compile(r"^related_article\d+$")


def _sample(paths: Sequence[Path], n: int) -> list[Path]:
    if len(paths) <= n:
        return list(paths)
    step = len(paths) / n
    return [paths[int(i * step)] for i in range(n)]


def detect_schema(paths: Iterable[Path], root: Path | None = None,
                  sample: int = SAMPLE) -> tuple[Schema, str]:
    """Choose a shipped schema for these files (a folder's articles) and say why.

    QuickTakes files carry ``answer``/``question`` fields or ``related_articleN``
    blocks; other files are Hugo pages, or Jekyll posts when they sit under
    ``_posts/``. The majority of an evenly spread sample decides the schema;
    every file is still read with the shipped schema it fits (``fallback``), so
    a folder that mixes them loads.
    """
    paths = sorted(paths)
    qt = builtin_schema("quicktakes")
    counts: Counter[str] = Counter()
    unreadable = 0
    for path in _sample(paths, sample):
        try:
            meta, body = load_front_matter(decode(read_regular_file(path)))
        except ArticleParseError:
            unreadable += 1
            continue
        if qt.carries_signature(meta) or any(_NUMBERED.match(str(k)) for k in meta):
            counts["quicktakes"] += 1
        else:
            rel = path.relative_to(root) if root is not None else path
            counts["jekyll" if "_posts" in rel.parts else "hugo"] += 1
        if isinstance(meta.get("related"), list):
            counts["related lists"] += 1
        if "url" not in meta and "permalink" not in meta:
            counts["no url field"] += 1
        if body.strip() not in ("", "&nbsp;"):
            counts["markdown body"] += 1
    read = sum(counts[n] for n in BUILTIN)
    if not read:
        return qt.model_copy(update={"fallback": ("hugo",)}), (
            f"quicktakes: none of the {unreadable} sampled files has readable front matter;"
            " the default applies")
    name = max(BUILTIN, key=lambda n: (counts[n], n == "quicktakes"))
    others = tuple(n for n in ("quicktakes", "hugo") if n != name)
    chosen = builtin_schema(name).model_copy(update={"fallback": others})
    facts = [f"{counts[name]} of {read} sampled files look like {name}"]
    if name != "quicktakes":
        if counts["no url field"]:
            facts.append(f"{counts['no url field']} have no url field (urls from paths)")
        facts.append(f"{counts['markdown body']} have a markdown body")
        if counts["related lists"]:
            facts.append(f"{counts['related lists']} have `related` lists")
    mixed = [f"{counts[n]} like {n}" for n in BUILTIN if n != name and counts[n]]
    if mixed:
        facts.append(", ".join(mixed) + " (each file is read with the schema it fits)")
    return chosen, f"{name}: " + "; ".join(facts)


__all__ = [
    "BUILTIN",
    "BlockFields",
    "Links",
    "Schema",
    "UrlFromPath",
    "builtin_schema",
    "builtin_schema_path",
    "detect_schema",
    "lookup",
]
