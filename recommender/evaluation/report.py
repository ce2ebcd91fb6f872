"""Results of a run for machines (JSON), for the terminal (rich) and for people (HTML).

The HTML report is one self-contained file (plots embedded as base64 PNG) so it
can be attached to an issue or mailed without losing its pictures; it carries
the corpus fingerprint and wall time so two reports can be told apart.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from rich import box
from rich.console import Console
from rich.table import Table

from recommender.evaluation.experiment import EXAMPLE_SLUG, EvaluationResult
from recommender.evaluation.metrics import RELEVANCE_METRICS

#: column order of the summary tables, per k
COLUMNS: tuple[str, ...] = (*RELEVANCE_METRICS, "coverage", "diversity", "cross_subject")


def primary_metric(result: EvaluationResult) -> str:
    """The metric plots and the terminal's CI column use: nDCG at the largest k."""
    return f"ndcg@{max(result.ks)}"


def _clean(value: Any) -> Any:
    """JSON without NaN (not valid JSON): undefined values become null."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def _examples(result: EvaluationResult) -> list[dict[str, Any]]:
    shown = result.examples
    if shown is None:
        return []
    corpus, space = shown.corpus, shown.space
    out = []
    order = sorted(range(len(shown.queries)),  # the seeded article first, when present
                   key=lambda i: corpus.articles[int(shown.queries[i])].slug != EXAMPLE_SLUG)
    for i in order:
        row = int(shown.queries[i])
        a = corpus.articles[row]
        relevant = set(shown.relevant[i].tolist())

        def item(r: int, relevant: set[int] = relevant) -> dict[str, Any]:
            b = corpus.articles[r]
            return {"url": b.url, "title": b.title, "subject": b.subject,
                    "relevant": int(space.content[r]) in relevant}

        out.append({
            "url": a.url, "title": a.title, "subject": a.subject,
            "curated": [item(space.row_of[u]) for u in a.links],
            "suggestions": {name: [item(r) for r in lists[i]]
                            for name, lists in result.example_suggestions.items()},
        })
    return out


def _protocol_dict(result: EvaluationResult) -> dict[str, Any]:
    """One protocol's queries, methods and intervals (the ``protocols`` entries)."""
    p = result.protocol
    return {
        "queries": len(p.queries), "answers": p.n_links, "dropped_targets": p.dropped_targets,
        "reference": result.reference, "folds": result.n_folds,
        "methods": {r.name: {"metrics": r.metrics, "recall_curve": r.recall_curve,
                             "seconds": r.seconds, "fitted_on_links": r.fitted}
                    for r in result.methods},
        "bootstrap": [i.as_dict() for i in result.intervals],
    }


def results_dict(result: EvaluationResult) -> dict[str, Any]:
    """Everything of a run except per-query arrays, JSON-ready.

    The top level is the whole-corpus protocol (as it always was); ``protocols``
    holds every protocol of the run by label, that one included.
    """
    p, corpus = result.protocol, result.protocol.corpus
    return _clean({
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": {
            "root": str(corpus.root),
            "fingerprint": result.fingerprint,
            "articles": len(corpus),
            "contents": p.space.n_contents,
            "candidate_contents": p.space.n_candidate_contents,
            "queries": len(p.queries),
            "answers": p.n_links,
            "dropped_targets": p.dropped_targets,
            "unscored_queries": p.unscored,
        },
        "protocol": {
            "ks": list(result.ks),
            "seed": result.seed,
            "folds": result.n_folds,
            "reference": result.reference,
            "relevance": "content (copies of a curated target count; own copies excluded)",
        },
        "settings": result.settings,
        "wall_seconds": result.wall_seconds,
        "methods": {
            r.name: {
                "metrics": r.metrics,
                "recall_curve": r.recall_curve,
                "per_subject": r.per_subject,
                "seconds": r.seconds,
                "fitted_on_links": r.fitted,
            }
            for r in result.methods
        },
        "bootstrap": [i.as_dict() for i in result.intervals],
        "examples": _examples(result),
        "protocols": {r.label: _protocol_dict(r) for r in (result, *result.others)},
    })


def write_json(result: EvaluationResult, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(results_dict(result), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path


def _fmt(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.3f}"


#: short terminal headers, so a table per k fits 80 columns
_SHORT = {"recall": "rec", "precision": "prec", "hit_rate": "hit", "ndcg": "ndcg",
          "map": "map", "mrr": "mrr", "coverage": "cov", "diversity": "div",
          "cross_subject": "xsub"}


def print_table(result: EvaluationResult, console: Console | None = None) -> None:
    """One table per k, then the paired CIs of the primary metric against the reference;
    then the same for each other protocol of the run."""
    console = console or Console()
    for one in (result, *result.others):
        _print_one(one, console)


def _print_one(result: EvaluationResult, console: Console) -> None:
    p = result.protocol
    console.print(f"[bold]{p.label}[/]: "
                  f"[bold]{len(p.queries)}[/] queries, {p.n_links} answers, "
                  f"{len(p.corpus)} articles, corpus {result.fingerprint}, "
                  f"wall {result.wall_seconds:.1f}s")
    for k in result.ks:
        table = Table(title=f"@{k}: cov = coverage, div = diversity, xsub = cross-subject",
                      title_justify="left",
                      box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0, 0, 1))
        table.add_column("method", no_wrap=True, max_width=14)
        for c in COLUMNS:
            table.add_column(_SHORT[c], justify="right", min_width=5, no_wrap=True)
        for r in result.methods:
            table.add_row(r.name, *[_fmt(r.metrics.get(f"{c}@{k}")) for c in COLUMNS])
        console.print(table)
    primary = primary_metric(result)
    shown = [i for i in result.intervals if i.metric in (primary, f"recall@{min(result.ks)}")]
    if shown:
        table = Table(title=f"paired bootstrap vs {result.reference} (95% CI)",
                      title_justify="left", box=box.SIMPLE_HEAD)
        for c in ("method", "metric", "difference", "CI", "p"):
            table.add_column(c, justify="left" if c in ("method", "metric") else "right")
        for i in shown:
            table.add_row(i.method, i.metric, f"{i.difference:+.4f}",
                          f"[{i.low:+.4f}, {i.high:+.4f}]", f"{i.p_value:.3f}",
                          style="bold" if i.significant else None)
        console.print(table)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def recall_curve_plot(result: EvaluationResult) -> str:
    """Base64 PNG: mean recall@k against k = 1..20, one line per method."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    for r in result.methods:
        ks = np.arange(1, len(r.recall_curve) + 1)
        ax.plot(ks, r.recall_curve, marker="o", markersize=3, label=r.name)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_xticks(range(1, len(result.methods[0].recall_curve) + 1))
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def subject_plot(result: EvaluationResult, metric: str) -> str:
    """Base64 PNG: ``metric`` per query subject (largest subjects first), bars per method."""
    first = result.methods[0].per_subject
    subjects = sorted(first, key=lambda s: (-first[s]["queries"], s))
    fig = Figure(figsize=(8, 1.2 + 0.32 * len(subjects) * max(1, len(result.methods)) / 2))
    ax = fig.add_subplot()
    height = 0.8 / len(result.methods)
    y = np.arange(len(subjects))
    for j, r in enumerate(result.methods):
        values = [r.per_subject.get(s, {}).get(metric, np.nan) for s in subjects]
        ax.barh(y + j * height, values, height=height, label=r.name)
    ax.set_yticks(y + 0.4 - height / 2)
    ax.set_yticklabels([f"{s} ({int(first[s]['queries'])})" for s in subjects], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
.example{display:flex;gap:1em;flex-wrap:wrap}
.example div{flex:1 1 240px;font-size:13px}
.hit{color:#0a7d22;font-weight:600}
.sig{font-weight:600}
.muted{color:#777}
"""


def _summary_html(result: EvaluationResult) -> str:
    parts = []
    for k in result.ks:
        head = "".join(f"<th>{c}@{k}</th>" for c in COLUMNS)
        rows = "".join(
            f"<tr><td>{html.escape(r.name)}</td>"
            + "".join(f"<td>{_fmt(r.metrics.get(f'{c}@{k}'))}</td>" for c in COLUMNS)
            + "</tr>"
            for r in result.methods)
        parts.append(f"<table><tr><th>method</th>{head}</tr>{rows}</table>")
    return "".join(parts)


def _intervals_html(result: EvaluationResult) -> str:
    if not result.intervals:
        return "<p class='muted'>No reference method, so no comparison.</p>"
    rows = "".join(
        f"<tr class='{'sig' if i.significant else ''}'><td>{html.escape(i.method)}</td>"
        f"<td>{i.metric}</td><td>{i.difference:+.4f}</td><td>[{i.low:+.4f}, {i.high:+.4f}]</td>"
        f"<td>{i.p_value:.3f}</td><td>{i.queries}</td></tr>"
        for i in result.intervals)
    return ("<table><tr><th>method</th><th>metric</th>"
            f"<th>Δ vs {html.escape(str(result.reference))}</th><th>95% CI</th>"
            f"<th>p (bootstrap)</th><th>queries</th></tr>{rows}</table>")


def _examples_html(result: EvaluationResult) -> str:
    def items(entries: list[dict[str, Any]]) -> str:
        if not entries:
            return "<li class='muted'>none</li>"
        return "".join(
            f"<li class='{'hit' if e['relevant'] else ''}'>{'✓ ' if e['relevant'] else ''}"
            f"{html.escape(e['title'])} <span class='muted'>({html.escape(e['subject'])})</span>"
            "</li>" for e in entries)

    out = []
    for ex in _examples(result):
        cols = [f"<div><b>curated links</b><ol>{items(ex['curated'])}</ol></div>"]
        cols += [f"<div><b>{html.escape(name)}</b><ol>{items(entries)}</ol></div>"
                 for name, entries in ex["suggestions"].items()]
        out.append(f"<h3>{html.escape(ex['title'])} <span class='muted'>"
                   f"({html.escape(ex['subject'])})</span></h3>"
                   f"<p class='muted'>{html.escape(ex['url'])}</p>"
                   f"<div class='example'>{''.join(cols)}</div>")
    return "".join(out) or "<p class='muted'>No example articles.</p>"


def _frontier_html(frontier: Path | None) -> str:
    """The quality-against-build-cost plot of ``benchmarks.quality_frontier``, if given.

    It is made by a separate benchmark (it needs cold builds, not one evaluation) and
    embedded here so that the report people read shows why the defaults are what they are.
    """
    if frontier is None:
        return ""
    data = base64.b64encode(Path(frontier).read_bytes()).decode("ascii")
    return (f"<h2>Quality frontier</h2><p class='muted'>From {html.escape(str(frontier))}"
            " (python -m benchmarks.quality_frontier): recall@5 against the cold build time"
            f" of each configuration.</p><img alt='frontier' src='data:image/png;base64,{data}'>")


def _other_html(result: EvaluationResult) -> str:
    """Another protocol of the run: its summary, intervals and recall curve."""
    p = result.protocol
    return (f"<h2>Protocol: {html.escape(p.label)}</h2><p>{len(p.queries)} queries with "
            f"{p.n_links} curated answers ({p.dropped_targets} curated targets left out: "
            f"never suggestible under this protocol).</p>{_summary_html(result)}"
            f"<h3>Paired bootstrap against {html.escape(str(result.reference))}</h3>"
            f"{_intervals_html(result)}<img alt='recall curve' "
            f"src='data:image/png;base64,{recall_curve_plot(result)}'>")


def render_html(result: EvaluationResult, frontier: Path | None = None) -> str:
    """The self-contained report page (with the frontier plot, when one is given)."""
    p = result.protocol
    primary = primary_metric(result)
    info = results_dict(result)["corpus"]
    settings = html.escape(json.dumps(_clean(result.settings), ensure_ascii=False))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation report</title>
<style>{_STYLE}</style></head><body>
<h1>Related-article evaluation</h1>
<p>Protocols: {", ".join(html.escape(r.label) for r in (result, *result.others))}. The
first is below; the others follow the examples.</p>
<p>Corpus <code>{html.escape(str(p.corpus.root))}</code>, fingerprint
<code>{result.fingerprint}</code>: {info['articles']} articles
({info['contents']} distinct contents, {info['candidate_contents']} suggestible),
{info['queries']} queries with {info['answers']} curated answers
({info['dropped_targets']} curated targets left out: never suggestible).
Wall time {result.wall_seconds:.1f} s. Seed {result.seed};
{result.n_folds or 'no'} publication-batch folds for methods fitted on links.</p>
<p class="muted">Settings: {settings}</p>
<h2>Summary</h2>{_summary_html(result)}
<p class="muted">Relevance at the content level: a copy of a curated target counts; the
query's own copies and no_index articles are never suggestions. Coverage = share of
suggestible contents shown at least once; diversity = mean pairwise cosine distance of
the suggestions' TF-IDF (title + answer) vectors; cross_subject = share of suggestions
filed under another subject than the query.</p>
<h2>Paired bootstrap against {html.escape(str(result.reference))}</h2>
{_intervals_html(result)}
<h2>Recall@k</h2><img alt="recall curve" src="data:image/png;base64,{recall_curve_plot(result)}">
<h2>{primary} per subject of the query</h2>
<img alt="per subject" src="data:image/png;base64,{subject_plot(result, primary)}">
<h2>Examples</h2>{_examples_html(result)}
{"".join(_other_html(o) for o in result.others)}
{_frontier_html(frontier)}
</body></html>
"""


def write_html(result: EvaluationResult, path: str | Path, frontier: Path | None = None) -> Path:
    path = Path(path)
    path.write_text(render_html(result, frontier), encoding="utf-8")
    return path
