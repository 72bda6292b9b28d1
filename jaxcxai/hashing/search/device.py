"""The device side of `search.hamming_topk`: steps 1-3 (group minima,
radius, group bitmaps) everywhere, and step 4 on accelerators.

Step 4 on the device, `select_on_device`: exact candidate selection.
`host` runs step 4 (exact distances of the candidate groups and a
stable sort) with NumPy on the host. On an accelerator that host work is
most of the search time (about two thirds on an H100 for 1M x 64-bit codes
and 1000 queries), so this module does the same on the device:

  1. keep = (m_g < r) or (m_g == r and g is among the first k - #lt groups
     with m_g == r, in index order) -- the candidate groups of the module
     doc of `search`; the first `max_groups` of them per query, in group
     (hence item-index) order, are found with `lax.top_k` on -g;
  2. exact distances of the gathered groups' items; items beyond the radius,
     in padding groups or past the end of the database are excluded;
  3. the k smallest keys distance * P + position (P candidates per query)
     by `lax.top_k`: keys are unique, and the position order is the index
     order, so this is the first k of a stable sort by distance.

If a query has more than `max_groups` candidate groups (rare: a database
clustered around it), `select_on_device` reports it and the caller falls
back to the host path for that query chunk, so the result is always exact.
"""

import functools

import jax
import jax.numpy as jnp

__all__ = ["select_on_device"]

_COUNT_BLOCK = 64  # int8 partial counts stay < 128


@functools.partial(jax.jit, static_argnames=("group",))
def _group_minima(q_words, db_words, valid, group):
    """(C / group, Q) uint8 minimum distance per group of database items."""
    dist = jax.lax.population_count(db_words[:, None, 0] ^ q_words[None, :, 0])
    for w in range(1, q_words.shape[1]):
        dist += jax.lax.population_count(db_words[:, None, w] ^ q_words[None, :, w])
    dist = jnp.where(valid[:, None], dist, jnp.uint32(255))
    c, nq = dist.shape
    return jnp.min(dist.reshape(c // group, group, nq), axis=1).astype(jnp.uint8)


def _count_le(m, t):
    """#{g : m[g, q] <= t[q]} per query; int8 partial sums keep XLA fused."""
    hit = (m <= t.astype(jnp.uint8)[None, :]).astype(jnp.int8)
    part = jnp.sum(hit.reshape(-1, _COUNT_BLOCK, m.shape[1]), axis=1, dtype=jnp.int8)
    return jnp.sum(part.astype(jnp.int32), axis=0)


def _bisect(m, k, lo, hi):
    """Smallest t in [lo, hi] with count_le(m, t) >= k (hi if none)."""

    def cond(c):
        return jnp.any(c[0] < c[1])

    def body(c):
        lo, hi = c
        mid = (lo + hi) // 2
        ok = _count_le(m, mid) >= k
        return jnp.where(ok, lo, mid + 1), jnp.where(ok, mid, hi)

    return jax.lax.while_loop(cond, body, (lo, hi))[1]


@functools.partial(jax.jit, static_argnames=("k",))
def _radius(gmin, k):
    """(Q,) int32 radius r per query.

    gmin: (G, Q) uint8 group minima, G a multiple of 32 * 64, padded with 255.
    r is the k-th smallest minimum over blocks of 32 groups: at least k
    blocks, hence k groups and k items, lie within r, and fewer than k blocks
    (at most 32 (k - 1) groups) lie strictly below r. Searching the 32x
    smaller block level avoids scanning the full array once per bisection
    step; r is usually the exact k-th smallest group minimum or one above it.
    """
    ng, nq = gmin.shape
    coarse = jnp.min(gmin.reshape(ng // 32, 32, nq), axis=1)
    lo = jnp.min(coarse, axis=0).astype(jnp.int32)
    return _bisect(coarse, k, lo, jnp.full((nq,), 255, jnp.int32))


@jax.jit
def _bitmaps(gmin, radius):
    """The lt (m_g < r) and eq (m_g == r) group bitmaps, (Q, G / 32) uint32,
    for the host selection (the device selection reads gmin directly)."""
    ng, nq = gmin.shape
    r8 = radius.astype(jnp.uint8)[None, :]
    shifts = jnp.arange(32, dtype=jnp.uint32)[None, :, None]

    def bits(mask):
        words = mask.astype(jnp.uint32).reshape(ng // 32, 32, nq) << shifts
        return jnp.sum(words, axis=1, dtype=jnp.uint32).T

    return bits(gmin < r8), bits(gmin == r8)


@functools.partial(jax.jit, static_argnames=("k", "max_groups", "n"))
def select_on_device(radius, gmin, q_words, db_groups, *, k, max_groups, n):
    """Exact top-k from the group minima, on the device.

    Args:
      radius: (Q,) int32 radius r of each query (`_radius`).
      gmin: (G, Q) uint8 group minima (255 in padding groups).
      q_words: (Q, W) uint32 packed queries.
      db_groups: (G0, group, W) uint32 packed database in groups (G0 <= G
        real groups, zero-padded within the last one).
      k: neighbours per query.
      max_groups: candidate groups gathered per query.
      n: number of real database items.

    Returns:
      (distances (Q, k) int32, indices (Q, k) int32, overflow (Q,) bool):
      rows with `overflow` had more than `max_groups` candidate groups and
      must be recomputed on the host.
    """
    num_groups, group = db_groups.shape[0], db_groups.shape[1]
    r8 = radius.astype(jnp.uint8)[None, :]
    lt, eq = gmin < r8, gmin == r8
    n_lt = jnp.sum(lt, axis=0, dtype=jnp.int32)
    eq_rank = jnp.cumsum(eq, axis=0, dtype=jnp.int32) - 1
    keep = lt | (eq & (eq_rank < (k - n_lt)[None, :]))
    count = jnp.sum(keep, axis=0, dtype=jnp.int32)
    # Candidate group ids in index order, padded with the out-of-range id G.
    # (the first max_groups kept ids: the largest keys -g of kept groups).
    gids = jnp.arange(gmin.shape[0], dtype=jnp.int32)[:, None]
    neg_ids = jnp.where(keep, -gids, -gmin.shape[0]).T  # (Q, G)
    cand = -jax.lax.top_k(neg_ids, max_groups)[0]
    # Exact distances of every item of the candidate groups.
    words = db_groups[jnp.minimum(cand, num_groups - 1)]  # (Q, S, group, W)
    dist = jax.lax.population_count(words ^ q_words[:, None, None, :])
    dist = jnp.sum(dist.astype(jnp.int32), axis=-1)  # (Q, S, group)
    item = cand[:, :, None] * group + jnp.arange(group, dtype=jnp.int32)[None, None]
    valid = (cand[:, :, None] < num_groups) & (item < n)
    valid &= dist <= radius[:, None, None]
    per_query = max_groups * group
    position = jnp.arange(per_query, dtype=jnp.int32).reshape(max_groups, group)
    key = jnp.where(valid, dist * per_query + position[None], jnp.iinfo(jnp.int32).max)
    neg, _ = jax.lax.top_k(-key.reshape(key.shape[0], per_query), k)
    best = -neg  # ascending keys
    pos = best % per_query
    out_d = best // per_query
    out_i = jnp.take_along_axis(cand, pos // group, axis=1) * group + pos % group
    return out_d, out_i, count > max_groups
