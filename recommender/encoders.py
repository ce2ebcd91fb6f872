"""Encoders, from cheap to strong, behind one interface, named in ``models/registry.yaml``.

Every encoder turns a list of texts into L2-normalised float32 vectors, so inner
product is cosine similarity whatever the backend. Backends are imported only
when asked for, and a missing one raises :class:`ModelNotAvailable` naming the
command that installs or builds it: the machine has no network to fetch weights.

Example:
    >>> enc = load_encoder("hashing")
    >>> enc.encode(["leukemia radiation therapy"]).shape
    (1, 512)
"""

from __future__ import annotations

import importlib.util
import os
import re
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict

from recommender.errors import ModelNotAvailable
from recommender.model_files import resolve_model_path, search_path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def models_dir() -> Path:
    """Where locally built models are written: ``$RECOMMENDER_MODELS_DIR`` if set, else the
    built-in models folder (see :mod:`recommender.model_files`, which also finds them)."""
    return search_path()[0]


class ModelSpec(BaseModel):
    """One registry entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    backend: str
    source: str = ""
    dim: int
    max_tokens: int = 256
    get: str = ""
    #: a model tuned on one site's curated links names its base here; the evaluation tunes
    #: that base again per fold instead of scoring the site with a model that saw its links
    tuned_from: str | None = None

    def resolve_source(self) -> Path:
        """The folder holding the weights; raises :class:`ModelNotAvailable` if absent.

        ``package:<module>/<sub>`` is a folder inside an installed Python package;
        anything else is found on the models search path (:mod:`recommender.model_files`).
        """
        what = f"model {self.name!r}: weights"
        if not self.source.startswith("package:"):
            return resolve_model_path(self.source, what, self.get)
        module, _, sub = self.source.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            hint = f"; to get it: {self.get}" if self.get else ""
            raise ModelNotAvailable(f"model {self.name!r} needs the Python package {module!r}, "
                                    f"which is not installed{hint}")
        folder = Path(next(iter(spec.submodule_search_locations))) / sub
        return resolve_model_path(folder, what, self.get)


def registry_path() -> Path:
    """``registry.yaml``, the first one on the models search path."""
    return resolve_model_path("registry.yaml", "the model registry",
                              "reinstall qa-related-recommender")


def registry() -> dict[str, ModelSpec]:
    """All registry entries by name."""
    path = registry_path()
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) or {}
    return {name: ModelSpec(name=name, **entry) for name, entry in data.items()}


def model_spec(name: str) -> ModelSpec:
    specs = registry()
    if name not in specs:
        raise ModelNotAvailable(
            f"unknown model {name!r}; the registry ({registry_path()}) "
            f"knows: {', '.join(sorted(specs))}")
    return specs[name]


class Encoder(Protocol):
    """What the rest of the library needs from an encoder."""

    name: str
    dim: int
    max_tokens: int

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Return one L2-normalised float32 row per text."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def _require(module: str, pip_name: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelNotAvailable(
            f"this encoder needs {module!r}: pip install {pip_name}") from None


class SentenceTransformerEncoder:
    """A sentence-transformers model under PyTorch (the reference backend)."""

    def __init__(self, spec: ModelSpec, max_tokens: int):
        st = _require("sentence_transformers", "sentence-transformers")
        importlib.import_module("transformers").utils.logging.disable_progress_bar()
        self.name, self.dim = spec.name, spec.dim
        self.max_tokens = min(max_tokens, spec.max_tokens)
        self.model = st.SentenceTransformer(str(spec.resolve_source()), device="cpu")
        self.model.max_seq_length = self.max_tokens

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = self.model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
        return _normalise(out)


class OnnxEncoder:
    """An exported transformer run by onnxruntime with the ``tokenizers`` package.

    This avoids ``sentence-transformers[onnx]``, whose pins conflict with model2vec.
    The folder holds ``model.onnx`` and ``tokenizer.json``; pooling is the mean over
    non-padding tokens, as in the sentence-transformers model it was exported from.
    """

    def __init__(self, spec: ModelSpec, max_tokens: int):
        ort = _require("onnxruntime", "onnxruntime")
        tokenizers = _require("tokenizers", "tokenizers")
        folder = spec.resolve_source()
        self.name, self.dim = spec.name, spec.dim
        self.max_tokens = min(max_tokens, spec.max_tokens)
        self.tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer.encode_batch(texts[start : start + batch_size])
            ids = np.array([e.ids for e in batch], dtype=np.int64)
            mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feed)[0]
            weights = mask[..., None].astype(np.float32)
            rows.append((hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9))
        return _normalise(np.concatenate(rows) if rows else np.zeros((0, self.dim)))


class StaticEncoder:
    """A static (model2vec) model: a token-embedding lookup, ~100x faster than MiniLM."""

    def __init__(self, spec: ModelSpec, max_tokens: int):
        m2v = _require("model2vec", "model2vec")
        self.name, self.dim = spec.name, spec.dim
        self.max_tokens = min(max_tokens, spec.max_tokens)
        self.model = m2v.StaticModel.from_pretrained(str(spec.resolve_source()))

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = self.model.encode(texts, batch_size=max(batch_size, 256),
                                max_length=self.max_tokens, show_progress_bar=False)
        return _normalise(out)


_WORD = re.compile(r"[a-z0-9]+")


class HashingEncoder:
    """Signed feature hashing of lower-cased words and word pairs: no model, deterministic.

    Not a semantic model; it exists so tests and smoke runs exercise the whole
    pipeline (cache, index, recommender, service) in milliseconds.
    """

    def __init__(self, spec: ModelSpec, max_tokens: int):
        self.name, self.dim = spec.name, spec.dim
        self.max_tokens = min(max_tokens, spec.max_tokens)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())[: self.max_tokens]
            for feature in words + [a + " " + b for a, b in zip(words, words[1:])]:
                h = zlib.crc32(feature.encode())
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        return _normalise(out)


_BACKENDS: dict[str, type] = {
    "sentence-transformers": SentenceTransformerEncoder,
    "onnx": OnnxEncoder,
    "model2vec": StaticEncoder,
    "hashing": HashingEncoder,
}


@lru_cache(maxsize=8)
def load_encoder(name: str, max_tokens: int = 512) -> Encoder:
    """Load (once per process) the encoder named in the registry."""
    spec = model_spec(name)
    if spec.backend not in _BACKENDS:
        raise ModelNotAvailable(f"model {name!r}: unknown backend {spec.backend!r}")
    return _BACKENDS[spec.backend](spec, max_tokens)
