"""The ``recommender`` command line: a thin layer over the library.

Each sub-module registers its commands on :data:`app`. Domain errors are mapped
to exit codes here and nowhere else, and printed as one line on stderr.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from recommender import __version__
from recommender.errors import (
    ArticleNotFound,
    ConfigError,
    CorpusError,
    DecisionError,
    FillError,
    FillIncomplete,
    IndexMismatch,
    IndexNotFound,
    InvalidFilter,
    ModelNotAvailable,
    RecommenderError,
    SchemaError,
    SuggestionsFileError,
)

app = typer.Typer(
    name="recommender",
    help="Semantic related-article suggestions for a folder of Q&A markdown articles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _print_version(value: bool) -> None:
    if value:
        print(f"recommender {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit")] = False) -> None:
    """Options that come before the command."""


#: exit code per domain error; 1 is left for unexpected failures, 2 is click's usage error
EXIT_CODES: dict[type[RecommenderError], int] = {
    CorpusError: 3,
    ArticleNotFound: 4,
    IndexNotFound: 5,
    IndexMismatch: 6,
    ModelNotAvailable: 7,
    InvalidFilter: 8,
    FillError: 9,
    SuggestionsFileError: 10,
    FillIncomplete: 11,
    DecisionError: 12,
    SchemaError: 2,  # a --schema file that is not a schema is bad usage
    ConfigError: 2,  # and a --config file that is not a configuration
}


def exit_code(error: RecommenderError) -> int:
    for kind in type(error).__mro__:
        if kind in EXIT_CODES:
            return EXIT_CODES[kind]
    return 1


def main() -> None:
    """Console-script entry point: run the app, turning domain errors into one line."""
    from recommender.cli import core, decide, evaluate, fill, serve, tune  # noqa: F401  (registers commands)

    try:
        app(standalone_mode=True)
    except RecommenderError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(exit_code(error))
