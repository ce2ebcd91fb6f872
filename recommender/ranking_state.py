"""The ranking state of an index: what the ranker reads besides the articles' vectors.

- the sparse signals (fitted, frozen TF-IDF vectorizers) and their article rows,
  and the signals switched off, with why;
- for the learned method, each active signal's neighbour lists (every article's
  ``depth`` nearest articles), which its features read;
- every article's precomputed suggestions (``NEIGHBOURS`` best, ranked);
- the learned model, and where it came from (:class:`RankerChoice`);
- when the sparse signals were last fitted, and how much has changed since.

It is saved in the index directory's ``ranking/`` folder (JSON and NumPy files, no
pickles) and checked against the articles when read: every array must have one
row per article, rows in range and finite scores, or the load fails with
:class:`~recommender.errors.IndexCorrupt` naming the file. Never changed in place:
an update builds a new state.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommender.config import BuildConfig
from recommender.errors import IndexCorrupt
from recommender.index import check_array, load_arrays
from recommender.learned import SIGNALS, LearnedModel, feature_names, resolve_model_path
from recommender.lexical import SparseSignal
from recommender.model_files import LGB_SUFFIX, sha256_file

#: how many ranked suggestions are precomputed per article
NEIGHBOURS = 100
STATE = "state.json"
LISTS = "lists.npz"
SUGGESTIONS = "neighbours.npz"
UNKNOWN = -2  # a spare list entry that is no longer known (see NeighbourLists)
#: the model's file: ``ranker`` + the kind's suffix (LightGBM's model text, or JSON)
MODEL = "ranker"


@dataclass(frozen=True)
class NeighbourLists:
    """Each article's nearest articles under one signal, best first.

    ``scores`` are the ``depth`` best cosines, clamped at 0 (a negative cosine is no
    evidence), in descending order; ``rows`` name the articles, in ties the lower
    row first, and are -1 where the score is 0: an article that shares nothing is
    nobody's neighbour, so no arbitrary choice among the many zeros is stored.
    """

    rows: np.ndarray  # (n, depth) int32
    scores: np.ndarray  # (n, depth) float32
    #: the entries that follow the ``depth`` (n, spare), ranked the same way and never read
    #: by the ranking: an update that deletes an entry moves the next one up instead of
    #: computing the list again (:mod:`recommender.neighbours`). ``UNKNOWN`` marks entries
    #: no longer known since such a move; None: an index built without them
    spare_rows: np.ndarray | None = None
    spare_scores: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> NeighbourLists:
        if self.spare_rows is None or self.spare_scores is None:
            return NeighbourLists(self.rows[rows], self.scores[rows])
        return NeighbourLists(self.rows[rows], self.scores[rows], self.spare_rows[rows],
                              self.spare_scores[rows])

    def combined(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the lists with their spare entries after them."""
        if self.spare_rows is None or self.spare_scores is None:
            return self.rows, self.scores
        return (np.concatenate([self.rows, self.spare_rows], axis=1),
                np.concatenate([self.scores, self.spare_scores], axis=1))

    @classmethod
    def split(cls, rows: np.ndarray, scores: np.ndarray, depth: int) -> NeighbourLists:
        """Lists of ``depth`` from wider ones, the rest kept as spare entries."""
        if rows.shape[1] <= depth:
            return cls(rows, scores)
        return cls(np.ascontiguousarray(rows[:, :depth]), np.ascontiguousarray(scores[:, :depth]),
                   np.ascontiguousarray(rows[:, depth:]), np.ascontiguousarray(scores[:, depth:]))


def top_columns(values: np.ndarray, k: int) -> np.ndarray:
    """Columns of the ``k`` largest values of each row, in no particular order.

    torch's top-k is about ten times faster than numpy's argpartition on wide rows,
    which matters when every article's lists are computed; it is imported for that
    (a second) but not for the few rows of an update. numpy is the fallback for
    installs without torch.
    """
    torch = sys.modules.get("torch")
    if torch is None and values.size > 4_000_000:
        try:
            import torch
        except ImportError:  # pragma: no cover
            torch = None
    if torch is None:
        return np.argpartition(-values, k - 1, axis=1)[:, :k]
    _, columns = torch.topk(torch.from_numpy(np.ascontiguousarray(values)), k, dim=1)
    return columns.numpy().astype(np.int64)


def best_neighbours(scores: np.ndarray, depth: int, ids: np.ndarray | None = None
                    ) -> tuple[NeighbourLists, np.ndarray]:
    """The ``depth`` best of each row of ``scores``, ordered as :class:`NeighbourLists` are.

    ``scores`` (b, w): cosines, masked entries at ``-inf``; ``ids`` (b, w): the row
    each column stands for (default: column = row; -1 = no article). Returns the
    lists and a (b,) mask of rows whose choice is *unsure*: the ``depth``-th value
    ties with the last column, so an article outside the columns given might
    belong (only possible when the columns are a search's candidates, not all rows).
    """
    b, width = scores.shape
    values = np.fmax(scores, 0).astype(np.float32, copy=False)  # -inf, NaN: 0
    if ids is not None:
        ids = np.asarray(ids, dtype=np.int64)
        values = np.where(ids >= 0, values, np.float32(0))
    unsure = np.zeros(b, dtype=bool)
    if ids is None and width > 4 * depth:
        keep = depth + 1
        cols = top_columns(values, keep)
        top = np.take_along_axis(values, cols, axis=1)
        order = np.lexsort((cols, -top), axis=1)
        cols = np.take_along_axis(cols, order, axis=1)
        top = np.take_along_axis(top, order, axis=1)
        # a tie across the cut: every tied column must be seen, or ties would be broken
        # by position (ties at 0 do not matter: those entries name nobody)
        for r in np.flatnonzero((top[:, depth - 1] > 0) & (top[:, depth - 1] == top[:, depth])):
            cand = np.flatnonzero(values[r] >= top[r, depth - 1])
            chosen = cand[np.lexsort((cand, -values[r, cand]))[:keep]]
            cols[r], top[r] = chosen, values[r, chosen]
        rows, top = cols[:, :depth], top[:, :depth]
    else:
        if ids is None:
            ids = np.broadcast_to(np.arange(width, dtype=np.int64), (b, width))
        if width < depth:  # pad with "nobody, score 0"
            values = np.concatenate([values, np.zeros((b, depth - width), np.float32)], axis=1)
            ids = np.concatenate([ids, np.full((b, depth - width), -1, np.int64)], axis=1)
        tiebreak = np.where(ids >= 0, ids, np.iinfo(np.int64).max)  # nobody after any row
        order = np.lexsort((tiebreak, -values), axis=1)
        top = np.take_along_axis(values, order, axis=1)
        rows = np.take_along_axis(ids, order, axis=1)
        if top.shape[1] > depth:
            unsure = (top[:, depth - 1] > 0) & (top[:, depth - 1] == top[:, -1]) & (
                rows[:, -1] >= 0)
        rows, top = rows[:, :depth], top[:, :depth]
    rows = np.where(top > 0, rows, -1).astype(np.int32)
    return NeighbourLists(rows, np.ascontiguousarray(top, dtype=np.float32)), unsure


@dataclass(frozen=True)
class Suggestions:
    """Every article's ``NEIGHBOURS`` best suggestions: rows (-1 padded) and ranker scores
    (``-inf`` where padded)."""

    rows: np.ndarray  # (n, NEIGHBOURS) int32
    scores: np.ndarray  # (n, NEIGHBOURS) float32


@dataclass(frozen=True)
class RankerChoice:
    """Which ranking an index uses and why: recorded in the manifest, printed by ``build``.

    ``kind``: ``learned`` (a model from ``file``, or with no file one fitted on the
    corpus' own links at build time: ``reason`` says so), ``blend`` (the unsupervised sum of
    the candidates' cosines; ``reason`` says why there is no model) or ``fused``.
    """

    kind: str
    file: str | None = None
    reason: str | None = None
    sha256: str | None = None  # of the file's bytes, so ``info`` shows which file it was

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        if self.kind == "learned":
            return f"learned re-ranker ({self.file or self.reason})"
        if self.kind == "blend":
            return f"unsupervised blend of the cosines ({self.reason})"
        if self.kind == "dense":
            return f"the dense cosine ({self.reason})"
        return "fused: weighted sum of the cosines"


@dataclass(frozen=True)
class FitInfo:
    """When the sparse signals were fitted, and how many articles changed since."""

    articles: int  # articles at the fit
    changed: int = 0  # changed, added and deleted articles since
    fitted_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @property
    def changed_share(self) -> float:
        return self.changed / max(self.articles, 1)


@dataclass(frozen=True)
class RankingState:
    """Signals, lists, suggestions and model of one index (see the module docstring)."""

    signals: dict[str, SparseSignal]
    matrices: dict[str, sp.csr_matrix]
    off: dict[str, str]  # signals the configuration asks for that are switched off, and why
    active: tuple[str, ...]  # active signals in feature order (dense included)
    lists: dict[str, NeighbourLists]
    suggestions: Suggestions
    model: LearnedModel | None
    ranker: RankerChoice
    fit: FitInfo

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, signal in self.signals.items():
            signal.save(directory / name, self.matrices[name])
        arrays = {}
        for name, lists in self.lists.items():
            arrays[f"{name}.rows"], arrays[f"{name}.scores"] = lists.rows, lists.scores
            if lists.spare_rows is not None and lists.spare_scores is not None:
                arrays[f"{name}.spare_rows"] = lists.spare_rows
                arrays[f"{name}.spare_scores"] = lists.spare_scores
        np.savez(directory / LISTS, **arrays)
        np.savez(directory / SUGGESTIONS, rows=self.suggestions.rows,
                 scores=self.suggestions.scores)
        if self.model is not None:
            self.model.save(directory / f"{MODEL}{self.model.suffix}")
        meta = {"active": list(self.active), "off": self.off, "ranker": self.ranker.as_dict(),
                "fit": asdict(self.fit), "lists": sorted(self.lists)}
        (directory / STATE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, n: int, config: BuildConfig) -> RankingState:
        """The state saved in ``directory`` for ``n`` articles, every array checked."""
        path = directory / STATE
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            active = tuple(meta["active"])
            off = dict(meta["off"])
            ranker = RankerChoice(**meta["ranker"])
            fit = FitInfo(**meta["fit"])
            list_names = list(meta["lists"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise IndexCorrupt(f"{path}: cannot be read: {error!r}") from None
        if not set(active) <= set(SIGNALS):
            raise IndexCorrupt(f"{path}: unknown signals in {list(active)}")
        signals, matrices = {}, {}
        for name in active:
            if name != "dense":
                signals[name], matrices[name] = SparseSignal.load(directory / name, n)
        arrays = load_arrays(directory / LISTS)
        lists = {}
        depth = config.ranking.depth
        for name in list_names:
            if f"{name}.rows" not in arrays or f"{name}.scores" not in arrays:
                raise IndexCorrupt(f"{directory / LISTS}: no neighbour lists of {name}")
            spare: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
            if f"{name}.spare_rows" in arrays and f"{name}.spare_scores" in arrays:
                spare_rows = check_array(directory / LISTS, f"{name}.spare_rows",
                                         arrays[f"{name}.spare_rows"], (n, None), "i",
                                         rows_below=n, lowest=UNKNOWN)
                spare = (spare_rows, check_array(
                    directory / LISTS, f"{name}.spare_scores", arrays[f"{name}.spare_scores"],
                    (n, spare_rows.shape[1]), "f", finite=True))
            lists[name] = NeighbourLists(
                check_array(directory / LISTS, f"{name}.rows", arrays[f"{name}.rows"],
                            (n, depth), "i", rows_below=n),
                check_array(directory / LISTS, f"{name}.scores", arrays[f"{name}.scores"],
                            (n, depth), "f", finite=True), *spare)
        if config.ranking.method == "learned" and set(lists) != set(active):
            raise IndexCorrupt(f"{directory / LISTS}: lists of {sorted(lists)}, the learned "
                               f"ranking needs {sorted(active)}")
        suggestions = _load_suggestions(directory / SUGGESTIONS, n)
        model = None
        files = [directory / f"{MODEL}{suffix}" for suffix in (LGB_SUFFIX, ".json")]
        files = [f for f in files if f.exists()]
        if len(files) > 1:
            raise IndexCorrupt(f"{directory}: two ranker files, "
                               f"{' and '.join(f.name for f in files)}")
        if files:
            try:
                model = LearnedModel.load(files[0])
            except ValueError as error:
                raise IndexCorrupt(str(error)) from None
            if model.features != feature_names(active):
                raise IndexCorrupt(f"{files[0]}: fitted on other features than the "
                                   f"index's signals {list(active)}")
        return cls(signals, matrices, off, active, lists, suggestions, model, ranker, fit)


def _load_suggestions(path: Path, n: int) -> Suggestions:
    arrays = load_arrays(path)
    if "rows" not in arrays or "scores" not in arrays:
        raise IndexCorrupt(f"{path}: needs arrays 'rows' and 'scores', has {sorted(arrays)}")
    rows = check_array(path, "rows", arrays["rows"], (n, None), "i", rows_below=n)
    scores = check_array(path, "scores", arrays["scores"], (n, rows.shape[1]), "f")
    if np.isnan(scores).any() or not np.isfinite(scores[rows >= 0]).all():
        raise IndexCorrupt(f"{path}: scores of suggested rows are not finite")
    return Suggestions(rows, scores)


def active_signals(config: BuildConfig, off: dict[str, str]) -> tuple[str, ...]:
    """The signals the configuration switches on, less those switched off, in feature order."""
    return tuple(s for s in SIGNALS if getattr(config.ranking, s) > 0 and s not in off)


_TEXT_MODELS: dict[tuple[str, int, int], LearnedModel] = {}


def choose_text_model(config: BuildConfig, active: tuple[str, ...]
                      ) -> tuple[LearnedModel | None, RankerChoice]:
    """The free-text scorer (``ranking.text_model``) for ``active`` signals, and its record.

    A named file that is missing is an error
    (:class:`~recommender.errors.ModelNotAvailable`), as for the article ranker; one
    fitted on other features, or none configured, leaves the dense cosine (the
    choice says why). Files are read once per path and version.
    """
    name = config.ranking.text_model
    if config.ranking.method != "learned" or name is None:
        return None, RankerChoice("dense", reason="no text model (fused method, or "
                                                  "ranking.text_model: null)")
    path = resolve_model_path(name)
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _TEXT_MODELS:
        try:
            _TEXT_MODELS[key] = LearnedModel.load(path)
        except ValueError as error:
            return None, RankerChoice("dense", reason=str(error))
    model = _TEXT_MODELS[key]
    if model.features != feature_names(active):
        return None, RankerChoice("dense", reason=f"text model {path} was fitted on other "
                                                  f"features than signals {list(active)}")
    return model, RankerChoice("learned", str(path), sha256=sha256_file(path))


def choose_model(config: BuildConfig, active: tuple[str, ...],
                 model: LearnedModel | None = None, origin: str | None = None
                 ) -> tuple[LearnedModel | None, RankerChoice]:
    """The learned model for ``active`` signals, and the record of where it came from.

    ``model`` (with ``origin``, e.g. "fitted on training folds") overrides the
    configuration's file. A named file that is missing is an error
    (:class:`~recommender.errors.ModelNotAvailable`); one fitted on other signals than
    the corpus has is never used silently: the ranking is the unsupervised blend, and
    the choice says why.
    """
    if config.ranking.method == "fused":
        return None, RankerChoice("fused")
    wanted = feature_names(active)
    if model is not None:
        if model.features != wanted:
            raise ValueError(f"the learned ranker was fitted on features {model.features}, "
                             f"this configuration gives {wanted}")
        return model, RankerChoice("learned", origin or "given")
    if config.ranking.model is None:
        return None, RankerChoice("blend", reason="no model configured (ranking.model: null)")
    path = resolve_model_path(config.ranking.model)  # missing: ModelNotAvailable (exit 7)
    try:
        loaded = LearnedModel.load(path)
    except ValueError as error:
        return None, RankerChoice("blend", reason=str(error))
    if loaded.features != wanted:
        fitted = sorted({f.split("_")[0] for f in loaded.features
                         if f.split("_")[0] in SIGNALS})
        return None, RankerChoice("blend", reason=(
            f"model {path} was fitted on signals {fitted}, the active signals are "
            f"{list(active)}"))
    return loaded, RankerChoice("learned", str(path), sha256=sha256_file(path))
