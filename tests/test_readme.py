"""The README's promises, run as written: its `recommender` examples, `make demo`'s port check.

Every ``recommender ...`` line of the README's ``bash``/``sh`` code blocks runs, in
README order, through a real shell in a scratch folder that holds what the
examples name: a copy of the demo corpus at ``path/to/content`` and the
repository's ``examples/``. So an example that names a missing file, an option
that no longer exists or an article that is not in the demo corpus fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import DEMO, ROOT, cli_env

README = ROOT / "README.md"
#: examples that cannot run to completion here, and where they are tested instead
NOT_RUN = {
    "recommender serve": "runs until stopped; tests/test_api_server.py starts real servers",
}
#: commands every README must still show (so a parsing slip cannot pass by running nothing)
EXPECTED = ("build", "related", "search", "info", "fill", "evaluate", "suggest")


def readme_commands(text: str) -> list[str]:
    """The ``recommender`` command lines of the README's shell code blocks, in order."""
    commands = []
    for language, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if language not in ("bash", "sh", "shell"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("recommender ") and not any(
                    line.startswith(prefix) for prefix in NOT_RUN):
                commands.append(line)
    return commands


def test_readme_shows_the_commands_it_documents():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert {c.split()[1] for c in commands} >= set(EXPECTED), commands


@pytest.mark.slow
def test_readme_examples_run_as_written(tmp_path: Path):
    work = tmp_path / "work"
    shutil.copytree(DEMO, work / "path" / "to" / "content")
    shutil.copytree(ROOT / "examples", work / "examples")
    shim = tmp_path / "bin" / "recommender"  # `recommender` as installed: this interpreter's
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m recommender.cli "$@"\n')
    shim.chmod(0o755)
    env = cli_env(tmp_path)
    env["PATH"] = f"{shim.parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for command in readme_commands(README.read_text(encoding="utf-8")):
        done = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, f"{command}\n{done.stderr[-2000:]}"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_on_a_busy_port_fails_at_once_naming_port(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        # VENV points nowhere: had the check let make go on, setup would fail differently
        done = subprocess.run(["make", "-s", "demo", f"PORT={port}", f"PYTHON={sys.executable}",
                               f"VENV={tmp_path / 'no-venv'}"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        elapsed = time.monotonic() - started
    assert done.returncode != 0
    assert f"port {port} is already in use" in done.stderr and f"PORT={port + 1}" in done.stderr
    assert not (tmp_path / "no-venv").exists() and elapsed < 30
