"""The device side of `features.extract`: the jitted step and its batches.

`make_step` builds the jitted step that selects the requested layers, pools
them and counts their non-finite values; `put_batch` places a host batch on
the mesh, `fetch_batch` brings a step's outputs back (to every host) and
raises on NaN or inf, and `run_steps` runs the step over a stream of host
batches, dispatching batch i + 1 before fetching batch i so that host I/O
overlaps compute. See `jaxcxai.features` for the extraction loop around them.
"""

from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import feature_batches as fb
from jaxcxai import parallel
from jaxcxai.checks import NonFiniteError
from jaxcxai.feature_cache import pooled_name

__all__ = ["fetch_batch", "make_step", "put_batch", "run_steps"]


def make_step(apply_fn: Callable, layers, dtype, pool: bool, keep_acts: bool):
    """The jitted step ``(x, real) -> (out, bad)`` of one global batch.

    Args:
      apply_fn: ``images -> (logits, {layer: act})``; ``"logits"`` may be
        requested as a layer.
      layers: names of the activations to return.
      dtype: storage dtype of the kept activations.
      pool: also return ``pooled_name(layer)``, float32 means over the axes
        between batch and channels.
      keep_acts: return the full activations.

    Returns:
      The jitted step, whose ``out`` maps each entry to its (B, ...) array
      and ``bad`` each entry to its count of NaN / inf in the real rows
      (``real`` (B,) bool marks the rows that are not padding). An unknown
      layer is a KeyError when the step is traced.
    """

    def step(x, real):
        logits, acts = apply_fn(x)
        out = {}
        for layer in layers:
            if layer in acts:
                a = acts[layer]
            elif layer == "logits":
                a = logits
            else:
                raise KeyError(
                    f"layer {layer!r} not returned by apply_fn; have {list(acts)}"
                )
            if keep_acts:
                out[layer] = a.astype(dtype)
            if pool:
                axes = tuple(range(1, a.ndim - 1))
                out[pooled_name(layer)] = a.astype(jnp.float32).mean(axis=axes)
        # Non-finite counts of the real (unpadded) rows, fetched with them;
        # `real` (B,) bool is sharded like `x`, so padding may sit on any host.
        bad = {
            k: jnp.sum(~jnp.isfinite(v) & real.reshape((-1,) + (1,) * (v.ndim - 1)))
            for k, v in out.items()
        }
        return out, bad

    return jax.jit(step)


def put_batch(x: np.ndarray, real: int, mesh: jax.sharding.Mesh, nproc: int):
    """``(x, real mask)`` sharded over the mesh's ``data`` axis.

    Args:
      x: this host's rows of the padded global batch.
      real: how many of ``x``'s rows are real (the rest is padding).
      mesh: the extraction mesh.
      nproc: processes the mesh spans (1: a plain ``device_put``; more: the
        global batch is assembled from every host's rows).
    """
    real = np.arange(len(x)) < real
    if nproc == 1:
        return jax.device_put((x, real), parallel.data_sharding(mesh))
    return parallel.shard_batch((x, real), mesh)


def fetch_batch(
    pending, start: int, mesh: jax.sharding.Mesh, nproc: int
) -> dict[str, np.ndarray]:
    """A dispatched step's outputs on the host, cut to the real rows.

    Args:
      pending: ``(step outputs, b)`` with ``b`` the batch's real row count.
      start: index of the batch's first image (for error messages).
      mesh: the extraction mesh.
      nproc: processes the mesh spans (more than 1: gathered to every host).

    Returns:
      ``{entry: (b, ...) array}``.

    Raises:
      NonFiniteError: the backbone returned NaN or inf, naming the entry,
        the count and the image range.
    """
    pulled = (
        jax.device_get(pending[0])
        if nproc == 1
        else fb.gather_to_every_host(pending[0], mesh)
    )
    (out, bad), b = pulled, pending[1]
    for k, count in bad.items():
        if count:
            raise NonFiniteError(
                f"apply_fn's {k!r} of images {start}..{start + b - 1}",
                int(count), out[k][:b].size,
                "the backbone returned them (broken or diverged weights, "
                "NaN input, or float16 overflow: try dtype=float32)",
            )  # fmt: skip
    return {k: v[:b] for k, v in out.items()}


def run_steps(
    step: Callable,
    batches: Iterable[tuple[np.ndarray, int, int]],
    mesh: jax.sharding.Mesh,
    nproc: int,
    start: int,
) -> Iterator[dict[str, np.ndarray]]:
    """Yields `fetch_batch` of `step` over ``batches``, in order.

    Batch i + 1 is dispatched before batch i is fetched, so host I/O
    overlaps compute.

    Args:
      step: `make_step`'s jitted step.
      batches: ``(x, b, real)`` of this host (``feature_batches.host_rows``
        or ``host_cut``): its rows, the batch's real row count, and the
        count `put_batch` takes.
      mesh: the extraction mesh.
      nproc: processes the mesh spans.
      start: index of the first batch's first image.
    """
    pending = None
    for x, b, real in batches:
        with jax.set_mesh(mesh):
            out = step(*put_batch(x, real, mesh, nproc))
        if pending is not None:
            yield fetch_batch(pending, start, mesh, nproc)
            start += pending[1]
        pending = (out, b)
    if pending is not None:
        yield fetch_batch(pending, start, mesh, nproc)
