"""Fill under hostile input and unlucky operations: issue 14's cases, each reproduced.

A bad file or folder is a per-file entry and the rest is filled; a killed fill
(during the load, with forked workers, or during the writes) and a full disk
leave no lock anybody must remove; owners, read-only files and editors' saves
are respected; a partial failure has its own exit code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender import safe_replace
from recommender.cli import EXIT_CODES
from recommender.corpus import load_corpus
from recommender.errors import FillIncomplete
from recommender.fill import (
    TEMP_SUFFIX,
    FillLock,
    fill,
    word_overlap_suggester,
)
from recommender.pipeline import build_index

from .conftest import HASHING, ROOT, cli_env
from .test_fill import article_text, assert_only_blocks_added, small_corpus, snapshot, write
from .test_hostile_files import bomb

IS_ROOT = os.geteuid() == 0


@contextlib.contextmanager
def read_only_folder(folder: Path) -> Iterator[None]:
    """``folder`` cannot be written to: a read-only bind mount for root, mode 555 otherwise."""
    if IS_ROOT:
        mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)],
                                 capture_output=True).returncode == 0
        if not mounted or subprocess.run(
                ["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True).returncode:
            if mounted:
                subprocess.run(["umount", str(folder)], check=True)
            pytest.skip("root cannot make a read-only bind mount here")
        try:
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_one_bad_file_is_a_report_entry_and_the_rest_is_filled(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c", n=4)
    root = corpus.root
    deep = "- " * 500 + "x"
    write(root, "chemistry/bomb.md", article_text("bomb", ident=900).replace(
        "score: -1.0", "score: -1.0\n" + bomb()))
    write(root, "chemistry/deep.md", article_text("deep", ident=901).replace(
        "score: -1.0", f"score: -1.0\nunused:\n  {deep}"))
    corpus = load_corpus(root)
    before = snapshot(root)
    result = fill(corpus, word_overlap_suggester(corpus), k=5)
    assert result.files_filled == 4
    assert sorted((s.path, s.kind) for s in result.failed) == [
        ("chemistry/bomb.md", "not-loaded"), ("chemistry/deep.md", "not-loaded")]
    after = snapshot(root)
    assert after["chemistry/bomb.md"] == before["chemistry/bomb.md"]
    assert after["chemistry/deep.md"] == before["chemistry/deep.md"]


def test_a_read_only_folder_is_a_report_entry_and_the_rest_is_filled(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c", n=4)
    root = corpus.root
    frozen = write(root, "frozen/locked.md", article_text("locked", ident=77,
                                                          title="What is acid base?"))
    corpus = load_corpus(root)
    before = snapshot(root)
    with read_only_folder(frozen.parent):
        result = fill(corpus, word_overlap_suggester(corpus), k=5)
    assert result.files_filled == 4
    (failed,) = result.failed
    assert (failed.path, failed.kind) == ("frozen/locked.md", "write-error")
    assert "cannot create a temporary file" in failed.detail
    assert frozen.read_bytes() == before["frozen/locked.md"]


def test_partial_failure_has_its_own_exit_code(tmp_path: Path, demo_copy: Path):
    assert EXIT_CODES[FillIncomplete] == 11
    assert "| 11 |" in (ROOT / "README.md").read_text(encoding="utf-8")
    index = tmp_path / "index"
    build_index(load_corpus(demo_copy), HASHING, index, tmp_path / "cache")
    (demo_copy / "broken.md").write_text("---\nurl: [unclosed\n---\n")
    before = snapshot(demo_copy)
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "fill", str(demo_copy),
                           "--index", str(index)], capture_output=True, text=True,
                          env=cli_env(tmp_path), cwd=ROOT, timeout=300)
    assert done.returncode == 11, done.stderr
    assert done.stderr.startswith("error: 1 file(s) could not be filled")
    assert "broken.md: not-loaded" in done.stdout
    after = snapshot(demo_copy)
    changed = [rel for rel in before if after[rel] != before[rel]]
    assert len(changed) >= 10 and "broken.md" not in changed
    for rel in changed:
        assert_only_blocks_added(before[rel], after[rel], n_links=5)


@pytest.mark.skipif(not IS_ROOT, reason="mounting a small tmpfs needs root")
def test_a_full_disk_fails_files_cleanly_and_leaves_no_lock(tmp_path: Path):
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        corpus = small_corpus(mnt / "c", n=6)
        root = corpus.root
        filler = mnt / "filler"
        with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
        before = snapshot(root)
        result = fill(corpus, word_overlap_suggester(corpus), k=5)
        assert result.files_filled == 0
        assert {s.kind for s in result.failed} == {"write-error"}
        assert len(result.failed) == 6 and "No space left" in result.failed[0].detail
        assert snapshot(root) == before  # every file as it was, no temporary file left
        filler.unlink()
        again = fill(load_corpus(root), word_overlap_suggester(corpus), k=5)
        assert again.files_filled == 6 and again.failed == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.skipif(not IS_ROOT, reason="only root can give a file to another user")
def test_the_owner_and_group_of_a_file_are_kept(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c", n=3)
    theirs = corpus.articles[0].path
    os.chown(theirs, 65534, 65534)
    fill(corpus, word_overlap_suggester(corpus), k=5)
    st = theirs.stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert load_corpus(corpus.root).get(corpus.articles[0].url).curated


def test_read_only_files_are_skipped_unless_forced(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c", n=3)
    ro = corpus.articles[0].path
    ro.chmod(0o444)
    old = ro.read_bytes()
    result = fill(corpus, word_overlap_suggester(corpus), k=5)
    assert result.files_filled == 2 and result.skipped_by_kind() == {"read-only": 1}
    assert result.failed == [] and ro.read_bytes() == old
    forced = fill(load_corpus(corpus.root), word_overlap_suggester(corpus), k=5, force=True)
    assert forced.files_filled == 1 and stat.S_IMODE(ro.stat().st_mode) == 0o444
    assert_only_blocks_added(old, ro.read_bytes())


def test_each_file_and_its_folder_are_fsynced_before_the_file_counts_as_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    corpus = small_corpus(tmp_path / "c", n=4)
    write(corpus.root, "physics/other.md", article_text("other", subject="Physics", ident=55,
                                                        title="What is acid rain?"))
    corpus = load_corpus(corpus.root)
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    result = fill(corpus, word_overlap_suggester(corpus), k=5)
    assert result.files_filled == 5
    temps = [p for p in synced if p.endswith(TEMP_SUFFIX)]
    assert len(temps) == 5  # every new text, before its rename
    folders = [p for p in synced if not p.endswith(TEMP_SUFFIX)]
    assert sorted(folders) == sorted({str(p.path.parent) for p in result.written})


def test_an_editors_save_in_the_last_moment_is_kept(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    """The editor saves (write + rename, as editors do) after the last check: exchange undone."""
    corpus = small_corpus(tmp_path / "c", n=3)
    victim = corpus.articles[1].path
    edited = victim.read_bytes().replace(b"one, two", b"one, two, three")
    real_exchange = safe_replace.exchange

    def racing_exchange(a: Path, b: Path) -> bool:
        if b == victim and victim.read_bytes() != edited:
            saved = victim.with_name(".editor-save")
            saved.write_bytes(edited)
            os.replace(saved, victim)
        return real_exchange(a, b)

    monkeypatch.setattr(safe_replace, "exchange", racing_exchange)
    result = fill(corpus, word_overlap_suggester(corpus), k=5)
    assert victim.read_bytes() == edited
    assert [(s.kind, s.path) for s in result.failed] == [
        ("changed-on-disk", victim.relative_to(corpus.root).as_posix())]
    assert result.files_filled == 2
    assert not list(corpus.root.rglob(f"*{TEMP_SUFFIX}"))


def test_without_an_atomic_exchange_a_plain_replace_is_used(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    corpus = small_corpus(tmp_path / "c", n=3)
    before = snapshot(corpus.root)
    monkeypatch.setattr(safe_replace, "exchange", lambda a, b: False)
    result = fill(corpus, word_overlap_suggester(corpus), k=5)
    assert result.files_filled == 3
    after = snapshot(corpus.root)
    for rel, old in before.items():
        assert_only_blocks_added(old, after[rel], n_links=2)


KILLED_DURING_LOAD = """
import os, sys, time
import recommender.corpus as corpus
from recommender.fill import FillLock

def slow_read(*args):
    os.write(1, f"worker {os.getpid()}\\n".encode())  # one write: lines never interleave
    time.sleep(120)

corpus._read_many = slow_read  # the pool's workers are forked with this in memory
corpus.PARALLEL_MIN_FILES = 1
with FillLock(sys.argv[1]):
    print("locked", flush=True)
    corpus.load_corpus(sys.argv[1], workers=2)
"""


def test_a_fill_killed_during_the_load_leaves_no_lock_in_its_workers(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c", n=4)
    script = tmp_path / "killed_during_load.py"
    script.write_text(KILLED_DURING_LOAD)
    proc = subprocess.Popen([sys.executable, str(script), str(corpus.root)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "locked\n"
    lines = [proc.stdout.readline() for _ in range(2)]
    assert all(line.startswith("worker ") for line in lines), lines
    workers = [int(line.split()[1]) for line in lines]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    try:
        for pid in workers:
            os.kill(pid, 0)  # the forked workers are still alive...
        with FillLock(corpus.root):  # ...and hold no lock
            pass
        result = fill(corpus, word_overlap_suggester(corpus), k=5)
        assert result.files_filled == 4
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
