"""Run records without TensorFlow: JSON-lines metrics and atomic files.

Metrics: one record per log step, `{"step": int, name: float, ...}`, appended
to `workdir/metrics.jsonl` by process 0 only (big_vision's writer, CLU's
`write_scalars` interface). A resumed run first calls
`JsonlWriter.truncate(restored_step)`, so every step is logged exactly once.

Files: `write_json_atomic` / `write_npz_atomic` (and `atomic_write` /
`write_text_atomic`, re-exported from `jaxcxai.atomic_files`) write a
temporary file and rename it, so a reader never sees half a file; the
temporary files of a killed writer are removed by the next write of the same
file.

What produced a stored result (its fingerprint) is recorded and checked by
`jaxcxai.checks`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import jax
import numpy as np

# Re-exported: callers import the atomic writers from here too.
from jaxcxai.atomic_files import atomic_write, write_text_atomic

__all__ = [
    "JsonlWriter",
    "atomic_write",
    "read_jsonl",
    "read_npz",
    "write_json_atomic",
    "write_npz_atomic",
    "write_text_atomic",
]


def _py(value: Any) -> Any:
    value = np.asarray(value)
    if value.ndim == 0:
        value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value
    return value.tolist()


class JsonlWriter:
    """Appends scalar records to a JSON-lines file (process 0 only)."""

    def __init__(self, path: str, also_log: bool = True):
        self.path = path
        self.also_log = also_log
        self._active = jax.process_index() == 0
        if self._active:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write_scalars(self, step: int, scalars: dict[str, Any]) -> None:
        if not self._active:
            return
        record = {"step": int(step)}
        record.update({k: _py(v) for k, v in scalars.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.also_log:
            shown = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in record.items()
                if k != "step"
            )
            logging.info("step %d: %s", step, shown)

    def truncate(self, step: int) -> int:
        """Drops the records after `step` (the restored step of a resume).

        Records past the last checkpoint were logged by a run that was then
        interrupted; the resumed run logs those steps again. A torn last line
        (a write cut by a kill) is dropped too. The file is rewritten
        atomically. Returns the number of records dropped.
        """
        if not self._active or not os.path.exists(self.path):
            return 0
        with open(self.path) as f:
            raw = f.read()
        lines = _complete_lines(raw)
        kept = [line for line in lines if json.loads(line)["step"] <= step]
        if "".join(kept) != raw:
            atomic_write(self.path, lambda f: f.write("".join(kept).encode()))
        if len(kept) < len(lines):
            logging.info("%s: dropped %d records after step %d", self.path,
                         len(lines) - len(kept), step)  # fmt: skip
        return len(lines) - len(kept)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _complete_lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # torn by a kill mid-write: never a whole record
    return [line for line in lines if line.strip()]


def read_jsonl(path: str) -> list[dict]:
    """Reads every record of a JSON-lines file (a torn last line is skipped)."""
    with open(path) as f:
        return [json.loads(line) for line in _complete_lines(f.read())]


def write_json_atomic(path: str, obj: Any) -> None:
    """Writes JSON to `path` through a temporary file and a rename."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=_py) + "\n")


def write_npz_atomic(path: str, arrays: dict) -> None:
    """`np.savez_compressed` of `arrays` through a temporary file and a rename."""
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def read_npz(path: str, hint: str = "") -> dict[str, np.ndarray]:
    """Every array of an `.npz` file, loaded into memory.

    Raises:
      FileNotFoundError: naming `path`, followed by `hint` (how to make it).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found" + (f"; {hint}" if hint else ""))
    with np.load(path) as d:
        return {k: d[k] for k in d.files}
