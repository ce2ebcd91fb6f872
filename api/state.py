"""The index the service is answering from, and how it is replaced while serving.

Requests read :attr:`IndexState.current` once and use that :class:`Loaded` object
to the end, without taking any lock. A reload builds or loads the new index
completely (and runs a warm-up query on it) beside the old one, then replaces the
reference in one assignment, which is atomic in CPython: a request in flight keeps
the old object, the next one gets the new, and none sees a half-built index. Only
reloads are serialised (one at a time, a second is refused); reads never wait.

With several worker processes each holds its own copy; a reload reaches the one
worker that received it, and ``watch_interval`` makes every worker follow a newer
build of the index directory (by comparing manifests) within that many seconds.

With ``watch`` (``recommender serve DIR --watch``), the content folder is followed
with ``watchfiles``: each batch of changed files is applied as an incremental
update (:func:`recommender.pipeline.open_index` with the served snapshot as the
previous one), swapped in like a reload, then saved to the index directory by a
thread of its own (so the next change does not wait for the write). Of
several workers one holds the watcher's lock file and does that; the others
follow the saved index through the manifest watcher, so every worker converges. A
file that turns broken keeps its last good version served; it is logged, and
listed by ``/readyz`` and ``GET /v1/index`` until it loads again.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import gc
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from api.errors import IndexUnreadable, NotReady, ReloadInProgress
from api.metrics import Metrics
from api.settings import Settings
from recommender.config import BuildConfig
from recommender.encoders import load_encoder
from recommender.errors import (
    IndexCorrupt,
    IndexNotFound,
    ModelNotAvailable,
    RecommenderError,
)
from recommender.index import read_manifest
from recommender.pipeline import Snapshot, load_index, open_index, save_index
from recommender.recommender import Recommender

log = logging.getLogger("api")


def _take_lock(index_dir: Path) -> IO[bytes] | None:
    """The content watcher's lock file beside the index directory, if no one holds it."""
    path = index_dir.parent / f".{index_dir.name}.watch.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")  # noqa: SIM115  (held for the watcher's life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def manifest_signature(manifest: dict[str, Any]) -> tuple[Any, ...]:
    """What tells two builds apart (``built_at`` alone has one-second resolution)."""
    return (manifest.get("built_at"), manifest.get("build_seconds"), manifest.get("model"),
            manifest.get("corpus", {}).get("fingerprint"))


@dataclass(frozen=True)
class Loaded:
    """One loaded index with everything derived from it once, never mutated after the swap."""

    recommender: Recommender
    generation: int
    loaded_at: str
    source: str  # "index" (loaded from the index dir) or "content" (built from the folder)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest(self) -> dict[str, Any]:
        return self.recommender.index.manifest

    @property
    def snapshot(self) -> Snapshot:
        return self.recommender.snapshot

    @property
    def held(self) -> list[dict[str, str]]:
        """Files that fail to load now, whose last good version is served."""
        return [{"path": h.path, "reason": h.reason} for h in self.snapshot.held]

    @classmethod
    def of(cls, recommender: Recommender, generation: int, source: str) -> Loaded:
        """Precompute the index description served by ``GET /v1/index``."""
        m = recommender.index.manifest
        counts = m.get("counts", {})
        info = {
            "model": m.get("model", recommender.index.config.model),
            "dim": m.get("dim", recommender.index.dim),
            "articles": len(recommender.articles),
            "suggestable": counts.get("suggestable"),
            "no_index": counts.get("no_index"),
            "built_at": m.get("built_at"),
            "build_seconds": m.get("build_seconds"),
            "corpus_fingerprint": m.get("corpus", {}).get("fingerprint"),
            "format_version": m.get("format_version"),
            "config": recommender.index.config.model_dump(mode="json"),
            "subjects": sorted(recommender.subjects.values()),
            "ranker": m.get("ranker"),
            "signals": m.get("signals"),
            "held": [{"path": h.path, "reason": h.reason}
                     for h in recommender.snapshot.held],
        }
        return cls(recommender, generation, _now(), source, info)


def limit_compute_threads(threads: int) -> None:
    """Cap the BLAS/OpenMP and torch thread pools of this process (0 leaves them alone).

    On a small machine shared by concurrent requests (and by other processes), a
    per-query pool of one thread per core mostly spin-waits: encoding one short
    question took 80 ms (p50) with two torch threads under load and 21 ms with one.
    Parallel requests use the cores instead.
    """
    if threads <= 0:
        return
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    except ImportError:  # pragma: no cover - comes with scikit-learn
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while an index loads; freeze what is loaded after.

    Loading allocates millions of objects, which triggers full collections that walk
    every object of the old index and the new one while holding the GIL: requests
    served meanwhile stalled for up to 0.6 s. Reference counting still frees
    everything that is not a cycle. Once the new index is in place,
    :func:`gc.freeze` takes it out of later collections (it is never garbage while
    served, and the old index is freed by reference counting when its last request
    ends), so routine collections stay short too.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _unreadable(where: Any, what: str) -> Iterator[None]:
    """Turn a failure that is not a domain error into :class:`IndexUnreadable` (422).

    A missing file, a garbage manifest, truncated arrays or an invalid configuration
    raise whatever the reading library raises; for the service they all mean one
    thing: this index cannot be served, and the one being served stays.
    """
    try:
        yield
    except (RecommenderError, IndexUnreadable):
        raise
    except Exception as error:
        raise IndexUnreadable(f"the index at {where} {what} ({type(error).__name__}: {error}); "
                              "the index being served, if any, is kept") from error


def _read_index(index_dir: Any, expected: Any) -> Snapshot:
    """:func:`load_index`, any failure to read the files being :class:`IndexUnreadable`."""
    with _unreadable(index_dir, "cannot be read"):
        return load_index(index_dir, expected=expected)


class IndexState:
    """Holds the current :class:`Loaded` and replaces it on reload or on a newer build."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics
        self.current: Loaded | None = None  # read without a lock: one atomic reference
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._generation = 0
        self.last_error: str | None = None
        self.last_reload_at: str | None = None
        self.last_reload_seconds: float | None = None
        self._to_save: Snapshot | None = None  # the latest update, for the saver thread
        self._save_wanted = threading.Event()

    # -- reading ------------------------------------------------------------------------

    def require(self) -> Loaded:
        """The current index, or :class:`NotReady` (503) while there is none."""
        loaded = self.current
        if loaded is None:
            reason = f": {self.last_error}" if self.last_error else " yet"
            raise NotReady(f"no index loaded{reason}")
        return loaded

    @property
    def reloading(self) -> bool:
        return self._reload_lock.locked()

    def status(self) -> dict[str, Any]:
        """Reload bookkeeping, for ``GET /v1/index`` and ``/readyz``."""
        return {"in_progress": self.reloading, "last_error": self.last_error,
                "last_reload_at": self.last_reload_at,
                "last_reload_seconds": self.last_reload_seconds}

    # -- loading ------------------------------------------------------------------------

    def _asked_config(self) -> BuildConfig | None:
        """The configuration given (file or model), else None: the index's own is kept."""
        s = self.settings
        return s.build_config() if s.config_file is not None or s.model is not None else None

    def _served(self) -> Snapshot | None:
        """The snapshot being served, as the previous state of an update (not read again)."""
        loaded = self.current
        return loaded.snapshot if loaded is not None else None

    def _open(self, rebuild: bool, force: bool) -> tuple[Snapshot, str]:
        """Load the index dir, or bring it up to date with the content folder first."""
        s = self.settings
        config = s.build_config()
        index_dir = s.resolved_index_dir()
        if s.content_dir is not None and rebuild:
            opened = open_index(s.content_dir, self._asked_config(), index_dir,
                                cache_dir=s.cache_dir, rebuild=force, previous=self._served(),
                                keep_last_good=s.watch)
            return opened.snapshot, "content"
        try:
            return _read_index(index_dir, config), "index"
        except IndexNotFound:
            if s.content_dir is None:
                raise
            opened = open_index(s.content_dir, self._asked_config(), index_dir,
                                cache_dir=s.cache_dir, keep_last_good=s.watch)
            return opened.snapshot, "content"

    def _prepare(self, rec: Recommender) -> None:
        """Load the encoder now (not in the first text request), size its thread pools, and
        answer one query of each kind so the first real request pays no first-use cost."""
        config = rec.index.config
        try:
            load_encoder(config.model, config.text.max_tokens)
        except ModelNotAvailable as error:  # by-article still works; by-text answers 503
            log.warning("encoder unavailable, text queries will fail: %s", error)
            encoder = False
        else:
            encoder = True
        limit_compute_threads(self.settings.compute_threads)
        if not self.settings.warmup:
            return
        if rec.articles:  # first and last rows: truncated arrays fail here, not in a request
            rec.related(rec.articles[0], 1)
            rec.related(rec.articles[-1], 1)
        if encoder:
            rec.related_to_text("warm up", 1)

    def _swap(self, index: Snapshot, source: str) -> Loaded:
        before = {h["path"] for h in self.current.held} if self.current is not None else set()
        with _unreadable(self.settings.resolved_index_dir(), "fails its warm-up queries"):
            rec = Recommender(index)
            self._prepare(rec)
        self._generation += 1
        loaded = Loaded.of(rec, self._generation, source)
        self.current = loaded  # the swap: one reference assignment
        self.last_error = None
        if self.metrics is not None:
            self.metrics.index_loaded(len(rec.articles), loaded.generation)
        log.info("index generation %d ready: %d articles, model %s, built %s",
                 loaded.generation, len(rec.articles), loaded.info["model"],
                 loaded.info["built_at"])
        for held in loaded.held:
            if held["path"] not in before:  # said once, when it turns broken
                log.warning("%s does not load (%s): its last good version is served",
                            held["path"], held["reason"])
        return loaded

    def _load_locked(self, rebuild: bool, force: bool,
                     preloaded: Snapshot | None = None) -> Loaded:
        started = time.perf_counter()
        try:
            with gc_paused():
                if preloaded is not None:  # opened by the caller (e.g. `serve` built it)
                    index = preloaded
                    source = "content" if self.settings.content_dir is not None else "index"
                else:
                    index, source = self._open(rebuild, force)
                loaded = self._swap(index, source)
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            if self.metrics is not None:
                self.metrics.reloaded("failed")
            if isinstance(error, IndexUnreadable | IndexCorrupt):
                log.warning("loading the index failed: %s", error)
            elif not isinstance(error, RecommenderError):
                log.exception("loading the index failed")
            raise
        self.last_reload_at = _now()
        self.last_reload_seconds = round(time.perf_counter() - started, 3)
        if self.metrics is not None:
            self.metrics.reloaded("ok")
        return loaded

    def load(self, preloaded: Snapshot | None = None) -> Loaded:
        """The first load: reuse the index dir if it exists (building it only if absent)."""
        with self._reload_lock:
            return self._load_locked(rebuild=False, force=False, preloaded=preloaded)

    def reload(self, force: bool = False, wait: bool = True) -> Loaded | None:
        """Rebuild from the content folder if set (else re-read the index dir), then swap.

        Raises :class:`ReloadInProgress` if another reload runs. With ``wait=False``
        the work runs in a background thread and ``None`` is returned at once.
        """
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadInProgress("a reload is already running; retry when it has finished")
        if wait:
            try:
                return self._load_locked(rebuild=True, force=force)
            finally:
                self._reload_lock.release()

        def run() -> None:
            try:
                self._load_locked(rebuild=True, force=force)
            except Exception:  # recorded in last_error; the old index keeps serving
                pass
            finally:
                self._reload_lock.release()

        self._spawn(run, "index-reload")
        return None

    # -- background work ------------------------------------------------------------------

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def start(self, preloaded: Snapshot | None = None) -> None:
        """Load the first index (in the background if configured) and start the watchers."""
        if self.settings.load_in_background and preloaded is None:
            def first() -> None:
                try:
                    self.load()
                except Exception as error:
                    log.error("no index loaded: %s", error)

            self._spawn(first, "index-load")
        else:
            self.load(preloaded)
        if self.settings.watch_interval > 0:
            self._spawn(self._watch, "index-watch")
        if self.settings.watch and self.settings.content_dir is not None:
            self._spawn(self._watch_content, "content-watch")
            self._spawn(self._save_updates, "index-save")

    def _watch(self) -> None:
        """Follow newer builds of the index dir (made by another worker or `recommender build`).

        A build that fails to load is tried once, not at every tick: the next attempt
        waits for another build.
        """
        index_dir = self.settings.resolved_index_dir()
        failed: tuple[Any, ...] | None = None
        while not self._stop.wait(self.settings.watch_interval):
            try:
                on_disk = manifest_signature(read_manifest(index_dir))
            except (IndexNotFound, OSError, ValueError):
                continue  # absent, or being swapped into place: look again later
            loaded = self.current
            if on_disk == failed or (
                    loaded is not None and manifest_signature(loaded.manifest) == on_disk):
                continue
            if not self._reload_lock.acquire(blocking=False):
                continue
            try:
                index = _read_index(index_dir, self.settings.build_config())
                self._load_locked(rebuild=False, force=False, preloaded=index)
            except Exception as error:
                failed = on_disk
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("could not follow the newer index: %s", self.last_error)
            finally:
                self._reload_lock.release()

    # -- following the content folder -------------------------------------------------------

    def _watch_content(self) -> None:
        """Apply changes of the content folder as they happen (``--watch``).

        Of several workers, the one holding the lock file next to the index
        directory watches; the others follow its saved updates (manifest watcher)
        and try to take the lock over every few seconds, in case it exits.
        """
        while not self._stop.is_set():
            lock = _take_lock(self.settings.resolved_index_dir())
            if lock is None:
                self._stop.wait(5.0)
                continue
            try:
                self._follow_content()
            except Exception:  # e.g. the folder was removed: log, look again a bit later
                log.exception("watching the content folder failed")
            finally:
                lock.close()
            self._stop.wait(5.0)

    def _follow_content(self) -> None:
        from watchfiles import DefaultFilter, watch

        content = self.settings.content_dir
        assert content is not None
        log.info("watching %s for changes", content)
        self.apply_changes(None)  # catch up with what changed while no one watched
        for changes in watch(content, watch_filter=DefaultFilter(), stop_event=self._stop,
                             debounce=150, step=30, raise_interrupt=False):
            paths = {path for _, path in changes}
            # a folder moved or removed: look at everything, else at the files named
            self.apply_changes(paths if all(p.endswith(".md") for p in paths) else None)

    def apply_changes(self, paths: set[str] | None) -> Loaded | None:
        """Update the served index with changed files (``None``: scan the whole folder),
        swap it in, and have it saved. Never raises: a failure is logged, the old index
        stays."""
        s = self.settings
        with self._reload_lock:
            previous = self._served()
            started = time.perf_counter()
            try:
                with gc_paused():
                    opened = open_index(s.content_dir, self._asked_config(), None,  # type: ignore[arg-type]
                                        cache_dir=s.cache_dir, previous=previous, only=paths,
                                        keep_last_good=True)
                    if opened.action == "current" and previous is not None:
                        return None
                    loaded = self._swap(opened.snapshot, "content")
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("could not apply the content folder's changes: %s", self.last_error)
                if self.metrics is not None:
                    self.metrics.reloaded("failed")
                return None
            self.last_reload_at = _now()
            self.last_reload_seconds = round(time.perf_counter() - started, 3)
            if self.metrics is not None:
                self.metrics.reloaded("ok")
            last = loaded.manifest.get("last_change", {})
            log.info("content change applied in %.2fs: %s changed, %s added, %s deleted",
                     self.last_reload_seconds, last.get("changed"), last.get("added"),
                     last.get("deleted"))
        self._to_save = opened.snapshot  # saved off this thread: the next change need not wait
        self._save_wanted.set()
        return loaded

    def _save_updates(self) -> None:
        """Write the latest applied update to the index directory (for the other workers
        and the next start); updates that come meanwhile are saved together, as the last."""
        while not self._stop.is_set():
            if not self._save_wanted.wait(0.5):
                continue
            self._save_wanted.clear()
            snapshot, self._to_save = self._to_save, None
            if snapshot is None:
                continue
            try:
                save_index(snapshot, self.settings.resolved_index_dir())
            except Exception as error:  # served anyway; the next update saves again
                log.warning("could not save the updated index: %s", error)

    def wait_ready(self, timeout: float = 60.0) -> Loaded:
        """Block until an index is loaded (for tests and scripts); raises :class:`NotReady`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            loaded = self.current
            if loaded is not None:
                return loaded
            if self.last_error and not self.reloading:
                break
            time.sleep(0.02)
        return self.require()

    def stop(self) -> None:
        """Stop the watcher; a reload in progress finishes on its own (daemon thread)."""
        self._stop.set()
