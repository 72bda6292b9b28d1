"""jaxcxai.atomic_files: temporary name, fsync, rename, cleanup of leftovers."""

import ast
import os
import sys

import pytest

from jaxcxai import atomic_files
from jaxcxai.atomic_files import atomic_write, is_temporary, write_text_atomic

# Above Linux's largest pid_max (2**22), so no process can have it.
DEAD_PID = 2**22 + 12345


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def test_write_goes_to_a_temporary_name_then_is_renamed(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    seen = []

    def write(f):
        seen.append(f.name)
        f.write(b"new content")

    atomic_write(path, write, suffix=".png")
    assert seen == [f"{path}.tmp-{os.getpid()}.png"]
    assert path.read_bytes() == b"new content"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_content_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    path = tmp_path / "out.bin"
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd)
    )
    monkeypatch.setattr(
        os, "replace", lambda a, b: events.append("replace") or real_replace(a, b)
    )
    atomic_write(path, lambda f: f.write(b"x"))
    assert events == ["fsync", "replace"]


def test_write_text_atomic_round_trips_utf8(tmp_path):
    path = tmp_path / "report.md"
    write_text_atomic(str(path), "héllo ∑\n")
    assert path.read_bytes() == "héllo ∑\n".encode()
    write_text_atomic(path, "second")
    assert path.read_text() == "second"


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "table.npz"
    path.write_bytes(b"old")

    def write(f):
        f.write(b"half")
        raise error("killed mid-write")

    with pytest.raises(error, match="killed mid-write"):
        atomic_write(path, write)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["table.npz"]


def _fail(f):
    raise OSError("disk full")


def test_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "new.json", _fail)
    assert os.listdir(tmp_path) == []


def test_next_write_removes_dead_writers_leftovers_only(tmp_path):
    assert not _alive(DEAD_PID)
    live_pid = os.getppid()
    assert _alive(live_pid)
    path = tmp_path / "stage.json"
    dead = [f"stage.json.tmp-{DEAD_PID}", f"stage.json.tmp-{DEAD_PID}.png"]
    kept = [
        f"stage.json.tmp-{live_pid}",  # its writer may be writing now
        f"other.json.tmp-{DEAD_PID}",  # another file's: its own next write
        f"stage.jsonl.tmp-{DEAD_PID}",  # a name that merely starts alike
    ]
    for name in dead + kept:
        (tmp_path / name).write_bytes(b"half")
    write_text_atomic(path, "{}")
    assert sorted(os.listdir(tmp_path)) == sorted(["stage.json"] + kept)


def test_sweep_false_leaves_the_folder_unlisted(tmp_path, monkeypatch):
    # Stores sweep their folder once on open; their per-chunk writes skip it.
    leftover = tmp_path / f"a.txt.tmp-{DEAD_PID}"
    leftover.write_bytes(b"half")
    listed = []
    real = os.listdir
    monkeypatch.setattr(
        atomic_files.os, "listdir", lambda d: listed.append(d) or real(d)
    )
    atomic_write(tmp_path / "a.txt", lambda f: f.write(b"x"), sweep=False)
    assert (tmp_path / "a.txt").read_bytes() == b"x"
    assert leftover.exists() and listed == []
    atomic_write(tmp_path / "a.txt", lambda f: f.write(b"y"))
    assert not leftover.exists() and len(listed) == 1


def test_leftovers_stay_when_the_write_fails(tmp_path):
    leftover = tmp_path / f"a.txt.tmp-{DEAD_PID}"
    leftover.write_bytes(b"half")
    with pytest.raises(OSError):
        atomic_write(tmp_path / "a.txt", _fail)
    assert leftover.exists()


@pytest.mark.parametrize(
    "name",
    [
        "index.json.tmp-123",
        "e0-conv1.00002.npy.tmp-99999999",
        "instances.npz.tmp-7.npz",
        "/some/dir/pr_curve.png.tmp-42.png",
    ],
)
def test_is_temporary_recognises_our_names(name):
    assert is_temporary(name)


@pytest.mark.parametrize(
    "name",
    [
        "index.json",
        "index.json.tmp",  # no pid
        "stage.json.tmp123",  # no dash
        "index.json.tmp-",
        "run.tmp-x",
        "/work/a.tmp-1/index.json",  # a folder's name does not count
        "e0-conv1.00002.npy",
    ],
)
def test_is_temporary_rejects_other_names(name):
    assert not is_temporary(name)


def test_is_temporary_matches_what_atomic_write_creates(tmp_path):
    names = []
    atomic_write(tmp_path / "x.npz", lambda f: names.append(f.name), suffix=".npz")
    assert is_temporary(names[0]) and not is_temporary(tmp_path / "x.npz")


def test_module_is_standard_library_only():
    # JAX-free callers (feature_writers) import it; so must stay its imports.
    tree = ast.parse(open(atomic_files.__file__).read())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert roots and roots <= set(sys.stdlib_module_names) | {"__future__"}


def test_metric_writers_re_exports_the_helpers():
    from jaxcxai import metric_writers

    assert metric_writers.atomic_write is atomic_write
    assert metric_writers.write_text_atomic is write_text_atomic
    assert {"atomic_write", "write_text_atomic"} <= set(metric_writers.__all__)
