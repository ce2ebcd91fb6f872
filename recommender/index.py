"""The stored part of an index: articles, their vectors, and where each came from.

This module knows files and arrays, not ranking: the ranking state is saved beside
it by :mod:`recommender.ranking_state`, and :mod:`recommender.pipeline` puts the
two together. An index directory is self-contained, so the service can run from it
without the content folder::

    manifest.json     format, model, configuration, counts, how it was built or updated
    config.yaml       the BuildConfig it was built with
    schema.yaml       the schema the folder was read with (which field holds what)
    articles.jsonl    one article's metadata per row (answers are not kept), with its
                      source file's size and mtime and a fingerprint of its ranked text
    files.jsonl       files of the folder that do not load, and why (so an update does
                      not read them again while they stay the same); "held" ones are
                      articles whose last good version is still served
    vectors.npy       (n, dim) float32 L2-normalised embeddings, one row per article
    vectors.faiss     the FAISS graph or clusters, for an HNSW or IVF search only;
                      sharded (``vectors.shards``): vectors.shard-000.faiss, ... one a shard
    ranking/          the ranking state (see recommender.ranking_state)

Everything is written into a temporary sibling directory that is renamed into
place (:func:`atomic_directory`), so a reader sees the old index or the new one,
never a mix, and an interrupted write leaves the old one. Reading checks every
file against the articles and raises :class:`~recommender.errors.IndexCorrupt`
naming the file and the problem, never half-loading a damaged index. Paths are
stored so that any file name round-trips, including names that are not UTF-8.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recommender.config import BuildConfig
from recommender.corpus import Article, CuratedLink
from recommender.embedding import default_cache_dir
from recommender.errors import IndexCorrupt, IndexMismatch, IndexNotFound, SchemaError
from recommender.schema import Schema
from recommender.sources import FileIssue, ScanCache, Source, Stamp, relative_path
from recommender.vectors import Shards, VectorSearch, shard_bounds

#: 3: ranking state in ranking/, per-article sources, vectors.npy; 4: schema.yaml, and
#: each article's short front-matter values
FORMAT_VERSION = 4
MANIFEST = "manifest.json"
ARTICLES = "articles.jsonl"
FILES = "files.jsonl"
VECTORS = "vectors.npy"
FAISS = "vectors.faiss"
SCHEMA = "schema.yaml"


def default_index_dir() -> Path:
    """``$RECOMMENDER_INDEX`` or ``~/.cache/recommender/index``: never inside the content."""
    env = os.environ.get("RECOMMENDER_INDEX")
    return Path(env) if env else default_cache_dir() / "index"


# -- records -------------------------------------------------------------------------------


try:  # several times faster on the tens of megabytes of records of a large corpus
    import orjson
except ImportError:  # pragma: no cover - orjson is optional
    orjson = None


def _dumps(record: dict[str, Any]) -> bytes:
    """One JSON line. A file name that is not UTF-8 (it holds surrogates, which UTF-8
    cannot encode) is written with ASCII escapes, which round-trip it."""
    if orjson is not None:
        try:
            return orjson.dumps(record)
        except TypeError:  # a lone surrogate
            pass
    return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _loads(line: bytes) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:  # e.g. an escaped lone surrogate: the slow way
            pass
    return json.loads(line)


#: front-matter values longer than this are not kept in the index (answers, bodies): the
#: ``same`` filter compares short values such as a date, a section or a language
FIELD_CHARS = 200


def stored_fields(fields: dict[str, str]) -> dict[str, str]:
    """The article's raw front-matter values that the index keeps (the short ones)."""
    return {k: v for k, v in fields.items() if len(v) <= FIELD_CHARS}


def article_record(a: Article, source: Source, root: Path) -> dict[str, Any]:
    record = {
        "url": a.url, "id": a.id, "title": a.title, "question": a.question,
        "subject": a.subject, "keywords": list(a.keywords), "path": relative_path(a.path, root),
        "no_index": a.no_index, "description": a.description, "date": a.date,
        "links": list(a.links), "curated": [vars(c) for c in a.curated],
        "fields": stored_fields(a.fields), "group": a.group, "schema": a.schema,
        "source": {"fingerprint": source.fingerprint, "mtime_ns": source.stamp.mtime_ns,
                   "size": source.stamp.size},
    }
    if source.subject != a.subject:
        record["source"]["subject"] = source.subject
    return record


def article_from_record(r: dict[str, Any]) -> tuple[Article, Source]:
    article = Article(
        url=r["url"], id=r["id"], title=r["title"], question=r["question"], answer="",
        subject=r["subject"], keywords=tuple(r["keywords"]), path=Path(r["path"]),
        no_index=r["no_index"], description=r["description"], date=r["date"],
        curated=tuple(CuratedLink(**c) for c in r["curated"]), links=tuple(r["links"]),
        fields=dict(r["fields"]), group=r["group"], schema=r["schema"])
    s = r["source"]
    return article, Source(s["fingerprint"], Stamp(s["mtime_ns"], s["size"]),
                           s.get("subject", r["subject"]))


# -- the stored index ----------------------------------------------------------------------


@dataclass
class Index:
    """Articles (row order), their sources and vectors, and the manifest: what is stored.

    Never changed once built: an update makes a new one, so a reader holding this
    one is never disturbed.
    """

    config: BuildConfig
    root: Path  # the content folder it was built from
    articles: list[Article]
    sources: list[Source]
    search: VectorSearch
    issues: list[FileIssue] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    #: which front-matter field holds what in the folder (saved as ``schema.yaml``)
    schema: Schema | None = None
    #: the scan it was made from, for the next update in this process (not saved)
    scan_cache: ScanCache | None = field(default=None, compare=False, repr=False)
    _derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def derived(self, name: str, compute: Callable[[], Any]) -> Any:
        """A value computed once from the articles (e.g. per-row arrays the ranker reads)."""
        if name not in self._derived:
            self._derived[name] = compute()
        return self._derived[name]

    def carry_rows(self, previous: Index, source: np.ndarray,
                   compute: dict[str, Callable[[Sequence[Article]], np.ndarray]]) -> None:
        """Per-row derived arrays from ``previous``'s: a kept row (``source[row]`` its old
        row, -1 for a fresh one) keeps its value, fresh rows are computed (an update does not
        walk every article again). Only the arrays ``previous`` had computed."""
        fresh = np.flatnonzero(source < 0)
        kept = np.flatnonzero(source >= 0)
        for name, of in compute.items():
            old = previous._derived.get(name)
            if old is None:
                continue
            values = np.empty(len(source), dtype=old.dtype)
            values[kept] = old[source[kept]]
            if len(fresh):
                values[fresh] = of([self.articles[i] for i in fresh])
            self._derived[name] = values

    @property
    def vectors(self) -> np.ndarray:
        return self.search.vectors

    @property
    def dim(self) -> int:
        return self.search.dim

    def write(self, directory: Path) -> None:
        """Write the stored files into ``directory`` (a fresh one: see :func:`atomic_directory`)."""
        with open(directory / ARTICLES, "wb") as f:
            f.write(b"".join(_dumps(article_record(a, s, self.root)) + b"\n"
                             for a, s in zip(self.articles, self.sources, strict=True)))
        with open(directory / FILES, "wb") as f:
            for issue in self.issues:
                f.write(_dumps({"path": issue.path, "mtime_ns": issue.stamp.mtime_ns,
                                "size": issue.stamp.size, "reason": issue.reason,
                                "held": issue.held}) + b"\n")
        np.save(directory / VECTORS, self.vectors)
        if self.config.vectors.index != "flat":
            self.search.save(directory / FAISS)
        (directory / "config.yaml").write_text(self.config.to_yaml(), encoding="utf-8")
        if self.schema is not None:
            (directory / SCHEMA).write_text(self.schema.to_yaml(), encoding="utf-8")


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=True),
                                      encoding="ascii")


@contextmanager
def atomic_directory(directory: Path) -> Iterator[Path]:
    """A fresh temporary sibling of ``directory`` to write into; renamed into place at the end.

    The old directory is replaced only once the new one is complete; on any error
    (or an interrupt) the temporary one is removed and the old one stays.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        yield tmp
        _swap_into_place(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_into_place(new: Path, directory: Path) -> None:
    """Replace ``directory`` by ``new``; the old one is removed only once the new is in place."""
    old = None
    if directory.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
        os.rmdir(old)
        os.replace(directory, old)
    os.replace(new, directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- reading, checked ----------------------------------------------------------------------


def differences(expected: dict[str, Any], found: dict[str, Any], prefix: str = "") -> list[str]:
    """What differs between two configurations (nested dicts), as readable lines."""
    out = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key), found.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: index has {b!r}, asked for {a!r}")
    return out


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of the index at ``directory``. Raises :class:`IndexNotFound`."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise IndexNotFound(f"no index at {directory} (no {MANIFEST}); run `recommender build`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IndexCorrupt(f"{path}: cannot be read: {error}") from None
    if not isinstance(manifest, dict):
        raise IndexCorrupt(f"{path}: not a JSON object")
    return manifest


def check_manifest(directory: Path, manifest: dict[str, Any],
                   expected: BuildConfig | None) -> BuildConfig:
    """The index's configuration; refuses another format, or another configuration than
    ``expected``, saying what differs."""
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(f"index at {directory} has format {manifest.get('format_version')},"
                            f" this version reads {FORMAT_VERSION}: rebuild it")
    try:
        config = BuildConfig.model_validate(manifest["config"])
    except (KeyError, ValueError) as error:
        raise IndexCorrupt(f"{directory / MANIFEST}: no valid configuration ({error})") from None
    if expected is not None:
        diffs = differences(expected.identity(), config.identity())
        if diffs:
            raise IndexMismatch(f"index at {directory} was built with another configuration: "
                                + "; ".join(diffs) + " (rebuild it, or drop the option)")
    return config


def load_array(path: Path) -> np.ndarray:
    """A ``.npy`` array; any failure (missing, truncated, pickled) is :class:`IndexCorrupt`."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise IndexCorrupt(f"{path}: cannot be read: {error}") from None


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` file, read now; a damaged file is :class:`IndexCorrupt`."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise IndexCorrupt(f"{path}: cannot be read: {error}") from None


def check_array(path: Path, name: str, array: np.ndarray, shape: tuple[int | None, ...],
                kind: str, finite: bool = False, rows_below: int | None = None,
                lowest: int = -1) -> np.ndarray:
    """``array`` has ``shape`` (None: any length), a dtype of ``kind`` ('f', 'i'), finite
    values if asked, and row numbers in ``lowest .. rows_below - 1`` (negative numbers are
    markers: -1 nobody); else :class:`IndexCorrupt`.
    """
    where = f"{path}: {name}"
    if array.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(array.shape, shape)):
        want = "x".join("?" if s is None else str(s) for s in shape)
        raise IndexCorrupt(f"{where} has shape {array.shape}, expected {want}"
                           " (one row per article)")
    if array.dtype.kind != kind:
        raise IndexCorrupt(f"{where} has dtype {array.dtype}, expected a"
                           f" {'float' if kind == 'f' else 'integer'} array")
    if finite and not np.isfinite(array).all():
        raise IndexCorrupt(f"{where} holds values that are not finite")
    if rows_below is not None and array.size and (
            array.min() < lowest or array.max() >= rows_below):
        raise IndexCorrupt(f"{where} refers to rows outside 0..{rows_below - 1}")
    return array


def _read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    yield number, _loads(line)
                except ValueError as error:
                    raise IndexCorrupt(f"{path}:{number}: not a JSON record ({error})") from None
    except OSError as error:
        raise IndexCorrupt(f"{path}: cannot be read: {error}") from None


def read_index(directory: str | Path, expected: BuildConfig | None = None) -> Index:
    """The stored part of the index at ``directory``, checked file by file.

    Raises :class:`IndexNotFound`, :class:`IndexMismatch` (another format or
    configuration than ``expected``) or :class:`IndexCorrupt`.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    config = check_manifest(directory, manifest, expected)
    articles: list[Article] = []
    sources: list[Source] = []
    path = directory / ARTICLES
    for number, record in _read_lines(path):
        try:
            article, source = article_from_record(record)
        except (KeyError, TypeError, ValueError) as error:
            raise IndexCorrupt(f"{path}:{number}: not an article record ({error!r})") from None
        articles.append(article)
        sources.append(source)
    issues = []
    if (directory / FILES).exists():
        for number, r in _read_lines(directory / FILES):
            try:
                issues.append(FileIssue(r["path"], Stamp(r["mtime_ns"], r["size"]), r["reason"],
                                        bool(r.get("held", False))))
            except (KeyError, TypeError) as error:
                raise IndexCorrupt(f"{directory / FILES}:{number}: not a file record"
                                   f" ({error!r})") from None
    n = len(articles)
    if manifest.get("counts", {}).get("articles") not in (None, n):
        raise IndexCorrupt(f"{path} holds {n} articles, the manifest says "
                           f"{manifest['counts']['articles']}")
    dim = manifest.get("dim")
    vectors = check_array(directory / VECTORS, "vectors", load_array(directory / VECTORS),
                          (n, dim), "f", finite=True)
    if vectors.dtype != np.float32:
        raise IndexCorrupt(f"{directory / VECTORS}: vectors are {vectors.dtype}, not float32")
    faiss_index = None
    if config.vectors.index != "flat":
        try:
            faiss_index = VectorSearch.read(directory / FAISS, config.vectors)
        except RuntimeError as error:
            raise IndexCorrupt(f"{directory / FAISS}: cannot be read: {error}") from None
        if faiss_index.ntotal != n or faiss_index.d != vectors.shape[1]:
            raise IndexCorrupt(f"{directory / FAISS} holds {faiss_index.ntotal} vectors of "
                               f"dimension {faiss_index.d}, expected {n} of {vectors.shape[1]}")
        if isinstance(faiss_index, Shards) and [b - a for a, b in shard_bounds(
                n, config.vectors.shards)] != [int(s.ntotal) for s in faiss_index.shards]:
            raise IndexCorrupt(f"{directory / FAISS}: its shards do not hold the rows "
                               f"{shard_bounds(n, config.vectors.shards)}")
    search = VectorSearch(vectors, config.vectors, faiss_index)
    root = Path(manifest.get("corpus", {}).get("root", "."))
    schema = None
    if (directory / SCHEMA).exists():
        try:
            schema = Schema.from_yaml(directory / SCHEMA)
        except (OSError, SchemaError) as error:
            raise IndexCorrupt(f"{directory / SCHEMA}: {error}") from None
    return Index(config, root, articles, sources, search, issues, manifest, schema)
