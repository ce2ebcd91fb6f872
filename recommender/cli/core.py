"""``build``, ``related``, ``search`` and ``info``: the core commands."""

from __future__ import annotations

import enum
import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from recommender.cli import app
from recommender.cli.options import SameOpt, SchemaOpt, load_schema
from recommender.config import BuildConfig
from recommender.corpus import LoadReport
from recommender.errors import IndexMismatch
from recommender.index import default_index_dir, read_manifest
from recommender.pipeline import Opened, load_index, open_index
from recommender.recommender import Filters, Recommender, Suggestion
from recommender.text import encoding_problem

console = Console()
err_console = Console(stderr=True)

IndexOpt = Annotated[Optional[Path], typer.Option(
    "--index", help="Index directory [default: $RECOMMENDER_INDEX or ~/.cache/recommender/index]")]
ConfigOpt = Annotated[Optional[Path], typer.Option(
    "--config", help="YAML file with a BuildConfig (model, text, ranking)", exists=True,
    dir_okay=False)]
ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", help="Encoder name from models/registry.yaml (overrides --config)")]
KOpt = Annotated[int, typer.Option("--k", min=1, max=100, help="How many suggestions")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
SubjectOpt = Annotated[Optional[list[str]], typer.Option(
    "--subject", help="Only suggest from this subject (repeatable)")]
ExcludeSubjectOpt = Annotated[Optional[list[str]], typer.Option(
    "--exclude-subject", help="Never suggest from this subject (repeatable)")]
DiversityOpt = Annotated[float, typer.Option(
    "--diversity", min=0.0, max=1.0,
    help="0 to 1: re-order the best suggestions by maximal marginal relevance, trading "
         "relevance for variety (0: the ranking as it is)")]
CrossOpt = Annotated[bool, typer.Option(
    "--cross-subject", help="Only suggest articles of another subject than the source")]


class Engine(enum.StrEnum):
    """Where ``build`` parses and embeds (see :mod:`recommender.ray_engine`)."""

    local = "local"
    ray = "ray"


def load_config(config: Path | None, model: str | None) -> BuildConfig:
    """The build configuration from ``--config`` and ``--model`` (defaults otherwise)."""
    cfg = BuildConfig.from_yaml(config) if config else BuildConfig()
    return cfg.model_copy(update={"model": model}) if model else cfg


def resolve_index_dir(index: Path | None) -> Path:
    return (index or default_index_dir()).expanduser()


def _filters(subject: list[str] | None, exclude_subject: list[str] | None,
             cross_subject: bool, same: str | None = None) -> Filters:
    return Filters(only_subjects=frozenset(subject or ()),
                   exclude_subjects=frozenset(exclude_subject or ()),
                   cross_subject_only=cross_subject, same=same)


def print_load_report(report: LoadReport, limit: int = 20) -> None:
    """The load report as a short table, then each problem file with its reason."""
    d = report.as_dict()
    table = Table(title="Load report", show_header=False)
    rows = [
        ("schema", report.schema_reason or report.schema),
        ("files", d["files"]), ("articles", d["articles"]),
        ("files not loaded", len(d["errors"])), ("duplicate urls", len(d["duplicate_urls"])),
        ("copies (ids shared by several files)", f"{d['copies']['ids']} ids in "
                                                 f"{d['copies']['files']} files"),
        ("no_index articles", d["no_index"]),
        ("articles with curated links", d["articles_with_links"]),
        ("articles without curated links", d["articles_without_links"]),
        ("curated links", d["links"]["total"]),
        ("  resolved by url / by id", f"{d['links']['resolved_by_url']} / "
                                      f"{d['links']['resolved_by_id']}"),
        ("  dangling", d["links"]["dangling"]),
        ("  self-links / repeats dropped", f"{d['links']['self_links_dropped']} / "
                                           f"{d['links']['repeats_dropped']}"),
        ("subjects (spellings)", f"{d['subjects']['distinct']} ({d['subjects']['spellings']})"),
        ("negative ids", d["negative_ids"]),
        ("fields ignored (wrong type)", len(report.warnings)),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    for issue in (report.errors + report.duplicate_urls)[:limit]:
        console.print(f"skipped {issue.path}: {issue.reason}", style="yellow", markup=False,
                      soft_wrap=True, highlight=False)
    hidden = len(report.errors) + len(report.duplicate_urls) - limit
    if hidden > 0:
        console.print(f"... and {hidden} more (see --report)")


class EmbeddingBar:
    """A rich progress bar fed by the library's ``on_progress(done, total)`` callback."""

    def __init__(self, enabled: bool = True, out: Console | None = None):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=out or err_console, disable=not enabled,
            transient=False)
        self.task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("embedding", total=total)
        self.progress.update(self.task, completed=done, total=total)
        if done >= total:
            self.progress.stop()

    def __enter__(self) -> EmbeddingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def describe_opened(opened: Opened, index_dir: Path | None) -> str:
    """One line on what opening the index did: kept, updated (and how) or built."""
    m = opened.snapshot.manifest
    last = m.get("last_change", {})
    ranker = opened.snapshot.ranking.ranker.describe()
    if opened.action == "current":
        return (f"index at {index_dir} is current (same articles and configuration): nothing "
                f"to do; ranking: {ranker}")
    where = f"index written to {index_dir}" if index_dir is not None else "index in memory"
    counts = m["counts"]
    if opened.action == "built":
        why = f" ({opened.reason})" if opened.reason else ""
        return (f"{where}: built{why}: {counts['articles']} articles, model {m['model']} "
                f"(dim {m['dim']}), embedded {counts['embedded']} "
                f"({m['embedding']['rate_per_s']}/s), {counts['from_cache']} from cache; "
                f"ranking: {ranker}")
    drift = last.get("drift", {})
    refit = (f"TF-IDF refitted ({last['refit_reason']})" if last.get("refit") else
             f"TF-IDF frozen: IDF drift {drift.get('idf', {})}, "
             f"{drift.get('share_since_fit', 0):.2%} of articles changed since the last fit "
             f"(refit past {drift.get('refit_after', 0):.0%}, or with --full)")
    lists = ", ".join(f"{k} {v['recomputed']} recomputed/{v['merged']} patched"
                      for k, v in last.get("lists", {}).items())
    return (f"{where}: updated: {last.get('changed', 0)} changed, {last.get('added', 0)} "
            f"added, {last.get('deleted', 0)} deleted, {last.get('metadata_only', 0)} "
            f"metadata only; embedded {last.get('embedded', 0)}; {refit}; lists: "
            f"{lists or 'kept'}; suggestions recomputed for "
            f"{last.get('suggestions_recomputed', 0)} articles; ranking: {ranker}")


def print_signals(opened: Opened) -> None:
    """The switched-off signals, and a ranking without its learned model, said plainly."""
    state = opened.snapshot.ranking
    for name, why in state.off.items():
        console.print(f"signal {name} {why}", style="yellow", markup=False, highlight=False)
    if state.ranker.kind == "blend":
        console.print(f"ranking: {state.ranker.describe()}", style="yellow", markup=False,
                      highlight=False, soft_wrap=True)


@app.command()
def build(
    content_dir: Annotated[Path, typer.Argument(help="Folder of markdown articles")],
    index: IndexOpt = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Embedding cache folder")] = None,
    report: Annotated[Optional[Path], typer.Option(
        help="Write the full load report (every problem file and dangling link) as JSON")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
    schema: SchemaOpt = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Update with a refit of the TF-IDF signals (vocabulary and IDF), "
        "which otherwise stay frozen until enough of the corpus has changed")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Rebuild from scratch even if an index of this folder and "
        "configuration exists (embeddings still come from the cache)")] = False,
    engine: Annotated[Engine, typer.Option(
        "--engine", help="local: this machine's processes (updates an existing index); "
        "ray: parse and embed on a Ray cluster, always a full build")] = Engine.local,
    address: Annotated[Optional[str], typer.Option(
        "--address", help="With --engine ray: the Ray cluster to join (e.g. "
        "ray://head:10001); default: a local cluster on loopback, stopped at the end")] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", min=1, help="With --engine ray and no --address: CPUs of the local "
        "cluster [default: all]")] = None,
) -> None:
    """Build the index of CONTENT_DIR, or bring an existing one up to date with it.

    An index of the same folder and configuration is updated: only new and changed
    articles are read and embedded, and only the neighbour lists they touch are
    recomputed. Otherwise it is built from scratch.
    """
    cfg = load_config(config, model)
    index_dir = resolve_index_dir(index)
    chosen = load_schema(schema, content_dir)[0] if schema else None
    if engine is Engine.local and (address or workers):
        raise typer.BadParameter("--address and --workers need --engine ray",
                                 param_hint="--engine")
    started = time.perf_counter()
    with EmbeddingBar(enabled=not quiet) as bar:
        if engine is Engine.ray:
            from recommender.ray_engine import build_on_ray  # Ray is an optional extra
            opened = build_on_ray(content_dir, cfg, index_dir, cache_dir=cache_dir,
                                  on_progress=bar, schema=chosen, address=address,
                                  workers=workers)
        else:
            opened = open_index(content_dir, cfg, index_dir, cache_dir=cache_dir,
                                on_progress=bar, rebuild=force, full=full, schema=chosen)
    print_load_report(opened.corpus.report)
    if report:
        report.write_text(json.dumps(opened.corpus.report.as_dict(), indent=2,
                                     ensure_ascii=True), encoding="utf-8")
    print_signals(opened)
    console.print(f"{describe_opened(opened, index_dir)}; total "
                  f"{time.perf_counter() - started:.1f}s", style="green", markup=False,
                  soft_wrap=True, highlight=False)


def _why(explanation: dict[str, Any]) -> str:
    """One line of an explanation, for the table."""
    parts = [f"{name} {value:.2f}" for name, value in explanation["signals"].items()
             if name in explanation["proposed_by"]]
    if explanation["shared_terms"]:
        parts.append("terms: " + ", ".join(explanation["shared_terms"][:3]))
    if explanation["shared_keywords"]:
        parts.append("keywords: " + ", ".join(explanation["shared_keywords"][:3]))
    parts.append("same subject" if explanation["same_subject"] else "crosses subjects")
    return "; ".join(parts)


def _print_suggestions(title: str, suggestions: list[Suggestion], as_json: bool) -> None:
    explained = any(s.explanation is not None for s in suggestions)
    if as_json:
        print(json.dumps([{
            "id": s.article.id, "url": s.article.url, "title": s.article.title,
            "subject": s.article.subject, "score": round(s.score, 4), "curated": s.curated,
            **({"pinned": True} if s.pinned else {}),
            **({"explanation": s.explanation} if s.explanation is not None else {}),
        } for s in suggestions], indent=2, ensure_ascii=False))
        return
    table = Table(title=title)
    for col in ("#", "score", "subject", "title", "curated", *(("why",) if explained else ())):
        table.add_column(col)
    for i, s in enumerate(suggestions, 1):
        mark = "yes" if s.curated else "pinned" if s.pinned else ""
        table.add_row(str(i), f"{s.score:.3f}", s.article.subject, s.article.title, mark,
                      *((_why(s.explanation),) if s.explanation is not None else ()))
    console.print(table)


def open_recommender(index: Path | None, config: Path | None = None,
                     schema: str | None = None) -> Recommender:
    """The recommender of the index at ``--index``; with ``--config`` or ``--schema``, an
    index built otherwise is refused (:class:`~recommender.errors.IndexMismatch`)."""
    directory = resolve_index_dir(index)
    snapshot = load_index(directory, expected=load_config(config, None) if config else None)
    if schema is not None:
        wanted = load_schema(schema, Path("."))[0]
        found = snapshot.index.schema
        if found is None or found.identity() != wanted.identity():
            raise IndexMismatch(f"index at {directory} was built with schema "
                                f"{found.name if found else '?'!r}, not {wanted.name!r} as "
                                "asked (rebuild it, or drop --schema)")
    return Recommender(snapshot)


@app.command()
def related(
    article: Annotated[str, typer.Argument(help="Article id, url, slug or path")],
    index: IndexOpt = None,
    config: ConfigOpt = None,
    schema: SchemaOpt = None,
    k: KOpt = 5,
    as_json: JsonOpt = False,
    subject: SubjectOpt = None,
    exclude_subject: ExcludeSubjectOpt = None,
    cross_subject: CrossOpt = False,
    same: SameOpt = None,
    diversity: DiversityOpt = 0.0,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Say why each one is suggested (signals, shared terms, subject)")
    ] = False,
) -> None:
    """Suggest articles related to a known ARTICLE (honouring the folder's decisions)."""
    rec = open_recommender(index, config, schema)
    source = rec.get(article)
    found = rec.related(source, k, _filters(subject, exclude_subject, cross_subject, same),
                        diversity, decisions=rec.folder_decisions(), explain=explain)
    _print_suggestions(f"Related to: {source.title} ({source.subject})", found, as_json)


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="Free text, such as a draft's question")],
    index: IndexOpt = None,
    config: ConfigOpt = None,
    schema: SchemaOpt = None,
    k: KOpt = 5,
    as_json: JsonOpt = False,
    subject: SubjectOpt = None,
    exclude_subject: ExcludeSubjectOpt = None,
    diversity: DiversityOpt = 0.0,
) -> None:
    """Suggest articles related to free TEXT."""
    if not text.strip():  # as the API's 422: no text is not a query
        raise typer.BadParameter("give some text to search for", param_hint="TEXT")
    problem = encoding_problem(text)
    if problem:
        raise typer.BadParameter(f"not valid UTF-8 text: {problem}", param_hint="TEXT")
    rec = open_recommender(index, config, schema)
    found = rec.related_to_text(text, k, _filters(subject, exclude_subject, False), diversity,
                                decisions=rec.folder_decisions())
    _print_suggestions(f"Related to: {text[:60]}", found, as_json)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested manifest entries as ``a.b`` rows, lists joined, for the ``info`` table."""
    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, list):
            rows.append((f"{prefix}{key}", ", ".join(map(str, value))))
        else:
            rows.append((f"{prefix}{key}", "" if value is None else str(value)))
    return rows


@app.command()
def info(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Describe the index: model, ranker file, counts, corpus fingerprint, build time."""
    directory = resolve_index_dir(index)
    manifest = read_manifest(directory)
    if as_json:
        print(json.dumps(manifest, indent=2))
        return
    table = Table(title=f"Index at {directory}", show_header=False)
    for name, value in _flatten(manifest):
        table.add_row(name, value)
    console.print(table)
