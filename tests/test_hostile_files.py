"""Hostile and unlucky content folders: every case is one load-report entry, never a crash.

Each test reproduces an input reported in issue 14: YAML alias bombs, deep nesting,
a FIFO, a symlink to ``/dev/zero`` or out of the folder, an unreadable folder,
fields of the wrong type. The rest of the folder always loads.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from recommender import frontmatter
from recommender.corpus import load_corpus
from recommender.errors import CorpusError

from .conftest import DEMO, ROOT

QT = ("---\nid: 42\ntitle: What is a test?\nquestion: What is a test?\n"
      "answer: A test checks one thing.\nsubject: Testing\nurl: /learn/testing/x\n")


def bomb(levels: int = 9) -> str:
    """Anchors a..i, each nine uses of the one before: 9**9 strings once expanded."""
    names = "abcdefghijklmnop"[:levels]
    lines = [f'{names[0]}: &{names[0]} ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol",'
             ' "lol"]']
    for prev, name in zip(names, names[1:], strict=False):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines)


def folder_with(tmp_path: Path, name: str, text: str | bytes) -> Path:
    root = tmp_path / "content"
    shutil.copytree(DEMO / "biology", root / "biology")
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return root


def load_one_bad(root: Path, name: str) -> str:
    """Load ``root``; the one bad file must be the one error; returns its reason."""
    expected = len(list((DEMO / "biology").glob("*.md")))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    corpus = load_corpus(root, workers=1)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"loading took {grown_mb:.0f} MB more"
    assert len(corpus) == expected
    (issue,) = corpus.report.errors
    assert issue.path == str(root / name)
    return issue.reason


@pytest.mark.parametrize("field", ["answer", "title", "keywords"])
def test_alias_bomb_inside_a_field_is_refused_and_the_file_reported(tmp_path: Path, field: str):
    inner = bomb().replace("\n", ", ")  # the anchors as one flow mapping
    text = QT.replace(f"{field}: ", f"{field}_old: ") if field != "keywords" else QT
    text += f"{field}: {{{inner}}}\n---\n&nbsp;\n"
    root = folder_with(tmp_path, "bomb.md", text)
    reason = load_one_bad(root, "bomb.md")
    assert f"field {field!r} expands through YAML aliases" in reason


def test_alias_bomb_in_keys_of_their_own_is_refused(tmp_path: Path):
    root = folder_with(tmp_path, "bomb.md", QT + bomb() + "\nkeywords: *i\n---\n&nbsp;\n")
    assert "expands through YAML aliases" in load_one_bad(root, "bomb.md")


def test_a_few_honest_aliases_are_fine(tmp_path: Path):
    text = QT + "tags: &t [a, b]\nkeywords: *t\n---\n&nbsp;\n"
    root = folder_with(tmp_path, "ok.md", text)
    corpus = load_corpus(root)
    assert corpus.report.errors == [] and corpus.get("/learn/testing/x").keywords == ("a", "b")


def test_a_field_that_contains_itself_is_refused(tmp_path: Path):
    root = folder_with(tmp_path, "loop.md", QT + "keywords: &k [a, *k]\n---\n&nbsp;\n")
    assert "contains itself through a YAML alias" in load_one_bad(root, "loop.md")


@pytest.mark.parametrize("style", ["flow", "block"])
@pytest.mark.parametrize("depth", [350, 900])
def test_deep_nesting_is_reported_not_a_recursion_error(tmp_path: Path, style: str, depth: int):
    nested = "[" * depth + "x" + "]" * depth if style == "flow" else "- " * depth + "x"
    text = QT.replace("title: What is a test?", f"title: {nested}" if style == "flow"
                      else f"title:\n  {nested}") + "---\n&nbsp;\n"
    root = folder_with(tmp_path, "deep.md", text)
    reason = load_one_bad(root, "deep.md")
    assert "nests deeper than" in reason or "maximum nesting depth" in reason


def _load_in_subprocess(root: Path, timeout: int = 60) -> str:
    """Load ``root`` in a child process (a hang fails the test instead of stalling it)."""
    code = ("import json, sys; from recommender.corpus import load_corpus;"
            "c = load_corpus(sys.argv[1], workers=1);"
            "print(json.dumps([len(c), [[e.path, e.reason] for e in c.report.errors]]))")
    done = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_fifo_named_md_is_reported_and_never_opened(tmp_path: Path):
    root = folder_with(tmp_path, "ok.md", QT + "---\n&nbsp;\n")
    os.mkfifo(root / "x.md")
    (root / "linked-fifo.md").symlink_to(root / "x.md")
    out = _load_in_subprocess(root)
    assert '"x.md", "is a FIFO (named pipe), not a regular file: not read"' in out.replace(
        str(root) + "/", "")
    assert "linked-fifo.md" in out


def test_symlinks_to_dev_zero_or_out_of_the_folder_are_not_read(tmp_path: Path):
    secret = tmp_path / "secret.md"
    secret.write_text(QT.replace("/learn/testing/x", "/secret") + "---\n&nbsp;\n")
    root = folder_with(tmp_path, "ok.md", QT + "---\n&nbsp;\n")
    (root / "zero.md").symlink_to("/dev/zero")
    (root / "out.md").symlink_to(secret)
    (root / "biology-again").symlink_to(root / "biology", target_is_directory=True)
    (root / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    corpus = load_corpus(root)
    reasons = {Path(e.path).name: e.reason for e in corpus.report.errors}
    assert "outside the content folder" in reasons["zero.md"]
    assert "outside the content folder" in reasons["out.md"] and "/secret" not in corpus.by_url
    assert reasons["biology-again"] == "symbolic link to a folder: not followed"
    assert "broken symbolic link" in reasons["dangling.md"]
    assert corpus.get("/learn/testing/x")


def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(frontmatter, "MAX_FILE_BYTES", 10_000)
    root = folder_with(tmp_path, "big.md", QT + "---\n" + "word " * 4000)
    assert "over the limit of 10,000" in load_one_bad(root, "big.md")


def test_a_file_name_that_is_not_utf8_is_reported(tmp_path: Path):
    root = folder_with(tmp_path, "ok.md", QT + "---\n&nbsp;\n")
    with open(os.fsencode(root) + b"/caf\xe9.md", "wb") as f:
        f.write(QT.replace("/learn/testing/x", "/cafe").encode() + b"---\n&nbsp;\n")
    corpus = load_corpus(root)
    (issue,) = corpus.report.errors
    assert issue.reason == "file name is not valid UTF-8: not read"
    assert "/cafe" not in corpus.by_url


def _drop_dac_caps() -> None:
    """In a child about to exec: lose root's power to read any folder (CAP_DAC_*)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_an_unreadable_folder_is_a_load_report_entry():
    base = Path(tempfile.mkdtemp(prefix="recommender-unreadable-"))  # others may enter /tmp
    base.chmod(0o755)
    root = folder_with(base, "ok.md", QT + "---\n&nbsp;\n")
    locked = root / "locked"
    locked.mkdir()
    (locked / "hidden.md").write_text(QT.replace("/learn/testing/x", "/hidden") + "---\n")
    locked.chmod(0)
    try:
        if os.geteuid() == 0:  # root reads any folder: load without that power instead
            code = ("import sys; from recommender.corpus import load_corpus;"
                    "c = load_corpus(sys.argv[1], workers=1);"
                    "print([(e.path, e.reason) for e in c.report.errors], len(c))")
            done = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                                  text=True, cwd=ROOT, timeout=120, preexec_fn=_drop_dac_caps)
            assert done.returncode == 0, done.stderr
            out = done.stdout
        else:
            corpus = load_corpus(root)
            out = str([(e.path, e.reason) for e in corpus.report.errors])
        assert f"('{locked}', 'cannot read folder: Permission denied: its files are not read')" \
            in out
    finally:
        locked.chmod(0o755)
        shutil.rmtree(base)


def test_wrong_field_types_are_reported(tmp_path: Path):
    root = folder_with(tmp_path, "list-url.md", QT.replace("url: /learn/testing/x",
                                                           "url: [1, 2]") + "---\n&nbsp;\n")
    (root / "odd.md").write_text(
        QT.replace("/learn/testing/x", "/learn/testing/odd")
        + "keywords: {a: 1}\nno_index: maybe\nrelated_article1: just a string\n"
          "related_article2:\n    url: [3, 4]\n    title: Fine\n---\n&nbsp;\n")
    corpus = load_corpus(root)
    (error,) = corpus.report.errors
    assert error.path.endswith("list-url.md") and error.reason == "field 'url' is a list, not text"
    warnings = sorted(w.reason for w in corpus.report.warnings)
    assert warnings == [
        "field 'keywords' is a mapping, not text: ignored",
        "field 'no_index' is 'maybe', not true or false: ignored",
        "field 'related_article1' is a str, not a block of link fields: ignored",
        "field 'related_article2.url' is a list, not text: ignored",
    ]
    odd = corpus.get("/learn/testing/odd")
    assert odd.keywords == () and not odd.no_index and len(odd.curated) == 1
    assert corpus.report.as_dict()["warnings"][0]["path"].endswith("odd.md")


def test_a_folder_of_only_hostile_files_is_unusable_not_a_crash(tmp_path: Path):
    root = tmp_path / "content"
    root.mkdir()
    os.mkfifo(root / "x.md")
    (root / "zero.md").symlink_to("/dev/zero")
    with pytest.raises(CorpusError, match="none of its 2 files is an article"):
        load_corpus(root)


def test_a_lone_surrogate_escape_is_refused(tmp_path: Path):
    """libyaml refuses ``"\\ud800"``: no text with a lone surrogate reaches the index or JSON."""
    root = folder_with(tmp_path, "surrogate.md",
                       QT.replace("title: What is a test?", 'title: "a \\ud800 b"') + "---\n")
    assert "invalid Unicode character escape" in load_one_bad(root, "surrogate.md")


@pytest.mark.parametrize("value", ["2024-13-45", "2024-01-01 25:61:00", "0x_", "0b_"])
def test_a_scalar_yaml_cannot_build_is_reported_not_a_crash(tmp_path: Path, value: str):
    """PyYAML resolves these as a date or an integer, then raises ValueError building it."""
    root = folder_with(tmp_path, "bad-date.md", QT + f"date: {value}\n---\n&nbsp;\n")
    reason = load_one_bad(root, "bad-date.md")
    assert reason.startswith("invalid YAML front matter: a value cannot be read (")


def test_a_schema_file_with_a_scalar_yaml_cannot_build_is_a_schema_error():
    from recommender.errors import SchemaError
    from recommender.schema import Schema

    with pytest.raises(SchemaError, match="a value cannot be read"):
        Schema.from_text("name: x\nsince: 2024-13-45\n", "x.yaml")


@pytest.mark.parametrize("text, problem", [
    ("model: [unclosed\n", "cannot read configuration file"),
    ("model: 0x_\n", "cannot read configuration file"),
    ("- a list\n", "a configuration is a mapping of settings, not a list"),
    ("model: [1]\n", "key 'model': Input should be a valid string"),
    ("text: {max_tokens: many}\n", "key 'text.max_tokens'"),
])
def test_a_config_file_that_is_not_a_configuration_is_usage_error_2(
        tmp_path: Path, text: str, problem: str):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "build", str(DEMO),
                           "--index", str(tmp_path / "index"), "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and problem in done.stderr
    assert str(config) in done.stderr and "Traceback" not in done.stderr
