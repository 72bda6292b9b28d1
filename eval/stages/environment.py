"""Main-job stage `environment`: devices and software versions."""

from __future__ import annotations

import platform

import jax


def environment(config, stage_dir: str) -> dict:
    """Records devices and software versions."""
    import flax
    import optax

    devices = jax.devices()
    info = {
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "process_count": jax.process_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
    }
    rows = "\n".join(f"| {k} | {v} |" for k, v in info.items())
    return {"info": info, "markdown": "| what | value |\n|---|---|\n" + rows}
