"""The span L-BFGS solver behind `tcav.fit_cavs` (see the `tcav` docstring).

L-BFGS on the coefficients beta of w = X^T beta, with w-space inner products
through the Gram matrix (`_gram_matvec`), for the logistic or smoothed-hinge
margin loss (`_margin_loss_grad`).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

_HI = jax.lax.Precision.HIGHEST


_MEMORY = 5


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
