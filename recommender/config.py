"""One configuration object for a build: which encoder, which text, how to rank.

It flows from CLI flags, a YAML file or environment variables into the library
and is saved beside the index it built (``config.yaml``), so an index can
always say how it was made and refuse to be used with another configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recommender.errors import ConfigError

TextField = Literal["title", "question", "answer", "description", "keywords", "subject"]


class TextConfig(BaseModel):
    """What is embedded for each article, and how long answers are handled.

    ``truncate`` keeps the first ``max_tokens`` tokens of the joined fields;
    ``chunks`` splits them into windows of ``max_tokens`` (at most ``max_chunks``)
    and mean-pools the chunk vectors, which sees more of a long answer for a
    proportional embedding cost.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[TextField, ...] = ("title", "answer")
    max_tokens: int = Field(256, ge=8, le=512)
    chunking: Literal["truncate", "chunks"] = "truncate"
    max_chunks: int = Field(4, ge=1, le=64)


class RankingConfig(BaseModel):
    """How the similarity signals are combined into one ranking.

    Signals: ``dense`` (the model's embeddings), ``lexical`` (TF-IDF of
    ``lexical_fields``), ``description`` (TF-IDF of the SEO page description) and
    ``keywords`` (TF-IDF of keyword phrases); a signal with weight 0 is not built,
    and a sparse signal whose field is empty in every article is switched off (and
    reported in the build output and the manifest).

    ``method``: ``fused`` ranks by the weighted sum of the cosines; ``learned``
    re-ranks the union of each signal's ``pool`` best articles with a model over
    per-query-normalised scores, mutual-neighbour ranks (within each signal's
    ``depth`` nearest) and 2-hop scores; there the weights only switch signals on.
    ``model`` names its parameters: a bare name is ``models/ranker/<name>.json``
    in the repository, otherwise a path; a missing file is an error. When it was fitted
    on other signals than the active ones, a model is fitted on the corpus' own
    curated links at build time (:mod:`recommender.fitting`); with too few links
    the ranking is the unsupervised blend (the sum of the candidates' cosines).
    The manifest's ``ranker`` says which, and why.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["fused", "learned"] = "learned"
    dense: float = Field(1.0, ge=0)
    lexical: float = Field(1.0, ge=0)
    description: float = Field(1.0, ge=0)
    keywords: float = Field(1.0, ge=0)
    mentions: float = Field(1.0, ge=0)
    lexical_fields: tuple[TextField, ...] = ("title", "answer")
    candidates: int = Field(200, ge=10, le=5000)
    depth: int = Field(50, ge=10, le=1000)
    pool: int = Field(30, ge=5, le=1000)
    model: str | None = "default"
    #: the free-text scorer (``related_to_text``, ``search``, drafts): a model over the same
    #: features fitted on draft queries (an article's title posted as text), because the
    #: article-to-article model is not made for text; ``ranker/<name>.json`` or a path;
    #: null: the dense cosine. Read at query time: no stored data depends on it.
    text_model: str | None = "text"


class VectorConfig(BaseModel):
    """How FAISS searches the dense vectors for each article's nearest neighbours.

    ``flat`` is exact inner-product search, the default: on tens of thousands of
    articles it takes seconds. ``hnsw`` (a graph) and ``ivf`` (inverted lists over
    ``nlist`` clusters, ``nprobe`` searched) are approximate and meant for corpora of
    millions; ``python -m benchmarks.vector_search`` measures their recall against
    exact search. Whatever finds the candidates, their scores are exact cosines.
    ``shards`` splits the index into several searched together (see the README's
    "Scaling" section).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: Literal["flat", "hnsw", "ivf"] = "flat"
    hnsw_m: int = Field(32, ge=4, le=256)
    ef_construction: int = Field(80, ge=8, le=2048)
    ef_search: int = Field(128, ge=8, le=4096)
    nlist: int = Field(0, ge=0, description="0: about 4 * sqrt(articles)")
    nprobe: int = Field(16, ge=1)
    #: IVF only: 0 stores the vectors (IVF-Flat); m > 0 compresses each into m bytes (IVF-PQ,
    #: m sub-quantizers of 8 bits; m must divide the dimension): a fraction of the memory
    pq_m: int = Field(0, ge=0, le=256)
    #: cut the rows into this many shards, each its own index of the kind above, searched
    #: together and merged by score (recommender.vectors.Shards); 1: one index
    shards: int = Field(1, ge=1, le=1024)


class UpdateConfig(BaseModel):
    """When an update of an existing index refits the TF-IDF signals instead of patching.

    Between full refits the vocabulary and IDF stay frozen, so unchanged articles
    keep their vectors and neighbour lists; once ``refit_after`` of the articles
    (changed, added and deleted together, counted since the last fit) have
    changed, the next update refits. Not part of the index's identity.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    refit_after: float = Field(0.05, ge=0, le=1)


class BuildConfig(BaseModel):
    """Everything that decides what an index contains. Saved as ``config.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the default is the static (model2vec) distillation of all-MiniLM-L6-v2 over title +
    #: answer: the learned ranking reaches the same quality with it as with MiniLM over the
    #: question (see results/quality_frontier.md) and it embeds the dev corpus in under a
    #: minute on two cores instead of several
    model: str = "minilm-static-m2v"
    text: TextConfig = TextConfig()
    ranking: RankingConfig = RankingConfig()
    vectors: VectorConfig = VectorConfig()
    update: UpdateConfig = UpdateConfig()
    batch_size: int = Field(64, ge=1, le=4096)

    @classmethod
    def from_yaml(cls, path: str | Path) -> BuildConfig:
        """Read a configuration file; :class:`ConfigError` names the file and the problem."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, OverflowError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            problem = (getattr(exc, "strerror", None) or getattr(exc, "problem", None)
                       or str(exc).splitlines()[0])
            raise ConfigError(f"cannot read configuration file {path}{where}: {problem}"
                              ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a configuration is a mapping of settings, not a "
                              f"{type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"key {'.'.join(str(p) for p in e['loc']) or '(top)'!r}: {e['msg']}"
                for e in exc.errors())
            raise ConfigError(f"{path}: {problems}") from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def identity(self) -> dict:
        """The parts an index must agree on to be reused (batch size and update policy
        are not)."""
        return self.model_dump(mode="json", exclude={"batch_size": True, "update": True,
                                                     "ranking": {"text_model"}})
