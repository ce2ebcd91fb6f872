"""Content folder → index, built once and then kept up to date: the one place that does it.

:func:`open_index` is the policy every entry point uses (``build``, ``fill``,
``serve`` and its watcher): load the index of the folder if there is one of the
same configuration, scan the folder for what changed since
(:mod:`recommender.sources`) and *update* the index with it; build it in full only
when there is none, when the configuration differs, or when asked. An update:

- embeds only the added and changed articles (others keep their vectors);
- transforms them with the frozen TF-IDF vocabulary and IDF, unless the articles
  changed since the last fit pass ``update.refit_after`` of the corpus, or
  ``full`` is asked: then the sparse signals are refitted (the IDF drift is
  measured either way and reported in the manifest);
- patches the neighbour lists and recomputes the suggestions that can change
  (:mod:`recommender.neighbours`);
- keeps a metadata-only change (title outside the ranked text, curated links,
  date, path) to the article's record.

The result is a new :class:`Snapshot`; the previous one is never modified, so a
server can keep answering from it until it swaps the new one in. Saving writes a
complete new index directory and renames it into place.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.config import BuildConfig
from recommender.corpus import Article, Corpus, read_article
from recommender.corpus import subject_key as _subject_key
from recommender.embedding import EmbeddingStats, Progress, embed_articles
from recommender.errors import CorpusError, IndexCorrupt, IndexMismatch, IndexNotFound
from recommender.fitting import MIN_LINKED_ARTICLES, fit_on_links, link_pairs
from recommender.index import (
    FORMAT_VERSION,
    Index,
    atomic_directory,
    read_index,
    read_manifest,
    stored_fields,
    write_manifest,
)
from recommender.learned import LearnedModel, feature_names, resolve_model_path
from recommender.lexical import SPARSE_SIGNALS, SignalOff, SparseSignal
from recommender.model_files import sha256_file
from recommender.neighbours import (
    Layout,
    compute_lists,
    compute_suggestions,
    patch_lists,
    patch_suggestions,
)
from recommender.ranking import ROW_ARRAYS, Ranker
from recommender.ranking_state import (
    FitInfo,
    RankerChoice,
    RankingState,
    Suggestions,
    active_signals,
    choose_model,
    choose_text_model,
)
from recommender.schema import Schema
from recommender.sources import (
    FileIssue,
    FolderScan,
    Known,
    Source,
    Stamp,
    relative_path,
    scan_folder,
)
from recommender.text import clean_once, text_hash
from recommender.vectors import VectorSearch

RANKING = "ranking"


@dataclass(frozen=True)
class Snapshot:
    """An index and its ranking state: everything a query reads, never changed in place."""

    index: Index
    ranking: RankingState

    @property
    def held(self) -> list[FileIssue]:
        """Files that fail to load now, whose last good version is served."""
        return [i for i in self.index.issues if i.held]

    @property
    def config(self) -> BuildConfig:
        return self.index.config

    @property
    def articles(self) -> list[Article]:
        return self.index.articles

    @property
    def manifest(self) -> dict[str, Any]:
        return self.index.manifest

    def ranker(self) -> Ranker:
        return Ranker(self.index, self.ranking)


# -- fingerprints --------------------------------------------------------------------------


def _sparse_fields(config: BuildConfig) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The sparse signals the configuration switches on: kind and fields."""
    fields = {"lexical": tuple(config.ranking.lexical_fields), "description": ("description",),
              "keywords": (), "mentions": ("title", "description", "answer")}
    return {name: (kind, fields[name]) for name, kind in SPARSE_SIGNALS.items()
            if getattr(config.ranking, name) > 0}


def article_fingerprint(article: Article, config: BuildConfig) -> str:
    """A hash of everything the ranking reads of one article under ``config``: the raw
    fields that are embedded or indexed, the subject (as a filter key) and ``no_index``.

    Equal fingerprints mean the article's vectors and lists need no recomputing.
    Raw fields, not the cleaned text: hashing them costs nothing, cleaning does.
    """
    names = set(config.text.fields)
    for kind, fields in _sparse_fields(config).values():
        names |= {"keywords"} if kind == "keywords" else set(fields)
    parts = ["\x1f".join(article.keywords) if name == "keywords"
             else str(getattr(article, name) or "") for name in sorted(names)]
    parts += [_subject_key(article.subject), "1" if article.no_index else "0"]
    return text_hash("\x1e".join(parts))[:24]


def _article_hash(a: Article, s: Source) -> int:
    text = "\x1f".join((a.url, a.id or "", a.title, a.subject, str(a.no_index),
                        "\x1d".join(a.links), s.fingerprint))
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogateescape"),
                                          digest_size=16).digest(), "big")


def corpus_fingerprint(articles: list[Article], sources: list[Source]) -> str:
    """A hash of what can change suggestions or their display: texts, subjects, links, flags.

    Per-article hashes combined without regard to order, so an update computes it
    from the previous one and the articles that changed (:func:`_updated_fingerprint`).
    """
    combined = 0
    for a, s in zip(articles, sources, strict=True):
        combined ^= _article_hash(a, s)
    return f"{combined:032x}"


# -- building ------------------------------------------------------------------------------


def _for_index(articles: Iterable[Article], root: Path) -> list[Article]:
    """Copies for the index: no answer and no long front-matter values (never stored), and
    paths relative to the content folder, as a loaded index has them, so a built and a
    loaded index are the same."""
    return [_index_copy(a, root) for a in articles]


def _index_copy(article: Article, root: Path) -> Article:
    out = object.__new__(type(article))
    out.__dict__.update(article.__dict__)  # a shallow copy: every field is immutable
    out.answer, out.path = "", Path(relative_path(article.path, root))
    out.fields = stored_fields(article.fields)
    return out


def _stamp(article: Article) -> Stamp:
    try:
        return Stamp.of(article.path.stat())
    except OSError:
        return Stamp(0, -1)


def fit_sparse(articles: list[Article], config: BuildConfig, reuse: RankingState | None = None
               ) -> tuple[dict[str, SparseSignal], dict[str, sp.csr_matrix], dict[str, str]]:
    """Fit the configured sparse signals; a field empty everywhere switches its signal off.

    ``reuse``: a state over the same articles whose signals of the same fields are
    taken as they are (for comparing configurations).
    """
    signals, matrices, off = {}, {}, {}
    for name, (kind, fields) in _sparse_fields(config).items():
        old = reuse.signals.get(name) if reuse is not None else None
        if old is not None and old.fields == fields and old.kind == kind:
            signals[name], matrices[name] = old, reuse.matrices[name]  # type: ignore[union-attr]
            continue
        try:
            signals[name], matrices[name] = SparseSignal.fit(articles, kind, fields)
        except SignalOff as why:
            off[name] = f"switched off: {why}"
    return signals, matrices, off


def fit_ranking(index: Index, articles: list[Article], config: BuildConfig, *,
                model: LearnedModel | None = None, origin: str | None = None,
                reuse: RankingState | None = None, reuse_dense: bool = False,
                suggestions: bool = True) -> RankingState:
    """The full ranking state of ``index`` (whose ``articles`` carry their text).

    ``reuse``: the state of another configuration over the same articles, whose
    sparse signals of the same fields, and their lists of the same depth, are
    taken instead of recomputed; its dense lists too with ``reuse_dense`` (same
    vectors). For comparing configurations.
    """
    signals, matrices, off = fit_sparse(articles, config, reuse)
    active = active_signals(config, off)
    if not active:
        raise CorpusError("no signal can rank these articles: " + "; ".join(
            f"{k} {v}" for k, v in off.items()) + " (and the dense signal is off)")
    chosen, choice = choose_model(config, active, model, origin)
    n = len(index.articles)
    state = RankingState(signals, matrices, off, active, {}, _no_suggestions(n), chosen, choice,
                         FitInfo(n))
    if config.ranking.method == "learned":
        ranker = Ranker(index, state, None)
        lists = {}
        for name in active:
            old = reuse.lists.get(name) if reuse is not None else None
            same_input = reuse_dense if name == "dense" else (
                reuse is not None and signals[name] is reuse.signals.get(name))
            if old is not None and same_input and old.rows.shape == (n, config.ranking.depth):
                lists[name] = old
            else:
                lists[name] = compute_lists(ranker, name)
        state = dataclasses.replace(state, lists=lists)
        if chosen is None and config.ranking.model is not None:
            state = fit_on_own_links(index, articles, state)
    if suggestions:
        state = dataclasses.replace(state, suggestions=compute_suggestions(Ranker(index, state)))
    return state


def fit_on_own_links(index: Index, articles: list[Article], state: RankingState
                     ) -> RankingState:
    """``state`` with a re-ranker fitted on the corpus' own curated links, when the
    configured model does not fit its signals and there are enough links; else as it is
    (the unsupervised blend, whose reason then says why no model was fitted)."""
    links = link_pairs(articles)
    linked = len(np.unique(links[:, 0])) if len(links) else 0
    if linked < MIN_LINKED_ARTICLES:
        why = (f"{state.ranker.reason}; too few curated links to fit one on this corpus "
               f"({linked} articles have links, {MIN_LINKED_ARTICLES} are needed)")
        return dataclasses.replace(state, ranker=RankerChoice("blend", reason=why))
    model = fit_on_links(Ranker(index, state, None), articles, links)
    choice = RankerChoice("learned", reason=(
        f"{model.note}, at build time ({state.ranker.reason})"))
    return dataclasses.replace(state, model=model, ranker=choice)


def _no_suggestions(n: int) -> Suggestions:
    return Suggestions(np.full((n, 0), -1, np.int32), np.zeros((n, 0), np.float32))


@clean_once()  # the embedding and each lexical signal read the same fields
def build_snapshot(corpus: Corpus, config: BuildConfig | None = None,
                   cache_dir: Path | None = None, on_progress: Progress | None = None, *,
                   scan: FolderScan | None = None, model: LearnedModel | None = None,
                   origin: str | None = None, reuse: RankingState | None = None,
                   reuse_dense: bool = False, suggestions: bool = True,
                   vectors: np.ndarray | None = None,
                   search: VectorSearch | None = None) -> Snapshot:
    """Everything from scratch: embed (reusing cached vectors), fit the signals, rank.

    ``scan``: the scan the corpus came from (file stamps and subjects as written);
    ``vectors``: embeddings already computed for these articles and configuration;
    ``search``: their vector search, already built (e.g. shards built on a cluster).
    """
    config = config or BuildConfig()
    started = time.perf_counter()
    articles = corpus.articles
    if vectors is None:
        vectors, stats = embed_articles(articles, config, cache_dir, on_progress)
    else:
        stats = EmbeddingStats(texts=len(articles), cached=len(articles))
    search = search if search is not None else VectorSearch(vectors, config.vectors)
    sources = [Source(article_fingerprint(a, config),
                      scan.stamps[a.url] if scan is not None else _stamp(a),
                      (scan.subjects if scan is not None else corpus.written_subjects).get(
                          a.url, a.subject))
               for a in articles]
    # paths relative to the folder as named (a symlinked folder is not resolved there)
    index = Index(config, corpus.root.resolve(),
                  _for_index(articles, Path(os.path.abspath(corpus.root))), sources, search,
                  scan.issues if scan is not None else [], schema=corpus.schema)
    index.scan_cache = scan.cache if scan is not None else None
    state = fit_ranking(index, articles, config, model=model, origin=origin, reuse=reuse,
                        reuse_dense=reuse_dense, suggestions=suggestions)
    report = {"kind": "build", "embedded": stats.embedded, "from_cache": stats.cached,
              "seconds": round(time.perf_counter() - started, 3)}
    index.manifest = _manifest(index, state, corpus, scan, stats, report)
    return Snapshot(index, state)


def build_index(corpus: Corpus, config: BuildConfig | None = None,
                index_dir: Path | None = None, cache_dir: Path | None = None,
                on_progress: Progress | None = None) -> Snapshot:
    """Build the index of a loaded corpus from scratch, and save it if ``index_dir`` is given."""
    snapshot = build_snapshot(corpus, config, cache_dir, on_progress)
    if index_dir is not None:
        save_index(snapshot, index_dir)
    return snapshot


def _manifest(index: Index, state: RankingState, corpus: Corpus, scan: FolderScan | None,
              stats: EmbeddingStats, report: dict[str, Any],
              fingerprint: str | None = None) -> dict[str, Any]:
    config = index.config
    return {
        "format_version": FORMAT_VERSION,
        "model": config.model,
        "dim": index.dim,
        "config": config.model_dump(mode="json"),
        "corpus": {
            "root": str(index.root),
            "fingerprint": fingerprint or corpus_fingerprint(index.articles, index.sources),
            "files": corpus.report.files,
            "articles": len(corpus.articles),
            "load_errors": len(corpus.report.errors),
            "scanned_at_ns": scan.scanned_at_ns if scan is not None else 0,
        },
        "counts": {
            "articles": len(index.articles),
            "suggestable": sum(not a.no_index for a in index.articles),
            "no_index": sum(a.no_index for a in index.articles),
            "embedded": stats.embedded,
            "from_cache": stats.cached,
        },
        "embedding": {"seconds": round(stats.seconds, 3), "rate_per_s": round(stats.rate, 2)},
        "schema": {"name": corpus.schema.name, "identity": corpus.schema.identity(),
                   "reason": corpus.report.schema_reason},
        "signals": {"active": list(state.active), "off": state.off},
        "ranker": state.ranker.as_dict(),
        "text_ranker": choose_text_model(config, state.active)[1].as_dict(),
        "vectors": index.search.describe(),
        "fit": dataclasses.asdict(state.fit),
        "last_change": report,
        "build_seconds": report["seconds"],
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


# -- updating ------------------------------------------------------------------------------


@dataclass
class UpdatePlan:
    """What changed between a snapshot and a scan of its folder, and what an update will do."""

    scan: FolderScan
    articles: list[Article]  # the scan's articles, in order (fresh ones with their text)
    sources: list[Source]
    index_articles: list[Article]  # the new index's records: the old object when unchanged
    matched: list[int]  # the old row of the same url, -1 for an added article
    source: np.ndarray  # old row kept by each new row, -1 for fresh rows
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    metadata: int = 0  # articles whose record changed but not their ranked text
    refit: bool = False
    refit_reason: str | None = None

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.changed or self.deleted or self.metadata)


_NO_STAMP = Stamp(0, -1)  # an article the scan has no stamp of


def plan_update(previous: Snapshot, scan: FolderScan, config: BuildConfig,
                full: bool = False) -> UpdatePlan:
    """Compare a scan with the snapshot it was scanned against: who was added, changed,
    deleted, and whether the sparse signals must be refitted."""
    old = previous.index
    root = Path(os.path.abspath(scan.corpus.root))  # what the scan's paths start with
    old_row = {a.url: i for i, a in enumerate(old.articles)}
    articles = list(scan.corpus.articles)
    source = np.full(len(articles), -1, np.int64)
    sources: list[Source] = []
    index_articles: list[Article] = []
    matched: list[int] = []
    plan = UpdatePlan(scan, articles, sources, index_articles, matched, source)
    read, stamps, subjects = scan.read, scan.stamps, scan.subjects
    for i, a in enumerate(articles):
        j = old_row.get(a.url)
        if j is not None and a.url not in read:  # not read: most of a watcher's folder
            before, known = old.articles[j], old.sources[j]
            stamp, subject = stamps.get(a.url, _NO_STAMP), subjects.get(a.url, a.subject)
            if (stamp is known.stamp or stamp == known.stamp) and subject == known.subject:
                sources.append(known)  # the same object: later comparisons are identity
            else:
                sources.append(Source(known.fingerprint, stamp, subject))
            matched.append(j)
            source[i] = j
            if sources[-1] is known and a.subject == before.subject and a.links == before.links:
                index_articles.append(before)
            else:
                plan.metadata += 1
                index_articles.append(_index_copy(a, root))
            continue
        matched.append(-1 if j is None else j)
        if a.url in scan.read:
            fingerprint = article_fingerprint(a, config)
        elif j is not None:
            fingerprint = old.sources[j].fingerprint
        else:  # known but never ranked (e.g. a duplicate url that now wins): read its text
            articles[i] = a = _with_text(a, scan.corpus.schema_of(a), root)
            fingerprint = article_fingerprint(a, config)
        stamp = scan.stamps.get(a.url, _NO_STAMP)
        sources.append(Source(fingerprint, stamp, scan.subjects.get(a.url, a.subject)))
        if j is None:
            plan.added.append(a.url)
        elif old.sources[j].fingerprint != fingerprint:
            plan.changed.append(a.url)
        else:
            source[i] = j
            before = old.articles[j]
            if a.url in scan.read:
                same = _record(a, root) == _record(before, root)
            else:  # an unread file: only what other files decide can have changed
                same = a.subject == before.subject and a.links == before.links
            if same and sources[-1] == old.sources[j]:
                index_articles.append(before)
                continue
            plan.metadata += 1
        index_articles.append(_index_copy(a, root))
    kept_urls = {a.url for a in articles}
    plan.deleted = [a.url for a in old.articles if a.url not in kept_urls]
    if scan.issues != old.issues:
        plan.metadata += 1
    fit = previous.ranking.fit
    since = fit.changed + len(plan.added) + len(plan.changed) + len(plan.deleted)
    threshold = config.update.refit_after
    if full:
        plan.refit, plan.refit_reason = True, "asked for (--full)"
    elif since > threshold * max(fit.articles, 1):
        plan.refit, plan.refit_reason = True, (
            f"{since} articles changed since the last fit, over {threshold:.0%} of "
            f"{fit.articles}")
    return plan


def _updated_fingerprint(previous: Snapshot, plan: UpdatePlan) -> str:
    """The corpus fingerprint after ``plan``, from the previous one: only rows whose record
    or source changed are hashed again."""
    old = previous.index
    known = previous.manifest.get("corpus", {}).get("fingerprint", "")
    if len(known) != 32:  # not one this version wrote: compute it whole
        return corpus_fingerprint(plan.index_articles, plan.sources)
    combined = int(known, 16)
    for i, a in enumerate(plan.index_articles):
        j = plan.matched[i]
        if j >= 0 and a is old.articles[j] and (
                plan.sources[i] is old.sources[j] or plan.sources[i] == old.sources[j]):
            continue
        combined ^= _article_hash(a, plan.sources[i])
        if j >= 0:
            combined ^= _article_hash(old.articles[j], old.sources[j])
    kept = {a.url for a in plan.articles}
    for a, s in zip(old.articles, old.sources, strict=True):
        if a.url not in kept:
            combined ^= _article_hash(a, s)
    return f"{combined:032x}"


def _record(a: Article, root: Path) -> tuple[Any, ...]:
    return (a.id, a.title, a.question, a.subject, a.keywords, relative_path(a.path, root),
            a.no_index, a.description, a.date, a.curated, a.links, stored_fields(a.fields),
            a.group, a.schema)


def _with_text(article: Article, schema: Schema, root: Path) -> Article:
    fresh = read_article(article.path, schema, relative_path(article.path, root))
    return dataclasses.replace(article, answer=fresh.answer)


@clean_once()
def apply_update(previous: Snapshot, plan: UpdatePlan, cache_dir: Path | None = None,
                 on_progress: Progress | None = None) -> Snapshot:
    """The snapshot after ``plan``: a new index and ranking state (see the module docstring).

    With ``plan.refit`` every article must carry its text (scan with ``reread``).
    """
    started = time.perf_counter()
    old, old_state = previous.index, previous.ranking
    config = old.config
    scan = plan.scan
    layout = Layout.of(plan.source, len(old.articles))
    fresh = layout.fresh
    fresh_articles = [plan.articles[i] for i in fresh]
    timings: dict[str, float] = {}
    t = time.perf_counter()
    new_vectors, stats = embed_articles(fresh_articles, config, cache_dir, on_progress)
    timings["embed"] = time.perf_counter() - t
    vectors = np.empty((len(plan.articles), old.dim), np.float32)
    vectors[layout.kept] = old.vectors[plan.source[layout.kept]]
    if len(fresh):
        vectors[fresh] = new_vectors
    index = Index(config, old.root, plan.index_articles, plan.sources,
                  old.search.replaced(vectors), scan.issues, schema=scan.corpus.schema,
                  scan_cache=scan.cache)
    index.carry_rows(old, plan.source, ROW_ARRAYS)
    t = time.perf_counter()
    n = len(plan.articles)
    if plan.refit:
        signals, matrices, off = fit_sparse(plan.articles, config)
        active = active_signals(config, off)
        model, choice = choose_model(config, active)
        if model is None and old_state.model is not None and old_state.ranker.file is None \
                and old_state.model.features == feature_names(active):
            model, choice = old_state.model, old_state.ranker  # fitted on the corpus' links
        fit = FitInfo(n)
    else:
        signals, off, active = old_state.signals, old_state.off, old_state.active
        model, choice = old_state.model, old_state.ranker
        matrices = {}
        position = np.where(plan.source >= 0, plan.source, 0)
        position[fresh] = len(old.articles) + np.arange(len(fresh))
        for name, signal in signals.items():
            stacked = sp.vstack([old_state.matrices[name], signal.transform(fresh_articles)],
                                format="csr")
            matrices[name] = stacked[position]
        fit = FitInfo(old_state.fit.articles, old_state.fit.changed + len(plan.added)
                      + len(plan.changed) + len(plan.deleted), old_state.fit.fitted_at)
    timings["signals"] = time.perf_counter() - t
    drift = {name: round(signals[name].drift(matrices[name]), 5) for name in signals}
    state = RankingState(signals, matrices, off, active, {}, _no_suggestions(n), model, choice,
                         fit)
    lists_report: dict[str, dict[str, int]] = {}
    dirty = np.zeros(n, dtype=bool)
    t = time.perf_counter()
    if config.ranking.method == "learned":
        ranker = Ranker(index, state, None)
        lists = {}
        for name in active:
            if plan.refit and name != "dense" or name not in old_state.lists:
                lists[name] = compute_lists(ranker, name)
                lists_report[name] = {"recomputed": n, "merged": 0}
                dirty[:] = True
                continue
            lists[name], counts = patch_lists(ranker, name, old_state.lists[name], layout)
            lists_report[name] = {"recomputed": counts.recomputed, "merged": counts.merged}
            dirty[counts.changed] = True
        state = dataclasses.replace(state, lists=lists)
    if plan.refit:
        dirty[:] = True
    timings["lists"] = time.perf_counter() - t
    t = time.perf_counter()
    ranker = Ranker(index, state)
    if old_state.suggestions.rows.shape[1] == 0 or dirty.all():
        suggestions, redone = compute_suggestions(ranker), n
    else:
        suggestions, redone = patch_suggestions(ranker, old_state.suggestions, layout,
                                                np.flatnonzero(dirty))
    timings["suggestions"] = time.perf_counter() - t
    state = dataclasses.replace(state, suggestions=suggestions)
    report = {
        "kind": "update", "added": len(plan.added), "changed": len(plan.changed),
        "deleted": len(plan.deleted), "metadata_only": plan.metadata,
        "embedded": stats.embedded, "from_cache": stats.cached,
        "files_read": scan.files_read, "refit": plan.refit, "refit_reason": plan.refit_reason,
        "lists": lists_report, "suggestions_recomputed": int(redone),
        "drift": {"idf": drift, "changed_since_fit": fit.changed,
                  "share_since_fit": round(fit.changed_share, 5),
                  "refit_after": config.update.refit_after},
        "held": [{"path": h.path, "reason": h.reason} for h in scan.held],
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "seconds": round(time.perf_counter() - started, 3),
    }
    index.manifest = _manifest(index, state, scan.corpus, scan, stats, report,
                               _updated_fingerprint(previous, plan))
    return Snapshot(index, state)


def _metadata_update(previous: Snapshot, plan: UpdatePlan) -> Snapshot:
    """Only records changed: the new articles and sources over the same vectors and state."""
    old = previous.index
    index = Index(old.config, old.root, plan.index_articles, plan.sources, old.search,
                  plan.scan.issues, schema=plan.scan.corpus.schema, scan_cache=plan.scan.cache)
    stats = EmbeddingStats(texts=len(plan.articles), cached=len(plan.articles))
    report = {"kind": "update", "added": 0, "changed": 0, "deleted": 0,
              "metadata_only": plan.metadata, "embedded": 0, "files_read": plan.scan.files_read,
              "refit": False, "seconds": 0.0,
              "held": [{"path": h.path, "reason": h.reason} for h in plan.scan.held]}
    index.manifest = _manifest(index, previous.ranking, plan.scan.corpus, plan.scan, stats,
                               report, _updated_fingerprint(previous, plan))
    return Snapshot(index, previous.ranking)


# -- storage -------------------------------------------------------------------------------


def save_index(snapshot: Snapshot, directory: Path) -> None:
    """Write the snapshot as a new index directory and rename it into place."""
    with atomic_directory(Path(directory)) as tmp:
        snapshot.index.write(tmp)
        snapshot.ranking.save(tmp / RANKING)
        write_manifest(tmp, snapshot.manifest)


def load_index(directory: str | Path, expected: BuildConfig | None = None) -> Snapshot:
    """The index at ``directory`` with its ranking state, every file checked against the
    articles. Raises :class:`IndexNotFound`, :class:`IndexMismatch` (another format or
    configuration than ``expected``) or :class:`IndexCorrupt` (naming the file)."""
    directory = Path(directory).expanduser()
    index = read_index(directory, expected)
    state = RankingState.load(directory / RANKING, len(index.articles), index.config)
    return Snapshot(index, state)


# -- the policy ----------------------------------------------------------------------------


@dataclass
class Opened:
    """What :func:`open_index` found and did. ``corpus`` carries every article's text
    only when asked for (``full_text``) or when the index was (re)built."""

    corpus: Corpus
    snapshot: Snapshot
    action: str  # "current", "updated", "built"
    reason: str = ""
    seconds: float = 0.0


def _previous(index_dir: Path | None, config: BuildConfig | None
              ) -> tuple[Snapshot | None, str]:
    if index_dir is None:
        return None, "no index directory"
    try:
        return load_index(index_dir, expected=config), ""
    except IndexNotFound:
        return None, f"no index at {index_dir}"
    except IndexCorrupt as error:
        return None, f"the index was unreadable ({error})"
    except IndexMismatch as error:
        return None, str(error)


def configuration_of(index_dir: Path | None) -> BuildConfig:
    """The configuration of the index at ``index_dir``, or the default when there is none:
    what ``fill`` and ``serve`` use when no configuration is given."""
    if index_dir is not None:
        try:
            return BuildConfig.model_validate(read_manifest(index_dir)["config"])
        except (IndexNotFound, IndexCorrupt, KeyError, ValueError):
            pass
    return BuildConfig()


def _ranker_file_changed(previous: Snapshot, config: BuildConfig) -> bool:
    """Whether the configuration's learned-ranker file is not the one the index used (another
    path, or other bytes: e.g. a new release's parameters): its lists must be redone."""
    used = previous.ranking.ranker
    if used.kind != "learned" or used.sha256 is None or config.ranking.model is None:
        return False
    path = resolve_model_path(config.ranking.model)
    return str(path) != used.file or sha256_file(path) != used.sha256


def open_index(content_dir: str | Path, config: BuildConfig | None = None,
               index_dir: Path | None = None, *, cache_dir: Path | None = None,
               on_progress: Progress | None = None, rebuild: bool = False,
               full: bool = False, full_text: bool = False, keep_last_good: bool = False,
               previous: Snapshot | None = None, only: Iterable[str | Path] | None = None,
               schema: Schema | None = None) -> Opened:
    """The index of ``content_dir``, brought up to date: the policy of every entry point.

    ``config``: the configuration asked for (None: the existing index's, else the
    default). ``previous``: a snapshot already in memory (the server's), used
    instead of reading ``index_dir``. ``rebuild``: build from scratch. ``full``:
    update with a refit of the sparse signals. ``full_text``: read every file, so
    the returned corpus has all texts (the evaluation needs them).
    ``keep_last_good``: a file that turns broken keeps its last good version (the
    server's rule). ``only``: the files known to have changed (a watcher's events).
    ``schema``: which front-matter field holds what (None: the existing index's, else
    detected from the files; an index read with another schema is rebuilt).
    The result is saved to ``index_dir`` (if given) whenever anything changed.
    """
    started = time.perf_counter()
    content_dir = Path(content_dir)
    if config is None:
        config = previous.config if previous is not None else configuration_of(index_dir)
    reason = ""
    if previous is None and not rebuild:
        previous, reason = _previous(index_dir, config)
    elif previous is not None and previous.config.identity() != config.identity():
        previous, reason = None, "the configuration differs"
    if previous is not None and previous.index.root != content_dir.resolve():
        previous, reason = None, f"the index is of {previous.index.root}"
    if previous is not None and _ranker_file_changed(previous, config):
        previous, reason = None, "the learned-ranker file changed"
    if (previous is not None and schema is not None and previous.index.schema is not None
            and previous.index.schema.identity() != schema.identity()):
        previous, reason = None, "the schema differs"
    if rebuild:
        previous, reason = None, "asked for"
    if previous is None:
        scan = scan_folder(content_dir, None, schema, reread=True)
        snapshot = build_snapshot(scan.corpus, config, cache_dir, on_progress, scan=scan)
        if index_dir is not None:
            save_index(snapshot, index_dir)
        return Opened(scan.corpus, snapshot, "built", reason, time.perf_counter() - started)
    known = Known.of(previous.index.root, previous.articles, previous.index.sources,
                     previous.index.issues,
                     previous.manifest.get("corpus", {}).get("scanned_at_ns", 0),
                     previous.index.scan_cache)
    schema = schema or previous.index.schema
    scan = scan_folder(content_dir, known, schema, only=only, keep_last_good=keep_last_good,
                       reread=full_text)
    plan = plan_update(previous, scan, config, full)
    if plan.refit and len(scan.read) < len(scan.corpus.articles):
        scan = scan_folder(content_dir, known, schema, keep_last_good=keep_last_good,
                           reread=True)
        plan = plan_update(previous, scan, config, full)
    if plan.unchanged and not plan.refit:
        return Opened(scan.corpus, previous, "current", "", time.perf_counter() - started)
    if plan.added or plan.changed or plan.deleted or plan.refit:
        snapshot = apply_update(previous, plan, cache_dir, on_progress)
    else:
        snapshot = _metadata_update(previous, plan)
    if index_dir is not None:
        save_index(snapshot, index_dir)
    return Opened(scan.corpus, snapshot, "updated", plan.refit_reason or "",
                  time.perf_counter() - started)

