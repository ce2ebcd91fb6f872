"""``recommender tune``: a static encoder tuned on a site's own curated links."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from recommender.cli import app
from recommender.cli.options import SchemaOpt, load_schema
from recommender.config import BuildConfig
from recommender.corpus import load_corpus
from recommender.tuning import TuningConfig, tune_on_links


@app.command()
def tune(
    content_dir: Annotated[Path, typer.Argument(help="Folder of markdown articles")],
    out: Annotated[Path, typer.Option(help="Folder to write the tuned model to")],
    base: Annotated[str, typer.Option(help="Static model to start from (registry name)")] = (
        BuildConfig().model),
    epochs: Annotated[int, typer.Option(min=1)] = TuningConfig().epochs,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = TuningConfig().learning_rate,
    seed: Annotated[int, typer.Option()] = 0,
    schema: SchemaOpt = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", exists=True, dir_okay=False,
        help="BuildConfig YAML whose text fields are embedded [default: BuildConfig()]")] = None,
) -> None:
    """Tune a static model on the folder's curated links (contrastive, in-batch negatives).

    Add the result to the model registry with ``tuned_from: BASE`` to build with it; the
    evaluation then tunes BASE again per fold, never scoring with the links it saw.
    """
    console = Console(stderr=True)
    chosen, said = load_schema(schema, content_dir)
    console.print(said)
    corpus = load_corpus(content_dir, schema=chosen)
    text = (BuildConfig.from_yaml(config) if config is not None else BuildConfig()).text
    settings = TuningConfig(epochs=epochs, learning_rate=learning_rate, seed=seed)
    written = tune_on_links(corpus, base, out, text, settings, name=out.name,
                            on_epoch=lambda e, loss: console.print(
                                f"epoch {e + 1}/{epochs}: loss {loss:.4f}"))
    typer.echo(f"tuned {base} on {corpus.root}: {written}")
