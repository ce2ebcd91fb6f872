"""Read one article file and its YAML front matter safely, whatever the file holds.

A content folder is input from outside: a file may be a FIFO (opening it would
hang), a symlink to ``/dev/zero`` (reading it never ends), a huge file, or a
620-byte YAML "billion laughs" whose aliases expand to gigabytes once the
values are walked. Everything here turns such input into an
:class:`ArticleParseError` that names the problem, so the caller reports the file
and goes on:

- only regular files are opened, and at most :data:`MAX_FILE_BYTES` are read;
- the YAML is *composed* first (libyaml, fast, aliases shared, never expanded),
  then every top-level field is measured as if its aliases were expanded; a
  field that would grow past its own text by more than :data:`MAX_ALIAS_GROWTH`
  characters, or that nests deeper than :data:`MAX_DEPTH` levels, or that refers
  to itself, is refused before any Python object is built from it.

Example:
    >>> load_front_matter("---\\ntitle: Hi\\n---\\nBody\\n")
    ({'title': 'Hi'}, 'Body\\n')
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

try:  # the C loader is ~20x faster; pure Python takes minutes on 28k files
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

#: the largest article file read, in bytes; larger files are reported, not read
MAX_FILE_BYTES = 8 * 1024 * 1024
#: how many characters YAML aliases may add to one field beyond its own text
MAX_ALIAS_GROWTH = 64 * 1024
#: the deepest nesting of lists and mappings accepted in a field (front matter uses 2-3)
MAX_DEPTH = 100

_FRONT_MATTER_END = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)
_O_FLAGS = (os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
            | getattr(os, "O_NOCTTY", 0))


class ArticleParseError(ValueError):
    """Why one file is not an article; becomes a load-report entry naming the file."""


def kind_of(mode: int) -> str:
    """A file type in words, for messages about files that are not regular."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: str | Path, limit: int | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    ``limit`` defaults to :data:`MAX_FILE_BYTES`.

    The file is checked before it is opened (opening a FIFO blocks) and again
    through the open descriptor (it may have been swapped in between); the
    descriptor is non-blocking, so even a swapped-in FIFO cannot hang the read.
    """
    limit = MAX_FILE_BYTES if limit is None else limit
    try:
        before = os.stat(path)
    except OSError as exc:
        raise ArticleParseError(f"cannot read file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(before.st_mode):
        raise ArticleParseError(f"is {kind_of(before.st_mode)}, not a regular file: not read")
    try:
        fd = os.open(path, _O_FLAGS)
    except OSError as exc:
        raise ArticleParseError(f"cannot read file: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ArticleParseError(f"is {kind_of(st.st_mode)}, not a regular file: not read")
        if st.st_size > limit:
            raise ArticleParseError(f"file is {st.st_size:,} bytes, over the limit of "
                                    f"{limit:,}: not read")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ArticleParseError(f"file grew past the limit of {limit:,} bytes while read")
        return b"".join(chunks)
    except OSError as exc:
        raise ArticleParseError(f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


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


def front_matter_end(text: str) -> int:
    """Offset (in characters) of the closing ``---`` line, where :func:`split_front_matter` ends."""
    first_nl = text.find("\n")
    match = _FRONT_MATTER_END.search(text, first_nl + 1) if first_nl >= 0 else None
    if match is None:
        raise ArticleParseError("no closing '---' line")
    return match.start()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _measure(root: yaml.Node, field: str, budget: int) -> None:
    """Refuse a field whose expanded size passes ``budget``, that nests too deep, or loops.

    An iterative post-order walk with one (size, height) entry per node, so an
    alias is measured once however often it is used: the walk costs the size of
    the text, not of the expansion.
    """
    sizes: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = [sizes[id(c)] for c in _children(node)]
            size = 1 + sum(s for s, _ in kids)
            height = 1 + max((h for _, h in kids), default=0)
            if height > MAX_DEPTH:
                raise ArticleParseError(f"field {field!r} nests deeper than {MAX_DEPTH} levels")
            if size > budget:
                raise ArticleParseError(
                    f"field {field!r} expands through YAML aliases to over {budget:,} characters"
                    f" (aliases may add at most {MAX_ALIAS_GROWTH:,})")
            sizes[key] = (size, height)
        elif key in sizes:
            continue
        elif key in on_path:
            raise ArticleParseError(f"field {field!r} contains itself through a YAML alias")
        elif isinstance(node, yaml.ScalarNode):
            sizes[key] = (1 + len(node.value), 0)
        else:
            on_path.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


def _flat_size(node: yaml.Node) -> float:
    """The expanded size of a list or mapping of scalars (a seo block, a link block, tags);
    infinity for anything deeper, which :func:`_measure` walks."""
    scalar = yaml.ScalarNode
    if type(node) is yaml.SequenceNode:
        if all(type(c) is scalar for c in node.value):
            return 1 + sum(1 + len(c.value) for c in node.value)
    elif type(node) is yaml.MappingNode:
        if all(type(k) is scalar and type(v) is scalar for k, v in node.value):
            return 1 + sum(2 + len(k.value) + len(v.value) for k, v in node.value)
    return float("inf")


def _field_name(node: yaml.Node) -> str:
    return node.value[:40] if isinstance(node, yaml.ScalarNode) else "<complex key>"


def parse_yaml(front: str) -> Any:
    """The YAML value of ``front``, refused if it expands or nests past the limits.

    Raises :class:`ArticleParseError` (invalid YAML says where).
    """
    try:
        loader = _Loader(front)
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ArticleParseError(f"invalid YAML front matter{where}: {problem}") from None
    if node is None:
        return None
    budget = len(front) + MAX_ALIAS_GROWTH
    scalar = yaml.ScalarNode
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if type(key_node) is not scalar:
                _measure(key_node, "<complex key>", budget)
            if type(value_node) is scalar or _flat_size(value_node) <= budget:
                continue  # the common shapes, measured without a walk
            _measure(value_node, _field_name(key_node), budget)
    else:
        _measure(node, "<document>", budget)
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ArticleParseError(f"invalid YAML front matter: {problem}") from None
    except (ValueError, OverflowError) as exc:  # a plain scalar PyYAML resolves but cannot
        # build, e.g. the date 2024-13-45 or the integer 0x_
        raise ArticleParseError(f"invalid YAML front matter: a value cannot be read ({exc})"
                                ) from None
    except RecursionError:  # pragma: no cover - the depth limit comes first
        raise ArticleParseError(f"front matter nests deeper than {MAX_DEPTH} levels") from None


def load_front_matter(text: str) -> tuple[dict[Any, Any], str]:
    """(front matter mapping, body) of an article's text; :class:`ArticleParseError` if not."""
    front, body = split_front_matter(text)
    meta = parse_yaml(front)
    if not isinstance(meta, dict):
        raise ArticleParseError(
            f"front matter is a {type(meta).__name__}, not a mapping of fields")
    return meta, body


def decode(data: bytes) -> str:
    """UTF-8 text of a file; :class:`ArticleParseError` naming the first bad byte if not."""
    if not data.strip():
        raise ArticleParseError("empty file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArticleParseError(f"not valid UTF-8 (byte {exc.start})") from None


__all__ = [
    "MAX_ALIAS_GROWTH",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "ArticleParseError",
    "decode",
    "front_matter_end",
    "kind_of",
    "load_front_matter",
    "parse_yaml",
    "read_regular_file",
    "split_front_matter",
]
