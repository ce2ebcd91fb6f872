"""The interactive documentation works offline: every asset comes from the service itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.app import create_app
from tests.api_fixtures import client_for, hash_index_in, settings_for


@pytest.fixture(scope="module")
def hash_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hash_index_in(tmp_path_factory)


@pytest.mark.parametrize("page, assets", [
    ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}),
    ("/redoc", {"redoc.standalone.js"}),
])
def test_docs_pages_load_their_scripts_and_styles_from_the_app(
        hash_index: Path, page: str, assets: set[str]) -> None:
    with client_for(create_app(settings_for(hash_index))) as client:
        html = client.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        refs = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert refs and all(ref.startswith("/") for ref in refs), refs  # no CDN, no host
        assert {ref.rsplit("/", 1)[1] for ref in refs} >= assets
        for ref in refs:
            asset = client.get(ref)
            assert asset.status_code == 200 and len(asset.content) > 1000, ref
        assert "cdn" not in html.text.lower()
        spec = client.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.1") and "/v1/related" in spec["paths"]
