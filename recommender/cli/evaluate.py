"""``evaluate`` and ``suggest``: score methods against the curated links, export lists.

Thin wiring over :mod:`recommender.evaluation`: parse options, build the
methods asked for, run, write ``results.json`` and ``report.html``. Domain
errors propagate to :func:`recommender.cli.main`, which maps them to exit codes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console

from recommender.cli import app
from recommender.cli.core import IndexOpt
from recommender.cli.options import SameOpt, SchemaOpt, load_schema
from recommender.config import BuildConfig
from recommender.corpus import Corpus, load_corpus
from recommender.decisions import DecisionStore, Rules
from recommender.encoders import model_spec
from recommender.evaluation import (
    BM25Method,
    CandidateSpace,
    DenseMethod,
    KeywordMethod,
    LexicalFeatures,
    Method,
    MethodResult,
    RandomMethod,
    SuggestionsFile,
    TfidfMethod,
    build_protocol,
    choose_examples,
    export_suggestions,
    print_table,
    read_query_file,
    write_html,
    write_json,
)
from recommender.evaluation import evaluate as run_evaluation
from recommender.evaluation.decided import WithDecisions
from recommender.evaluation.protocol import field_groups
from recommender.pipeline import Snapshot
from recommender.schema import Schema

console = Console()
err_console = Console(stderr=True)

METHODS: tuple[str, ...] = ("random", "tfidf", "tfidf-full", "bm25", "keywords", "dense",
                             "product")


def dense_vectors(corpus: Corpus, config: BuildConfig, cache_dir: Path | None) -> np.ndarray:
    """Embeddings of every article under ``config`` (cached by the embedding module)."""
    from recommender.embedding import embed_corpus  # the encoder stack loads only if asked

    return embed_corpus(corpus, config, cache_dir)


def _dense_variants(configs: list[Path] | None) -> list[tuple[str, BuildConfig]]:
    """``dense`` for the default configuration, ``dense:<file stem>`` per YAML given."""
    if not configs:
        return [("dense", BuildConfig())]
    names = [f"dense:{p.stem}" for p in configs]
    if len(set(names)) != len(names):
        raise typer.BadParameter("--dense files must have distinct names", param_hint="--dense")
    return [(n, BuildConfig.from_yaml(p)) for n, p in zip(names, configs, strict=True)]


def _product_variants(configs: list[Path] | None) -> list[tuple[str, BuildConfig]]:
    """``product`` for the default configuration, ``product:<file stem>`` per YAML given."""
    if not configs:
        return [("product", BuildConfig())]
    names = [f"product:{p.stem}" for p in configs]
    if len(set(names)) != len(names):
        raise typer.BadParameter("--product files must have distinct names",
                                 param_hint="--product")
    return [(n, BuildConfig.from_yaml(p)) for n, p in zip(names, configs, strict=True)]


def open_for_evaluation(content_dir: Path, names: list[str], product: list[Path] | None,
                        index: Path | None, cache_dir: Path | None,
                        schema: Schema | None = None) -> tuple[Corpus, Snapshot | None]:
    """The corpus with every text, and, when the default product is evaluated, its index.

    The index is the folder's, opened as ``build``, ``fill`` and ``serve`` open it
    (:func:`recommender.pipeline.open_index`: brought up to date, built if
    missing), so the product method reuses its signals and neighbour lists instead
    of computing them again; its learned model is still refitted per fold. An
    index of another configuration is left alone: the product is built in memory.
    """
    if "product" not in names or product:
        return load_corpus(content_dir, schema=schema), None
    from recommender.cli.core import resolve_index_dir
    from recommender.pipeline import configuration_of, open_index

    index_dir: Path | None = resolve_index_dir(index)
    if configuration_of(index_dir).identity() != BuildConfig().identity():
        index_dir = None
    opened = open_index(content_dir, BuildConfig(), index_dir, cache_dir=cache_dir,
                        full_text=True, schema=schema)
    return opened.corpus, opened.snapshot


def make_methods(corpus: Corpus, names: list[str], seed: int,
                 features: LexicalFeatures | None = None, dense: list[Path] | None = None,
                 cache_dir: Path | None = None, product: list[Path] | None = None,
                 snapshot: Snapshot | None = None) -> list[Method]:
    """The named methods, in the order given; ``dense`` and ``product`` yield one per config.

    ``product`` ranks exactly as an index built with the configuration would
    (:class:`~recommender.evaluation.product.ProductMethod`); a learned ranking is
    refitted per publication-batch fold, never read from the shipped parameters.

    ``features`` (TF-IDF of title + answer) is built here if a lexical method needs it
    and none is given. ``snapshot``: the default product's index, for its method.
    """
    if features is None and {"tfidf", "bm25"} & set(names):
        features = LexicalFeatures(corpus)
    out: list[Method] = []
    for name in names:
        if name == "random":
            out.append(RandomMethod(len(corpus), seed))
        elif name == "tfidf":
            assert features is not None
            out.append(TfidfMethod(features, corpus, seed))
        elif name == "tfidf-full":  # the lexical reference over every text field
            full = LexicalFeatures(corpus, ("title", "description", "answer"))
            out.append(TfidfMethod(full, corpus, seed, name="tfidf-full"))
        elif name == "bm25":
            assert features is not None
            out.append(BM25Method(features, corpus, seed))
        elif name == "keywords":
            out.append(KeywordMethod(corpus, seed))
        elif name == "dense":
            for label, config in _dense_variants(dense):
                if model_spec(config.model).tuned_from is not None:  # tuned per fold
                    from recommender.evaluation.tuned import TunedDenseMethod

                    out.append(TunedDenseMethod(corpus, config, seed, name=label))
                    continue
                out.append(DenseMethod(dense_vectors(corpus, config, cache_dir), corpus, seed,
                                       name=label))
        elif name == "product":
            from recommender.evaluation.product import ProductMethod

            for label, config in _product_variants(product):
                out.append(ProductMethod(corpus, config, label, cache_dir, seed,
                                         snapshot=snapshot if not product else None))
        else:
            raise typer.BadParameter(f"unknown method {name!r}; choose from "
                                     f"{', '.join(METHODS)}", param_hint="--methods")
    return out


def draft_methods(corpus: Corpus, fields: tuple[str, ...], features: LexicalFeatures,
                  seed: int, cache_dir: Path | None, snapshot: Snapshot | None,
                  names: list[str]) -> list[Method]:
    """The draft protocol's methods among ``names``: TF-IDF of the text, the default
    encoder's embedding of it (dense alone), and the product's free-text ranking."""
    from recommender.evaluation.draft import (
        DraftDenseMethod,
        DraftProductMethod,
        DraftTfidfMethod,
    )

    config = BuildConfig()
    out: list[Method] = []
    if "tfidf" in names:
        out.append(DraftTfidfMethod(features, corpus, fields, seed))
    if "dense" in names:
        out.append(DraftDenseMethod(dense_vectors(corpus, config, cache_dir), corpus, fields,
                                    config.model, config.text.max_tokens, seed))
    if "product" in names:
        if snapshot is None:
            from recommender.pipeline import build_snapshot

            snapshot = build_snapshot(corpus, config, cache_dir, suggestions=False)
        out.append(DraftProductMethod(corpus, snapshot, fields, seed))
    return out


def _draft_fields(drafts: list[str] | None) -> list[tuple[str, tuple[str, ...]]]:
    from recommender.evaluation.draft import variant_fields

    out = []
    for name in drafts or []:
        try:
            out.append((name, variant_fields(name)))
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--draft") from None
    return out


def _method_names(methods: str) -> list[str]:
    names = [m.strip() for m in methods.split(",") if m.strip()]
    for name in names:
        if name not in METHODS:
            raise typer.BadParameter(f"unknown method {name!r}; choose from "
                                     f"{', '.join(METHODS)}", param_hint="--methods")
    return list(dict.fromkeys(names))


@app.command()
def evaluate(
    content_dir: Annotated[Path, typer.Argument(help="Folder of markdown articles")],
    k: Annotated[Optional[list[int]], typer.Option(
        "--k", min=1, max=100, help="Cut-offs (repeatable) [default: 5 and 10]")] = None,
    methods: Annotated[str, typer.Option(
        help=f"Comma-separated methods among {','.join(METHODS)}")] = ",".join(METHODS),
    dense: Annotated[Optional[list[Path]], typer.Option(
        "--dense", exists=True, dir_okay=False,
        help="BuildConfig YAML of a dense variant (repeatable) [default: BuildConfig()]")] = None,
    product: Annotated[Optional[list[Path]], typer.Option(
        "--product", exists=True, dir_okay=False,
        help="BuildConfig YAML ranked as the product would (repeatable) "
             "[default: BuildConfig()]")] = None,
    queries: Annotated[Optional[Path], typer.Option(
        exists=True, dir_okay=False,
        help="Only score these articles (urls or paths, one a line); all stay candidates")] = None,
    suggestions: Annotated[Optional[list[Path]], typer.Option(
        "--suggestions", exists=True, dir_okay=False,
        help="Also score a JSONL suggestions file (repeatable)")] = None,
    output: Annotated[Path, typer.Option(help="Folder for results.json and report.html")] = Path(
        "out/evaluation"),
    reference: Annotated[str, typer.Option(
        help="Method the others are compared to (paired bootstrap)")] = "tfidf",
    max_queries: Annotated[Optional[int], typer.Option(
        min=1, help="Score a seeded random subset of queries (quick runs)")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice")] = 0,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Embedding cache folder")] = None,
    folds: Annotated[int, typer.Option(
        min=2, help="Publication-batch folds for methods fitted on links")] = 5,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples")] = 1000,
    frontier: Annotated[Optional[Path], typer.Option(
        exists=True, dir_okay=False,
        help="Frontier plot (PNG from benchmarks.quality_frontier) to include in the report")
    ] = None,
    index: IndexOpt = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", exists=True, dir_okay=False,
        help="BuildConfig YAML of the product (same as one --product)")] = None,
    schema: SchemaOpt = None,
    within: Annotated[Optional[str], typer.Option(
        "--within", help="Also the within protocol: candidates are the articles sharing the "
        "query's value of this front-matter field (date: its publication batch)")] = None,
    draft: Annotated[Optional[list[str]], typer.Option(
        "--draft", help="Also the draft protocol: the article's title (or title+answer) "
        "posted as free text (repeatable)")] = None,
    decisions: Annotated[bool, typer.Option(
        "--decisions", help="Also score each method with the folder's editors' decisions "
        "applied (rejected and blocked dropped, pinned first)")] = False,
) -> None:
    """Score methods on CONTENT_DIR's curated links; write results.json and report.html.

    The whole corpus is the candidate set; --within FIELD and --draft VARIANT add
    those protocols to the same results file and report.
    """
    started = time.perf_counter()
    ks = sorted(set(k or [5, 10]))
    names = _method_names(methods)
    product = [*(product or []), *([config] if config else [])] or None
    chosen_schema = load_schema(schema, content_dir)[0] if schema else None
    drafts = _draft_fields(draft)
    corpus, snapshot = open_for_evaluation(content_dir, names, product, index, cache_dir,
                                           chosen_schema)
    if within is not None:
        field_groups(corpus, within)  # an unknown field fails now, not after the first run
    rows = read_query_file(corpus, queries) if queries else None
    protocol = build_protocol(corpus, rows, max_queries, seed)
    if protocol.unscored:
        err_console.print(f"{len(protocol.unscored)} listed articles have no curated links "
                          "and are not scored", style="yellow")
    features = LexicalFeatures(corpus)
    chosen = make_methods(corpus, names, seed, features, dense, cache_dir, product, snapshot)
    chosen += [SuggestionsFile(corpus, path) for path in suggestions or []]
    if decisions:
        rules = DecisionStore(content_dir).rules()
        chosen += [WithDecisions(m, rules, corpus) for m in list(chosen)]
    if not chosen:
        raise typer.BadParameter("no method to evaluate", param_hint="--methods")
    labels = [m.name for m in chosen]
    if len(set(labels)) != len(labels):
        raise typer.BadParameter(f"two methods share a name: {labels}")
    ref: str | None = reference
    if reference not in labels:
        err_console.print(f"reference {reference!r} is not evaluated: no bootstrap comparison",
                          style="yellow")
        ref = None
    console.print(f"{len(protocol.queries)} queries over {len(corpus)} articles, "
                  f"methods: {', '.join(labels)}")

    def progress(result: MethodResult) -> None:
        console.print(f"  {result.name}: {result.seconds:.1f}s")

    result = run_evaluation(protocol, chosen, ks, features.tfidf, ref, folds, seed, resamples,
                            examples=choose_examples(protocol, 5, seed), on_method=progress)
    if within is not None:
        inside = build_protocol(corpus, rows, max_queries, seed, within=within)
        console.print(f"{inside.label}: {len(inside.queries)} queries")
        result.others.append(run_evaluation(inside, chosen, ks, features.tfidf, ref, folds,
                                            seed, resamples, on_method=progress))
    for variant, fields in drafts:
        drafted = build_protocol(corpus, rows, max_queries, seed, label=f"draft {variant}")
        methods_here = draft_methods(corpus, fields, features, seed, cache_dir,
                                     snapshot if not product else None, names)
        console.print(f"{drafted.label}: {len(drafted.queries)} queries, methods: "
                      f"{', '.join(m.name for m in methods_here)}")
        if methods_here:
            here = [m.name for m in methods_here]
            result.others.append(run_evaluation(
                drafted, methods_here, ks, features.tfidf, ref if ref in here else None,
                folds, seed, resamples, on_method=progress))
    result.wall_seconds = time.perf_counter() - started
    result.settings = {
        "methods": labels, "dense": [str(p) for p in dense or []],
        "product": [str(p) for p in product or []],
        "queries_file": str(queries) if queries else None,
        "suggestions": [str(p) for p in suggestions or []], "max_queries": max_queries,
        "resamples": resamples, "within": within, "draft": [v for v, _ in drafts],
    }
    output.mkdir(parents=True, exist_ok=True)
    write_json(result, output / "results.json")
    write_html(result, output / "report.html", frontier)
    print_table(result, console)
    console.print(f"wrote {output / 'results.json'} and {output / 'report.html'}")


@app.command()
def suggest(
    content_dir: Annotated[Path, typer.Argument(help="Folder of markdown articles")],
    output: Annotated[Path, typer.Option(help="JSONL file to write")],
    all_articles: Annotated[bool, typer.Option(
        "--all", help="Suggest for every article (the only mode for now)")] = False,
    method: Annotated[str, typer.Option(
        help=f"One of {', '.join(METHODS)}; product ranks as the index does")
    ] = "product",
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Suggestions per article")] = 10,
    dense: Annotated[Optional[Path], typer.Option(
        "--dense", exists=True, dir_okay=False, help="BuildConfig YAML for --method dense")] = None,
    seed: Annotated[int, typer.Option(help="Seed of random choices and tie-breaks")] = 0,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Embedding cache folder")] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", exists=True, dir_okay=False,
        help="BuildConfig YAML of --method product")] = None,
    schema: SchemaOpt = None,
    same: SameOpt = None,
    draft: Annotated[Optional[str], typer.Option(
        "--draft", help="Suggest for each article's title (or title+answer) posted as free "
        "text, as evaluate --draft scores it (methods tfidf, dense, product)")] = None,
) -> None:
    """Write every article's suggestions as JSONL, collapsed exactly as evaluate scores them."""
    if not all_articles:
        raise typer.BadParameter("only --all is supported (use `related` for one article)",
                                 param_hint="--all")
    names = _method_names(method)
    if len(names) != 1:
        raise typer.BadParameter("give exactly one method", param_hint="--method")
    if same is not None and draft is not None:
        raise typer.BadParameter("free text has no field to match: --same or --draft, not both",
                                 param_hint="--same")
    corpus = load_corpus(content_dir,
                         schema=load_schema(schema, content_dir)[0] if schema else None)
    groups = field_groups(corpus, same) if same is not None else None
    if draft is not None:
        fields = _draft_fields([draft])[0][1]
        chosen = draft_methods(corpus, fields, LexicalFeatures(corpus), seed, cache_dir, None,
                               names)
        if not chosen:
            raise typer.BadParameter(f"--draft takes the methods tfidf, dense or product, "
                                     f"not {names[0]}", param_hint="--method")
    else:
        chosen = make_methods(corpus, names, seed, None, [dense] if dense else None,
                              cache_dir, [config] if config else None)
    rules = DecisionStore(content_dir).rules()
    if rules != Rules():  # the folder's editors' decisions (see `recommender decide`)
        chosen = [WithDecisions(chosen[0], rules, corpus)]
    output.parent.mkdir(parents=True, exist_ok=True)
    lines = export_suggestions(CandidateSpace(corpus), chosen[0], k, output, groups)
    console.print(json.dumps({"written": str(output), "lines": lines, "method": chosen[0].name,
                              "same": same, "draft": draft}))
