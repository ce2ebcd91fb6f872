"""Options shared by several commands, and the helpers that turn them into library objects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recommender.corpus import find_article_files
from recommender.schema import BUILTIN, Schema, builtin_schema, detect_schema

SchemaOpt = Annotated[Optional[str], typer.Option(
    "--schema", help="Front-matter schema: a YAML file, or a shipped one "
    f"({', '.join(BUILTIN)}) [default: detected from the files]")]
SameOpt = Annotated[Optional[str], typer.Option(
    "--same", help="Only suggest articles whose value of this front-matter field (date, "
    "language, section...) equals the article's; a filter, never a ranking signal")]


def load_schema(path: str | Path | None, content_dir: Path) -> tuple[Schema, str]:
    """The schema ``--schema`` names (a shipped name or a YAML file), else the detected one.

    Returns the schema and a line saying where it came from, for the command to
    print. A file that is not a valid schema raises
    :class:`~recommender.errors.SchemaError`, naming the file and the key.
    """
    if path is None:
        return detect_schema(find_article_files(content_dir), content_dir)
    if str(path) in BUILTIN and not Path(path).is_file():
        schema = builtin_schema(str(path))
        return schema, f"{schema.name}: the shipped schema"
    schema = Schema.from_yaml(path)
    return schema, f"{schema.name}: from {path}"
