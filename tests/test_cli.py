"""The command line as users meet it: a real subprocess, real files, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.cli import EXIT_CODES, exit_code
from recommender.errors import ArticleNotFound, CorpusError, IndexMismatch, RecommenderError

from .conftest import DEMO, FIXTURES, cli_env

LEUKEMIA = "what-are-the-latest-advancements-in-radiation-therapy-for-leukemia"


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recommender.cli", *args], capture_output=True,
                          text=True, env=cli_env(tmp_path), timeout=600)


@pytest.fixture
def hashing_config(tmp_path: Path) -> Path:
    path = tmp_path / "hashing.yaml"
    path.write_text("model: hashing\n")
    return path


def test_build_then_related_and_search_as_json(tmp_path: Path, hashing_config: Path):
    built = run(["build", str(DEMO), "--config", str(hashing_config), "-q"], tmp_path)
    assert built.returncode == 0, built.stderr
    assert "index written" in built.stdout and "dangling" in built.stdout
    assert (tmp_path / "index" / "manifest.json").exists()  # default index from the env
    related = run(["related", LEUKEMIA, "--k", "4", "--json"], tmp_path)
    assert related.returncode == 0, related.stderr
    rows = json.loads(related.stdout)
    assert len(rows) == 4 and set(rows[0]) == {"id", "url", "title", "subject", "score",
                                               "curated"}
    found = run(["search", "Why are leaves green?", "--json", "--k", "2"], tmp_path)
    assert found.returncode == 0 and len(json.loads(found.stdout)) == 2
    info = run(["info", "--json"], tmp_path)
    assert json.loads(info.stdout)["model"] == "hashing"


def test_build_reports_broken_files_and_still_succeeds(tmp_path: Path, hashing_config: Path):
    report = tmp_path / "report.json"
    built = run(["build", str(FIXTURES / "broken"), "--config", str(hashing_config), "-q"],
                tmp_path)
    assert built.returncode == EXIT_CODES[CorpusError]
    assert built.stderr.startswith("error: content folder") and built.stderr.count("\n") == 1
    content = tmp_path / "mixed"
    (content / "broken").mkdir(parents=True)
    for name in ("invalid-yaml.md", "missing-url.md"):
        (content / "broken" / name).write_bytes((FIXTURES / "broken" / name).read_bytes())
    (content / "ok.md").write_bytes((DEMO / "biology" / "why-are-plants-green.md").read_bytes())
    built = run(["build", str(content), "--config", str(hashing_config), "-q",
                 "--report", str(report)], tmp_path)
    assert built.returncode == 0, built.stderr
    assert "invalid-yaml.md: invalid YAML front matter" in built.stdout
    errors = json.loads(report.read_text())["errors"]
    assert {Path(e["path"]).name for e in errors} == {"invalid-yaml.md", "missing-url.md"}


def test_exit_codes_and_one_line_reasons(tmp_path: Path, hashing_config: Path):
    missing_index = run(["related", LEUKEMIA, "--index", str(tmp_path / "none")], tmp_path)
    assert missing_index.returncode == 5
    assert missing_index.stderr.startswith("error: no index at")
    missing_content = run(["build", str(tmp_path / "nothing")], tmp_path)
    assert missing_content.returncode == 3 and "does not exist" in missing_content.stderr
    assert run(["build", str(DEMO), "--config", str(hashing_config), "-q"],
               tmp_path).returncode == 0
    unknown = run(["related", "no-such-article"], tmp_path)
    assert unknown.returncode == 4 and "no article matches 'no-such-article'" in unknown.stderr
    bad_subject = run(["related", LEUKEMIA, "--subject", "Astrology"], tmp_path)
    assert bad_subject.returncode == 8 and "unknown subject" in bad_subject.stderr
    bad_k = run(["related", LEUKEMIA, "--k", "0"], tmp_path)
    assert bad_k.returncode == 2  # usage error, from the option's declared range
    bad_model = run(["build", str(DEMO), "--model", "nope", "-q"], tmp_path)
    assert bad_model.returncode == 7 and "unknown model 'nope'" in bad_model.stderr


def test_exit_code_mapping_follows_the_error_hierarchy():
    assert exit_code(ArticleNotFound("x")) == 4
    assert exit_code(IndexMismatch("x")) == 6
    assert exit_code(RecommenderError("x")) == 1


@pytest.mark.slow
def test_demo_command_suggests_the_psychological_article_with_the_real_model(tmp_path: Path):
    assert run(["build", str(DEMO), "-q"], tmp_path).returncode == 0
    related = run(["related", LEUKEMIA, "--k", "3", "--json"], tmp_path)
    assert related.returncode == 0, related.stderr
    slugs = [row["url"].rsplit("/", 1)[-1] for row in json.loads(related.stdout)]
    assert "what-are-the-psychological-impacts-of-a-leukemia-diagnosis-on-patients-and-their-" \
           "families" in slugs


def test_search_needs_valid_text_and_info_prints_a_table(tmp_path: Path, hashing_config: Path):
    assert run(["build", str(DEMO), "--config", str(hashing_config), "-q"],
               tmp_path).returncode == 0
    for text in ("", "   ", "\udcff"):  # "\udcff": a command-line byte that is not UTF-8
        done = subprocess.run([sys.executable, "-m", "recommender.cli", "search", text],
                              capture_output=True, env=cli_env(tmp_path), timeout=600)
        assert done.returncode == 2, done.stderr  # a usage error, as the API's 422
        assert b"Invalid value for TEXT" in done.stderr and b"Traceback" not in done.stderr
    table = run(["info"], tmp_path)
    assert table.returncode == 0 and "ranker.sha256" in table.stdout
    assert json.loads(run(["info", "--json"], tmp_path).stdout)["ranker"]["kind"] == "learned"
