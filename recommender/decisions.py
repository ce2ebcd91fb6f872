"""Editors' decisions on suggestions, kept in the content folder for review and commit.

``<content>/.recommender/decisions.yaml`` lists what editors decided, one entry per
(article, target) pair, the last decision winning:

- ``accept``: the link was written into the article's file (:mod:`recommender.accept`);
  until the index is updated the target counts as curated;
- ``reject``: never suggest this target for this article again;
- ``pin``: always show this target first for this article;
- ``block``: never suggest this target anywhere (``article`` is where it was blocked).

It is plain YAML so that a reviewer reads it in a diff, and it lives in the folder,
not the index, because decisions must survive rebuilds. Writes take a lock and
replace the file atomically, so concurrent editors lose nothing; a file that is not
valid is a :class:`~recommender.errors.DecisionError` naming the file and the entry.

Example:
    >>> store = DecisionStore("path/to/content")                   # doctest: +SKIP
    >>> store.add("reject", "/biology/a/", "/history/b/")          # doctest: +SKIP
    >>> "/history/b/" in store.rules().excluded("/biology/a/")     # doctest: +SKIP
    True
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import filelock
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from recommender.errors import DecisionError

Action = Literal["accept", "reject", "pin", "block"]
ACTIONS: tuple[str, ...] = ("accept", "reject", "pin", "block")
FOLDER = ".recommender"
FILE = "decisions.yaml"
#: how long a writer waits for another one (they hold the lock for milliseconds)
LOCK_TIMEOUT_S = 30.0


class Decision(BaseModel):
    """One editor's decision on one suggested pair."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    article: str  # url of the article the suggestion was for
    target: str  # url of the suggested article
    at: str = ""  # when (ISO 8601, UTC)


@dataclass(frozen=True)
class Rules:
    """The decisions in force, shaped for ranking: what to drop, what to put first."""

    rejected: frozenset[tuple[str, str]] = frozenset()
    blocked: frozenset[str] = frozenset()
    pinned: dict[str, tuple[str, ...]] = field(default_factory=dict)
    accepted: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of(cls, decisions: list[Decision]) -> Rules:
        last: dict[tuple[str, str], Decision] = {}
        for d in decisions:
            last.pop((d.article, d.target), None)  # re-deciding a pair moves it to the end
            last[(d.article, d.target)] = d
        pinned: dict[str, list[str]] = {}
        for (article, target), d in last.items():
            if d.action == "pin":
                pinned.setdefault(article, []).append(target)
        return cls(frozenset(p for p, d in last.items() if d.action == "reject"),
                   frozenset(d.target for d in last.values() if d.action == "block"),
                   {a: tuple(t) for a, t in pinned.items()},
                   frozenset(p for p, d in last.items() if d.action == "accept"))

    def excluded(self, article: str | None) -> set[str]:
        """Targets never to suggest for ``article`` (None: free text, only blocks apply)."""
        out = set(self.blocked)
        if article is not None:
            out |= {t for a, t in self.rejected if a == article}
        return out

    def pins(self, article: str) -> tuple[str, ...]:
        return tuple(t for t in self.pinned.get(article, ()) if t not in self.blocked)

    def is_accepted(self, article: str, target: str) -> bool:
        return (article, target) in self.accepted


class DecisionStore:
    """The decisions file of one content folder."""

    def __init__(self, content_dir: str | Path):
        self.folder = Path(content_dir) / FOLDER
        self.path = self.folder / FILE
        self._cached: tuple[tuple[int, int], list[Decision]] | None = None
        # made once, here: a second instance would not be re-entrant with the first
        self._lock = filelock.FileLock(self.folder / (FILE + ".lock"), timeout=LOCK_TIMEOUT_S)

    def lock(self) -> filelock.FileLock:
        """The lock writers hold; an accept holds it around its file write too. One
        re-entrant lock per store (per thread: other threads and processes wait)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return self._lock

    def load(self) -> list[Decision]:
        """Every decision in the file, in order ([] when there is no file)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise DecisionError(f"{self.path}: cannot be read: {error}") from None
        stamp = (st.st_mtime_ns, st.st_size)
        if self._cached is not None and self._cached[0] == stamp:
            return self._cached[1]
        try:
            data = yaml.load(self.path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise DecisionError(f"{self.path}: not valid YAML: {error}") from None
        entries = (data or {}).get("decisions", []) if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise DecisionError(f"{self.path}: expected a mapping with a 'decisions' list")
        decisions = []
        for i, entry in enumerate(entries):
            try:
                decisions.append(Decision.model_validate(entry))
            except ValidationError as error:
                problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}"
                                     for e in error.errors())
                raise DecisionError(f"{self.path}: decision {i + 1}: {problems}") from None
        self._cached = (stamp, decisions)
        return decisions

    def rules(self) -> Rules:
        return Rules.of(self.load())

    def add(self, action: str, article: str, target: str) -> Decision:
        """Record a decision (under the lock, the file replaced atomically)."""
        if action not in ACTIONS:
            raise DecisionError(f"unknown action {action!r}; choose from {', '.join(ACTIONS)}")
        if article == target:
            raise DecisionError(f"a decision needs two articles, got {article} twice")
        decision = Decision(action=action, article=article, target=target,  # type: ignore[arg-type]
                            at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        with self.lock():
            self._write([*self.load(), decision])
        return decision

    def _write(self, decisions: list[Decision]) -> None:
        text = ("# Editors' decisions on suggested related articles (recommender decide, or\n"
                "# the /review page). The last decision on a pair wins.\n"
                + yaml.safe_dump({"decisions": [d.model_dump() for d in decisions]},
                                 sort_keys=False, allow_unicode=True))
        fd, tmp = tempfile.mkstemp(prefix=".decisions-", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
