"""TCAV in bulk: many CAVs per call, directional derivatives via `jax.vjp`.

A CAV (concept activation vector, Kim et al. 2018; concepts.md §2.2, a
reconstruction of the standard method) is the unit normal of a linear
classifier separating layer activations f_l(x) of concept examples (label 1)
from those of random examples (label 0). `fit_cavs` fits one CAV for every
(concept k, random set r) pair, K x R classifiers in one call:

* "logistic": L2-regularized logistic regression,
  J(w, b) = mean_i log(1 + exp(-y_i (w.x_i + b))) + alpha/2 ||w||^2;
* "hinge": the same with the hinge loss max(0, 1 - m), the objective of
  scikit-learn's `SGDClassifier` (TCAV's default, alpha = 0.01), here
  quadratically smoothed over a band of width `hinge_smoothing` below the
  margin so it can be solved with L-BFGS (exact hinge as the width -> 0);
* "mean_diff": the closed-form mean(concept) - mean(random) (FastCAV-style).

Solver (an exact reformulation, no approximation): with n = n_c + n_r, the
optimal w lies in the span of the (centered) examples, w = X^T beta. We
compute every pair's Gram matrix G = X X^T from three batched GEMMs (the
cross block concept x random dominates the cost: K R n_c n_r d MACs) and run
L-BFGS on the n coefficients beta with the inner product of w-space
(beta1 . G beta2), so it takes exactly the steps primal L-BFGS would take,
at O(n^2) instead of O(n d) per matrix-vector product. A fixed number of
steps runs vmapped over the K x R pairs; then w = X^T beta. The bias is not
regularized, as in scikit-learn, so centering all examples by their common
mean changes nothing but conditioning. Singular G (d < n, duplicates) is fine:
w is unique even where beta is not.

TCAV scores use directional derivatives of a class logit w.r.t. the layer
activations (`jax.vjp` through a `head_fn`); `run_tcav` puts fitting,
scores and the significance test (`stats`) together for one layer.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import parallel
from jaxcxai.concepts import stats

__all__ = [
    "Cavs",
    "METHODS",
    "flatten_acts",
    "fit_cavs",
    "cav_accuracy",
    "directional_derivatives",
    "tcav_scores",
    "run_tcav",
]

METHODS = ("logistic", "hinge", "mean_diff")
_HI = jax.lax.Precision.HIGHEST
_MEMORY = 5


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
        the "1D-CAV" of concepts.md §5.2).
    """
    acts = jnp.asarray(acts)
    if acts.ndim < 3:
        raise ValueError(f"expected (..., H, W, C) activations, got {acts.shape}")
    if pool == "flatten":
        return acts.reshape(acts.shape[:-3] + (-1,))
    if pool == "mean":
        return jnp.mean(acts, axis=(-3, -2))
    raise ValueError(f"unknown pool {pool!r}; use 'flatten' or 'mean'")


def _margin_loss_grad(method: str, smoothing: float) -> Callable:
    """d/dm of the margin loss L(m) (logistic or smoothed hinge)."""
    if method == "logistic":
        return lambda m: -jax.nn.sigmoid(-m)  # L = log(1 + exp(-m))
    h = smoothing
    # L = 0 for m >= 1, (1 - m)^2 / (2h) on (1 - h, 1), 1 - m - h/2 below.
    return lambda m: -jnp.clip(1.0 - m, 0.0, h) / h


def _gram_matvec(g_pp, g_nn, g_pn):
    """v -> G v for G = [[G_pp, G_pn], [G_pn^T, G_nn]] without forming G."""
    n_c = g_pp.shape[0]

    def matvec(v):
        vp, vn = v[:n_c], v[n_c:]
        top = jnp.dot(g_pp, vp, precision=_HI) + jnp.dot(g_pn, vn, precision=_HI)
        bottom = jnp.dot(vp, g_pn, precision=_HI) + jnp.dot(g_nn, vn, precision=_HI)
        return jnp.concatenate([top, bottom])

    return matvec


def _lbfgs_span(matvec, y, alpha, dloss, steps, memory=_MEMORY):
    """L-BFGS on J(w, b) with w = X^T beta, run on the coefficients beta.

    Every vector v of w-space is a coefficient vector c (v = X^T c) stored
    with its image G c, so inner products are c1 . (G c2), the logits are
    G beta + b, and the two-loop recursion needs no matrix products: the only
    one per iteration is G h for the new gradient coefficients h.

    Line search: the logits are linear in the step t, so the slope
    phi'(t) of J along the direction is cheap on a grid of t = 2^2 .. 2^-14.
    J is strictly convex, so phi' increases: the largest grid t with
    phi'(t) <= 0 is a descent step, refined by one secant step towards the
    next grid point (kept only if its slope is still <= 0). Slopes, unlike
    values of J, stay accurate in float32 near the optimum.
    """
    n = y.shape[0]
    dtype = jnp.float32
    grid = 2.0 ** jnp.arange(2, -15, -1, dtype=dtype)  # decreasing

    def dj_dz(z):  # z (..., n)
        yb = y.reshape((1,) * (z.ndim - 1) + y.shape)
        return yb * dloss(yb * z) / n

    def two_loop(mem, order, h, gh, gb):
        s, gs, sb, yv, gy, yb, rho = mem

        def backward(carry, j):  # newest first
            q, gq, qb = carry
            a = rho[j] * (s[j] @ gq + sb[j] * qb)
            return (q - a * yv[j], gq - a * gy[j], qb - a * yb[j]), a

        (q, gq, qb), coef = jax.lax.scan(backward, (h, gh, gb), order)
        j = order[0]
        yy = yv[j] @ gy[j] + yb[j] ** 2
        gamma = jnp.where(rho[j] > 0, 1.0 / jnp.maximum(rho[j] * yy, 1e-30), 1.0)

        def forward(carry, ja):  # oldest first
            (q, gq, qb), (j, a) = carry, ja
            d = a - rho[j] * (yv[j] @ gq + yb[j] * qb)
            return (q + d * s[j], gq + d * gs[j], qb + d * sb[j]), None

        init = (gamma * q, gamma * gq, gamma * qb)
        (q, gq, qb), _ = jax.lax.scan(forward, init, (order, coef), reverse=True)
        return -q, -gq, -qb

    def slope(t, z, dz, lin, quad):
        # t may carry a leading grid axis: z + t dz is then (T, n).
        t = jnp.asarray(t)
        shape = t.shape + z.shape
        z_t = jnp.broadcast_to(z, shape) + t[..., None] * jnp.broadcast_to(dz, shape)
        return dj_dz(z_t) @ dz + alpha * (0.5 * lin + t * quad)

    def step(state, it):
        beta, u, b, h, gh, gb, mem = state
        # The slot only depends on the iteration, so the memory is indexed
        # with an unbatched index under vmap (a slice, not a gather).
        order = (it - 1 - jnp.arange(memory)) % memory
        p, gp, pb = two_loop(mem, order, h, gh, gb)
        bad = h @ gp + gb * pb >= 0  # no descent: fall back to -gradient
        p, gp, pb = (jnp.where(bad, -h, p), jnp.where(bad, -gh, gp),
                     jnp.where(bad, -gb, pb))  # fmt: skip
        z, dz = u + b, gp + pb
        lin, quad = p @ u + beta @ gp, p @ gp
        slopes = slope(grid, z, dz, lin, quad)
        ok = slopes <= 0
        first = jnp.argmax(ok)  # largest grid t with a non-positive slope
        t_lo = jnp.where(ok.any(), grid[first], 0.0)
        hi = jnp.maximum(first - 1, 0)
        s_lo, s_hi = slopes[first], slopes[hi]
        t_sec = t_lo - s_lo * (grid[hi] - t_lo) / jnp.maximum(s_hi - s_lo, 1e-30)
        use_sec = (first > 0) & ok.any() & (slope(t_sec, z, dz, lin, quad) <= 0)
        t = jnp.where(use_sec, t_sec, t_lo)
        beta, u, b = beta + t * p, u + t * gp, b + t * pb
        r = dj_dz(u + b)
        h_new, gb_new = r + alpha * beta, jnp.sum(r)
        gh_new = matvec(h_new)
        new = (t * p, t * gp, t * pb, h_new - h, gh_new - gh, gb_new - gb)
        sy = new[0] @ new[4] + new[2] * new[5]
        rho = jnp.where(sy > 1e-30, 1.0 / jnp.where(sy > 1e-30, sy, 1.0), 0.0)
        slot = it % memory
        mem = tuple(m.at[slot].set(v) for m, v in zip(mem, new + (rho,)))
        return (beta, u, b, h_new, gh_new, gb_new, mem), None

    zeros = jnp.zeros(n, dtype)
    r0 = dj_dz(zeros)
    vecs = jnp.zeros((memory, n), dtype)
    scal = jnp.zeros(memory, dtype)
    mem = (vecs, vecs, scal, vecs, vecs, scal, scal)
    state = (zeros, zeros, jnp.zeros((), dtype), r0, matvec(r0), jnp.sum(r0), mem)
    state, _ = jax.lax.scan(step, state, jnp.arange(steps))
    return state[0], state[2]


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
    hinge_smoothing: float = 0.05,
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
        quadratic, slower).
      hinge_smoothing: width of the quadratic band of the smoothed hinge.
      mesh: optional mesh; the random runs (axis R) are split over its `data`
        axis (padded to a multiple of the shard count with copies of the last
        set, dropped afterwards), the concept sets are replicated. Each pair's
        fit is independent, so only the common centring shift sees all runs.

    Returns:
      `Cavs` with (K, R, d) directions and weights and (K, R) biases.
    """
    if method not in METHODS:
        raise ValueError(f"unknown CAV method {method!r}; use one of {METHODS}")
    pos = jnp.asarray(concept_acts, jnp.float32)
    neg = jnp.asarray(random_acts, jnp.float32)
    _check_sets(pos, neg)
    if steps is None:
        steps = 300 if method == "hinge" else 50
    args = (method, float(alpha), int(steps), float(hinge_smoothing))
    if mesh is None:
        return _fit_cavs(pos, neg, *args)
    r = neg.shape[0]
    shards = mesh.shape[parallel.DATA_AXIS]
    pad = -r % shards
    if pad:
        neg = jnp.concatenate([neg, jnp.repeat(neg[-1:], pad, axis=0)])
    neg = jax.device_put(neg, parallel.data_sharding(mesh))
    pos = jax.device_put(pos, parallel.replicated_sharding(mesh))
    cavs = _fit_cavs(pos, neg, *args)
    return jax.tree.map(lambda x: x[:, :r], cavs)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _fit_cavs(pos, neg, method, alpha, steps, smoothing):
    (k, n_c, _), (r, n_r, _) = pos.shape, neg.shape
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
    zp = jnp.einsum("krd,kid->kri", cavs.weight, pos, precision=_HI)
    zn = jnp.einsum("krd,rjd->krj", cavs.weight, neg, precision=_HI)
    zp, zn = zp + cavs.bias[..., None], zn + cavs.bias[..., None]
    correct = jnp.sum(zp > 0, -1) + jnp.sum(zn <= 0, -1)
    return correct / (pos.shape[1] + neg.shape[1])


def directional_derivatives(
    head_fn: Callable[[jax.Array], jax.Array],
    acts: jax.typing.ArrayLike,
    target: int | jax.typing.ArrayLike,
    cavs: jax.typing.ArrayLike,
    batch_size: int | None = None,
) -> jax.Array:
    """Conceptual sensitivities S(x) = grad_f h_target(f(x)) . v per CAV.

    Args:
      head_fn: the network from layer l to the logits, (B, *S) -> (B, classes).
        It must treat examples independently (BatchNorm in eval mode) so the
        gradient of the summed class logits is the per-example gradient.
      acts: (N, *S) layer-l activations of the examples (e.g. (N, H, W, C)).
      target: class index, scalar or (N,) per example.
      cavs: (..., d) CAV directions; d = prod(S) for flattened CAVs, or
        d = S[-1] (channels) for spatially pooled CAVs, whose directional
        derivative moves every position along v (summed spatial gradient).
      batch_size: examples per backward pass (default: all at once).

    Returns:
      (..., N) directional derivatives.
    """
    acts = jnp.asarray(acts)
    cavs = jnp.asarray(cavs)
    n, feat = acts.shape[0], acts.shape[1:]
    target = jnp.broadcast_to(jnp.asarray(target, jnp.int32), (n,))
    d = cavs.shape[-1]
    flat = d == int(jnp.size(acts) // n)
    if not flat and d != feat[-1]:
        raise ValueError(
            f"CAV size {d} matches neither the flattened activations "
            f"{int(jnp.size(acts) // n)} nor the channels {feat[-1]}"
        )
    batch_size = n if batch_size is None else batch_size
    if n % batch_size:
        raise ValueError(f"batch_size {batch_size} must divide N={n}")

    def grads(batch):
        a, t = batch
        logits, vjp = jax.vjp(head_fn, a)
        (g,) = vjp(jax.nn.one_hot(t, logits.shape[-1], dtype=logits.dtype))
        return (
            g.reshape(g.shape[0], -1) if flat else g.reshape(g.shape[0], -1, d).sum(1)
        )

    split = (acts.reshape((n // batch_size, batch_size) + feat),
             target.reshape(n // batch_size, batch_size))  # fmt: skip
    g = jax.lax.map(grads, split).reshape(n, -1)
    return jnp.einsum("...d,nd->...n", cavs, g, precision=_HI)


def tcav_scores(derivatives: jax.typing.ArrayLike) -> jax.Array:
    """TCAV score: fraction of examples with a positive derivative; (..., N) -> (...)."""
    return jnp.mean(jnp.asarray(derivatives) > 0, axis=-1)


def run_tcav(
    head_fn: Callable[[jax.Array], jax.Array],
    class_acts: jax.typing.ArrayLike,
    target: int | jax.typing.ArrayLike,
    concept_feats: jax.typing.ArrayLike,
    random_feats: jax.typing.ArrayLike,
    *,
    method: str = "logistic",
    alpha: float = 0.01,
    steps: int | None = None,
    num_tests: int | None = None,
    batch_size: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
) -> dict:
    """TCAV for one (layer, class): K concepts x R random runs in one call.

    Concept CAVs are fitted against each of the R random sets; the
    random-vs-random baseline fits random set 0 against sets 1..R-1 (TCAV's
    convention). Scores of both go into `stats.tcav_significance`.

    Args:
      head_fn: layer -> logits (see `directional_derivatives`).
      class_acts: (N, *S) layer activations of the class's examples.
      target: the class index (or (N,) indices).
      concept_feats: (K, n_c, d) CAV features of the concept sets (`flatten_acts`
        of (K, n_c, *S) maps; d = C for spatially pooled CAVs).
      random_feats: (R, n_r, d) features of R >= 3 random sets.
      method, alpha, steps: as `fit_cavs`.
      num_tests: hypotheses for the Bonferroni correction (default K).
      batch_size: examples per backward pass.
      mesh: optional mesh over whose `data` axis the random runs of the CAV
        fits are split (see `fit_cavs`).

    Returns:
      Dict with `cavs` (K x R), `scores` (K, R), `random_scores` (R - 1,) and
      the per-concept entries of `stats.tcav_significance`.
    """
    random_feats = jnp.asarray(random_feats)
    if random_feats.shape[0] < 3:
        raise ValueError(
            f"run_tcav needs at least 3 random sets for the t-test, got "
            f"{random_feats.shape[0]}"
        )
    kw = dict(method=method, alpha=alpha, steps=steps, mesh=mesh)
    cavs = fit_cavs(concept_feats, random_feats, **kw)
    rand = fit_cavs(random_feats[:1], random_feats[1:], **kw)
    k, r = cavs.direction.shape[:2]
    dirs = jnp.concatenate(
        [cavs.direction.reshape(k * r, -1), rand.direction.reshape(r - 1, -1)]
    )
    scores = tcav_scores(
        directional_derivatives(head_fn, class_acts, target, dirs, batch_size)
    )
    concept_scores, random_scores = scores[: k * r].reshape(k, r), scores[k * r :]
    sig = stats.tcav_significance(
        np.asarray(concept_scores), np.asarray(random_scores), num_tests=num_tests
    )
    return {
        "cavs": cavs,
        "scores": concept_scores,
        "random_scores": random_scores,
        **sig,
    }
