"""``recommender fill``: write suggested related links into a content folder's files.

A thin layer over :mod:`recommender.fill`: it takes the folder's lock first (so a
second fill fails at once, before minutes of index work; the loader's forked
workers never keep it), loads the corpus with its schema (given or detected),
obtains a :class:`~recommender.recommender.Recommender`, plans, writes and prints
a summary. A dry run prints the diff to stdout (the summary goes to stderr), so
``recommender fill DIR --dry-run > fill.patch`` gives a patch to review. A fill
that could not read, parse or write some files exits with its own code (11)
after filling all the others.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from recommender.cli import app
from recommender.cli.options import SameOpt, SchemaOpt, load_schema
from recommender.config import BuildConfig
from recommender.corpus import Corpus, load_corpus
from recommender.errors import CorpusError, FillError, FillIncomplete
from recommender.fill import (
    FillLock,
    FillResult,
    Suggest,
    apply_fill,
    check_report_path,
    clean_temp_files,
    diff_file,
    load_skips,
    plan_fill,
    recommender_suggester,
    write_report,
)
from recommender.schema import Schema

console = Console()
err_console = Console(stderr=True)


def open_suggester(content_dir: Path, corpus: Corpus, index: Path | None,
                   out: Console, config: BuildConfig | None = None,
                   schema: Schema | None = None, same: str | None = None) -> Suggest:
    """Suggestions from the index of ``content_dir``, brought up to date with it first.

    :func:`recommender.pipeline.open_index`, the policy ``build`` and ``serve`` use:
    the index at ``--index`` (default: the default index) keeps its configuration
    (unless ``config``, ``--config``, asks for another) and is updated with what
    changed in the folder, so every suggestion knows every article; an index of
    another folder or schema, or none, is (re)built from this one.
    """
    from recommender.cli.core import EmbeddingBar, describe_opened, resolve_index_dir
    from recommender.decisions import DecisionStore
    from recommender.pipeline import open_index
    from recommender.recommender import Recommender

    directory = resolve_index_dir(index)
    if not (directory / "manifest.json").exists():
        out.print(f"[cyan]building an index[/] of {content_dir} in {directory} (no index"
                  " there yet)")
    with EmbeddingBar(out=out) as bar:
        opened = open_index(content_dir, config, directory, on_progress=bar, schema=schema)
    out.print(describe_opened(opened, directory), markup=False, highlight=False,
              soft_wrap=True)
    return recommender_suggester(Recommender(opened.snapshot), same,
                                 DecisionStore(content_dir).rules())


def _progress(out: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=out, transient=True)


def print_summary(result: FillResult, corpus: Corpus, out: Console, limit: int = 10) -> None:
    """Counts first, then each kind of skip with a few of its files and reasons."""
    s = result.summary()
    verb = "would be " if result.dry_run else ""
    table = Table(title="Fill (dry run)" if result.dry_run else "Fill", show_header=False)
    table.add_row("articles selected", str(s["files_selected"]))
    table.add_row(f"files {verb}filled", str(s["files_filled"]))
    table.add_row(f"links {verb}written", str(s["links_written"]))
    table.add_row("skipped", str(len(result.skipped)))
    for kind, count in s["skipped"].items():
        table.add_row(f"  {kind}", str(count))
    table.add_row("  of which failed (not-loaded, unreadable, write-error, ...)",
                  str(s["failed"]))
    table.add_row("files not loaded (load errors)", str(len(corpus.report.errors)))
    table.add_row("fields ignored (load warnings)", str(len(corpus.report.warnings)))
    if result.cleaned_temp_files:
        table.add_row("stale temporary files removed", str(len(result.cleaned_temp_files)))
    out.print(table)
    for skip in result.skipped[:limit]:
        out.print(f"[yellow]skipped[/] {skip.path}: {skip.kind}: {skip.detail}")
    if len(result.skipped) > limit:
        out.print(f"... and {len(result.skipped) - limit} more (see --report FILE.json)")


@app.command()
def fill(
    content_dir: Annotated[Path, typer.Argument(help="Folder of markdown articles to fill")],
    k: Annotated[int, typer.Option("--k", min=1, max=50,
                                   help="Links per article (the target count with --top-up)")] = 5,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Change nothing; print the diff (or write it to --diff)")] = False,
    diff: Annotated[Optional[Path], typer.Option(
        "--diff", help="Write a unified diff of the changes to FILE", dir_okay=False)] = None,
    top_up: Annotated[bool, typer.Option(
        "--top-up", help="Also complete articles that have fewer than --k links")] = False,
    min_score: Annotated[Optional[float], typer.Option(
        "--min-score", help="Never write a suggestion scored below S")] = None,
    report: Annotated[Optional[Path], typer.Option(
        "--report", help="Write every link written to FILE (.csv or .json)",
        dir_okay=False)] = None,
    index: Annotated[Optional[Path], typer.Option(
        "--index", help="Index directory [default: $RECOMMENDER_INDEX or "
        "~/.cache/recommender/index, built from CONTENT_DIR if it is not of it]")] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="YAML file with a BuildConfig: what a new index is built with, and "
        "what an existing one must match", exists=True, dir_okay=False)] = None,
    schema: SchemaOpt = None,
    same: SameOpt = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Also write read-only files (mode kept)")] = False,
) -> None:
    """Write suggested related links into the articles of CONTENT_DIR that have none.

    Only the new links are added, in the site's own style (numbered blocks just
    before each front matter's closing '---', or items of a `related:` list);
    every other byte of every file stays as it was. Exits 11 if some files could
    not be read, parsed or written (all the others are filled).
    """
    if report is not None:
        check_report_path(report)
    if not content_dir.is_dir():
        raise CorpusError(f"content folder {content_dir} does not exist or is not a folder")
    diff_to_stdout = dry_run and diff is None
    out = err_console if diff_to_stdout else console
    cfg = BuildConfig.from_yaml(config) if config else None
    with contextlib.ExitStack() as stack:
        if not dry_run:
            stack.enter_context(FillLock(content_dir))
        cleaned = [] if dry_run else clean_temp_files(content_dir)
        chosen, reason = load_schema(schema, content_dir)
        out.print(f"schema: {reason}", markup=False, highlight=False, soft_wrap=True)
        corpus = load_corpus(content_dir, schema=chosen, schema_reason=reason)
        suggest = open_suggester(content_dir, corpus, index, out, cfg, chosen, same)
        with _progress(out) as bar:
            task = bar.add_task("planning", total=None)
            plans = plan_fill(corpus, suggest, k, top_up, min_score, force=force,
                              progress=lambda i, n: bar.update(task, completed=i, total=n))
        diffs = {id(p): diff_file(p) for p in plans if p.changes} if diff or dry_run else {}
        if dry_run:
            result = FillResult.planned(plans)
            shown = result.changes
        else:
            with _progress(out) as bar:
                task = bar.add_task("writing", total=None)
                result = apply_fill(
                    plans, force=force,
                    progress=lambda i, n: bar.update(task, completed=i, total=n))
            result.cleaned_temp_files = cleaned
            shown = result.written
        result.skipped[:0] = load_skips(corpus)
        patch = "".join(diffs.get(id(p), "") for p in shown)
        if diff is not None:
            try:
                diff.write_text(patch, encoding="utf-8", newline="")
            except OSError as exc:
                raise FillError(f"cannot write diff {diff}: {exc.strerror or exc}") from None
        elif diff_to_stdout:
            typer.echo(patch, nl=False)
        if report is not None:
            write_report(result, report)
    print_summary(result, corpus, out)
    if diff is not None:
        out.print(f"diff written to {diff}")
    if report is not None:
        out.print(f"report written to {report}")
    if result.failed:
        raise FillIncomplete(
            f"{len(result.failed)} file(s) could not be filled (see the skipped lines above"
            f"{' and ' + str(report) if report else '; --report FILE.json lists them all'});"
            " every other file was filled")
