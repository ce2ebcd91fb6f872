"""A served demo folder and a headless Chromium, for the /review page's browser tests and
its screenshot (``scripts/review_screenshot.py``).

Chromium is the system's (Debian's ``chromium`` and ``chromium-driver``), driven by
Selenium; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from selenium import webdriver

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedFolder:
    """``recommender serve CONTENT`` with an admin token (read from a file), on a free port."""

    def __init__(self, content: Path, work: Path, token: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        token_file = work / "admin-token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        self.log = open(work / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "recommender.cli", "serve", str(content), "--index",
             str(work / "index"), "--port", str(self.port), "--admin-token-file",
             str(token_file), "--log-level", "warning"],
            cwd=ROOT, env={**os.environ, **(env or {})}, stdout=self.log,
            stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"server not ready after {timeout}s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def headless_chromium(width: int = 1400, height: int = 1000) -> webdriver.Chrome:
    """The system's Chromium, headless, through its chromedriver."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        raise RuntimeError("needs chromium and chromedriver on PATH (Debian: apt install "
                           "chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(options=options, service=service)
