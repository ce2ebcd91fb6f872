"""Editors' decisions: the rules they make, the file that keeps them, and the CLI that
records them and honours them in ``related`` and ``fill``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.decisions import Decision, DecisionStore, Rules
from recommender.errors import DecisionError

from .test_cli import run

A, B, C = "/x/a", "/x/b", "/x/c"
LEUKEMIA = "what-are-the-latest-advancements-in-radiation-therapy-for-leukemia"


def test_the_last_decision_on_a_pair_wins():
    rules = Rules.of([Decision(action="reject", article=A, target=B),
                      Decision(action="pin", article=A, target=B),
                      Decision(action="block", article=C, target=C + "2")])
    assert rules.excluded(A) == {C + "2"} and rules.pins(A) == (B,)
    assert rules.excluded(None) == {C + "2"}  # free text: only blocks apply


def test_store_writes_atomically_and_reads_back(tmp_path: Path):
    store = DecisionStore(tmp_path)
    store.add("reject", A, B)
    store.add("accept", A, C)
    assert [d.action for d in DecisionStore(tmp_path).load()] == ["reject", "accept"]
    assert store.rules().is_accepted(A, C) and B in store.rules().excluded(A)
    assert not [p for p in store.folder.iterdir() if p.suffix == ".tmp"]


def test_a_bad_file_names_the_file_and_the_entry(tmp_path: Path):
    store = DecisionStore(tmp_path)
    store.folder.mkdir()
    store.path.write_text("decisions:\n- {action: reject, article: /a, target: /b}\n"
                          "- {action: maybe, article: /a, target: /c}\n")
    with pytest.raises(DecisionError, match=r"decisions\.yaml: decision 2: action"):
        store.load()
    store.path.write_text("decisions: [\n")
    with pytest.raises(DecisionError, match="not valid YAML"):
        store.load()
    with pytest.raises(DecisionError, match="unknown action"):
        DecisionStore(tmp_path / "other").add("delete", A, B)


def test_cli_decide_is_honoured_by_related_and_fill(demo_copy: Path, tmp_path: Path):
    config = tmp_path / "hashing.yaml"
    config.write_text("model: hashing\n")
    assert run(["build", str(demo_copy), "--config", str(config), "-q"], tmp_path).returncode == 0

    def related() -> list[dict]:
        done = run(["related", LEUKEMIA, "--k", "5", "--json", "--explain"], tmp_path)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    first = related()
    assert all("explanation" in s for s in first)
    target = next(s["url"] for s in first if not s["curated"])
    done = run(["decide", LEUKEMIA, "reject", target], tmp_path)
    assert done.returncode == 0, done.stderr
    assert target not in [s["url"] for s in related()]
    assert run(["decide", LEUKEMIA, "maybe", target], tmp_path).returncode == 2
    blocked = "how-does-the-greenhouse-effect-work"
    assert run(["decide", "what-is-the-calvin-cycle", "block", blocked], tmp_path
               ).returncode == 0
    dry = run(["fill", str(demo_copy), "--dry-run", "--k", "8"], tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "how-does-the-greenhouse-effect-work" not in dry.stdout
    accepted = run(["decide", LEUKEMIA, "accept", "what-is-the-calvin-cycle"], tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    again = run(["decide", LEUKEMIA, "accept", "what-is-the-calvin-cycle"], tmp_path)
    assert again.returncode == 12 and "already linked" in again.stderr
