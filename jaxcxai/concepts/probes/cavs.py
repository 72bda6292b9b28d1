"""CAVs: the `Cavs` container, CAV features, bulk fitting and held-out accuracy.

`fit_cavs` fits K x R (concept, random set) classifiers in one call (methods
and solver: see the `tcav` docstring; the solver is in `solver`, TCAV's
default SGD in `sgd`).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import parallel
from jaxcxai.checks import check_finite
from jaxcxai.concepts.probes.sgd import (
    fit_sgd,
    fit_sgd_gram,
    fits_per_chunk,
    gram_form,
    sklearn_seed,
)
from jaxcxai.concepts.probes.solver import (
    _HI,
    _gram_matvec,
    _lbfgs_span,
    _margin_loss_grad,
)

__all__ = ["Cavs", "METHODS", "flatten_acts", "fit_cavs", "cav_accuracy"]


METHODS = ("logistic", "hinge", "sgd", "mean_diff")
HINGE_SMOOTHING = 0.05  # band of the smoothed hinge (`fit_cavs`' default)


class Cavs(NamedTuple):
    """K x R linear concept classifiers on flattened activations.

    Attributes:
      direction: (K, R, d) unit CAVs (unit normal of the separating plane).
      weight: (K, R, d) classifier weights w.
      bias: (K, R) biases; the classifier is w.x + b > 0 on raw activations.
    """

    direction: jax.Array
    weight: jax.Array
    bias: jax.Array


def flatten_acts(acts: jax.typing.ArrayLike, pool: str = "flatten") -> jax.Array:
    """Turns (..., H, W, C) activation maps into (..., d) CAV features.

    Args:
      acts: (..., H, W, C) maps.
      pool: "flatten" (d = H*W*C, plain TCAV) or "mean" (d = C, spatial mean,
        the "1D-CAV" of Mikriukov et al. 2023, arXiv 2304.14864).
    """
    acts = jnp.asarray(acts)
    if acts.ndim < 3:
        raise ValueError(f"expected (..., H, W, C) activations, got {acts.shape}")
    if pool == "flatten":
        return acts.reshape(acts.shape[:-3] + (-1,))
    if pool == "mean":
        return jnp.mean(acts, axis=(-3, -2))
    raise ValueError(f"unknown pool {pool!r}; use 'flatten' or 'mean'")


def _check_sets(concept_acts, random_acts):
    if concept_acts.ndim != 3 or random_acts.ndim != 3:
        raise ValueError(
            "fit_cavs needs concept_acts (K, n_c, d) and random_acts (R, n_r, d), "
            f"got {concept_acts.shape} and {random_acts.shape}; flatten maps "
            "with flatten_acts first"
        )
    if concept_acts.shape[-1] != random_acts.shape[-1]:
        raise ValueError(
            f"feature sizes differ: {concept_acts.shape[-1]} vs {random_acts.shape[-1]}"
        )


def fit_cavs(
    concept_acts: jax.typing.ArrayLike,
    random_acts: jax.typing.ArrayLike,
    *,
    method: str = "logistic",
    alpha: float = 0.01,
    steps: int | None = None,
    hinge_smoothing: float = HINGE_SMOOTHING,
    random_state: int | jax.typing.ArrayLike = 0,
    mesh: jax.sharding.Mesh | None = None,
) -> Cavs:
    """Fits a CAV for every (concept, random set) pair.

    Args:
      concept_acts: (K, n_c, d) concept examples (label 1).
      random_acts: (R, n_r, d) random examples (label 0).
      method: one of `METHODS`.
      alpha: L2 strength (scikit-learn's `alpha`; the loss is a mean).
      steps: L-BFGS iterations (static); default 50 for "logistic" (smooth,
        converged to ~1e-5 relative) and 300 for "hinge" (piecewise
        quadratic, slower); for "sgd" the most epochs (scikit-learn's
        `max_iter`, default 1000; it stops early at `tol=1e-3`).
      hinge_smoothing: width of the quadratic band of the smoothed hinge.
      random_state: "sgd" only: scikit-learn's `random_state` of each pair's
        `SGDClassifier`, an int for all pairs or (K, R) ints; the epochs'
        shuffles are then scikit-learn's own (`sgd.sklearn_seed`). Each
        pair's examples are ordered concept rows first, then random rows.
      mesh: optional mesh; the random runs (axis R) are split over its `data`
        axis (padded to a multiple of the shard count with copies of the last
        set, dropped afterwards), the concept sets are replicated. Each pair's
        fit is independent, so only the common centring shift sees all runs.

    Returns:
      `Cavs` with (K, R, d) directions and weights and (K, R) biases.

    Raises:
      NonFiniteError: an input holds NaN or inf (names it and the count).
    """
    pos = jnp.asarray(concept_acts, jnp.float32)
    neg = jnp.asarray(random_acts, jnp.float32)
    check_finite({"concept_acts": pos, "random_acts": neg})
    return _fit_pairs(pos, neg, method, alpha, steps, hinge_smoothing, mesh,
                      random_state)  # fmt: skip


def sgd_seeds(random_state, shape: tuple[int, ...]) -> np.ndarray:
    """uint32 shuffle seeds of shape `shape` from scikit-learn random states.

    Args:
      random_state: an int (every fit) or ints of shape `shape`.

    Raises:
      ValueError: `random_state` is neither, naming its shape.
    """
    rs = np.asarray(random_state)
    if rs.dtype.kind not in "iu" or rs.ndim not in (0, len(shape)) or (
            rs.ndim and rs.shape != tuple(shape)):  # fmt: skip
        raise ValueError(f"random_state must be an int or integers of shape "
                         f"{tuple(shape)}, got {rs.dtype} of shape {rs.shape}")  # fmt: skip
    if rs.ndim == 0:
        return np.full(shape, sklearn_seed(int(rs)), np.uint32)
    flat = [sklearn_seed(int(v)) for v in rs.reshape(-1)]
    return np.asarray(flat, np.uint32).reshape(shape)


def default_steps(method: str, steps: int | None) -> int:
    """`steps`, or the method's default (`fit_cavs`)."""
    if steps is not None:
        return int(steps)
    return {"hinge": 300, "sgd": 1000}.get(method, 50)


def _fit_pairs(pos, neg, method, alpha, steps, hinge_smoothing, mesh,
               random_state=0) -> Cavs:  # fmt: skip
    """`fit_cavs` on float32 arrays already checked to be finite."""
    if method not in METHODS:
        raise ValueError(f"unknown CAV method {method!r}; use one of {METHODS}")
    _check_sets(pos, neg)
    seeds = sgd_seeds(random_state, (pos.shape[0], neg.shape[0]))
    args = (method, float(alpha), default_steps(method, steps), float(hinge_smoothing))
    seeds = jnp.asarray(seeds, jnp.uint32)
    if mesh is None:
        return _check_sgd(method, _fit_cavs(pos, neg, seeds, *args))
    r = neg.shape[0]
    shards = mesh.shape[parallel.DATA_AXIS]
    pad = -r % shards
    if pad:
        neg = jnp.concatenate([neg, jnp.repeat(neg[-1:], pad, axis=0)])
        seeds = jnp.concatenate([seeds, jnp.repeat(seeds[:, -1:], pad, axis=1)], 1)
    neg = jax.device_put(neg, parallel.data_sharding(mesh))
    seeds = jax.device_put(seeds, jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec(None, parallel.DATA_AXIS)))  # fmt: skip
    pos = jax.device_put(pos, parallel.replicated_sharding(mesh))
    cavs = _fit_cavs(pos, neg, seeds, *args)
    return _check_sgd(method, jax.tree.map(lambda x: x[:, :r], cavs))


def _check_sgd(method, cavs):
    """SGD can overflow where scikit-learn raises; say so instead of NaN CAVs."""
    if method == "sgd":
        check_finite({"sgd CAV weights": cavs.weight, "sgd CAV biases": cavs.bias},
                     hint="the SGD fit overflowed; scale the activations")  # fmt: skip
    return cavs


def _sgd_pairs(pos, neg, seeds, alpha, max_iter):
    """TCAV's `SGDClassifier` on every (concept set, random set) pair, rows
    [pos; neg]: primal steps (`sgd.fit_sgd`) for short rows (d <= n), else
    the Gram form (`sgd.fit_sgd_gram`) from the three blocks.

    Concepts run in chunks (`lax.map`), each against all random sets: only a
    chunk's inputs are formed at once (K x R pairs of rows or Gram matrices
    would not fit for thousands of probes), they stay in cache through the
    epochs (`sgd.CACHE_BYTES`), and a chunk's loop stops when its fits have.
    A mesh's split of the random sets is kept inside each chunk.
    """
    (k, n_c, d), (r, n_r) = pos.shape, neg.shape[:2]
    y = jnp.concatenate([jnp.ones(n_c), -jnp.ones(n_r)])
    hypers = dict(alpha=alpha, max_iter=max_iter)
    gram = gram_form(d, n_c + n_r)
    size = (n_c + n_r) * (n_c + n_r if gram else d) * pos.dtype.itemsize
    chunk = fits_per_chunk(k, r * size)
    if not gram:

        def primal(p, q, seed):
            w, b, _ = fit_sgd(jnp.concatenate([p, q]), y, seed, **hypers)
            return w, b

        concept = lambda ps: jax.vmap(primal, (None, 0, 0))(ps[0], neg, ps[1])  # noqa: E731
        return jax.lax.map(concept, (pos, seeds), batch_size=chunk)
    g_nn = jnp.einsum("rid,rjd->rij", neg, neg, precision=_HI)

    def dual(gpp, gnn, gpn, seed):
        gram = jnp.block([[gpp, gpn], [gpn.T, gnn]])
        a, b, _ = fit_sgd_gram(gram, y, seed, **hypers)
        return a, b

    def concept(ps):
        p, s = ps
        g_pp = jnp.einsum("id,jd->ij", p, p, precision=_HI)
        g_pn = jnp.einsum("id,rjd->rij", p, neg, precision=_HI)
        a, b = jax.vmap(dual, (None, 0, 0, 0))(g_pp, g_nn, g_pn, s)
        w = jnp.einsum("ri,id->rd", a[:, :n_c], p, precision=_HI)
        return w + jnp.einsum("rj,rjd->rd", a[:, n_c:], neg, precision=_HI), b

    return jax.lax.map(concept, (pos, seeds), batch_size=chunk)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _fit_cavs(pos, neg, seeds, method, alpha, steps, smoothing):
    (k, n_c, _), (r, n_r, _) = pos.shape, neg.shape
    if method == "sgd":
        w, b = _sgd_pairs(pos, neg, seeds, alpha, steps)
        return Cavs(_unit(w), w, b)
    if method == "mean_diff":
        w = pos.mean(1)[:, None, :] - neg.mean(1)[None, :, :]
        mid = 0.5 * (pos.mean(1)[:, None, :] + neg.mean(1)[None, :, :])
        b = -jnp.sum(w * mid, axis=-1)  # plane through the midpoint
        return Cavs(_unit(w), w, b)
    # The bias is free, so a common shift of all examples is exact.
    mu = (pos.sum((0, 1)) + neg.sum((0, 1))) / (k * n_c + r * n_r)
    pos, neg = pos - mu[None, None], neg - mu[None, None]
    y = jnp.concatenate([jnp.ones(n_c), -jnp.ones(n_r)])
    dloss = _margin_loss_grad(method, smoothing)
    g_pp = jnp.einsum("kid,kjd->kij", pos, pos, precision=_HI)
    g_nn = jnp.einsum("rid,rjd->rij", neg, neg, precision=_HI)
    g_pn = jnp.einsum("kid,rjd->krij", pos, neg, precision=_HI)  # the big GEMM

    def solve(gpp, gnn, gpn):
        return _lbfgs_span(_gram_matvec(gpp, gnn, gpn), y, alpha, dloss, steps)

    solve = jax.vmap(jax.vmap(solve, (None, 0, 0)), (0, None, 0))
    beta, b = solve(g_pp, g_nn, g_pn)  # (K, R, n), (K, R)
    w = jnp.einsum("kri,kid->krd", beta[..., :n_c], pos, precision=_HI)
    w = w + jnp.einsum("krj,rjd->krd", beta[..., n_c:], neg, precision=_HI)
    b = b - jnp.einsum("krd,d->kr", w, mu, precision=_HI)
    return Cavs(_unit(w), w, b)


def _unit(w):
    norm = jnp.linalg.norm(w, axis=-1, keepdims=True)
    return w / jnp.maximum(norm, 1e-30)


def cav_accuracy(cavs: Cavs, concept_acts, random_acts) -> jax.Array:
    """Held-out accuracy of every CAV classifier (threshold w.x + b > 0).

    Args:
      cavs: `Cavs` of shape (K, R, d).
      concept_acts: (K, m_c, d) held-out concept examples.
      random_acts: (R, m_r, d) held-out random examples.

    Returns:
      (K, R) accuracies over the m_c + m_r examples of each pair.
    """
    pos = jnp.asarray(concept_acts, jnp.float32)
    neg = jnp.asarray(random_acts, jnp.float32)
    check_finite({"cavs": cavs, "concept_acts": pos, "random_acts": neg})
    zp = jnp.einsum("krd,kid->kri", cavs.weight, pos, precision=_HI)
    zn = jnp.einsum("krd,rjd->krj", cavs.weight, neg, precision=_HI)
    zp, zn = zp + cavs.bias[..., None], zn + cavs.bias[..., None]
    correct = jnp.sum(zp > 0, -1) + jnp.sum(zn <= 0, -1)
    return correct / (pos.shape[1] + neg.shape[1])
