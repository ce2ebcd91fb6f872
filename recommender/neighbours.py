"""Neighbour lists and suggestions: computed for every article, or patched after a change.

A build computes, for each active signal, every article's ``depth`` nearest
articles (FAISS proposes the dense ones, every score is exact), then every
article's ranked suggestions from them.

An update knows which rows are *fresh* (added, or changed in what the ranking
reads) and which were kept, with their old row numbers (:class:`Layout`). For a
kept article, a list is patched rather than recomputed:

- entries naming a deleted or changed article are *lost*: they leave the list and
  the entries after them move up, the first of its ``SPARE`` entries past the
  depth (kept for this) filling the end; only a list that lost more entries than
  it has spares is computed again;
- the fresh articles are scored against it and merged in where they beat its last
  known entry.

Scores of unchanged pairs do not change (vectors are kept, the TF-IDF is
frozen) and lists are ordered by (score, then row), so a patched list is exactly
the list a full computation gives over the same vectors. When the sparse signals
were refitted, their lists are recomputed for every row instead.

Suggestions are then recomputed for the fresh rows and every row whose list
changed; no other row can gain or lose a suggestion, since suggestions are drawn
from the lists. What an update approximates: a kept article's suggestions also
depend on its candidates' own lists and on 2-hop scores through its neighbours'
lists; when those changed and its own did not, its suggestions keep their old
scores. ``benchmarks/update_index.py`` measures the agreement with a fresh build.
The fused method has no lists: its suggestions are patched like a list (scores
are sums over pairs), by recomputing every row they could change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.ranking import Ranker
from recommender.ranking_state import (
    NEIGHBOURS,
    UNKNOWN,
    NeighbourLists,
    Suggestions,
    best_neighbours,
)

_BLOCK = 512
#: entries kept past each list's depth, so that an update that deletes or changes articles
#: rarely has to compute a list again (10 deletions touch ~2,000 lists of quicktakes-dev)
SPARE = 10


@dataclass(frozen=True)
class Layout:
    """How the rows of an updated index relate to the previous one's.

    ``source[new]`` is the old row whose ranking data the new row keeps, or -1 for a
    fresh row (an added article, or one whose ranked text, subject or ``no_index``
    changed). ``old_to_new[old]`` is the new row that kept it, or -1 (deleted or
    changed). Kept rows stay in their old relative order.
    """

    source: np.ndarray  # (n_new,) int64
    old_to_new: np.ndarray  # (n_old,) int64

    @property
    def fresh(self) -> np.ndarray:
        return np.flatnonzero(self.source < 0)

    @property
    def kept(self) -> np.ndarray:
        return np.flatnonzero(self.source >= 0)

    @classmethod
    def of(cls, source: np.ndarray, n_old: int) -> Layout:
        source = np.asarray(source, dtype=np.int64)
        old_to_new = np.full(n_old, -1, np.int64)
        kept = np.flatnonzero(source >= 0)
        old_to_new[source[kept]] = kept
        return cls(source, old_to_new)

    def remap(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Old row numbers (kept rows' arrays) as new ones, and where one was lost (-1).
        Entries that name nobody (negative) come back as -1."""
        table = np.append(self.old_to_new, -1).astype(np.int32)  # row -1 -> -1
        out = table[np.maximum(rows, -1)]
        return out, (out < 0) & (rows >= 0)


def _blocks(rows: np.ndarray, size: int = _BLOCK):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def compute_lists(ranker: Ranker, name: str, rows: np.ndarray | None = None,
                  spare: int = SPARE) -> NeighbourLists:
    """The lists of ``rows`` (default: every article) under one signal, computed in full,
    with ``spare`` entries past the depth."""
    rows = np.arange(ranker.n) if rows is None else np.asarray(rows, dtype=np.int64)
    width = ranker.config.depth + spare
    out_rows = np.full((len(rows), width), -1, np.int32)
    out_scores = np.zeros((len(rows), width), np.float32)
    for start in range(0, len(rows), _BLOCK):
        block = rows[start : start + _BLOCK]
        if name == "dense":
            lists = ranker.dense_neighbours(ranker.index.vectors[block], block, width)
        else:
            lists, _ = best_neighbours(ranker.mask(ranker.signal_rows(name, block), block), width)
        out_rows[start : start + len(block)] = lists.rows
        out_scores[start : start + len(block)] = lists.scores
    return NeighbourLists.split(out_rows, out_scores, ranker.config.depth)


@dataclass
class PatchCounts:
    """What patching one signal's lists did (rows of the new index)."""

    recomputed: int = 0  # lists computed in full (fresh rows, and kept rows that lost an entry)
    merged: int = 0  # kept rows a fresh article entered
    changed: np.ndarray | None = None  # rows whose list differs from before (fresh included)


def _drop_lost(rows: np.ndarray, scores: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """Take the ``lost`` entries out of lists (in place): those after them move up; the
    end is "nobody" for a list that named everyone it scores above 0, else ``UNKNOWN``.
    Returns the lists (positions) that lost an entry."""
    gone = np.flatnonzero(lost.any(axis=1))
    if not len(gone):
        return gone
    order = np.argsort(lost[gone], axis=1, kind="stable")  # lost entries to the end
    moved = np.take_along_axis(rows[gone], order, axis=1)
    moved_scores = np.take_along_axis(scores[gone], order, axis=1)
    tail = np.take_along_axis(lost[gone], order, axis=1)
    complete = ((rows[gone] == -1) & ~lost[gone]).any(axis=1)
    fill = np.where(complete, -1, UNKNOWN).astype(rows.dtype)
    rows[gone] = np.where(tail, fill[:, None], moved)
    scores[gone] = np.where(tail, np.float32(0), moved_scores)
    return gone


def patch_lists(ranker: Ranker, name: str, old: NeighbourLists, layout: Layout
                ) -> tuple[NeighbourLists, PatchCounts]:
    """The lists of one signal after an update, from the old lists (see the module docstring).

    ``ranker`` ranks the updated index; ``old`` are the lists of the previous one. Lists
    and spare entries are handled as one list of ``depth + spare`` whose first ``known``
    entries are exact (the rest ``UNKNOWN``): what an update keeps true. Only the lists
    that lose or gain an entry are worked on; the others are renumbered.
    """
    n, depth = ranker.n, ranker.config.depth
    kept, fresh = layout.kept, layout.fresh
    old_rows, old_scores = old.combined()
    width = old_rows.shape[1]
    source = layout.source[kept]
    identity = len(kept) == n and len(source) == len(old_rows) and bool(
        (source == np.arange(n)).all())
    kept_old = old_rows if identity else old_rows[source]
    rows, lost = layout.remap(kept_old)
    scores = old_scores.copy() if identity else old_scores[source]
    if width > depth:
        spare_unknown = kept_old[:, depth:] == UNKNOWN
        rows[:, depth:][spare_unknown] = UNKNOWN
    touched = np.zeros(n, dtype=bool)  # lists whose first ``depth`` entries may change
    before_rows = rows[:, :depth].copy()  # the kept lists' entries, renumbered
    gone = _drop_lost(rows, scores, lost)
    if len(kept) < n:  # fresh rows among them: kept lists go to their new rows
        all_rows = np.full((n, width), -1, np.int32)
        all_scores = np.zeros((n, width), np.float32)
        all_rows[kept], all_scores[kept] = rows, scores
        rows, scores = all_rows, all_scores
    touched[kept[gone]] = True
    known = np.full(n, width)
    if width > depth:
        known -= (rows[:, depth:] == UNKNOWN).sum(axis=1)
    redo_kept = kept[known[kept] < depth]
    incoming = fresh[~ranker.excluded[fresh]]
    merging = np.zeros(n, dtype=bool)  # (np.setdiff1d hashes: slower at this size)
    merging[kept] = True
    merging[redo_kept] = False
    merge = np.flatnonzero(merging)
    counts = PatchCounts()
    if len(incoming) and len(merge):
        entered = []
        for block in _blocks(merge, max(4096, 4_000_000 // len(incoming))):
            last = scores[block, known[block] - 1]
            s = np.maximum(ranker.signal_block(name, block, incoming, floor=last), 0)
            hit = (s > 0) & (s >= last[:, None])
            hits = np.flatnonzero(hit.any(axis=1))
            if not len(hits):
                continue
            targets = block[hits]
            values = np.concatenate([scores[targets], s[hits]], axis=1)
            ids = np.concatenate([rows[targets].astype(np.int64),
                                  np.broadcast_to(incoming, (len(targets), len(incoming)))],
                                 axis=1)
            merged, _ = best_neighbours(values, width, ids)
            beyond = np.arange(width)[None, :] >= known[targets][:, None]  # still unknown
            rows[targets] = np.where(beyond, UNKNOWN, merged.rows)
            scores[targets] = np.where(beyond, np.float32(0), merged.scores)
            entered.append(targets)
        counts.merged = int(sum(len(t) for t in entered))
        for targets in entered:
            touched[targets] = True
    redo = np.concatenate([fresh, redo_kept]).astype(np.int64)
    if len(redo):
        full = compute_lists(ranker, name, redo, width - depth)
        rows[redo], scores[redo] = full.combined()
    counts.recomputed = len(redo)
    differs = np.zeros(n, dtype=bool)
    differs[fresh] = True
    check = np.flatnonzero(touched)  # did the first ``depth`` entries change?
    if len(check):
        position = np.empty(n, np.int64)
        position[kept] = np.arange(len(kept))
        was = before_rows[position[check]]
        was_scores = (old_scores[check] if identity else old_scores[source[position[check]]])
        differs[check] = ((rows[check, :depth] != was) | (
            scores[check, :depth] != was_scores[:, :depth])).any(axis=1)
    counts.changed = np.flatnonzero(differs)
    return NeighbourLists.split(rows, scores, depth), counts


def compute_suggestions(ranker: Ranker, rows: np.ndarray | None = None,
                        m: int = NEIGHBOURS) -> Suggestions:
    """The ranked suggestions of ``rows`` (default: every article), computed in full."""
    rows = np.arange(ranker.n) if rows is None else rows
    out_rows, out_scores = ranker.suggest_rows(rows, m)
    return Suggestions(out_rows, out_scores)


def patch_suggestions(ranker: Ranker, old: Suggestions, layout: Layout,
                      dirty: np.ndarray) -> tuple[Suggestions, int]:
    """Suggestions after an update: recomputed for ``dirty`` rows (fresh, and those whose
    lists changed), kept (renumbered) for the others. Returns them and how many rows
    were recomputed. For the fused method the rows a fresh article could enter are
    found here."""
    n, m = ranker.n, old.rows.shape[1]
    kept = layout.kept
    rows = np.full((n, m), -1, np.int32)
    scores = np.full((n, m), -np.inf, np.float32)
    rows[kept], lost = layout.remap(old.rows[layout.source[kept]])
    scores[kept] = old.scores[layout.source[kept]]
    redo = np.zeros(n, dtype=bool)
    redo[dirty] = True
    redo[layout.fresh] = True
    redo[kept[lost.any(axis=1)]] = True
    if not ranker.learned:  # fused: a fresh article may enter any row's suggestions
        incoming = layout.fresh[~ranker.excluded[layout.fresh]]
        if len(incoming):
            total = np.zeros((n, len(incoming)), np.float64)
            for weight, name in ranker._fused_signals():
                for block in _blocks(np.arange(n), 4096):
                    total[block] += weight * ranker.signal_block(name, block, incoming)
            redo |= (total >= scores[:, m - 1][:, None]).any(axis=1)
    targets = np.flatnonzero(redo)
    if len(targets):
        fresh = compute_suggestions(ranker, targets, m)
        rows[targets], scores[targets] = fresh.rows, fresh.scores
    return Suggestions(rows, scores), len(targets)
