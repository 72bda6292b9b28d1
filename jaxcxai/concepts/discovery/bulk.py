"""NMF entry points: one fit, seeds, ranks and layers in one compiled program.

* `fit_nmf` / `fit_semi_nmf`: one fit of (N, d) or (N, ..., C) activations.
* `nmf_seeds`: S seeds vmapped over the same activations; the big products
  X H^T and W^T X of all seeds become one matmul each per iteration.
* `nmf_ranks`: several ranks in one program, padded to the largest rank with
  a 0/1 slot mask (masked slots start at zero and stay zero, so each entry
  equals the unpadded rank-k fit; see `nmf`).
* `nmf_layers`: layers x seeds. Layers of equal (N, d) shape are stacked and
  vmapped: one compiled program per distinct layer shape (default), or, with
  `pad=True`, every layer is zero-padded to the largest (N, d) and all run as
  one program. Zero rows/columns of X with zero init stay inert, so padding
  is exact; the init is drawn on the unpadded layer either way.

With a `mesh` the rows of X (and of the codes) are split over the mesh's
`data` axis (rows padded with zeros to a multiple of its size); jit inserts
the reduction of W^T X, so the result equals the unsharded one up to
floating-point summation order.
"""

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcxai.concepts.discovery import nmf as nmf_lib
from jaxcxai.concepts.discovery.common import (
    Factorization,
    as_rows,
    check_positive_int,
    check_rank,
    host_rng,
)
from jaxcxai.parallel import DATA_AXIS

__all__ = ["fit_nmf", "fit_semi_nmf", "nmf_seeds", "nmf_ranks", "nmf_layers"]


def _init(x, k, key, init, seeds=None):
    """String init drawn from `key`, or an explicit (W, H) pair checked
    against (rows, k) / (k, d), with a leading seed axis when `seeds`."""
    if isinstance(init, str):
        return nmf_lib.init_factors(x, k, key, init)
    w, h = (np.asarray(a) for a in init)
    lead = () if seeds is None else (seeds,)
    shapes = (lead + (x.shape[0], k), lead + (k, x.shape[1]))
    if (w.shape, h.shape) != shapes:
        raise ValueError(
            f"init (W, H) must have shapes {shapes[0]} and {shapes[1]}, got "
            f"{w.shape} and {h.shape}"
        )
    neg = int((w < 0).sum() + (h < 0).sum())
    if neg or not (np.isfinite(w).all() and np.isfinite(h).all()):
        raise ValueError(f"init (W, H) must be finite and non-negative ({neg} < 0)")
    return jnp.asarray(w, x.dtype), jnp.asarray(h, x.dtype)


def _result(w, h, losses):
    mean = jnp.zeros(h.shape[:-2] + h.shape[-1:], h.dtype)
    return Factorization(components=h, codes=w, losses=losses, mean=mean)


def _check_solver(solver):
    if solver not in nmf_lib.SOLVERS:
        raise ValueError(f"solver must be one of {nmf_lib.SOLVERS}, got {solver!r}")


def fit_nmf(acts, k, key, *, solver="mu", iters=200, l1=0.0, init="random"):
    """NMF of non-negative activations: X (rows, d) ~ codes @ components.

    Args:
      acts: (N, d) or (N, ..., C) non-negative activations (spatial axes
        become rows).
      k: rank (number of concepts), 1 <= k <= min(rows, d).
      key: PRNG key for the "random" init.
      solver: "mu" (Lee & Seung 2001) or "hals" (Cichocki & Phan 2009).
      iters: number of iterations (static).
      l1: L1 penalty on the codes.
      init: "random", "nndsvd", "nndsvda" or an explicit (W (rows, k),
        H (k, d)) pair (e.g. shared with scikit-learn's `init="custom"`).

    Returns:
      `Factorization` with components (k, d) >= 0, codes (rows, k) >= 0 and
      losses (iters + 1,) of 0.5 ||X - W H||^2 + l1 sum(W).
    """
    x = as_rows(acts, "acts", nonnegative=True)
    k = check_rank(k, *x.shape)
    _check_solver(solver)
    w, h = _init(x, k, key, init)
    return _result(*nmf_lib.fit_factors(x, w, h, solver=solver, iters=iters, l1=l1))


def fit_semi_nmf(acts, k, key, *, iters=200, init=None):
    """Semi-NMF of signed activations: codes >= 0, components signed.

    Args:
      acts: (N, d) or (N, ..., C) activations of any sign.
      k: rank, 1 <= k <= min(rows, d).
      key: PRNG key of the default init, |N(0, 1)| + 0.2 (the paper's
        k-means indicator + 0.2 offset keeps every code positive).
      iters: number of iterations.
      init: optional explicit (rows, k) non-negative initial codes.

    Returns:
      `Factorization` (components (k, d), codes (rows, k), losses).
    """
    x = as_rows(acts, "acts")
    k = check_rank(k, *x.shape)
    if init is None:
        w0 = np.abs(host_rng(key).standard_normal((x.shape[0], k))) + 0.2
        w = jnp.asarray(w0, x.dtype)
    else:
        w = jnp.asarray(init, x.dtype)
        if w.shape != (x.shape[0], k) or int(jnp.sum(w < 0)):
            raise ValueError(f"init must be non-negative with shape {(x.shape[0], k)}")
    return _result(*nmf_lib.semi_fit(x, w, iters=iters))


def _fit_seeds(x, w, h, solver, iters, l1):
    fit = lambda w, h: nmf_lib.fit_factors(x, w, h, solver=solver, iters=iters, l1=l1)  # noqa: E731
    return jax.vmap(fit)(w, h)


@functools.partial(jax.jit, static_argnames=("solver", "iters", "mesh"))
def _fit_group(xs, ws, hs, l1, *, solver, iters, mesh):
    """Fits a group of layers as one program: pad, stack, vmap, unpad.

    xs[i] (n_i, d_i), ws[i] (S, n_i, k), hs[i] (S, k, d_i). Padding, stacking
    and slicing live inside the jit so a group costs one compilation.
    With `mesh`, rows (padded to a multiple of the `data` axis) are split
    over it.
    """
    n_max = max(x.shape[0] for x in xs)
    d_max = max(x.shape[1] for x in xs)
    if mesh is not None:
        n_max += -n_max % mesh.shape[DATA_AXIS]
    x = jnp.stack(
        [jnp.pad(x, ((0, n_max - x.shape[0]), (0, d_max - x.shape[1]))) for x in xs]
    )
    w = jnp.stack([jnp.pad(w, ((0, 0), (0, n_max - w.shape[1]), (0, 0))) for w in ws])
    h = jnp.stack([jnp.pad(h, ((0, 0), (0, 0), (0, d_max - h.shape[2]))) for h in hs])
    if mesh is not None:
        x = jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(None, DATA_AXIS)))
        w = jax.lax.with_sharding_constraint(
            w, NamedSharding(mesh, P(None, None, DATA_AXIS))
        )
    w, h, losses = jax.vmap(_fit_seeds, in_axes=(0, 0, 0, None, None, None))(
        x, w, h, solver, iters, l1
    )
    return tuple(
        (w[i, :, : a.shape[0]], h[i, :, :, : a.shape[1]], losses[i])
        for i, a in enumerate(xs)
    )


def nmf_seeds(
    acts, k, key, num_seeds, *, solver="mu", iters=200, l1=0.0, init="random", mesh=None
):
    """`num_seeds` NMF fits of the same activations, vmapped in one program.

    Seed s uses `jax.random.split(key, num_seeds)[s]`, so entry s equals
    `fit_nmf(acts, k, keys[s])`. `init` may be a string or an explicit pair
    (W (S, rows, k), H (S, k, d)). With `mesh`, rows are split over `data`.

    Returns:
      `Factorization` with a leading seed axis: components (S, k, d), codes
      (S, rows, k), losses (S, iters + 1).
    """
    x = as_rows(acts, "acts", nonnegative=True)
    k = check_rank(k, *x.shape)
    num_seeds = check_positive_int(num_seeds, "num_seeds")
    _check_solver(solver)
    if isinstance(init, str):
        w, h = nmf_lib.init_seeds(x, k, jax.random.split(key, num_seeds), init)
    else:
        w, h = _init(x, k, key, init, num_seeds)
    ((w, h, losses),) = _fit_group(
        (x,), (w,), (h,), l1, solver=solver, iters=iters, mesh=mesh
    )
    return _result(w, h, losses)


def nmf_ranks(acts, ranks: Sequence[int], key, *, solver="mu", iters=200, l1=0.0):
    """One NMF per rank in `ranks`, padded to max(ranks) in one program.

    Rank r_i uses `jax.random.fold_in(key, i)` and its first r_i slots; the
    padded slots are zero in components and codes (entry i equals the
    unpadded rank-r_i fit up to rounding, except that random init draws
    max(ranks) slots and masks the rest).

    Returns:
      (`Factorization` with components (R, k_max, d), codes (R, rows, k_max),
      losses (R, iters + 1)), and the (R, k_max) 0/1 slot mask.
    """
    x = as_rows(acts, "acts", nonnegative=True)
    ranks = [check_rank(r, *x.shape) for r in ranks]
    _check_solver(solver)
    k_max = max(ranks)
    mask = (np.arange(k_max)[None] < np.asarray(ranks)[:, None]).astype(np.float32)
    mask = jnp.asarray(mask, x.dtype)
    keys = [jax.random.fold_in(key, i) for i in range(len(ranks))]
    # The init's scale sqrt(mean(X) / r) uses each entry's own rank.
    scale = jnp.sqrt(k_max / jnp.asarray(ranks, x.dtype))
    w, h = nmf_lib.init_seeds(x, k_max, keys, "random", mask)
    w, h = w * scale[:, None, None], h * scale[:, None, None]
    ((w, h, losses),) = _fit_group(
        (x,), (w,), (h,), l1, solver=solver, iters=iters, mesh=None
    )
    return _result(w, h, losses), mask


def nmf_layers(
    layers: Mapping[str, object],
    k,
    key,
    num_seeds,
    *,
    solver="mu",
    iters=200,
    l1=0.0,
    init="random",
    pad=False,
    mesh=None,
):
    """NMF of several layers x seeds: one program per layer shape (or one).

    Layer i (in mapping order) uses seeds `split(fold_in(key, i), S)`, so its
    result equals `nmf_seeds(layers[name], k, fold_in(key, i), S)` whatever
    the grouping.

    Args:
      layers: name -> (N, d) or (N, ..., C) non-negative activations.
      k: rank for every layer.
      key: PRNG key.
      num_seeds: S.
      init: "random", "nndsvd", "nndsvda", or a mapping name -> explicit
        (W (S, rows, k), H (S, k, d)).
      pad: zero-pad every layer to the largest (rows, d) and run one program
        (exact; trades padded flops for a single compilation).
      mesh: optional mesh; rows are split over its `data` axis.

    Returns:
      name -> `Factorization` with leading seed axis (as `nmf_seeds`).
    """
    xs = {
        name: as_rows(a, f"layers[{name!r}]", nonnegative=True)
        for name, a in layers.items()
    }
    num_seeds = check_positive_int(num_seeds, "num_seeds")
    if not isinstance(init, str) and set(init) != set(xs):
        raise ValueError(f"init must map every layer {sorted(xs)}, got {sorted(init)}")
    inits = {}
    for i, (name, x) in enumerate(xs.items()):
        check_rank(k, *x.shape)
        if isinstance(init, str):
            keys = jax.random.split(jax.random.fold_in(key, i), num_seeds)
            inits[name] = nmf_lib.init_seeds(x, k, keys, init)
        else:
            inits[name] = _init(x, k, key, init[name], num_seeds)
    _check_solver(solver)
    if pad:
        groups = {"all": list(xs)}
    else:
        groups = {}
        for name, x in xs.items():
            groups.setdefault(x.shape, []).append(name)
    out = {}
    for names in groups.values():
        fits = _fit_group(
            tuple(xs[n] for n in names),
            tuple(inits[n][0] for n in names),
            tuple(inits[n][1] for n in names),
            l1,
            solver=solver,
            iters=iters,
            mesh=mesh,
        )
        out.update({name: _result(*fit) for name, fit in zip(names, fits)})
    return {name: out[name] for name in xs}
