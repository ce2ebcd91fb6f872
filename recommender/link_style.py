"""How new curated links are written so that they look like the ones a file already has.

Editors review a fill as a diff, so a new link is written in the style of the
site: a numbered ``related_articleN`` block with the indentation, key order and
folded titles of the existing blocks (QuickTakes), or one more item of a
``related:`` list with the file's own indentation (Hugo, Jekyll). Each style
computes an :class:`Insertion`: the text to insert, where, and what the changed
keys must load to afterwards, which the fill checks before it writes.

Nothing here re-serialises YAML: new text is inserted, every other byte stays.

Example:
    >>> link = PlannedLink(1, "/man1/ls.1/", None, "ls(1)", "User Commands", 0.9)
    >>> text = "---\\ntitle: cp(1)\\nrelated:\\n- /man1/mv.1/\\n---\\nBody\\n"
    >>> ins = list_insertion(text, {"related": ["/man1/mv.1/"]}, "related", [link], ListStyle(),
    ...                      "\\n")
    >>> text[: ins.at] + ins.text + text[ins.at :]
    '---\\ntitle: cp(1)\\nrelated:\\n- /man1/mv.1/\\n- /man1/ls.1/\\n---\\nBody\\n'
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from recommender.frontmatter import ArticleParseError, front_matter_end, split_front_matter

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

#: the sub-fields of a numbered block, in the QuickTakes order
LINK_FIELDS = ("id", "title", "subject", "url")

_INT_ID = re.compile(r"-?[1-9][0-9]*|0")
# what YAML may hold at all (PyYAML's reader), and what a one-line block scalar may not
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_LINE_BREAKS = re.compile("[\r\n\x85\u2028\u2029\ufeff]")
# the line breaks libyaml counts when it numbers lines
_YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


class UnsupportedLayout(ValueError):
    """The file's links are written in a form a fill cannot extend without rewriting bytes."""


@dataclass(frozen=True)
class PlannedLink:
    """One new link: which article it points to, and why."""

    n: int
    url: str
    id: str | None
    title: str
    subject: str
    score: float


@dataclass(frozen=True)
class LinkStyle:
    """How a file set writes its numbered blocks, so new ones look like the old ones.

    ``indent`` is the indentation of the child keys, ``title_block`` the block
    scalar header used for titles (``">-"``; ``None`` writes a plain or quoted
    scalar), ``block_indent`` the absolute indentation of that scalar's content,
    ``order`` the canonical sub-fields in the order written, ``prefix`` the key
    prefix and ``names`` the written names of ``id``, ``title``, ``subject``, ``url``.
    """

    indent: int = 4
    title_block: str | None = ">-"
    block_indent: int = 8
    order: tuple[str, ...] = LINK_FIELDS
    prefix: str = "related_article"
    names: tuple[str, str, str, str] = LINK_FIELDS


#: the QuickTakes layout, used when no file of the corpus has a numbered block
DEFAULT_STYLE = LinkStyle()


@dataclass(frozen=True)
class ListStyle:
    """How a site writes a links list: its key and the spaces before each item's dash."""

    key: str = "related"
    indent: int = 2


@dataclass(frozen=True)
class Insertion:
    """Text to insert at character offset ``at``, and what the changed keys load to after."""

    at: int
    text: str
    changes: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- detection


def detect_style(text: str, prefix: str = "related_article",
                 names: tuple[str, str, str, str] = LINK_FIELDS) -> LinkStyle | None:
    """Learn the layout of the first numbered block in ``text``; ``None`` if it has none.

    Only block mappings are learnt (the form editors write); a file with flow
    mappings or no blocks says nothing about the style.
    """
    try:
        front, _ = split_front_matter(text)
    except ArticleParseError:
        return None
    start = re.compile(rf"^{re.escape(prefix)}\d+:[ \t]*(?:#.*)?$")
    canonical = dict(zip(names, LINK_FIELDS, strict=True))
    lines = front.splitlines()
    for i, line in enumerate(lines):
        if not start.match(line):
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
            keys.append(canonical.get(key.strip(), key.strip()))
            if key.strip() != names[1]:
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
        return LinkStyle(indent=key_indent, title_block=title_block,
                         block_indent=block_indent or key_indent * 2, order=order,
                         prefix=prefix, names=names)
    return None


def _compose(text: str) -> tuple[int, str, yaml.Node | None]:
    """(offset of the front matter in ``text``, the front matter, its YAML node graph).

    Composing builds nodes only: aliases stay shared, nothing is expanded.
    """
    front, _ = split_front_matter(text)
    start = text.find("\n") + 1
    try:
        return start, front, _Loader(front).get_single_node()
    except yaml.YAMLError as exc:
        raise UnsupportedLayout(f"front matter does not parse: {exc}") from None


def _top_level(node: yaml.Node | None, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _line_starts(front: str) -> list[int]:
    """Character offset of each line of ``front``, numbered as libyaml numbers them."""
    return [0] + [m.end() for m in _YAML_BREAK.finditer(front)]


def detect_list_style(text: str, key: str) -> ListStyle | None:
    """The indentation of the block list under ``key`` in ``text``; ``None`` if there is none."""
    try:
        _, front, root = _compose(text)
    except (ArticleParseError, UnsupportedLayout):
        return None
    found = _top_level(root, key)
    if found is None or not isinstance(found[1], yaml.SequenceNode) or found[1].flow_style \
            or not found[1].value:
        return None
    starts = _line_starts(front)
    first = found[1].value[0].start_mark.line
    line = front[starts[first] : starts[first + 1] if first + 1 < len(starts) else len(front)]
    stripped = line.lstrip(" ")
    if not stripped.startswith("-"):
        return None
    return ListStyle(key=key, indent=len(line) - len(stripped))


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


def expected_fields(link: PlannedLink,
                    names: tuple[str, str, str, str] = LINK_FIELDS) -> dict[str, Any]:
    """What the YAML of a rendered block must load to (checked before any write)."""
    values: dict[str, Any] = {
        "id": _id_value(link.id) if link.id is not None else None,
        "title": link.title,
        "subject": link.subject,
        "url": link.url,
    }
    if link.id is None:
        del values["id"]
    written = dict(zip(LINK_FIELDS, names, strict=True))
    return {written[key]: value for key, value in values.items()}


def render_block(link: PlannedLink, style: LinkStyle, newline: str) -> str:
    """One numbered block in ``style``, every line ending in ``newline``."""
    pad = " " * style.indent
    values = expected_fields(link)
    written = dict(zip(LINK_FIELDS, style.names, strict=True))
    lines = [f"{style.prefix}{link.n}:"]
    for key in style.order:
        if key not in values:
            continue
        value = values[key]
        if key == "title" and style.title_block and _block_safe(value):
            lines.append(f"{pad}{written[key]}: {style.title_block}")
            lines.append(" " * max(style.block_indent, style.indent + 1) + value)
        else:
            lines.append(f"{pad}{written[key]}: {yaml_scalar(value)}")
    return "".join(line + newline for line in lines)


def numbered_insertion(text: str, links: Sequence[PlannedLink], style: LinkStyle,
                       newline: str) -> Insertion:
    """New numbered blocks, just before the closing ``---``."""
    block = "".join(render_block(link, style, newline) for link in links)
    changes = {f"{style.prefix}{link.n}": expected_fields(link, style.names) for link in links}
    return Insertion(front_matter_end(text), block, changes)


def list_insertion(text: str, meta: dict[Any, Any], key: str, links: Sequence[PlannedLink],
                   style: ListStyle, newline: str) -> Insertion:
    """New items of the list under ``key``: appended to it, or a new key before ``---``.

    A block list gets one ``- url`` line per link after its last item, with the
    indentation of its own items; a one-line flow list (``[a, b]``) gets the urls
    before its ``]``; an empty ``key:`` gets items below it; no key, a new key.
    Anything else (a multi-line flow list, a block scalar item, ``key: ~``)
    raises :class:`UnsupportedLayout`. ``meta`` is the front matter ``text`` loads to.
    """
    urls = [link.url for link in links]
    items = [yaml_scalar(url) for url in urls]
    offset, front, root = _compose(text)
    found = _top_level(root, key)
    if found is None:
        lines = [f"{key}:"] + [" " * style.indent + f"- {item}" for item in items]
        return Insertion(front_matter_end(text), "".join(line + newline for line in lines),
                         {key: urls})
    key_node, value = found
    starts = _line_starts(front)

    def line_of(n: int) -> tuple[int, str]:
        end = starts[n + 1] if n + 1 < len(starts) else len(front)
        return starts[n], front[starts[n] : end]

    def after_line(n: int) -> int:
        if n + 1 >= len(starts):
            raise UnsupportedLayout(f"the list {key!r} ends the front matter without a newline")
        return offset + starts[n + 1]

    old = meta.get(key) or []
    if isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null") and not value.value:
        start, line = line_of(key_node.start_mark.line)
        if not re.fullmatch(rf"{re.escape(key)}:[ \t]*(#.*)?\s*", line):
            raise UnsupportedLayout(f"the empty {key!r} key shares its line with other text")
        lines = [" " * style.indent + f"- {item}" for item in items]
        return Insertion(after_line(key_node.start_mark.line),
                         "".join(line + newline for line in lines), {key: urls})
    if not isinstance(value, yaml.SequenceNode):
        raise UnsupportedLayout(f"field {key!r} is not a list; it is left as it is")
    if value.flow_style:
        if value.start_mark.line != value.end_mark.line:
            raise UnsupportedLayout(f"the list {key!r} spreads over several lines")
        start, line = line_of(value.end_mark.line)
        m = re.fullmatch(r"(.*)\][ \t]*(#.*)?(\r\n|[\r\n\x85\u2028\u2029])?", line, re.DOTALL)
        if m is None:
            raise UnsupportedLayout(f"the list {key!r} is not closed on its own line")
        joined = ", ".join(items)
        return Insertion(offset + start + len(m.group(1).rstrip(" \t")),
                         f", {joined}" if value.value else joined, {key: [*old, *urls]})
    last = value.value[-1]
    if not isinstance(last, yaml.ScalarNode) or last.style not in (None, "", '"', "'"):
        raise UnsupportedLayout(f"the last item of {key!r} is not a one-line value")
    _, dash_line = line_of(last.start_mark.line)
    stripped = dash_line.lstrip(" ")
    if not stripped.startswith("-"):
        raise UnsupportedLayout(f"the last item of {key!r} does not start its line")
    pad = " " * (len(dash_line) - len(stripped))
    lines = [f"{pad}- {item}" for item in items]
    return Insertion(after_line(last.end_mark.line), "".join(line + newline for line in lines),
                     {key: [*old, *urls]})


__all__ = [
    "DEFAULT_STYLE",
    "LINK_FIELDS",
    "Insertion",
    "LinkStyle",
    "ListStyle",
    "PlannedLink",
    "UnsupportedLayout",
    "detect_list_style",
    "detect_style",
    "expected_fields",
    "list_insertion",
    "numbered_insertion",
    "render_block",
    "yaml_scalar",
]
