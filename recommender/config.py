"""One configuration object for a build: which encoder, which text, how to rank.

It flows from CLI flags, a YAML file or environment variables into the library
and is saved beside the index it built (``config.yaml``), so an index can
always say how it was made and refuse to be used with another configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

TextField = Literal["title", "question", "answer", "description", "keywords", "subject"]


class TextConfig(BaseModel):
    """What is embedded for each article, and how long answers are handled.

    ``truncate`` keeps the first ``max_tokens`` tokens of the joined fields;
    ``chunks`` splits them into windows of ``max_tokens`` (at most ``max_chunks``)
    and mean-pools the chunk vectors, which sees more of a long answer for a
    proportional embedding cost.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[TextField, ...] = ("question",)
    max_tokens: int = Field(128, ge=8, le=512)
    chunking: Literal["truncate", "chunks"] = "truncate"
    max_chunks: int = Field(4, ge=1, le=64)


class RankingConfig(BaseModel):
    """How the signals are combined into one ranking (weights of normalised scores)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dense: float = Field(1.0, ge=0)
    lexical: float = Field(0.0, ge=0)
    keywords: float = Field(0.0, ge=0)
    lexical_fields: tuple[TextField, ...] = ("title", "answer")
    candidates: int = Field(200, ge=10, le=5000)


class BuildConfig(BaseModel):
    """Everything that decides what an index contains. Saved as ``config.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "all-MiniLM-L6-v2"
    text: TextConfig = TextConfig()
    ranking: RankingConfig = RankingConfig()
    batch_size: int = Field(64, ge=1, le=4096)

    @classmethod
    def from_yaml(cls, path: str | Path) -> BuildConfig:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return cls.model_validate(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def identity(self) -> dict:
        """The parts an index must agree on to be reused (batch size is not one)."""
        return self.model_dump(mode="json", exclude={"batch_size"})
