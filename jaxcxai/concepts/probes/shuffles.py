"""scikit-learn's SGD shuffles, reproduced: its seed and epoch permutations.

`SGDClassifier` shuffles the samples before every epoch with a Fisher-Yates
pass driven by its own xorshift generator (`our_rand_r` in
`sklearn/utils/_random.pxd`), seeded from the estimator's `random_state`.
`probes.sgd` replays these shuffles so that its fits are scikit-learn's.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import parallel

__all__ = ["sklearn_seed", "shuffle_permutation"]

_INT32_MAX = np.iinfo(np.int32).max


def sklearn_seed(random_state: int) -> int:
    """The shuffle seed of `SGDClassifier(random_state=random_state)`.

    A binary fit draws two integers from `RandomState(random_state)`: first
    its dataset's seed (used by SAG, not by SGD), then the seed of the
    epochs' shuffles; this returns the second.
    """
    rs = np.random.RandomState(random_state)
    rs.randint(1, _INT32_MAX)  # the dataset's own seed, unused by plain SGD
    return int(rs.randint(_INT32_MAX))


def _xorshift(s):
    """One step of scikit-learn's `our_rand_r` on a uint32 state."""
    s = jnp.where(s == 0, jnp.uint32(1), s)  # its guard: 0 is a fixed point
    s = s ^ (s << 13)
    s = s ^ (s >> 17)
    s = s ^ (s << 5)
    return s


def shuffle_permutation(seed: jax.typing.ArrayLike, n: int) -> jax.Array:
    """(n,) int32 permutation of one of scikit-learn's SGD epoch shuffles.

    Fisher-Yates over positions i = 0..n-2, swapping i with
    i + r % (n - i), r the next xorshift value modulo 2^31. Every epoch
    replays the same swaps on the current order: order <- order[perm].
    """
    seed = jnp.asarray(seed).astype(jnp.uint32)

    def swap(i, carry):
        s, perm = carry
        s = _xorshift(s)
        r = s % jnp.uint32(2**31)
        j = i + (r % (jnp.uint32(n) - i.astype(jnp.uint32))).astype(jnp.int32)
        pi, pj = perm[i], perm[j]
        return s, perm.at[i].set(pj).at[j].set(pi)

    perm = parallel.vary_like(jnp.arange(n, dtype=jnp.int32), seed)
    return jax.lax.fori_loop(0, n - 1, swap, (seed, perm))[1]
