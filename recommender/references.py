"""Find an article from whatever reference a person or a template has at hand.

A reference is an article's url (with or without its site, leading or trailing
slash), its id, its file path (relative to the content folder, as stored in the
index, or absolute) or its slug (the url's last segment, or the file name without
``.md``). Every entry point resolves references here: the CLI, the HTTP API, the
library (:meth:`Corpus.get <recommender.corpus.Corpus.get>`,
:meth:`Recommender.get <recommender.recommender.Recommender.get>`) and the
evaluation's query and suggestion files, so they accept exactly the same things.

Rules, first match wins: url, id, path, slug. Copies of one article (same id, one
file per subject) share their id and often their slug; those resolve to the first
copy in file order, and a url or path always names one file.

Example:
    >>> refs = References(corpus.articles, corpus.root)            # doctest: +SKIP
    >>> refs.row("https://example.org/learn/biology/questions/what-is-the-calvin-cycle/")
    12
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from recommender.errors import ArticleNotFound


class Referable(Protocol):
    """What resolving needs of an article (:class:`recommender.corpus.Article` has it)."""

    url: str
    id: str | None
    path: Path


def _absolute(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))


def _stem(path: str) -> str:
    """A path's file name without its last suffix (``Path.stem``, without a Path)."""
    name = path.rsplit(os.sep, 1)[-1]
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


def _slug(text: str) -> str:
    return text.rstrip("/").rsplit("/", 1)[-1].removesuffix(".md")


class References:
    """Rows of ``articles`` by url, id, path and slug; built once, read by any thread.

    ``root`` is the content folder: a relative path given as a reference may start
    there or in the working directory. ``paths_from_root``: the articles' own
    relative paths start at ``root`` (as the index stores them) rather than in the
    working directory (as a freshly loaded corpus holds them).
    """

    def __init__(self, articles: Sequence[Referable], root: str | Path | None = None,
                 paths_from_root: bool = False):
        self.root = str(root) if root is not None else None
        # relative paths that start at the root are kept as they are (an absolute reference
        # is made relative to the root when looked up): no path arithmetic per article, which
        # matters when a server rebuilds this after every update
        self.relative = paths_from_root and self.root is not None
        self.by_url: dict[str, int] = {}
        self.by_id: dict[str, int] = {}
        self.by_path: dict[str, int] = {}
        self.by_slug: dict[str, int] = {}
        # reversed, so that the first article of a key wins: plain dict builds, no setdefault
        # per article (a server builds this after every update)
        last = len(articles) - 1
        backwards = [(last - i, a) for i, a in enumerate(reversed(articles))]
        self.by_url = {a.url: row for row, a in backwards}
        self.by_id = {a.id: row for row, a in backwards if a.id is not None}
        paths = [(row, str(a.path)) for row, a in backwards]
        self.by_path = {path: row for row, path in paths}
        for row, path in paths:
            if not self.relative or os.path.isabs(path):
                key = self._from_root(path) if paths_from_root else _absolute(path)
                if key not in self.by_path or self.by_path[key] > row:
                    self.by_path[key] = row
        # file names after url slugs
        self.by_slug = {_stem(path): row for row, path in paths}
        self.by_slug.update({_slug(a.url): row for row, a in backwards})
        self._real: dict[str, int] | None = None

    def _from_root(self, path: str) -> str:
        if self.root is not None and not os.path.isabs(path):
            path = os.path.join(self.root, path)
        return _absolute(path)

    def _url(self, ref: str) -> int | None:
        if "://" in ref:
            try:
                ref = urlsplit(ref).path or ref
            except ValueError:  # e.g. a malformed IPv6 host: not a url then
                pass
        for candidate in (ref, ref.rstrip("/"), "/" + ref.strip("/")):
            if candidate in self.by_url:
                return self.by_url[candidate]
        return None

    def _path(self, ref: str) -> int | None:
        if ref in self.by_path:
            return self.by_path[ref]
        for candidate in (self._from_root(ref), _absolute(ref)):
            if candidate in self.by_path:
                return self.by_path[candidate]
            if self.relative:
                inside = self._inside_root(candidate)
                if inside is not None and inside in self.by_path:
                    return self.by_path[inside]
        return None

    def _inside_root(self, absolute: str) -> str | None:
        """``absolute`` relative to the root, or None when it is outside."""
        root = _absolute(self.root or ".")
        if absolute == root or not absolute.startswith(root.rstrip(os.sep) + os.sep):
            return None
        return os.path.relpath(absolute, root)

    def _real_path(self, ref: str) -> int | None:
        """A path through symlinks; looked at last, and only for a path that exists."""
        candidates = [c for c in (ref, os.path.join(self.root or "", ref)) if os.path.exists(c)]
        if not candidates:
            return None
        if self._real is None:
            self._real = {os.path.realpath(self._from_root(p)): r
                          for p, r in self.by_path.items()}
        for candidate in candidates:
            row = self._real.get(os.path.realpath(candidate))
            if row is not None:
                return row
        return None

    def row(self, ref: str) -> int:
        """The row of the article ``ref`` names. Raises :class:`ArticleNotFound`."""
        ref = ref.strip()
        if ref:
            for lookup in (self._url, self.by_id.get, self._path,
                           lambda r: self.by_slug.get(_slug(r)), self._real_path):
                found = lookup(ref)
                if found is not None:
                    return found
        raise ArticleNotFound(f"no article matches {ref!r} (tried url, id, path and slug)")
