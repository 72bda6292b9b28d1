"""TCAV's default CAV classifier: scikit-learn's plain hinge SGD, vmappable.

TCAV's `cav.py` fits each CAV with scikit-learn's
`SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3)`: L2-regularized hinge
loss, one sample at a time, stopped after five epochs without a `tol`
improvement of the epoch's mean objective. It stops far from the hinge
optimum (the "hinge" method of `cavs.fit_cavs` solves that optimum), so its
CAVs carry optimizer noise that studies built on TCAV's defaults (retrieval
stability, Mikriukov et al. 2023, arXiv 2304.14864) measure along with the
data's. To reproduce them, this module runs the same algorithm as a pure
jax function that vmaps over thousands of fits:

* binary labels y in {-1, +1}, weights and intercept start at zero;
* the "optimal" learning rate eta_t = 1 / (alpha (t0 + t - 1)) with
  t0 = 1 / (alpha sqrt(1 / sqrt(alpha))) (Bottou's heuristic, t from 1);
* per sample, in the epoch's order: p = w.x + b; the objective term
  hinge(y p) + alpha/2 ||w||^2 is summed; w <- (1 - eta alpha) w + u x and
  b <- b + u with u = eta y where y p <= 1 (else 0);
* before every epoch the sample order is shuffled by the same Fisher-Yates
  swap sequence, drawn from scikit-learn's xorshift generator (`our_rand_r`)
  started from the fit's seed, applied to the previous epoch's order;
* after every epoch, with m the epoch's mean objective: a "no improvement"
  count grows when m > best - tol and resets otherwise, best = min(best, m);
  the fit stops when the count reaches `n_iter_no_change` or after
  `max_iter` epochs.

With the seed `sklearn_seed(random_state)` the shuffles are scikit-learn's
own, so a float64 fit matches `SGDClassifier(random_state=...)` to rounding
(tested against scikit-learn 1.9); in float32 the two stay within float32
rounding of each other unless a sample sits on the hinge's kink (y p = 1) in
one and not the other. The stopping rule is that of the scikit-learn the
tests run (1.9: the epoch's mean of loss plus penalty); to reproduce a
paper's CAVs, check that its scikit-learn release stopped on the same
quantity (`linear_model/_sgd_fast.pyx`), or fits stop at other epochs.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import parallel
from jaxcxai.checks import check_finite
from jaxcxai.concepts.probes.shuffles import shuffle_permutation, sklearn_seed

__all__ = [
    "sklearn_seed",
    "shuffle_permutation",
    "gram_form",
    "CACHE_BYTES",
    "fits_per_chunk",
    "fit_sgd",
    "fit_sgd_gram",
]


def _sgd(dot, add, scale, v0, y, xsq, seed, alpha, max_iter, tol,
         n_iter_no_change, gram=None):  # fmt: skip
    """The solver. `fit_sgd` (primal) and `fit_sgd_gram` (dual) supply the
    state's algebra: `dot(v, i) = v.x_i`, `add(v, d, i)`: v + d x_i, and
    `scale(v, c)`: c v; the dual also its Gram matrix (`_gram_blocks`).

    w = c v, as scikit-learn's `WeightVector` keeps it: w <- s w + u x_i is
    c <- s c, v <- v + (u / c) x_i, so no step rescales all of v (fewer
    passes, and in float32 no rounding of every coefficient at every step:
    40k steps of it had moved the coefficients by up to 8%). c is folded
    into v after every epoch; within one it shrinks by no less than
    (t0 - 1) / (t0 + n - 1), as the learning rates telescope. Where that
    bound is not positive (alpha >= 1: the first step zeroes w), w itself
    is the state (`plain`).
    """
    n, dtype = y.shape[0], y.dtype
    perm = shuffle_permutation(seed, n)
    typw = np.sqrt(1.0 / np.sqrt(alpha))
    t0 = 1.0 / (typw * alpha)  # hinge: the gradient at (1, -typw) is 1
    plain = t0 <= 1.0 or (t0 - 1.0) / (t0 + n - 1.0) < 1e-20

    def scalars(sc, wx, yi, xi2):
        """One step on (c, b, t, sq, obj) given w.x_i: also u and s."""
        c, b, t, sq, obj = sc
        p = wx + b
        eta = 1.0 / (alpha * (t0 + t - 1.0))
        obj = obj + jnp.maximum(0.0, 1.0 - yi * p) + 0.5 * alpha * sq
        u = jnp.where(yi * p <= 1.0, eta * yi, 0.0)
        s = jnp.maximum(0.0, 1.0 - eta * alpha)
        c = c if plain else c * s
        # ||w||^2 kept as scikit-learn keeps it: updated, not recomputed.
        sq = s * s * sq + 2.0 * s * u * wx + u * u * xi2
        return (c, b + u, t + 1.0, sq, obj), u, s

    def step(carry, i):
        v, sc = carry
        sc, u, s = scalars(sc, sc[0] * dot(v, i), y[i], xsq[i])
        if plain:
            v = add(scale(v, s.astype(dtype)), u.astype(dtype), i)
        else:
            v = add(v, (u / sc[0]).astype(dtype), i)
        return (v, sc), None

    def run(v, sc, order):  # one epoch's steps, in `order`
        if gram is None or plain:
            return jax.lax.scan(step, (v, sc), order)[0]
        return _gram_blocks(scalars, gram, y, xsq, dtype, (v, sc), order)

    def epoch(state):
        order, v, b, t, sq, best, count, done, k = state
        order = order[perm]
        zero, one = parallel.vary_like((jnp.zeros((), dtype), jnp.ones((), dtype)), t)
        v, (c, b, t, sq, obj) = run(v, (one, b, t, sq, zero), order)
        mean = obj / n
        count = jnp.where(mean > best - tol, count + 1, 0)
        best = jnp.minimum(best, mean)
        # Overflow (p or ||w||^2 not finite) stops the fit with a NaN
        # intercept: scikit-learn raises there; callers check and raise.
        bad = ~jnp.isfinite(mean)
        done = (count >= n_iter_no_change) | bad
        v, b = scale(v, c), jnp.where(bad, jnp.nan, b)
        return order, v, b, t, sq, best, count, done, k + 1

    def more(state):
        return ~state[7] & (state[8] < max_iter)

    zero = jnp.zeros((), dtype)
    # t counts steps in `dtype`: exact up to 2^24 (n x epochs) in float32.
    state = (jnp.arange(n, dtype=jnp.int32), v0, zero, jnp.ones((), dtype), zero,
             jnp.asarray(jnp.inf, dtype), jnp.zeros((), jnp.int32),
             jnp.zeros((), bool), jnp.zeros((), jnp.int32))  # fmt: skip
    anchor = y[0] + xsq[0] + jnp.asarray(seed).astype(dtype)  # varies as inputs do
    state = jax.lax.while_loop(more, epoch, parallel.vary_like(state, anchor))
    return state[1], state[2], state[8]


# Steps per loop iteration of the Gram form: fewer, larger iterations ran
# 1.3-1.5x faster (200 fits of n = 200 on the 2-core EPYC; 4 and 8 alike,
# 16 slower as the unrolled block grows).
_BLOCK = 8


def _gram_blocks(scalars, gram, y, xsq, dtype, carry, order):
    """One epoch of the Gram form, `_BLOCK` samples per loop iteration.

    A block gathers its samples' rows of G once; within it, each margin
    q_i takes the block's earlier updates from the (B, B) sub-block, and q
    takes all B rows after it, each added in step order: the same sums in
    the same order as one step at a time, so the fit is bitwise the same.
    """
    n = order.shape[0]

    def block(carry, idx):
        ((a, q), sc), k = carry, idx.shape[0]
        rows = gram[idx]  # (B, n)
        sub, qb, yb, xb = rows[:, idx], q[idx], y[idx], xsq[idx]
        ds = []
        for j in range(k):
            sc, u, _ = scalars(sc, sc[0] * qb[j], yb[j], xb[j])
            ds.append((u / sc[0]).astype(dtype))
            qb = qb + ds[j] * sub[j]
        for j in range(k):
            q = q + ds[j] * rows[j]
        return ((a.at[idx].add(jnp.stack(ds)), q), sc), None

    full = n - n % _BLOCK
    carry = jax.lax.scan(block, carry, order[:full].reshape(-1, _BLOCK))[0]
    return block(carry, order[full:])[0] if full < n else carry


def gram_form(dim: int, n: int) -> bool:
    """Whether `fit_sgd_gram` beats `fit_sgd` for n rows of `dim` features:
    its steps cost O(n), the primal's O(dim)."""
    return dim > n


CACHE_BYTES = 8 * 2**20  # the inputs of fits run together: `fits_per_chunk`


def fits_per_chunk(fits: int, per_fit_bytes: int) -> int:
    """Fits vmapped together per step of a loop over chunks: their inputs
    (read at every SGD step) within CACHE_BYTES, at least one, the chunks as
    even as that allows. 200 runs of (200, 200) Gram matrices ran 1.3-1.5x
    faster in chunks of 40 than all at once (2-core EPYC)."""
    most = max(1, CACHE_BYTES // max(per_fit_bytes, 1))
    return -(-fits // -(-fits // most))


def _inputs(name, rows, y, square):
    """(rows, y) as float32/float64 arrays, checked: (n, D) rows (square for
    a Gram matrix), (n,) labels, finite (skipped inside a trace)."""
    rows = jnp.asarray(rows)
    if rows.dtype not in (jnp.float32, jnp.float64):
        rows = rows.astype(jnp.float32)
    y = jnp.asarray(y, rows.dtype)
    if (
        rows.ndim != 2
        or rows.shape[0] < 1
        or (square and rows.shape[0] != rows.shape[1])
    ):
        want = "(n, n) Gram matrix" if square else "(n, D) features"
        raise ValueError(f"{name} must be an {want}, got shape {rows.shape}")
    if y.shape != rows.shape[:1]:
        raise ValueError(f"y must be ({rows.shape[0]},) labels, got shape {y.shape}")
    check_finite({name: rows, "y": y})
    return rows, y


def _hypers(alpha, max_iter, tol, n_iter_no_change):
    tol = -np.inf if tol is None else float(tol)
    return float(alpha), int(max_iter), tol, int(n_iter_no_change)


def fit_sgd(
    x: jax.typing.ArrayLike,
    y: jax.typing.ArrayLike,
    seed: jax.typing.ArrayLike,
    *,
    alpha: float = 0.01,
    max_iter: int = 1000,
    tol: float | None = 1e-3,
    n_iter_no_change: int = 5,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One `SGDClassifier` hinge fit (module docstring), as a pure function.

    Vmap it over fits (x, y and seed batched); jit it with the keyword
    arguments static. Each step reads one row and updates w: O(D).

    Args:
      x: (n, D) float32 or float64 features (the dtype of the fit).
      y: (n,) labels, +1 (positive class) or -1.
      seed: uint32 shuffle seed (`sklearn_seed(random_state)` reproduces
        scikit-learn's shuffles).
      alpha: L2 strength (scikit-learn's `alpha`).
      max_iter: most epochs.
      tol: stopping tolerance on the epoch's mean objective; None never
        stops early (scikit-learn's `tol=None`).
      n_iter_no_change: epochs without improvement before stopping.

    Returns:
      (w (D,), b (), epochs ()): scikit-learn's `coef_[0]`, `intercept_[0]`
      and `n_iter_`. A fit that overflowed stops with a NaN intercept b
      (scikit-learn raises); callers check.

    Raises:
      ValueError: x is not (n, D) or y not (n,), naming the shape.
      NonFiniteError: x or y holds NaN or inf (outside a trace).

    References:
      Kim et al. 2018 (TCAV, whose `cav.py` uses these settings); Bottou
      2010, "Large-scale machine learning with stochastic gradient descent".
    """
    x, y = _inputs("x", x, y, square=False)
    dot = lambda w, i: jnp.dot(w, x[i], precision=jax.lax.Precision.HIGHEST)  # noqa: E731
    add = lambda w, d, i: w + d * x[i]  # noqa: E731
    scale = lambda w, c: c * w  # noqa: E731
    w0 = jnp.zeros(x.shape[1], x.dtype)
    hypers = _hypers(alpha, max_iter, tol, n_iter_no_change)
    return _sgd(dot, add, scale, w0, y, jnp.sum(x * x, axis=1), seed, *hypers)


def fit_sgd_gram(
    gram: jax.typing.ArrayLike,
    y: jax.typing.ArrayLike,
    seed: jax.typing.ArrayLike,
    *,
    alpha: float = 0.01,
    max_iter: int = 1000,
    tol: float | None = 1e-3,
    n_iter_no_change: int = 5,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`fit_sgd` on the Gram matrix G = X X^T: w = X^T a, exactly.

    Starting from w = 0, every update keeps w in the span of the rows,
    w = X^T a, so the same steps run on the n coefficients a: w.x_i =
    (G a)_i and w <- s w + u x_i is a <- s a + u e_i. A step costs O(n)
    instead of O(D), and one GEMM (n^2 D, shared by fits on rows of one
    pool) replaces the epochs' memory-bound passes over w (about
    2 epochs n D): the form for bulk CAVs, where D >> n.

    Args:
      gram: (n, n) Gram matrix of the fit's rows (float32 or float64).
      y, seed, alpha, max_iter, tol, n_iter_no_change: as in `fit_sgd`.

    Returns:
      (a (n,), b (), epochs ()): w = X^T a and scikit-learn's intercept.

    Raises:
      ValueError: gram is not (n, n) or y not (n,), naming the shape.
      NonFiniteError: gram or y holds NaN or inf (outside a trace).
    """
    gram, y = _inputs("gram", gram, y, square=True)

    # The state: a and q = G a (kept, not recomputed), so that
    # w.x_i = (G a)_i = q_i is one read, and a <- a + d e_i is
    # q <- q + d G_i, one axpy: 1.2-1.9x faster than a dot per step.
    def dot(v, i):
        return v[1][i]

    def add(v, d, i):
        return v[0].at[i].add(d), v[1] + d * gram[i]

    def scale(v, c):
        return c * v[0], c * v[1]

    zeros = jnp.zeros(gram.shape[0], gram.dtype)
    hypers = _hypers(alpha, max_iter, tol, n_iter_no_change)
    (a, _), b, epochs = _sgd(dot, add, scale, (zeros, zeros), y,
                             jnp.diagonal(gram), seed, *hypers, gram=gram)  # fmt: skip
    return a, b, epochs
