"""Batching of explainers: chunks of perturbations and the sample axis.

- `chunked_map`: a function over many perturbations, vmapped a chunk at a
  time inside one program (`lax.map` with `batch_size`).
- `chunked_sum`: a weighted sum over perturbations by a `scan` over chunks,
  inside one program.
- `host_chunked_sum`: the same sum with the chunk loop on the host around
  one jitted chunk program (faster for heavy chunks on XLA:CPU).
- `map_samples`: vmap over the sample axis, optionally sharded over a
  mesh's `data` axis (the result equals the unsharded one).
- `tiled_pool_grads`: how the gradient of a batch of copies runs on
  XLA:CPU: the model with a scatter-free VJP for max pools that tile their
  input (the same gradient), used by every gradient explainer.

Re-exported by `core`, the explainers' shared contract.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcxai.parallel import DATA_AXIS

__all__ = [
    "chunked_map",
    "chunked_sum",
    "host_chunked_sum",
    "map_samples",
    "tiled_pool_grads",
]


def chunked_map(fn: Callable, xs: Any, chunk_size: int | None) -> Any:
    """`fn` over the leading axis of `xs`, `chunk_size` elements at a time.

    `vmap` within a chunk, a sequential loop over chunks (`lax.map` with
    `batch_size`), so peak memory is that of one chunk plus the stacked
    outputs. `chunk_size=None` vmaps everything at once.
    """
    if chunk_size is None:
        return jax.vmap(fn)(xs)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return jax.lax.map(fn, xs, batch_size=chunk_size)


def chunked_sum(
    fn: Callable, xs: Any, chunk_size: int | None, weights: jax.Array | None = None
) -> Any:
    """sum_i w_i fn(x_i) over the leading axis of `xs`, one chunk at a time.

    Unlike `chunked_map` the outputs are never stacked: a scan carries the
    running sum, so memory is bounded by `chunk_size` evaluations whatever
    the number of terms (the Integrated Gradients steps or the SmoothGrad
    copies). The tail chunk is padded with copies of element 0 at weight 0.

    Args:
      fn: per-element function returning a pytree of arrays.
      xs: pytree with a common leading axis M.
      chunk_size: elements per vmapped chunk (None: all M at once).
      weights: (M,) weights (default 1).
    """
    m = jax.tree.leaves(xs)[0].shape[0]
    w = jnp.ones((m,), jnp.float32) if weights is None else weights
    size = m if chunk_size is None else min(int(chunk_size), m)
    if size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    num = -(-m // size)
    pad = num * size - m

    def padded(a):
        if pad:
            a = jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)], axis=0)
        return a.reshape((num, size) + a.shape[1:])

    xs_c = jax.tree.map(padded, xs)
    w_c = jnp.concatenate([w, jnp.zeros((pad,), w.dtype)]).reshape(num, size)

    def weighted(chunk, wc):
        out = jax.vmap(fn)(chunk)
        return jax.tree.map(lambda o: jnp.tensordot(wc.astype(o.dtype), o, axes=1), out)

    if num == 1:
        return weighted(jax.tree.map(lambda a: a[0], xs_c), w_c[0])
    first = weighted(jax.tree.map(lambda a: a[0], xs_c), w_c[0])

    def body(acc, inp):
        chunk, wc = inp
        return jax.tree.map(jnp.add, acc, weighted(chunk, wc)), None

    rest = jax.tree.map(lambda a: a[1:], (xs_c, w_c))
    total, _ = jax.lax.scan(body, first, rest)
    return total


def host_chunked_sum(
    fn: Callable, items: Any, chunk_size: int | None, weights: Any = None
) -> Any:
    """sum over chunks of `fn(items_chunk, weights_chunk)`, looped on the host.

    The per-chunk function is jitted by the caller; every call gets the same
    shapes (the tail chunk is padded with item 0 at weight 0), so it compiles
    once. Preferred over `chunked_sum` for heavy chunks on XLA:CPU, where a
    `scan` around convolutions measured several times slower than the same
    chunk called from a loop.

    Args:
      fn: `fn(items (c, ...), weights (c,)) -> pytree`, already weighted and
        summed over the chunk.
      items: pytree of NumPy/JAX arrays with a common leading axis M.
      chunk_size: items per call (None: all M at once).
      weights: (M,) weights (default 1).
    """
    leaves = jax.tree.leaves(items)
    m = leaves[0].shape[0]
    w = (
        np.ones((m,), np.float32)
        if weights is None
        else np.asarray(weights, np.float32)
    )
    size = m if chunk_size is None else min(int(chunk_size), m)
    pad = (-m) % size
    take = lambda a: np.concatenate(
        [np.asarray(a), np.repeat(np.asarray(a)[:1], pad, 0)]
    )
    items = jax.tree.map(take, items)
    w = np.concatenate([w, np.zeros((pad,), np.float32)])
    total = None
    for start in range(0, m + pad, size):
        sl = slice(start, start + size)
        part = fn(jax.tree.map(lambda a, sl=sl: a[sl], items), w[sl])
        total = part if total is None else jax.tree.map(jnp.add, total, part)
    return total


def map_samples(fn: Callable, *args: Any, mesh: Mesh | None = None) -> Any:
    """`vmap(fn)(*args)` over the sample axis, sharded over `mesh` if given.

    With a mesh, every argument's leading axis is padded (copies of sample 0)
    to a multiple of the `data` axis size, constrained to `P('data')`, and the
    outputs are sliced back; per-sample numerics do not depend on the
    sharding. Call inside `jit`.
    """
    if mesh is None:
        return jax.vmap(fn)(*args)
    n = jax.tree.leaves(args)[0].shape[0]
    shards = mesh.shape[DATA_AXIS]
    pad = (-n) % shards
    sharding = NamedSharding(mesh, P(DATA_AXIS))

    def place(a):
        if pad:
            a = jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)], axis=0)
        return jax.lax.with_sharding_constraint(a, sharding)

    out = jax.vmap(fn)(*jax.tree.map(place, args))
    out = jax.tree.map(lambda o: jax.lax.with_sharding_constraint(o, sharding), out)
    return jax.tree.map(lambda o: o[:n], out)


def tiled_pool_grads(f: Callable) -> Callable:
    """`f` with a scatter-free VJP for its max pools that tile their input.

    jax differentiates `reduce_window_max` (e.g. flax's `max_pool`) into
    `select_and_scatter_add`, which XLA:CPU expands into index iotas, a
    variadic reduce-window and a scatter: half the time of a small CNN's
    input gradient (SmallCNN, 64x64). For pools whose windows tile the input
    (window = stride, no padding or dilation) the traced `f` gets the same
    forward pooling and a custom VJP that gives each window's cotangent to
    its first maximum in row-major window order (the `ge` rule of
    select-and-scatter; max pool's gradient in torch too), by selects: the
    same gradient, bit for bit. `f` itself is returned when it has none.
    """

    def g(x):
        closed, shapes = jax.make_jaxpr(f, return_shape=True)(x)
        if not _has_tiled_pool(closed.jaxpr):
            return f(x)
        leaves = _eval_swapping_pools(closed.jaxpr, closed.consts, x)
        return jax.tree.unflatten(jax.tree.structure(shapes), leaves)

    return g


def _tiles(eqn) -> bool:
    """Whether `eqn` is a max pool whose windows tile its input."""
    if eqn.primitive.name != "reduce_window_max":
        return False
    p, aval = eqn.params, eqn.invars[0].aval
    window = p["window_dimensions"]
    return (
        jnp.issubdtype(aval.dtype, jnp.floating)
        and tuple(p["window_strides"]) == tuple(window)
        and all(tuple(pad) == (0, 0) for pad in p["padding"])
        and set(p["base_dilation"]) | set(p["window_dilation"]) == {1}
        and all(s % w == 0 for s, w in zip(aval.shape, window))
        and 2 <= int(np.prod(window)) <= 64
    )


def _has_tiled_pool(jaxpr) -> bool:
    return any(
        _tiles(e)
        or (e.primitive.name == "jit" and _has_tiled_pool(e.params["jaxpr"].jaxpr))
        for e in jaxpr.eqns
    )


def _eval_swapping_pools(jaxpr, consts, *args) -> list:
    """`jax.core.eval_jaxpr` with each tiling pool replaced by `_tiled_max`."""
    env = dict(zip([*jaxpr.constvars, *jaxpr.invars], [*consts, *args]))
    read = lambda v: v.val if isinstance(v, jax.extend.core.Literal) else env[v]
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        with eqn.ctx.manager:
            if _tiles(eqn):
                outs = [_tiled_max(ins[0], tuple(eqn.params["window_dimensions"]))]
            elif eqn.primitive.name == "jit" and _has_tiled_pool(
                eqn.params["jaxpr"].jaxpr
            ):
                sub = eqn.params["jaxpr"]
                outs = _eval_swapping_pools(sub.jaxpr, sub.consts, *ins)
            else:
                params = eqn.primitive.get_bind_params(eqn.params)
                outs = eqn.primitive.bind(*ins, **params)
                outs = outs if eqn.primitive.multiple_results else [outs]
        env.update(zip(eqn.outvars, outs))
    return [read(v) for v in jaxpr.outvars]


def _windows(x: jax.Array, window: tuple[int, ...]) -> jax.Array:
    """(*out_shape, K): the K = prod(window) entries of each window, row-major."""
    r = x.ndim
    xs = x.reshape([d for s, w in zip(x.shape, window) for d in (s // w, w)])
    xs = xs.transpose([*range(0, 2 * r, 2), *range(1, 2 * r, 2)])
    return xs.reshape(xs.shape[:r] + (-1,))


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _tiled_max(x: jax.Array, window: tuple[int, ...]) -> jax.Array:
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, window, "VALID")


def _tiled_max_fwd(x, window):
    # One materialised input for the pool and the argmax: XLA could
    # otherwise recompute it in two fusions with different rounding.
    x = jax.lax.optimization_barrier(x)
    xw = _windows(x, window)
    sel, first = xw[..., 0], jnp.zeros(xw.shape[:-1], jnp.int32)
    for k in range(1, xw.shape[-1]):
        keep = sel >= xw[..., k]  # select-and-scatter's rule (NaN included)
        sel, first = jnp.where(keep, sel, xw[..., k]), jnp.where(keep, first, k)
    return _tiled_max(x, window), first


def _tiled_max_bwd(window, first, g):
    r, k = g.ndim, int(np.prod(window))
    parts = jnp.stack([jnp.where(first == i, g, 0) for i in range(k)], axis=-1)
    parts = parts.reshape(g.shape + window)
    parts = parts.transpose([a for i in range(r) for a in (i, r + i)])
    return (parts.reshape([s * w for s, w in zip(g.shape, window)]),)


_tiled_max.defvjp(_tiled_max_fwd, _tiled_max_bwd)
