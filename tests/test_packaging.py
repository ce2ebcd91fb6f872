"""Packaging: model files found through one search path, and a wheel that works on its own.

The slow test builds the wheel, installs it into a fresh virtual environment
(CPU torch first, as the README says), and runs ``recommender build`` and
``recommender related`` from a folder outside the repository: the packaged
encoder, registry and learned-ranker parameters must be found, and the manifest
must say which ranker file was used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from recommender import __version__
from recommender.config import BuildConfig, RankingConfig
from recommender.errors import ModelNotAvailable
from recommender.model_files import builtin_models_dir, ranker_path, resolve_model_path
from recommender.pipeline import build_index, load_index
from recommender.recommender import Recommender

from .conftest import DEMO, ROOT, cli_env

LEUKEMIA = "what-are-the-latest-advancements-in-radiation-therapy-for-leukemia"
DEFAULT_RANKER = ROOT / "models" / "ranker" / "default.json"
#: the files that make the wheel (everything else in the repository stays out of it)
WHEEL_SOURCES = ("pyproject.toml", "README.md", "recommender", "api", "models")
#: locally built, git-ignored model artefacts: never copied into a wheel
LOCAL_ARTEFACTS = ("onnx", "mpnet")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the search path -------------------------------------------------------------------------


def test_a_checkout_uses_its_own_models_folder(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("RECOMMENDER_MODELS_DIR", raising=False)
    assert builtin_models_dir() == ROOT / "models"
    assert ranker_path("default") == DEFAULT_RANKER


def test_override_folder_is_searched_first_then_the_built_in_models(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "ranker").mkdir()
    (tmp_path / "ranker" / "default.lgb.txt").write_bytes(
        (ROOT / "models" / "ranker" / "lambdarank.lgb.txt").read_bytes())
    monkeypatch.setenv("RECOMMENDER_MODELS_DIR", str(tmp_path))
    # the override's folder wins, whichever kind of model file each folder holds
    assert ranker_path("default") == tmp_path / "ranker" / "default.lgb.txt"
    # what the override folder lacks still comes from the built-in models
    assert resolve_model_path("registry.yaml", "registry") == ROOT / "models" / "registry.yaml"


def test_a_missing_ranker_is_an_error_naming_it_never_a_fallback(
        demo_corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = BuildConfig(model="hashing", ranking=RankingConfig(model="nope"))
    with pytest.raises(ModelNotAvailable,
                       match=r"learned-ranker parameters 'nope' not found: looked for "
                             r"ranker/nope.lgb.txt or ranker/nope.json in .*to get it: "
                             r"python -m benchmarks.fit_ranker"):
        build_index(demo_corpus, config, None, tmp_path / "cache")
    missing_file = BuildConfig(model="hashing",
                               ranking=RankingConfig(model=str(tmp_path / "mine.json")))
    with pytest.raises(ModelNotAvailable, match="mine.json does not exist"):
        build_index(demo_corpus, missing_file, None, tmp_path / "cache")


def test_cli_exits_7_when_the_ranker_is_missing(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text("model: hashing\nranking:\n  model: no-such-ranker\n")
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "build", str(DEMO),
                           "--config", str(config), "-q"], capture_output=True, text=True,
                          env=cli_env(tmp_path), timeout=300)
    assert done.returncode == 7, done.stderr
    assert done.stderr.startswith("error: learned-ranker parameters 'no-such-ranker' not found")
    assert "Traceback" not in done.stderr


def test_manifest_names_the_ranker_file_used(hashing_index):
    ranker = hashing_index.manifest["ranker"]
    assert ranker == {"kind": "learned", "file": str(DEFAULT_RANKER),
                      "sha256": _sha256(DEFAULT_RANKER)}


def test_an_index_built_with_another_ranker_file_is_not_current(
        demo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from recommender.pipeline import open_index

    config = BuildConfig(model="hashing")
    index = tmp_path / "index"
    assert open_index(demo_copy, config, index, cache_dir=tmp_path / "cache").action == "built"
    assert open_index(demo_copy, config, index, cache_dir=tmp_path / "cache").action == "current"
    override = tmp_path / "models"
    (override / "ranker").mkdir(parents=True)
    (override / "ranker" / "default.json").write_text(
        DEFAULT_RANKER.read_text().replace('"note": "', '"note": "edited; '))
    monkeypatch.setenv("RECOMMENDER_MODELS_DIR", str(override))
    rebuilt = open_index(demo_copy, config, index, cache_dir=tmp_path / "cache")
    assert (rebuilt.action, rebuilt.reason) == ("built", "the learned-ranker file changed")
    assert rebuilt.snapshot.manifest["ranker"]["file"] == str(
        override / "ranker" / "default.json")


def test_version_option():
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "--version"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"recommender {__version__}"


def test_pyproject_lists_every_package():
    """Packages are listed by hand (models/ is mapped to another name): none may be missed."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for top in ("recommender", "api") for p in (ROOT / top).rglob("__init__.py")}
    assert found <= listed
    assert pyproject["tool"]["setuptools"]["package-dir"]["recommender_models"] == "models"


# -- the wheel in a fresh virtual environment --------------------------------------------------


def _wheelhouse() -> Path:
    """Wheels of the dependencies, kept between runs: the registry's answers are not cached
    by pip here, and installing from local files takes half the time. Set
    ``RECOMMENDER_TEST_WHEELHOUSE`` to put it elsewhere."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("RECOMMENDER_TEST_WHEELHOUSE")
                or default / "qa-related-recommender" / "wheelhouse")


def _outside_env(tmp_path: Path) -> dict[str, str]:
    """The CLI's environment without anything that points into this checkout: with
    ``PYTHONPATH`` set, pip would even take the checkout for the installed project."""
    return {k: v for k, v in cli_env(tmp_path).items()
            if k not in ("PYTHONPATH", "RECOMMENDER_MODELS_DIR", "VIRTUAL_ENV")}


def _pip(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check",
                           *args], capture_output=True, text=True, timeout=1200,
                          env=_outside_env(venv.parent), cwd=venv.parent)


def _check(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _install(venv: Path, wheel: Path, scratch: Path) -> None:
    """Install ``wheel`` and its dependencies, from the wheelhouse when it has them all.

    A wheelhouse that lacks something is topped up with exactly what pip would install
    (torch is already there, so it is never fetched twice), then the install is retried
    from local files only: either way, the environment holds only what the wheel asks for.
    """
    house = _wheelhouse()
    house.mkdir(parents=True, exist_ok=True)
    local = ("--no-compile", "--no-index", "--find-links", str(house))
    if _pip(venv, "install", "-q", *local, str(wheel)).returncode == 0:
        return
    report = scratch / "install-report.json"
    _check(_pip(venv, "install", "-q", "--dry-run", "--report", str(report),
                "--find-links", str(house), str(wheel)))
    wanted = [f"{item['metadata']['name']}=={item['metadata']['version']}"
              for item in json.loads(report.read_text())["install"]
              if item["metadata"]["name"] != "qa-related-recommender"]
    _check(_pip(venv, "download", "-q", "--no-deps", "-d", str(house), *wanted))
    _check(_pip(venv, "install", "-q", *local, str(wheel)))


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once from a copy of the files that make it."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *LOCAL_ARTEFACTS)
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                           str(base / "dist"), str(source)], capture_output=True, text=True,
                          timeout=600, env=_outside_env(base), cwd=base)
    _check(done)
    (wheel,) = (base / "dist").glob("qa_related_recommender-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_builds_and_ranks_with_the_packaged_models(
        project_wheel: Path, real_index_dir: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    _check(subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True,
                          text=True, timeout=300, env=_outside_env(tmp_path)))
    # the CPU wheel, before anything else; --no-compile: byte-compiling every module of every
    # package took more CPU than the rest of the install (imports compile what they use)
    _check(_pip(venv, "install", "-q", "--no-compile", "torch==2.13.0"))
    _install(venv, project_wheel, tmp_path)

    elsewhere = tmp_path / "elsewhere"  # not the repository: nothing may come from the checkout
    elsewhere.mkdir()
    env = _outside_env(tmp_path)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    recommender = str(venv / "bin" / "recommender")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([recommender, *args], capture_output=True, text=True, env=env,
                              cwd=elsewhere, timeout=600)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
        return done

    assert run("--version").stdout.strip() == f"recommender {__version__}"
    run("build", str(DEMO), "-q")
    manifest = json.loads(run("info", "--json").stdout)
    ranker = manifest["ranker"]
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert ranker["kind"] == "learned"
    assert Path(ranker["file"]) == site / "recommender_models" / "ranker" / "default.json"
    assert ranker["sha256"] == _sha256(DEFAULT_RANKER)
    assert manifest["model"] == "minilm-static-m2v"

    installed = json.loads(run("related", LEUKEMIA, "--k", "5", "--json").stdout)
    # the same suggestions, in the same order, as the checkout gives with the learned ranker
    rec = Recommender(load_index(real_index_dir))
    expected = [s.article.url for s in rec.related(rec.get(LEUKEMIA), 5)]
    assert [row["url"] for row in installed] == expected
    assert any(row["curated"] for row in installed[:3])
