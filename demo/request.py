"""Wait for the demo service to be ready, then show one request against it.

Used by ``make demo``: ``python demo/request.py http://127.0.0.1:8000``.
"""

from __future__ import annotations

import json
import sys
import time

import httpx

ARTICLE = "what-are-the-latest-advancements-in-radiation-therapy-for-leukemia"


def main(base: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"the service at {base} was not ready within {timeout:.0f}s")
        time.sleep(0.5)
    url = f"{base}/v1/articles/{ARTICLE}/related?k=3"
    print(f"$ curl '{url}'")
    print(json.dumps(httpx.get(url, timeout=10).json(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
