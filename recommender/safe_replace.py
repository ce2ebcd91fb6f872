"""Replace one file atomically, and only if it is still the file that was planned from.

What a batch fill must guarantee for every file it touches, in one place:

- **Atomic**: the new text goes to a temporary file in the same folder, is
  fsynced, and is renamed over the old one; a crash leaves the old or the new
  file, never a mix. The folder is fsynced before the caller calls it done
  (:func:`fsync_dir`).
- **Nothing of an editor's is lost**: the rename is an atomic *exchange*
  (``renameat2(RENAME_EXCHANGE)``, Linux) after which the file swapped out is
  checked: if it is not exactly what was planned from (an editor saved in the
  meantime), the exchange is undone and the editor's file is back in place.
  Where the exchange is not supported (other systems, some network file
  systems), the last check (inode, size, mtime and hash) runs just before a
  plain ``os.replace``, which leaves a window of microseconds.
  Either way, a process that holds the old file open and writes into it *after*
  the check writes into a file that is no longer in the folder: no rename-based
  tool can see that.
- **Same file, same owner**: mode kept, owner and group kept (``fchown``, which
  needs root for another user's file: such a file is refused, not taken over),
  read-only files (no write bit) refused unless ``force``, symlinks and
  hard-linked files refused (replacing them would change the tree).

Every refusal is a :class:`Refused` with a short ``kind`` and a message.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from recommender.frontmatter import ArticleParseError, read_regular_file

#: temporary files are hidden and do not end in ``.md``, so a loader never reads one
TEMP_SUFFIX = ".recommender-fill.tmp"

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
except (AttributeError, OSError):  # pragma: no cover - not glibc >= 2.28
    _renameat2 = None


class Refused(Exception):  # noqa: N818 - a outcome, not an error of the program
    """The file was not replaced, and why (``kind`` is short and machine-readable)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap the names ``a`` and ``b``; ``False`` if the system cannot."""
    if _renameat2 is None:  # pragma: no cover
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable. Raises :class:`OSError` if the fsync fails."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_target(path: Path, force: bool = False) -> os.stat_result:
    """The file's status if it may be replaced; :class:`Refused` if not."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise Refused("unreadable", f"cannot read file: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise Refused("symlink", "is a symbolic link; replacing it would change the tree")
    if not stat.S_ISREG(st.st_mode):
        raise Refused("unreadable", "is not a regular file")
    if st.st_nlink > 1:
        raise Refused("hard-link", f"has {st.st_nlink} hard links; a rewrite would split them")
    if not force and not st.st_mode & 0o222:
        raise Refused("read-only", f"is read-only (mode {stat.S_IMODE(st.st_mode):o}); "
                                   "--force writes it anyway, keeping the mode")
    return st


def read_planned(path: Path, expected_sha: str) -> bytes:
    """The file's bytes, if they are still the ones planned from."""
    try:
        data = read_regular_file(path)
    except ArticleParseError as exc:
        raise Refused("unreadable", str(exc)) from None
    if sha256(data) != expected_sha:
        raise Refused("changed-on-disk", "file changed on disk since it was planned")
    return data


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (
        b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns)


def replace_file(
    path: Path,
    expected_sha: str,
    make: Callable[[bytes], bytes],
    verify: Callable[[bytes, bytes], str | None],
    *,
    force: bool = False,
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Replace ``path`` by ``make(old)`` if it still hashes to ``expected_sha``.

    ``verify(old, new)`` re-checks the bytes written (read back from disk) and
    says what is wrong, or ``None``. Raises :class:`Refused`; on return the file
    is replaced (its folder not yet fsynced: see :func:`fsync_dir`).
    """
    st = check_target(path, force)
    old = read_planned(path, expected_sha)
    new = make(old)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX,
                                        dir=path.parent)
    except OSError as exc:
        raise Refused("write-error", f"cannot create a temporary file in {path.parent}: "
                                     f"{exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(new)
                out.flush()
                made = os.fstat(out.fileno())
                if (made.st_uid, made.st_gid) != (st.st_uid, st.st_gid):
                    try:
                        os.fchown(out.fileno(), st.st_uid, st.st_gid)
                    except PermissionError:
                        raise Refused("owner", f"is owned by uid {st.st_uid} gid {st.st_gid}; "
                                      "a new file would change its owner (run the fill as "
                                      "that user)") from None
                os.fchmod(out.fileno(), stat.S_IMODE(st.st_mode))
                os.fsync(out.fileno())
            written = tmp.read_bytes()
        except OSError as exc:
            raise Refused("write-error", f"cannot write temporary file: "
                                         f"{exc.strerror or exc}") from None
        problem = verify(old, written)
        if problem is not None:
            raise Refused("verify-failed", problem)
        if before_replace is not None:
            before_replace()
        _swap_in(path, tmp, st, expected_sha)
    finally:
        tmp.unlink(missing_ok=True)


def _swap_in(path: Path, tmp: Path, st: os.stat_result, expected_sha: str) -> None:
    """Put ``tmp`` in place of ``path``; undo it if ``path`` was not the planned file."""
    changed = Refused("changed-on-disk", "file changed on disk while it was written; "
                                         "the editor's version is kept")
    try:
        now = os.lstat(path)
    except OSError:
        raise changed from None
    if not _same_file(now, st):
        raise changed
    try:
        if exchange(tmp, path):
            swapped = os.lstat(tmp)
            try:
                same = _same_file(swapped, st) and sha256(tmp.read_bytes()) == expected_sha
            except OSError:
                same = False
            if not same:
                exchange(tmp, path)  # the editor's file goes back where it was
                raise changed
            return
        if sha256(path.read_bytes()) != expected_sha:
            raise changed
        os.replace(tmp, path)
    except OSError as exc:
        raise Refused("write-error", f"cannot replace file: {exc.strerror or exc}") from None


__all__ = [
    "TEMP_SUFFIX",
    "Refused",
    "check_target",
    "exchange",
    "fsync_dir",
    "read_planned",
    "replace_file",
    "sha256",
]
