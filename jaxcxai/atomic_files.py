"""Atomic files: write to a temporary name in the same folder, then rename.

A reader (or a resumed run) never sees half a file: `atomic_write` writes
`{path}.tmp-{pid}{suffix}`, flushes and fsyncs it, and renames it over
`path` with `os.replace` (atomic within one file system, which the shared
folder guarantees). A write that raises removes its temporary file. A writer
killed mid-write leaves its temporary file behind; the next successful write
of the same path removes those of dead processes, and resumable writers
delete every name `is_temporary` recognises when they open a folder.

Pure standard library (no JAX, no NumPy), so JAX-free modules such as
`jaxcxai.feature_writers` can use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["atomic_write", "is_temporary", "write_text_atomic"]

_TEMPORARY = re.compile(r"\.tmp-\d+")


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[BinaryIO], object],
    *,
    suffix: str = "",
    sweep: bool = True,
) -> None:
    """Calls `write(binary file)` on a temporary file, then renames it to `path`.

    Args:
      path: the file to (re)place; its folder must exist.
      write: writes the whole content into the open binary file it is given
        (e.g. `lambda f: np.savez(f, **arrays)`).
      suffix: appended to the temporary name, for writers that pick a format
        from the file name's extension.
      sweep: after the rename, list the folder and remove dead writers'
        leftovers of `path`. Stores that write many files into one folder
        pass False: they sweep the folder once when they open it, and a
        listing per write would cost O(files) each time.

    Raises:
      Exception: whatever `write` raises; `path` is then untouched and the
        temporary file removed.
    """
    path = os.fspath(path)
    # The pid keeps concurrent writers of one path apart and tells the
    # cleanup below whether a leftover's writer may still be running.
    tmp = f"{path}.tmp-{os.getpid()}{suffix}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            # Durable before the rename: a crash must not leave a renamed but
            # empty file.
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    if sweep:
        _remove_dead_leftovers(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes UTF-8 `text` to `path` through a temporary file and a rename."""
    atomic_write(path, lambda f: f.write(text.encode()))


def is_temporary(name: str | os.PathLike) -> bool:
    """Whether `name` (a file name or path) is a temporary file of `atomic_write`."""
    return _TEMPORARY.search(os.path.basename(os.fspath(name))) is not None


def _remove_dead_leftovers(path: str) -> None:
    """Removes the temporary files of `path` whose writer process is gone."""
    folder, name = os.path.split(os.path.abspath(path))
    pattern = re.compile(re.escape(name) + r"\.tmp-(\d+)")
    for other in os.listdir(folder):
        m = pattern.match(other)
        if m and not _alive(int(m[1])):
            try:
                os.remove(os.path.join(folder, other))
            except FileNotFoundError:
                pass  # another writer's cleanup was first


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (signal 0 only checks)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False  # no such process (or a pid no system can have)
    except PermissionError:
        return True  # exists, owned by someone else
    return True
