"""``build``, ``related``, ``search`` and ``info``: the core commands."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from recommender.cli import app
from recommender.config import BuildConfig
from recommender.corpus import LoadReport, load_corpus
from recommender.index import build_index, default_index_dir, load_index, read_manifest
from recommender.pipeline import index_is_current
from recommender.recommender import Filters, Recommender, Suggestion

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
CrossOpt = Annotated[bool, typer.Option(
    "--cross-subject", help="Only suggest articles of another subject than the source")]


def load_config(config: Path | None, model: str | None) -> BuildConfig:
    """The build configuration from ``--config`` and ``--model`` (defaults otherwise)."""
    cfg = BuildConfig.from_yaml(config) if config else BuildConfig()
    return cfg.model_copy(update={"model": model}) if model else cfg


def resolve_index_dir(index: Path | None) -> Path:
    return (index or default_index_dir()).expanduser()


def _filters(subject: list[str] | None, exclude_subject: list[str] | None,
             cross_subject: bool) -> Filters:
    return Filters(only_subjects=frozenset(subject or ()),
                   exclude_subjects=frozenset(exclude_subject or ()),
                   cross_subject_only=cross_subject)


def print_load_report(report: LoadReport, limit: int = 20) -> None:
    """The load report as a short table, then each problem file with its reason."""
    d = report.as_dict()
    table = Table(title="Load report", show_header=False)
    rows = [
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
    force: Annotated[bool, typer.Option(
        "--force", help="Rebuild even if the index is current (embeddings still come from "
        "the cache)")] = False,
) -> None:
    """Load CONTENT_DIR, embed what changed, and write the index (kept if already current)."""
    cfg = load_config(config, model)
    index_dir = resolve_index_dir(index)
    started = time.perf_counter()
    corpus = load_corpus(content_dir)
    loaded = time.perf_counter() - started
    print_load_report(corpus.report)
    if report:
        report.write_text(json.dumps(corpus.report.as_dict(), indent=2), encoding="utf-8")
    if not force and index_is_current(index_dir, corpus, cfg):
        console.print(f"index at {index_dir} is current (same articles and configuration): "
                      f"nothing to do; total {time.perf_counter() - started:.1f}s",
                      style="green", markup=False, soft_wrap=True, highlight=False)
        return
    built = build_index(corpus, cfg, index_dir, cache_dir, progress=not quiet)
    m = built.manifest
    console.print(
        f"index written to {index_dir}: {m['counts']['articles']} articles, "
        f"model {m['model']} (dim {m['dim']}), embedded {m['counts']['embedded']} "
        f"({m['embedding']['rate_per_s']}/s), {m['counts']['from_cache']} from cache; "
        f"load {loaded:.1f}s, build {m['build_seconds']:.1f}s, "
        f"total {time.perf_counter() - started:.1f}s", style="green", markup=False,
        soft_wrap=True, highlight=False)


def _print_suggestions(title: str, suggestions: list[Suggestion], as_json: bool) -> None:
    if as_json:
        print(json.dumps([{
            "id": s.article.id, "url": s.article.url, "title": s.article.title,
            "subject": s.article.subject, "score": round(s.score, 4), "curated": s.curated,
        } for s in suggestions], indent=2, ensure_ascii=False))
        return
    table = Table(title=title)
    for col in ("#", "score", "subject", "title", "curated"):
        table.add_column(col)
    for i, s in enumerate(suggestions, 1):
        table.add_row(str(i), f"{s.score:.3f}", s.article.subject, s.article.title,
                      "yes" if s.curated else "")
    console.print(table)


@app.command()
def related(
    article: Annotated[str, typer.Argument(help="Article id, url, slug or path")],
    index: IndexOpt = None,
    k: KOpt = 5,
    as_json: JsonOpt = False,
    subject: SubjectOpt = None,
    exclude_subject: ExcludeSubjectOpt = None,
    cross_subject: CrossOpt = False,
) -> None:
    """Suggest articles related to a known ARTICLE."""
    rec = Recommender(load_index(resolve_index_dir(index)))
    source = rec.get(article)
    found = rec.related(source, k, _filters(subject, exclude_subject, cross_subject))
    _print_suggestions(f"Related to: {source.title} ({source.subject})", found, as_json)


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="Free text, such as a draft's question")],
    index: IndexOpt = None,
    k: KOpt = 5,
    as_json: JsonOpt = False,
    subject: SubjectOpt = None,
    exclude_subject: ExcludeSubjectOpt = None,
) -> None:
    """Suggest articles related to free TEXT."""
    rec = Recommender(load_index(resolve_index_dir(index)))
    found = rec.related_to_text(text, k, _filters(subject, exclude_subject, False))
    _print_suggestions(f"Related to: {text[:60]}", found, as_json)


@app.command()
def info(index: IndexOpt = None) -> None:
    """Print the index's manifest (model, counts, corpus fingerprint, build time)."""
    directory = resolve_index_dir(index)
    print(json.dumps(read_manifest(directory), indent=2))
