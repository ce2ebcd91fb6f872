"""``recommender decide``: record an editor's decision on a suggestion.

A thin layer over :mod:`recommender.decisions` and :mod:`recommender.accept`.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from recommender.accept import accept_link
from recommender.cli import app
from recommender.cli.core import IndexOpt, open_recommender
from recommender.corpus import QUICKTAKES
from recommender.decisions import ACTIONS

console = Console()


@app.command()
def decide(
    article: Annotated[str, typer.Argument(help="Article id, url, slug or path")],
    action: Annotated[str, typer.Argument(help=f"One of {', '.join(ACTIONS)}")],
    target: Annotated[str, typer.Argument(help="The suggested article (id, url, slug, path)")],
    index: IndexOpt = None,
) -> None:
    """Accept (write the link into ARTICLE's file), reject, pin or block TARGET.

    Decisions are kept in the content folder's .recommender/decisions.yaml; `related`,
    `fill`, `suggest` and the API honour them.
    """
    if action not in ACTIONS:
        raise typer.BadParameter(f"choose from {', '.join(ACTIONS)}", param_hint="ACTION")
    rec = open_recommender(index)
    source, chosen = rec.get(article), rec.get(target)
    if action == "accept":
        schema = rec.index.schema or QUICKTAKES  # indexes of format 3 predate schemas
        accept_link(rec.index.root, source, chosen, schema, rec.decision_store)
        console.print(f"accepted: {chosen.url} written into {source.path}", markup=False)
    else:
        decision = rec.decision_store.add(action, source.url, chosen.url)
        console.print(f"{decision.action}: {chosen.url} for {source.url}", markup=False)
    console.print(f"recorded in {rec.decision_store.path}", style="dim", markup=False)
