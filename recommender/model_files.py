"""Where model files are found: encoder weights, the registry and learned-ranker parameters.

Every model file the library opens is found by :func:`resolve_model_path`, along
one search path:

1. ``$RECOMMENDER_MODELS_DIR``, when set (a folder laid out like ``models/``);
2. the built-in models: the repository's ``models/`` folder in a source checkout
   (which also holds the git-ignored artefacts built there, ``onnx/`` and
   ``mpnet/``), or, in an installed wheel, the same files shipped as the package
   ``recommender_models`` (``pyproject.toml`` maps ``models/`` to that name).

A file that is in none of them raises :class:`ModelNotAvailable` naming what is
missing, where it was looked for and how to get it. Nothing falls back silently:
a build that asked for the learned ranker either loads the named parameters or
stops, and its manifest records which file it used (:func:`ranker_record`).

Example:
    >>> resolve_model_path("registry.yaml", "the model registry").name
    'registry.yaml'
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
from pathlib import Path
from typing import Any

from recommender.errors import ModelNotAvailable

#: environment variable naming a folder searched before the built-in models
MODELS_DIR_ENV = "RECOMMENDER_MODELS_DIR"
#: the import name of the repository's ``models/`` folder inside the wheel
MODELS_PACKAGE = "recommender_models"
#: what to run when learned-ranker parameters are missing
FIT_RANKER = ("python -m benchmarks.fit_ranker CONTENT_DIR --out FILE.lgb.txt (from a source "
              "checkout)")
#: file name ending of a LightGBM ranker (its native model text)
LGB_SUFFIX = ".lgb.txt"


def builtin_models_dir() -> Path:
    """The models that come with the code: the checkout's ``models/`` or the installed package.

    A source checkout is recognised by ``pyproject.toml`` beside ``recommender/``,
    so a stray top-level ``models`` package in site-packages is never taken for ours.
    """
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "models" / "registry.yaml").is_file():
        return root / "models"
    try:
        packaged = importlib.resources.files(MODELS_PACKAGE)
    except ModuleNotFoundError:
        raise ModelNotAvailable(
            f"the built-in models (package {MODELS_PACKAGE!r}) are not installed: reinstall "
            f"qa-related-recommender, or set {MODELS_DIR_ENV} to a models folder") from None
    return Path(str(packaged))


def search_path() -> list[Path]:
    """The folders searched for model files, first match wins."""
    override = os.environ.get(MODELS_DIR_ENV, "").strip()
    return ([Path(override).expanduser()] if override else []) + [builtin_models_dir()]


def resolve_model_path(relative: str | Path, what: str, get: str = "") -> Path:
    """The file or folder ``relative`` in the first folder of :func:`search_path` holding it.

    ``what`` names it in the error (e.g. ``model 'minilm-static-m2v'``) and ``get``
    says how to get it. An absolute path is taken as it is, but must exist too.
    """
    path = Path(relative).expanduser()
    candidates = [path] if path.is_absolute() else [d / path for d in search_path()]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    where = (f"{path} does not exist" if path.is_absolute() else
             f"looked for {path} in " + ", ".join(str(d) for d in search_path()))
    hint = f"; to get it: {get}" if get else ""
    raise ModelNotAvailable(f"{what} not found: {where}{hint}")


def ranker_path(name: str) -> Path:
    """Learned-ranker parameters: a bare name is ``ranker/<name>.lgb.txt`` (a LightGBM
    ranker) or else ``ranker/<name>.json`` on the search path; a name ending in ``.json``
    or ``.txt`` or holding a ``/`` is a file path (relative to the working directory)."""
    path = Path(name).expanduser()
    if path.suffix in (".json", ".txt") or path.is_absolute() or len(path.parts) > 1:
        return resolve_model_path(path.resolve(), f"learned-ranker file {name!r}",
                                  f"fix ranking.model in the configuration, or {FIT_RANKER}")
    for folder in search_path():  # the first folder holding either wins
        for suffix in (LGB_SUFFIX, ".json"):
            if (folder / "ranker" / f"{name}{suffix}").is_file():
                return folder / "ranker" / f"{name}{suffix}"
    raise ModelNotAvailable(
        f"learned-ranker parameters {name!r} not found: looked for ranker/{name}{LGB_SUFFIX} "
        f"or ranker/{name}.json in {', '.join(str(d) for d in search_path())}; to get it: "
        f"{FIT_RANKER}")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ranker_record(method: str, name: str | None) -> dict[str, Any]:
    """What the index manifest says about the ranker: the method, and for the learned one
    the parameters' name, resolved path and SHA-256, so ``recommender info`` shows which
    file a build really used."""
    if method != "learned" or name is None:
        return {"method": method, "model": None, "path": None, "sha256": None}
    path = ranker_path(name)
    return {"method": method, "model": name, "path": str(path), "sha256": sha256_file(path)}
