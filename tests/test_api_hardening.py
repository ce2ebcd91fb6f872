"""The service against hostile input and broken indexes, and the admin token kept secret.

In-process tests use the hashing-encoder index (milliseconds); the ``slow`` ones run
real ``recommender serve`` processes, whose logs are read for tracebacks.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from api.app import create_app
from api.settings import Settings
from tests.api_fixtures import (
    SUPERVISED,
    TOKEN,
    Server,
    assert_error,
    cli,
    client_for,
    hash_index_in,
    settings_for,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
#: bodies that hold text no tokenizer or UTF-8 encoder accepts
HOSTILE_BODIES = [
    b'{"title": "\\ud800"}',  # a lone high surrogate, as the issue sent it
    b'{"text": "ok \\udfff ok"}',  # a lone low surrogate inside other text
    b'{"question": "x", "subject": ["\\ud83d"]}',  # in a filter list
    b'{"title": "leukemia", "exclude_url": ["/a\\udc80"]}',
    b'{"title": "\xff\xfe not utf-8"}',  # raw bytes that are not UTF-8
]


@pytest.fixture(scope="module")
def hash_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hash_index_in(tmp_path_factory)


# -- un-encodable text -----------------------------------------------------------------------


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_unencodable_text_is_a_4xx_without_a_traceback(
        hash_index: Path, body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with client_for(create_app(settings_for(hash_index))) as client:
        response = client.post("/v1/related", content=body, headers=JSON)
        assert 400 <= response.status_code < 500, response.text
        error = assert_error(response, response.status_code)
        error["message"].encode("utf-8")  # the answer itself is valid UTF-8
        if b"\\ud" in body:
            assert response.status_code == 422 and "not valid Unicode" in response.text
        # the service still answers
        assert client.post("/v1/related", json={"title": "leukemia"}).status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_error_messages_are_encodable_whatever_they_quote() -> None:
    from api.errors import error_response

    response = error_response("ArticleNotFound", "no article matches '\ud800'", 404)
    assert json.loads(response.body)["error"]["message"] == "no article matches '\\ud800'"


# -- reloads of a broken index ---------------------------------------------------------------


def _missing_file(index_dir: Path) -> None:
    (index_dir / "articles.jsonl").unlink()


def _garbage_manifest(index_dir: Path) -> None:
    (index_dir / "manifest.json").write_text("{not json")


def _manifest_not_a_mapping(index_dir: Path) -> None:
    (index_dir / "manifest.json").write_text("[1, 2]")


def _truncated_file(index_dir: Path) -> None:
    path = index_dir / "ranking" / "neighbours.npz"
    path.write_bytes(path.read_bytes()[:100])


def _one_row_of_neighbours(index_dir: Path) -> None:
    path = index_dir / "ranking" / "neighbours.npz"
    with np.load(path) as npz:
        arrays = {name: npz[name][:1] for name in npz.files}
    np.savez(path, **arrays)


def _garbage_vectors(index_dir: Path) -> None:
    (index_dir / "vectors.npy").write_bytes(b"\0" * 64)


def _wrong_config(index_dir: Path) -> None:
    manifest = json.loads((index_dir / "manifest.json").read_text())
    manifest["config"]["text"]["max_tokens"] = "many"
    (index_dir / "manifest.json").write_text(json.dumps(manifest))


def _no_manifest(index_dir: Path) -> None:
    (index_dir / "manifest.json").unlink()


def _old_format(index_dir: Path) -> None:
    manifest = json.loads((index_dir / "manifest.json").read_text())
    manifest["format_version"] = 1
    (index_dir / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("corrupt, status, kind", [
    # the library names the damaged file (IndexCorrupt); anything else it raises while
    # reading is IndexUnreadable: both are 422, and the served index stays
    (_missing_file, 422, None),
    (_garbage_manifest, 422, None),
    (_manifest_not_a_mapping, 422, None),
    (_truncated_file, 422, "IndexCorrupt"),
    (_one_row_of_neighbours, 422, "IndexCorrupt"),
    (_garbage_vectors, 422, "IndexCorrupt"),
    (_wrong_config, 422, None),
    (_no_manifest, 503, "IndexNotFound"),
    (_old_format, 409, "IndexMismatch"),
])
def test_a_failed_reload_answers_a_documented_status_and_keeps_serving(
        hash_index: Path, tmp_path: Path, corrupt, status: int, kind: str | None,
        caplog: pytest.LogCaptureFixture) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(hash_index, index_dir)
    app = create_app(settings_for(index_dir))
    with client_for(app) as client:
        corrupt(index_dir)
        caplog.clear()
        error = assert_error(client.post("/v1/admin/reload", headers=AUTH), status, kind)
        if status == 422:
            assert str(index_dir) in error["message"]
        # the old index keeps serving, and says why the reload failed
        assert client.get(f"/v1/articles/{SUPERVISED}/related?k=3").status_code == 200
        assert client.get("/readyz").status_code == 200
        info = client.get("/v1/index").json()
        assert info["generation"] == 1 and info["reload"]["last_error"]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.mark.parametrize("text", ["model: 0x_\n", "model: [1]\n", "model: [unclosed\n"])
def test_a_configuration_file_gone_bad_fails_the_reload_with_a_503(
        hash_index: Path, tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("model: hashing\n")
    with client_for(create_app(settings_for(hash_index, config_file=config))) as client:
        config.write_text(text)
        error = assert_error(client.post("/v1/admin/reload", headers=AUTH), 503, "ConfigError")
        assert str(config) in error["message"]
        assert client.get(f"/v1/articles/{SUPERVISED}/related?k=3").status_code == 200
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_a_broken_index_at_startup_is_not_ready_not_a_500(
        hash_index: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(hash_index, index_dir)
    _garbage_manifest(index_dir)
    app = create_app(Settings(index_dir=index_dir))  # loads in the background, as served
    with client_for(app) as client:
        deadline = time.monotonic() + 30
        while app.state.index_state.last_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        error = assert_error(client.get("/readyz"), 503, "NotReady")
        assert "cannot be read" in error["message"]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


# -- the admin token -------------------------------------------------------------------------


def test_admin_token_from_a_file(hash_index: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    app = create_app(Settings(index_dir=hash_index, load_in_background=False,
                              admin_token_file=token_file))
    with client_for(app) as client:
        assert client.post("/v1/admin/reload", headers=AUTH).status_code == 200
        assert_error(client.post("/v1/admin/reload", headers={"Authorization": "Bearer x"}),
                     403, "Forbidden")


def test_admin_token_file_problems_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        Settings(admin_token_file=empty)
    with pytest.raises(ValueError, match="cannot read"):
        Settings(admin_token_file=tmp_path / "missing")
    (tmp_path / "token").write_text("t")
    with pytest.raises(ValueError, match="one way"):
        Settings(admin_token="t", admin_token_file=tmp_path / "token")


def test_deprecated_admin_token_option_warns(tmp_path: Path) -> None:
    done = subprocess.run(cli("serve", str(tmp_path / "nothing"), "--admin-token", "x"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3  # the folder is missing; the warning came first
    assert "--admin-token is deprecated" in done.stderr and "--admin-token-file" in done.stderr


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _proc(pid: int, name: str) -> bytes:
    return (Path("/proc") / str(pid) / name).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["environment", "file"])
def test_admin_token_is_in_no_command_line_and_no_worker_environment(
        hash_index: Path, tmp_path: Path, how: str) -> None:
    secret = "s3cret-admin-token-for-the-proc-test"
    args = ["serve", str(hash_index), "--port", "{port}", "--workers", "2",
            "--log-level", "warning"]
    env = {"RECOMMENDER_CACHE": str(tmp_path / "cache")}
    if how == "file":
        (tmp_path / "token").write_text(secret)
        args += ["--admin-token-file", str(tmp_path / "token")]
    else:
        env["RECOMMENDER_ADMIN_TOKEN"] = secret
    server = Server(cli(*args), env, tmp_path / "server.log")
    try:
        server.wait_ready(timeout=180)
        children = _children(server.process.pid)
        workers = [p for p in children if b"spawn_main" in _proc(p, "cmdline")]
        assert len(workers) == 2, (children, server.output())
        assert secret.encode() not in _proc(server.process.pid, "cmdline")
        for pid in children:
            assert secret.encode() not in _proc(pid, "cmdline")
            assert secret.encode() not in _proc(pid, "environ")
        handed = dict(line.split(b"=", 1) for line in _proc(workers[0], "environ").split(b"\0")
                      if b"=" in line)[b"RECOMMENDER_ADMIN_TOKEN_FILE"].decode()
        # and yet the workers know it: admin requests succeed whichever worker answers
        with httpx.Client(base_url=server.base, timeout=60) as client:
            deadline = time.monotonic() + 60  # the second worker may still be loading (409)
            ready = 0
            while ready < 10:
                assert time.monotonic() < deadline, server.output()
                ready = ready + 1 if client.get("/readyz").status_code == 200 else 0
            auth = {"Authorization": f"Bearer {secret}"}
            for _ in range(4):
                assert client.post("/v1/admin/reload", headers=auth).status_code == 200
            assert client.post("/v1/admin/reload", headers=AUTH).status_code == 403
    finally:
        server.stop()
    assert "Traceback" not in server.output()
    if how == "file":
        assert handed == str(tmp_path / "token")
    else:  # a private copy (0600), gone once the server has stopped
        assert not Path(handed).exists() and Path(handed).name == "admin-token"


@pytest.mark.slow
def test_real_server_answers_unencodable_text_with_a_4xx(hash_index: Path,
                                                         tmp_path: Path) -> None:
    server = Server(cli("serve", str(hash_index), "--port", "{port}"),
                    {"RECOMMENDER_CACHE": str(tmp_path / "cache")}, tmp_path / "server.log")
    try:
        server.wait_ready(timeout=180)
        with httpx.Client(base_url=server.base, timeout=30) as client:
            for body in HOSTILE_BODIES:
                response = client.post("/v1/related", content=body, headers=JSON)
                assert 400 <= response.status_code < 500, response.text
                assert response.json()["error"]["message"]
            assert client.post("/v1/related", json={"title": "leukemia"}).status_code == 200
    finally:
        server.stop()
    log = server.output()
    assert "Traceback" not in log and "ERROR" not in log, log
