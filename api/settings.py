"""Service settings, read from ``RECOMMENDER_*`` environment variables.

One :class:`Settings` object decides what the service serves (an index directory,
optionally rebuilt from a content folder) and how it protects itself (text size
limit, largest ``k``, admin token, CORS). It is never built at import time: the
app factory reads it once (:func:`load_settings`, cached) unless it is given one,
routes get the app's object through the :func:`get_settings` dependency, and tests
either pass their own object to ``create_app`` or override that dependency.
``recommender serve`` passes its options through these environment variables,
which is what lets ``--workers N`` processes share them.

Example:
    >>> Settings(index_dir="/tmp/idx", cors_origins="https://a.example, https://b.example")
    ... .cors_origins  # doctest: +SKIP
    ['https://a.example', 'https://b.example']
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Optional

from fastapi import Request
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from recommender.config import BuildConfig
from recommender.index import default_index_dir

#: the largest ``k`` any request may ask for; settings may lower it, never raise it
K_LIMIT = 100


class Settings(BaseSettings):
    """Everything the HTTP service needs to know, from ``RECOMMENDER_<FIELD>`` variables."""

    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_", extra="ignore",
                                      validate_default=True)

    index_dir: Optional[Path] = Field(
        None, description="Index directory to serve [default: $RECOMMENDER_INDEX or the cache]")
    content_dir: Optional[Path] = Field(
        None, description="Content folder: when set, a reload rebuilds the index from it")
    config_file: Optional[Path] = Field(
        None, description="YAML BuildConfig the index must have been built with")
    model: Optional[str] = Field(None, description="Encoder name overriding the config's model")
    cache_dir: Optional[Path] = Field(None, description="Embedding cache used by rebuilds")
    admin_token: Optional[SecretStr] = Field(
        None, description="Bearer token of the admin endpoints; unset disables them")
    admin_token_file: Optional[Path] = Field(
        None, description="File holding the admin token instead (read once at startup); "
                          "keeps it out of the environment of every process")
    max_text_bytes: int = Field(20_000, ge=1, description="Largest posted draft text (UTF-8)")
    max_k: int = Field(K_LIMIT, ge=1, le=K_LIMIT, description="Largest k a request may ask")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed by CORS (comma-separated or JSON)")
    load_in_background: bool = Field(
        True, description="Load the index after startup, so /healthz answers at once")
    warmup: bool = Field(True, description="Run one query before declaring the index ready")
    compute_threads: int = Field(
        1, ge=0, description="Threads one query may use to encode text and multiply matrices "
                             "(0: the libraries' default, one per core)")
    text_concurrency: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1,
        description="Text queries encoded at once; more wait their turn")
    watch_interval: float = Field(
        0.0, ge=0, description="Seconds between checks of the index manifest for a newer "
                               "build (0: never); lets every worker follow a reload")
    watch: bool = Field(
        False, description="Follow the content folder and apply each change as an "
                           "incremental update (needs content_dir)")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        """Accept ``a,b`` as well as a JSON list, as people write both in env files."""
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _token_from_file(self) -> Settings:
        """Read ``admin_token_file`` once; a token given both ways is refused."""
        if self.admin_token_file is None:
            return self
        if self.admin_token is not None:
            raise ValueError("set the admin token one way: RECOMMENDER_ADMIN_TOKEN or "
                             "RECOMMENDER_ADMIN_TOKEN_FILE, not both")
        self.admin_token = SecretStr(read_token_file(self.admin_token_file))
        return self

    def resolved_index_dir(self) -> Path:
        """The index directory, defaulting like the CLI so both find the same index."""
        return (self.index_dir or default_index_dir()).expanduser()

    def build_config(self) -> BuildConfig | None:
        """The configuration asked for, or ``None`` to accept whatever the index was built with.

        A content folder without a config means the defaults, as ``recommender build`` does.
        """
        if self.config_file is None and self.model is None and self.content_dir is None:
            return None
        cfg = BuildConfig.from_yaml(self.config_file) if self.config_file else BuildConfig()
        return cfg.model_copy(update={"model": self.model}) if self.model else cfg

    def admin_token_value(self) -> str | None:
        """The admin token, or ``None`` when admin endpoints are disabled (unset or blank)."""
        if self.admin_token is None:
            return None
        token = self.admin_token.get_secret_value().strip()
        return token or None


def read_token_file(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace dropped); ``ValueError`` if unreadable."""
    try:
        token = path.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the admin token file {path}: {error}") from None
    if not token:
        raise ValueError(f"the admin token file {path} is empty")
    return token


def admin_token_handoff(flag_token: str | None, token_file: Path | None) -> Path | None:
    """The token file the service's processes read, so the token is never in an environment
    or on a command line, both of which other users can read through ``/proc``.

    ``token_file`` is used as it is. A token from ``--admin-token`` (deprecated) or from
    ``$RECOMMENDER_ADMIN_TOKEN`` is written to a new private file (mode 0600, in a 0700
    folder, removed when the process exits); the caller then drops the variable from its
    environment (``recommender serve`` does, before it starts workers).
    """
    token = flag_token or os.environ.get("RECOMMENDER_ADMIN_TOKEN", "").strip() or None
    if token_file is not None:
        if token:
            raise ValueError("give the admin token one way: --admin-token-file, or "
                             "RECOMMENDER_ADMIN_TOKEN, not both")
        read_token_file(token_file)  # fail now, not in every worker
        return token_file.expanduser().resolve()
    if token is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="recommender-token-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "admin-token"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(token)
    return path


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """The process's settings, read once from the environment (what ``create_app()`` uses)."""
    return Settings()


async def get_settings(request: Request) -> Settings:
    """FastAPI dependency: the settings the app was created with. Tests override it.

    Asynchronous on purpose: FastAPI runs a plain ``def`` dependency in the thread
    pool, a hop that cost more than the whole related-by-article query.
    """
    return request.app.state.settings
