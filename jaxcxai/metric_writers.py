"""Metric writing without TensorFlow: JSON lines plus logging.

One record per log step, `{"step": int, name: float, ...}`, appended to
`workdir/metrics.jsonl` by process 0 only (big_vision's writer, CLU's
`write_scalars` interface).
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import jax
import numpy as np

__all__ = ["JsonlWriter", "read_jsonl", "write_json_atomic"]


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

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def read_jsonl(path: str) -> list[dict]:
    """Reads every record of a JSON-lines file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_json_atomic(path: str, obj: Any) -> None:
    """Writes JSON to `path` through a temporary file and a rename."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=_py)
        f.write("\n")
    os.replace(tmp, path)
