"""Repeated CAV fits of one concept on random subsets, all runs in one call.

The retrieval-stability metric (`retrieval`) compares R CAVs of the same
concept and layer, run r fitted on its own random subset of n concept and
n non-concept samples (Mikriukov, Schwalbe, Hellert & Bade 2023, "Evaluating
the Stability of Semantic Concept Representations in CNNs for Robust
Explainability", arXiv 2304.14864: "number of concept training samples" is
one of the studied factors). How the paper draws its runs was not read:
subsets drawn without replacement within a run, independently across runs,
are a reconstruction (not verified against the paper), swappable by passing
other indices to `fit_subsets`.

The R classifiers are independent problems of equal shape, so `fit_runs`
vmaps `cavs.fit_cavs` (one concept set against one random set) over the
runs: one compiled program for all R fits, optionally split over a mesh's
`data` axis. Run r equals `fit_cavs(pos[pos_index[r]][None],
neg[neg_index[r]][None])` up to float32 rounding. With method "sgd" (TCAV's
`SGDClassifier`), run r is seeded as `SGDClassifier(random_state=r)` unless
other random states are given.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import parallel
from jaxcxai.checks import check_finite
from jaxcxai.concepts.probes import cavs as cav_lib
from jaxcxai.concepts.stability import representations as views
from jaxcxai.concepts.stability import sgd_runs

__all__ = ["Runs", "features", "draw_subsets", "fit_subsets", "fit_runs"]


class Runs(NamedTuple):
    """R CAVs of one concept, each fitted on its own random subsets.

    Attributes:
      direction: (R, D) unit CAVs.
      weight: (R, D) classifier weights; the classifier is w.f + b > 0.
      bias: (R,) biases.
      pos_index: (R, n) rows of the concept samples each run was fitted on.
      neg_index: (R, n) rows of the non-concept samples.
    """

    direction: jax.Array
    weight: jax.Array
    bias: jax.Array
    pos_index: jax.Array
    neg_index: jax.Array


def features(acts: jax.typing.ArrayLike, dim: str | None, name: str) -> jax.Array:
    """(N, D) rows: the `dim` view of (N, H, W, C) maps, or (N, D) as given.

    Raises:
      ValueError: naming `name` (shape, NaN or inf) or `dim`.
    """
    if dim is not None:
        return views.represent(acts, dim, name)
    acts = jnp.asarray(acts, jnp.float32)
    if acts.ndim != 2 or acts.shape[0] < 1:
        raise ValueError(
            f"{name} must be (N, D) features when dim=None, got shape {acts.shape}"
        )
    check_finite({name: acts})
    return acts


def draw_subsets(
    key: jax.Array, n_pos: int, n_neg: int, runs: int, samples: int
) -> tuple[jax.Array, jax.Array]:
    """Random rows per run: n of n_pos and n of n_neg, no repeats within a run.

    Returns:
      (pos_index (R, n), neg_index (R, n)) int32; run r draws from
      split(split(key)[0], R)[r] (concept rows) and split(split(key)[1], R)[r].
    """
    kp, kn = jax.random.split(key)

    def pick(k, total):
        draw = lambda kr: jax.random.choice(kr, total, (samples,), replace=False)
        return jax.vmap(draw)(jax.random.split(k, runs)).astype(jnp.int32)

    return pick(kp, n_pos), pick(kn, n_neg)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _fit_all(pos_runs, neg_runs, method, alpha, steps):
    """The L-BFGS and mean-difference methods ("sgd" runs in `sgd_runs`)."""
    unused_seed = jnp.zeros((1, 1), jnp.uint32)

    def one(p, q):  # one (concept subset, random subset) pair of `fit_cavs`
        c = cav_lib._fit_cavs(p[None], q[None], unused_seed, method, alpha, steps,
                              cav_lib.HINGE_SMOOTHING)  # fmt: skip
        return c.direction[0, 0], c.weight[0, 0], c.bias[0, 0]

    return jax.vmap(one)(pos_runs, neg_runs)


def fit_subsets(
    pos: jax.Array,
    neg: jax.Array,
    pos_index: jax.typing.ArrayLike,
    neg_index: jax.typing.ArrayLike,
    *,
    method: str = "logistic",
    alpha: float = 0.01,
    steps: int | None = None,
    random_state: jax.typing.ArrayLike | None = None,
    mesh: jax.sharding.Mesh | None = None,
) -> Runs:
    """One CAV per run on given subsets: pos[pos_index[r]] vs neg[neg_index[r]].

    Args:
      pos: (N_pos, D) concept features (checked finite by the caller).
      neg: (N_neg, D) non-concept features.
      pos_index: (R, n_c) concept rows of each run.
      neg_index: (R, n_r) non-concept rows of each run.
      method, alpha, steps: as in `cavs.fit_cavs`.
      random_state: "sgd" only: (R,) scikit-learn random states of the runs'
        `SGDClassifier`s (default 0..R-1) or one int for all.
      mesh: optional mesh; the runs are split over its `data` axis (padded
        with copies of the last run, dropped afterwards).
    """
    if method not in cav_lib.METHODS:
        raise ValueError(f"method must be one of {cav_lib.METHODS}, got {method!r}")
    pos_index, neg_index = np.asarray(pos_index), np.asarray(neg_index)
    if (pos_index.ndim != 2 or neg_index.ndim != 2 or not pos_index.size
            or not neg_index.size or neg_index.shape[0] != pos_index.shape[0]):  # fmt: skip
        raise ValueError(f"pos_index {pos_index.shape} and neg_index "
                         f"{neg_index.shape} must be (R, n) with the same R")  # fmt: skip
    for name, index, rows in (("pos_index", pos_index, len(pos)),
                              ("neg_index", neg_index, len(neg))):  # fmt: skip
        # jax clamps an out-of-range gather: a wrong row, not an error.
        if index.dtype.kind not in "iu" or index.min() < 0 or index.max() >= rows:
            raise ValueError(f"{name} must hold row numbers in [0, {rows}), got "
                             f"{index.dtype} in [{index.min()}, {index.max()}]")  # fmt: skip
    pos_index = jnp.asarray(pos_index, jnp.int32)
    neg_index = jnp.asarray(neg_index, jnp.int32)
    r = pos_index.shape[0]
    steps = cav_lib.default_steps(method, steps)
    if method == "sgd":
        rs = np.arange(r) if random_state is None else np.asarray(random_state)
        seeds = jnp.asarray(cav_lib.sgd_seeds(rs, (r,)))
        weight, bias = sgd_runs.fit_sgd_runs(pos, neg, pos_index, neg_index, seeds,
                                             alpha=alpha, max_iter=steps, mesh=mesh)  # fmt: skip
        runs = Runs(cav_lib._unit(weight), weight, bias, pos_index, neg_index)
        return cav_lib._check_sgd(method, runs)
    p, q = pos[pos_index], neg[neg_index]  # (R, n, D)
    if mesh is not None:  # the runs over the mesh's `data` axis, padded
        pad = -r % mesh.shape[parallel.DATA_AXIS]
        p, q = (jax.device_put(jnp.concatenate([a, jnp.repeat(a[-1:], pad, 0)]),
                               parallel.data_sharding(mesh)) for a in (p, q))  # fmt: skip
    direction, weight, bias = _fit_all(p, q, method, float(alpha), steps)
    return Runs(direction[:r], weight[:r], bias[:r], pos_index, neg_index)


def fit_runs(
    pos_acts: jax.typing.ArrayLike,
    neg_acts: jax.typing.ArrayLike,
    key: jax.Array,
    *,
    runs: int = 10,
    samples: int = 50,
    dim: str | None = "1d",
    method: str = "logistic",
    alpha: float = 0.01,
    steps: int | None = None,
    random_state: jax.typing.ArrayLike | None = None,
    mesh: jax.sharding.Mesh | None = None,
) -> Runs:
    """Fits R CAVs of one concept on R random subsets, in one bulk call.

    Args:
      pos_acts: (N_pos, H, W, C) concept activation maps (or (N_pos, D)
        features with `dim=None`).
      neg_acts: (N_neg, H, W, C) non-concept maps (or (N_neg, D) features).
      key: PRNG key of the subsets (`draw_subsets`).
      runs: R, the number of CAVs.
      samples: n concept and n non-concept samples per run.
      dim: "1d", "2d" or "3d" view (`representations.represent`), or None.
      method, alpha, steps: the classifier, as in `cavs.fit_cavs`.
      random_state: "sgd" only: as in `fit_subsets`.
      mesh: optional mesh; the runs are split over its `data` axis.

    Returns:
      `Runs` with (R, D) directions and the subsets' row indices.

    Raises:
      ValueError: naming `pos_acts`/`neg_acts` (shape, NaN or inf), `samples`
        (more than a set holds), `runs` or `method`.

    References:
      Mikriukov et al. 2023, arXiv 2304.14864; Kim et al. 2018 (TCAV).
    """
    pos, neg = features(pos_acts, dim, "pos_acts"), features(neg_acts, dim, "neg_acts")
    if pos.shape[1] != neg.shape[1]:
        raise ValueError(
            f"neg_acts has {neg.shape[1]} features per sample, pos_acts {pos.shape[1]}"
        )
    if isinstance(runs, bool) or int(runs) != runs or runs < 1:
        raise ValueError(f"runs must be a positive integer, got {runs!r}")
    most = min(len(pos), len(neg))
    if isinstance(samples, bool) or int(samples) != samples or not 1 <= samples <= most:
        raise ValueError(f"samples must be an integer in [1, {most}] (the smaller "
                         f"set's size), got {samples!r}")  # fmt: skip
    pos_index, neg_index = draw_subsets(
        key, len(pos), len(neg), int(runs), int(samples)
    )
    return fit_subsets(pos, neg, pos_index, neg_index, method=method, alpha=alpha,
                       steps=steps, random_state=random_state, mesh=mesh)  # fmt: skip
