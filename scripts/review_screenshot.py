"""Save a screenshot of the /review page on the demo corpus: ``docs/review.png``.

    python -m scripts.review_screenshot [--out docs/review.png]

Serves a copy of demo/content with the default configuration, opens the leukemia
radiation-therapy article in headless Chromium with the admin token entered, and
saves the page.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By

from scripts.browser import ROOT, ServedFolder, headless_chromium

ARTICLE = ("learn/medicine/questions/"
           "what-are-the-latest-advancements-in-radiation-therapy-for-leukemia")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "review.png")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="review-shot-"))
    try:
        shutil.copytree(ROOT / "demo" / "content", work / "content")
        server = ServedFolder(work / "content", work, "screenshot-token")
        try:
            server.wait_ready()
            browser = headless_chromium(1400, 1150)
            try:
                browser.get(f"{server.base}/review/article/{ARTICLE}")
                browser.find_element(By.ID, "token").send_keys("screenshot-token")
                browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
                args.out.parent.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(args.out))
            finally:
                browser.quit()
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
