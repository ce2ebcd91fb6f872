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

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Optional

from fastapi import Request
from pydantic import Field, SecretStr, field_validator
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
