"""Contrastive tuning of a static (model2vec) encoder on curated links.

A static model is a token-embedding table averaged over a text's tokens. Its
table can be moved, with sentence-transformers' ``MultipleNegativesRankingLoss``,
so that an article lands near the articles editors linked it to and away from the
other targets in the same training batch. On two CPU cores a pass over some 20k
links takes seconds, because a step touches one table lookup and its gradient,
not a transformer.

What is learned is *which words make two articles related on this site*; the
vocabulary and the way text is pooled do not change, so a tuned model is written
in the same model2vec layout and loaded by the same encoder
(:class:`recommender.encoders.StaticEncoder`).

Every text is tokenised once (:class:`TokenisedTexts`), so the training loop and
the embedding of all articles afterwards (:func:`embed`) share it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recommender.config import TextConfig

if TYPE_CHECKING:
    from recommender.corpus import Corpus

#: tokens of a text that count (model2vec's own limit)
MAX_TOKENS = 512


@dataclass(frozen=True)
class TuningConfig:
    """How the table is tuned (the settings results/evaluation-tuned was measured with)."""

    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 0.003
    scale: float = 20.0  # MultipleNegativesRankingLoss' similarity scale
    symmetric: bool = True  # each link taught in both directions
    seed: int = 0


@dataclass
class TokenisedTexts:
    """Token ids of every text, flat, with each text's start: an EmbeddingBag's input."""

    ids: np.ndarray  # int64, every text's tokens one after the other
    starts: np.ndarray  # int64, len(texts) + 1 offsets into ``ids``

    @classmethod
    def of(cls, texts: Sequence[str], tokenizer_file: Path,
           max_tokens: int = MAX_TOKENS) -> TokenisedTexts:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        unknown = tokenizer.token_to_id("[UNK]")
        parts = []
        for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False):
            ids = [t for t in encoding.ids if t != unknown][:max_tokens]
            parts.append(np.asarray(ids or [0], dtype=np.int64))
        starts = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        return cls(np.concatenate(parts), starts)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The token ids of ``rows`` one after the other, each row's offset into them, and
        each row's length."""
        lengths = self.starts[rows + 1] - self.starts[rows]
        ids = np.concatenate([self.ids[self.starts[r]:self.starts[r + 1]] for r in rows])
        return ids, np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths

    def batch(self, rows: np.ndarray) -> dict[str, object]:
        """The EmbeddingBag input of ``rows`` (sentence-transformers' StaticEmbedding keys)."""
        import torch

        ids, offsets, _ = self.gather(rows)
        return {"input_ids": torch.from_numpy(ids), "offsets": torch.from_numpy(offsets)}


def _batches(pairs: np.ndarray, content: np.ndarray, size: int,
             rng: np.random.Generator) -> list[np.ndarray]:
    """Pairs in shuffled batches where no content appears twice: another pair's target
    that is a copy of (or is) this pair's anchor or target would be a false negative.
    The two ends of a pair are of different contents (the caller drops the others)."""
    pending = pairs[rng.permutation(len(pairs))]
    out: list[np.ndarray] = []
    while len(pending):
        seen: set[int] = set()
        taken, left = [], []
        for k, (a, b) in enumerate(pending.tolist()):
            ca, cb = int(content[a]), int(content[b])
            if len(taken) < size and ca not in seen and cb not in seen:
                seen.update((ca, cb))
                taken.append(k)
            else:
                left.append(k)
            if len(taken) == size:
                out.append(pending[taken])
                seen, taken = set(), []
        if taken:
            out.append(pending[taken])
        pending = pending[left] if left and len(left) < len(pending) else pending[:0]
    return out


def tune_table(table: np.ndarray, tokenizer_file: Path, texts: TokenisedTexts,
               pairs: np.ndarray, content: np.ndarray, config: TuningConfig = TuningConfig(),
               on_epoch: Callable[[int, float], None] | None = None) -> np.ndarray:
    """The token table after contrastive tuning on ``pairs`` (rows of ``texts``).

    ``content``: per row, a number shared by copies of one article (never each
    other's negatives). Returns a new float32 table; ``table`` is not changed.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer

    torch.manual_seed(config.seed)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    pairs = pairs[content[pairs[:, 0]] != content[pairs[:, 1]]]  # a link to a copy of itself
    if config.symmetric:
        pairs = np.unique(np.concatenate([pairs, pairs[:, ::-1]]), axis=0)
    # a copy: the module would otherwise train the caller's array in place (torch shares
    # a numpy array's memory), and a fold's tuning would start from the last fold's table
    module = StaticEmbedding(Tokenizer.from_file(str(tokenizer_file)),
                             embedding_weights=np.array(table, dtype=np.float32, copy=True))
    model = SentenceTransformer(modules=[module], device="cpu")
    loss = MultipleNegativesRankingLoss(model, scale=config.scale)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    rng = np.random.default_rng(config.seed)
    model.train()
    for epoch in range(config.epochs):
        total, steps = 0.0, 0
        for batch in _batches(pairs, content, config.batch_size, rng):
            if len(batch) < 2:
                continue
            value = loss([texts.batch(batch[:, 0]), texts.batch(batch[:, 1])], None)
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
            total, steps = total + float(value.detach()), steps + 1
        if on_epoch is not None:
            on_epoch(epoch, total / max(steps, 1))
    return module.embedding.weight.detach().numpy().astype(np.float32, copy=True)


def embed(table: np.ndarray, texts: TokenisedTexts, rows: np.ndarray | None = None,
          block: int = 4096) -> np.ndarray:
    """Unit vectors of ``rows`` (all texts by default): the mean of their token rows, as
    model2vec pools them."""
    rows = np.arange(len(texts.starts) - 1) if rows is None else np.asarray(rows, np.int64)
    out = np.empty((len(rows), table.shape[1]), dtype=np.float32)
    for start in range(0, len(rows), block):
        part = rows[start:start + block]
        ids, offsets, lengths = texts.gather(part)
        out[start:start + len(part)] = np.add.reduceat(table[ids], offsets) / lengths[:, None]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def read_table(model_dir: Path) -> np.ndarray:
    """The token table of a model2vec model folder, as float32."""
    from safetensors.numpy import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))["embeddings"].astype(np.float32)


def save_tuned(base_dir: Path, table: np.ndarray, out_dir: Path, provenance: dict) -> Path:
    """Write ``table`` as a model2vec model beside ``base_dir``'s tokenizer and config.

    ``provenance`` (what it was tuned on, how) goes to ``build.json``."""
    from safetensors.numpy import save_file

    base_dir, out_dir = Path(base_dir), Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "modules.json"):
        if (base_dir / name).exists():
            shutil.copy2(base_dir / name, tmp / name)
    config = json.loads((tmp / "config.json").read_text())
    config["embedding_dtype"] = "float16"
    (tmp / "config.json").write_text(json.dumps(config, indent=4))
    save_file({"embeddings": table.astype(np.float16)}, str(tmp / "model.safetensors"))
    (tmp / "build.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    (tmp / "README.md").write_text(
        "---\nlibrary_name: model2vec\ntags: [static-embeddings]\n---\n\n"
        f"# {out_dir.name}\n\nThe static model {provenance.get('tuned_from', base_dir.name)} "
        "tuned on curated related-article links by `recommender tune` "
        "(contrastive, in-batch negatives; see recommender/tuning.py). `build.json` says on "
        "which corpus and with which settings. It loads as any model2vec model.\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def tune_on_links(corpus: Corpus, base: str, out_dir: Path, text: TextConfig | None = None,
                  config: TuningConfig = TuningConfig(), name: str = "",
                  on_epoch: Callable[[int, float], None] | None = None) -> Path:
    """Tune the static model ``base`` (a registry name) on every curated link of ``corpus``
    and write it to ``out_dir`` (model2vec layout; ``build.json`` says how, so that an
    evaluation can tune the base again per fold with the same settings)."""
    from recommender.encoders import model_spec
    from recommender.fitting import content_groups, link_pairs
    from recommender.text import prepare_text

    spec = model_spec(base)
    if spec.backend != "model2vec":
        raise ValueError(f"model {base!r} is not a static (model2vec) model; only those are "
                         "tuned here")
    text = text or TextConfig()
    started = time.perf_counter()
    folder = Path(spec.resolve_source())
    texts = TokenisedTexts.of([prepare_text(a, text) for a in corpus.articles],
                              folder / "tokenizer.json", min(text.max_tokens, spec.max_tokens))
    links = link_pairs(corpus.articles)
    if not len(links):
        raise ValueError(f"{corpus.root}: no curated links to tune on")
    table = tune_table(read_table(folder), folder / "tokenizer.json", texts, links,
                       content_groups(corpus.articles), config, on_epoch)
    return save_tuned(folder, table, out_dir, {
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "name": name, "tuned_from": base, "text": list(text.fields),
        "corpus": {"root": str(corpus.root), "articles": len(corpus.articles),
                   "links": int(len(links))},
        "tuning": asdict(config), "seconds": round(time.perf_counter() - started, 1),
        "loss": "sentence-transformers MultipleNegativesRankingLoss, in-batch negatives",
    })
