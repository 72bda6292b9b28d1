"""TCAV's SGD on many runs over shared pools, from block Gram matrices.

Retrieval-stability runs (`runs`) fit R CAVs of TCAV's `SGDClassifier`
(`probes.sgd`), run r on n_c rows of a concept pool and n_r rows of a
non-concept pool. Where the features are long (D > n) the fits step on
their (n, n) Gram matrices (`sgd.fit_sgd_gram`), and those matrices cost
one GEMM over D: the work that dominates large layers. One Gram matrix of
every used row would compute products no run needs when the runs of
several concepts are folded into one call: concept rows of different
concepts never meet in a run. So the used concept rows are split into
groups that no run crosses (the connected components of "run r uses row
i"; one group per concept when concepts have their own pools), and only
three kinds of block are computed:

* each group's own (m, m) block: C m^2 D,
* concept rows x non-concept rows: C m Q D,
* non-concept rows among themselves: Q^2 D,

against (C m + Q)^2 D for the pooled matrix: 2.4x fewer products for 10
concepts of 250 rows against 500 shared negatives. Each run's (n, n)
matrix is then gathered from the blocks. Where fewer runs than rows make
per-run matrices cheaper (R n^2 < C m^2 + C m Q + Q^2), those are computed
instead.

The SGD loops themselves are sequential (one sample at a time), so they
are split over a mesh's `data` axis when one is given: on a CPU that puts
one loop on each core, where the Gram GEMMs already use them all.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from jaxcxai import parallel
from jaxcxai.concepts.probes import sgd

__all__ = ["Layout", "fit_sgd_runs"]

_HI = jax.lax.Precision.HIGHEST


def _bucket(size: int) -> int:
    """size rounded up to a multiple of 2^(bits - 4), at least 8: at most
    1/8 more rows, and few distinct compiled shapes."""
    step = max(8, 1 << max(0, size.bit_length() - 4))
    return -(-size // step) * step


def _groups(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of `index` (R, n) split into groups that no run crosses.

    Returns:
      (rows (U,) distinct rows, row_group (U,), run_group (R,)): the group
      of each row and of each run, groups numbered 0..C-1.
    """
    rows, inverse = np.unique(index, return_inverse=True)
    r, u = index.shape[0], len(rows)
    runs = np.repeat(np.arange(r), index.shape[1])
    graph = coo_matrix(
        (np.ones(runs.size), (runs, r + inverse.ravel())), shape=(r + u, r + u)
    )
    _, labels = connected_components(graph, directed=False)  # 0..C-1
    return rows, labels[r:], labels[:r]


class Layout:
    """Where the runs' rows, (R, n_c) concept and (R, n_r) pool row numbers,
    sit in the block layout (host arrays).

    Groups are padded to one size m; where that costs more products than
    one block of all concept rows (uneven groups), all form one group.

    Attributes:
      pos_rows: (C m,) concept rows, group g at [g m, (g + 1) m), padded
        with copies of the group's first row.
      neg_rows: (Q,) non-concept rows (padded with copies of the first).
      pos_at: (R, n_c) each run's concept rows as positions in `pos_rows`.
      neg_at: (R, n_r) its non-concept rows as positions in `neg_rows`.
      group: (R,) each run's group.
      m: rows per group block.
    """

    def __init__(self, pos_index, neg_index):
        pos_index, neg_index = np.asarray(pos_index), np.asarray(neg_index)
        neg, inverse = np.unique(neg_index, return_inverse=True)
        q = _bucket(len(neg))
        rows, row_group, run_group = _groups(pos_index)
        sizes = np.bincount(row_group)
        m = _bucket(int(sizes.max()))
        one = _bucket(len(rows))
        if len(sizes) * m * (m + q) > one * (one + q):  # uneven groups: one block
            row_group, run_group = np.zeros_like(row_group), np.zeros_like(run_group)
            sizes, m = np.bincount(row_group), one
        order = np.argsort(row_group, kind="stable")
        local = np.empty(len(rows), np.int64)
        local[order] = np.arange(len(rows)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        pos_rows = np.repeat(rows[order][np.cumsum(sizes) - sizes], m)  # pads
        position = row_group * m + local  # of each distinct row
        pos_rows[position] = rows
        self.pos_rows, self.m, self.group = pos_rows, m, run_group
        self.pos_at = position[np.searchsorted(rows, pos_index)]
        self.neg_rows = np.concatenate([neg, np.full(q - len(neg), neg[0])])
        self.neg_at = inverse.reshape(neg_index.shape)

    def blocked(self) -> bool:
        """Whether the blocks cost no more products than per-run matrices."""
        c, q = len(self.pos_rows) // self.m, len(self.neg_rows)
        r, n = self.pos_at.shape[0], self.pos_at.shape[1] + self.neg_at.shape[1]
        return c * self.m**2 + c * self.m * q + q * q <= r * n * n


@functools.partial(jax.jit, static_argnums=(5, 6))
def _grams(xp, xn, group, pos_at, neg_at, m, blocked):
    """(R, n, n) Gram matrices of the runs' rows [concept; non-concept]."""
    if not blocked:
        x = jnp.concatenate([xp, xn])
        xr = x[jnp.concatenate([pos_at, neg_at + xp.shape[0]], axis=1)]
        return jnp.einsum("rid,rjd->rij", xr, xr, precision=_HI)
    xg = xp.reshape(-1, m, xp.shape[1])
    gpp = jnp.einsum("cid,cjd->cij", xg, xg, precision=_HI)
    gpn = jnp.einsum("id,jd->ij", xp, xn, precision=_HI)
    gnn = jnp.einsum("id,jd->ij", xn, xn, precision=_HI)
    local = pos_at - group[:, None] * m
    pp = gpp[group[:, None, None], local[:, :, None], local[:, None, :]]
    pn = gpn[pos_at[:, :, None], neg_at[:, None, :]]
    nn = gnn[neg_at[:, :, None], neg_at[:, None, :]]
    top = jnp.concatenate([pp, pn], axis=2)
    return jnp.concatenate([top, jnp.concatenate([pn.mT, nn], axis=2)], axis=1)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7))
def _loops(a, y, seeds, alpha, max_iter, gram, groups, chunk):
    """Every run's SGD: a is (R, n, n) Gram matrices or (R, n, D) rows, R =
    groups x chunks x chunk. Each group (a device's share under a mesh)
    runs its chunks one after another: a chunk's matrices stay in cache
    through its epochs, and its loop stops when its own fits have."""
    fit = sgd.fit_sgd_gram if gram else sgd.fit_sgd
    fit = jax.vmap(functools.partial(fit, alpha=alpha, max_iter=max_iter), (0, None, 0))
    shape = lambda v: v.reshape((groups, -1, chunk) + v.shape[1:])  # noqa: E731
    one = lambda g: jax.lax.map(lambda c: fit(c[0], y, c[1])[:2], g)  # noqa: E731
    coef, bias = jax.vmap(one)((shape(a), shape(seeds)))
    return coef.reshape((-1,) + coef.shape[3:]), bias.reshape(-1)


@jax.jit
def _weights(coef, xp, xn, pos_at, neg_at):
    """(R, D) w_r = sum_i coef[r, i] (row i of run r): the coefficients
    scattered over the concept and the non-concept block, one GEMM each
    (no copy of the two blocks into one)."""
    n_c = pos_at.shape[1]

    def spread(at, c, rows):  # (R, rows) coefficients per block row
        return jax.vmap(lambda i, v: jnp.zeros(rows, v.dtype).at[i].add(v))(at, c)

    w = jnp.einsum("rn,nd->rd", spread(pos_at, coef[:, :n_c], xp.shape[0]), xp,
                   precision=_HI)  # fmt: skip
    return w + jnp.einsum("rn,nd->rd", spread(neg_at, coef[:, n_c:], xn.shape[0]),
                          xn, precision=_HI)  # fmt: skip


def fit_sgd_runs(pos, neg, pos_index, neg_index, seeds, *, alpha: float,
                 max_iter: int, mesh=None):  # fmt: skip
    """TCAV's SGD for every run: pos[pos_index[r]] (+1) vs neg[neg_index[r]] (-1).

    Args:
      pos: (N_pos, D) concept features; neg: (N_neg, D) non-concept ones.
      pos_index: (R, n_c) and neg_index: (R, n_r) int rows of each run.
      seeds: (R,) uint32 shuffle seeds (`cavs.sgd_seeds`).
      alpha, max_iter: `SGDClassifier`'s.
      mesh: optional mesh; the loops are split over its `data` axis.

    Returns:
      ((R, D) weights, (R,) biases); a fit that overflowed has a NaN bias.
    """
    lay = Layout(pos_index, neg_index)
    pos, neg = jnp.asarray(pos), jnp.asarray(neg)
    xp, xn = pos[jnp.asarray(lay.pos_rows)], neg[jnp.asarray(lay.neg_rows)]
    pos_at, neg_at = jnp.asarray(lay.pos_at), jnp.asarray(lay.neg_at)
    (r, n_c), n_r = lay.pos_at.shape, lay.neg_at.shape[1]
    y = jnp.concatenate([jnp.ones(n_c), -jnp.ones(n_r)])
    gram = sgd.gram_form(pos.shape[1], n_c + n_r)
    if gram:
        a = _grams(xp, xn, jnp.asarray(lay.group), pos_at, neg_at, lay.m,
                   lay.blocked())  # fmt: skip
    else:
        a = jnp.concatenate([xp[pos_at], xn[neg_at]], axis=1)  # (R, n, D)
    groups = 1 if mesh is None else mesh.shape[parallel.DATA_AXIS]
    chunk = sgd.fits_per_chunk(
        -(-r // groups), math.prod(a.shape[1:]) * a.dtype.itemsize
    )
    pad = -r % (groups * chunk)  # copies of the last run, dropped after
    a, seeds = (jnp.concatenate([v, jnp.repeat(v[-1:], pad, 0)]) for v in (a, seeds))
    if mesh is not None:  # each device runs its share of the chunks
        a, seeds = jax.device_put((a, seeds), parallel.data_sharding(mesh))
    coef, bias = _loops(a, y, seeds, float(alpha), int(max_iter), gram, groups, chunk)
    coef, bias = jax.device_put((coef[:r], bias[:r]), xp.sharding)
    if not gram:
        return coef, bias
    return _weights(coef, xp, xn, pos_at, neg_at), bias
