"""Helpers of the HTTP service tests, kept out of the shared conftest.

Each test module declares its fixtures with these (a one-line fixture each, so no
fixture has to be imported by name). The demo corpus is indexed with the hashing
encoder (milliseconds) for most tests; ``slow`` tests use the shared real-model
index of ``tests/conftest.py`` (``real_index_dir``). Every index has its own
folder and embedding cache, so no test touches the user's cache or index.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from recommender.config import BuildConfig
from recommender.corpus import load_corpus
from recommender.pipeline import build_index

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "content"
TOKEN = "test-admin-token"

#: demo articles the tests refer to
SUPERVISED = "/learn/computer-science/questions/what-is-supervised-learning"
LEUKEMIA = ("/learn/medicine/questions/"
            "what-are-the-latest-advancements-in-radiation-therapy-for-leukemia")
CLIMATE_BIO = "/learn/biology/questions/how-does-climate-change-affect-biodiversity"
CLIMATE_ENV = "/learn/environmental-science/questions/how-does-climate-change-affect-biodiversity"
NO_INDEX = "/learn/education-studies/questions/what-is-the-grading-rubric-for-the-final-project"


def build_demo_index(directory: Path, config: BuildConfig, content: Path = DEMO) -> Path:
    """Build the index of ``content`` into ``directory`` (cache beside it)."""
    build_index(load_corpus(content), config, directory, directory.parent / "cache")
    return directory


def hash_index_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpus indexed with the hashing encoder: built in milliseconds."""
    return build_demo_index(tmp_path_factory.mktemp("api-hash") / "index",
                            BuildConfig(model="hashing"))


def settings_for(index_dir: Path, **overrides: object) -> Settings:
    """Settings that load synchronously at startup, so a test starts with a ready index."""
    values: dict[str, object] = {"index_dir": index_dir, "load_in_background": False,
                                 "admin_token": TOKEN}
    values.update(overrides)
    return Settings(**values)


def client_for(app: FastAPI) -> TestClient:
    """A client that raises any unhandled server exception (so none can hide as a 500)."""
    return TestClient(app, raise_server_exceptions=True)


def started_client(index_dir: Path) -> Iterator[TestClient]:
    """A started app over ``index_dir`` (for module-scoped fixtures of read-only tests)."""
    with client_for(create_app(settings_for(index_dir))) as client:
        yield client


def copy_demo(target: Path) -> Path:
    """A writable copy of the demo content folder (for reload tests that edit it)."""
    shutil.copytree(DEMO, target)
    return target


def assert_error(response: httpx.Response, status: int, kind: str | None = None) -> dict:
    """``response`` is a JSON error of ``status`` (and ``kind``), in the one error format."""
    where = (f"{response.request.method} {response.request.url}: "
             f"{response.status_code} {response.text}")
    assert response.status_code == status, f"expected {status}; {where}"
    assert response.headers["content-type"].startswith("application/json"), where
    body = response.json()
    assert set(body) == {"error"}, where
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], where
    if kind is not None:
        assert body["error"]["type"] == kind, f"expected {kind}; {where}"
    return body["error"]


# -- real server processes ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``recommender serve`` (or uvicorn) subprocess on 127.0.0.1, stopped by its pid."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = open(log, "wb")
        self.process = subprocess.Popen(
            [a.replace("{port}", str(self.port)) for a in args], cwd=ROOT,
            env={**os.environ, **env}, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float) -> None:
        """Poll /readyz until 200; fail with the server's log if it dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"server not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        """SIGTERM (graceful shutdown), then SIGKILL if it hangs; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log_file.close()
        return self.process.returncode


def cli(*args: str) -> list[str]:
    """The ``recommender`` command line, run by this interpreter."""
    return [sys.executable, "-m", "recommender.cli", *args]
