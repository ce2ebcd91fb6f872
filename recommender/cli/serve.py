"""``serve``: answer related-article queries over HTTP (the app lives in :mod:`api`).

The argument is either an index directory (it has ``manifest.json``), served as
it is, or a content folder, whose index is built or brought up to date first with
:func:`recommender.pipeline.open_index`, so a server never starts on a stale
index. With ``--watch`` the server then follows the folder and applies every
change in the background (see :mod:`api.state`). Options reach the app as
``RECOMMENDER_*`` environment variables, the only channel that also reaches the
processes of ``--workers N``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from recommender.cli import app
from recommender.cli.core import (
    ConfigOpt,
    EmbeddingBar,
    IndexOpt,
    ModelOpt,
    console,
    describe_opened,
    err_console,
    load_config,
    open_recommender,
    print_signals,
    resolve_index_dir,
)
from recommender.cli.options import SchemaOpt, load_schema
from recommender.errors import CorpusError
from recommender.index import MANIFEST
from recommender.pipeline import Snapshot, load_index, open_index

#: settings this command decides; any value inherited from the environment is replaced
_OWNED = ("INDEX_DIR", "CONTENT_DIR", "CONFIG_FILE", "MODEL", "CACHE_DIR", "ADMIN_TOKEN",
          "ADMIN_TOKEN_FILE", "MAX_TEXT_BYTES", "CORS_ORIGINS", "WATCH_INTERVAL",
          "LOAD_IN_BACKGROUND", "WATCH")


def _export(values: dict[str, Any]) -> None:
    """Put the settings where ``api.settings.Settings`` (in every worker) reads them."""
    for name in _OWNED:
        os.environ.pop(f"RECOMMENDER_{name}", None)
    for name, value in values.items():
        if value is not None:
            os.environ[f"RECOMMENDER_{name}"] = str(value)


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, plus the service's own ``api`` logger (reloads, failures)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["api"] = {"handlers": ["default"], "level": level.upper(),
                                "propagate": False}
    return config


def _prepare(source: Path, index: Path | None, config: Path | None, model: str | None,
             cache_dir: Path | None, schema: str | None = None
             ) -> tuple[Path, Path | None, Snapshot | None]:
    """Index dir to serve, content folder (if any), and the index if it had to be opened."""
    if (source / MANIFEST).is_file():
        if index is not None:
            err_console.print(f"[yellow]--index ignored[/]: {source} is an index directory")
        loaded = None
        if config is not None or schema is not None:  # refuse a mismatch now, not per worker
            loaded = open_recommender(source, config, schema).snapshot
        elif model is not None:
            loaded = load_index(source, expected=load_config(None, model))
        return source.resolve(), None, loaded
    if not source.is_dir():
        raise CorpusError(f"{source} is neither an index directory (no {MANIFEST}) "
                          "nor a content folder")
    index_dir = resolve_index_dir(index).resolve()
    asked = load_config(config, model) if config is not None or model is not None else None
    with EmbeddingBar(out=err_console) as bar:
        opened = open_index(source, asked, index_dir, cache_dir=cache_dir, on_progress=bar,
                            schema=load_schema(schema, source)[0] if schema else None)
    print_signals(opened)
    console.print(describe_opened(opened, index_dir), markup=False, highlight=False,
                  soft_wrap=True)
    return index_dir, source.resolve(), opened.snapshot


@app.command()
def serve(
    source: Annotated[Path, typer.Argument(
        help="Content folder (its index is built or reused first) or an index directory",
        metavar="CONTENT_DIR_OR_INDEX")],
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(
        min=1, help="Worker processes (each holds the index in memory)")] = 1,
    index: IndexOpt = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    schema: SchemaOpt = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Embedding cache folder")] = None,
    admin_token_file: Annotated[Optional[Path], typer.Option(
        exists=True, dir_okay=False, envvar="RECOMMENDER_ADMIN_TOKEN_FILE",
        help="File holding the bearer token of POST /v1/admin/reload (or set "
             "RECOMMENDER_ADMIN_TOKEN; neither: admin endpoints disabled)")] = None,
    admin_token: Annotated[Optional[str], typer.Option(
        hidden=True, help="Deprecated: shows the token in ps; use --admin-token-file")] = None,
    cors_origin: Annotated[Optional[list[str]], typer.Option(
        help="Origin allowed by CORS (repeatable)")] = None,
    max_text_bytes: Annotated[int, typer.Option(
        min=1, help="Largest draft text accepted by POST /v1/related")] = 20_000,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Follow the content folder: apply every added, edited or deleted "
                        "article within seconds, without a rebuild")] = False,
    watch_interval: Annotated[Optional[float], typer.Option(
        min=0, help="Seconds between checks for a newer index build, so every worker "
                    "follows a reload [default: 2 with several workers (0.5 with --watch), "
                    "else off]")] = None,
    access_log: Annotated[bool, typer.Option(
        help="Log every request (costs throughput; /metrics counts them anyway)")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve related-article suggestions over HTTP (docs at /docs once started)."""
    import uvicorn

    if watch and (source / MANIFEST).is_file():
        raise typer.BadParameter("--watch follows a content folder, not an index directory",
                                 param_hint="--watch")
    from api.settings import admin_token_handoff

    if admin_token:
        err_console.print("[bold red]warning: --admin-token is deprecated[/]: every user of "
                          "this machine can read it (ps, /proc); use --admin-token-file FILE "
                          "or RECOMMENDER_ADMIN_TOKEN")
    try:  # the token reaches the workers as a file's path, never as itself
        token_file = admin_token_handoff(admin_token, admin_token_file)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--admin-token-file") from None
    index_dir, content_dir, loaded = _prepare(source, index, config, model, cache_dir, schema)
    follow = (0.5 if watch else 2.0) if workers > 1 else 0.0
    _export({
        "INDEX_DIR": index_dir, "CONTENT_DIR": content_dir,
        "CONFIG_FILE": config.resolve() if config else None, "MODEL": model,
        "CACHE_DIR": cache_dir.resolve() if cache_dir else None, "ADMIN_TOKEN_FILE": token_file,
        "MAX_TEXT_BYTES": max_text_bytes,
        "CORS_ORIGINS": json.dumps(cors_origin) if cors_origin else None,
        "WATCH_INTERVAL": watch_interval if watch_interval is not None else follow,
        "WATCH": watch,
    })
    options: dict[str, Any] = dict(host=host, port=port, log_level=log_level,
                                   access_log=access_log, log_config=_log_config(log_level),
                                   http="api.protocols:NoDelayHTTPProtocol")
    if workers == 1:
        from api.app import create_app
        from api.settings import Settings

        # one process: hand over the index opened above instead of reading it again
        uvicorn.run(create_app(Settings(), index=loaded), **options)
        return
    del loaded  # each worker loads its own; the supervisor should not hold one
    # metrics of all workers, added up by whichever worker answers /metrics
    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="recommender-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    try:
        uvicorn.run("api.app:create_app", factory=True, workers=workers, **options)
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
