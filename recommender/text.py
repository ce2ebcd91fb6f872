"""Turn an article into the plain text that is embedded or indexed.

QuickTakes answers carry literal ``\\n`` escapes, markdown emphasis, lists and
LaTeX; none of that markup carries meaning for an encoder and all of it costs
tokens, so it is removed before embedding.

Example:
    >>> clean_text(r"**Bold** point\\n\\n1. A \\\\( x^2 \\\\) term")
    'Bold point\\n\\n1. A x^2 term'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager

from recommender.config import TextConfig
from recommender.corpus import Article

# a literal "\\n" is a line break unless it starts a LaTeX command (\\nabla, \\neq, \\nu...)
_ESCAPES = re.compile(r"\\n(?!(?:abla|eq|eg|u|e|ot|otin|i|mid|ewline|leq|geq)(?![A-Za-z]))")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPH = re.compile(r"(\*{1,3}|_{2,3}|`+|~~)")
_MD_HEAD = re.compile(r"^\s{0,3}(#{1,6}|>+)\s*", re.MULTILINE)
_HTML = re.compile(r"<[^>]{1,200}>|&nbsp;|&[a-z]+;")
_LATEX_DELIM = re.compile(r"\\{1,2}[()\[\]]|\$\$?")
_LATEX_CMD = re.compile(r"\\(?:text|mathrm|mathbf|mathit|operatorname)\{([^{}]*)\}")
_LATEX_NAME = re.compile(r"\\([A-Za-z]+)")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")


#: texts already cleaned, while a :func:`clean_once` block runs
_memo: dict[str, str] | None = None


@contextmanager
def clean_once() -> Iterator[None]:
    """Inside the block, each distinct text is cleaned once.

    A build reads the same fields for the embedding and for each lexical signal,
    and cleaning (a dozen regular expressions) is the costliest part of reading
    them; the memo lives only as long as the block, so nothing stays in memory.
    """
    global _memo
    outer = _memo is None
    if outer:
        _memo = {}
    try:
        yield
    finally:
        if outer:
            _memo = None


def clean_text(text: str) -> str:
    """Remove escapes, markdown and LaTeX markup, keeping the words and formulas' symbols."""
    memo = _memo
    if memo is None:
        return _clean(text)
    found = memo.get(text)
    if found is None:
        found = memo[text] = _clean(text)
    return found


def _clean(text: str) -> str:
    text = _ESCAPES.sub("\n", text)
    text = _HTML.sub(" ", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_HEAD.sub("", text)
    text = _MD_EMPH.sub("", text)
    text = _LATEX_CMD.sub(r"\1", text)
    text = _LATEX_DELIM.sub(" ", text)
    text = _LATEX_NAME.sub(r"\1", text)
    text = text.replace("{", " ").replace("}", " ")
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", text).strip()


def field_text(article: Article, name: str) -> str:
    """One field of an article as clean text."""
    if name == "keywords":
        return ", ".join(article.keywords)
    return clean_text(str(getattr(article, name) or ""))


def article_text(article: Article, fields: tuple[str, ...]) -> str:
    """The named fields, cleaned and joined; a field repeating the previous one is skipped."""
    parts: list[str] = []
    for name in fields:
        value = field_text(article, name)
        if value and (not parts or value != parts[-1]):
            parts.append(value)
    return "\n".join(parts)


def prepare_text(article: Article, config: TextConfig) -> str:
    """The text embedded for ``article`` under ``config`` (before tokenisation)."""
    return article_text(article, config.fields)


def text_hash(text: str) -> str:
    """Cache key of a prepared text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encoding_problem(text: str) -> str | None:
    """Why ``text`` is not valid Unicode, or ``None`` if it is.

    A lone surrogate (a JSON ``"\\ud800"`` escape, or a command-line byte that is
    not UTF-8) makes a Python ``str`` that tokenizers and UTF-8 output reject, so
    callers refuse such text at the edge, with this reason.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"{error.reason} (position {error.start})"
    return None
