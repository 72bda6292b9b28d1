"""Concept retrieval stability: consistency and separation of repeated CAV fits.

Mikriukov, Schwalbe, Hellert & Bade 2023 ("Evaluating the Stability of
Semantic Concept Representations in CNNs for Robust Explainability", arXiv
2304.14864) measure how stably a concept is retrieved in a layer by a metric
S that "considers both concept separation and consistency" and is agnostic
to the CAV's dimensionality (abstract). Its exact definition was not read;
everything here is a reconstruction (not verified against the paper), split
into small functions that can each be swapped (`retrieval_stability` takes
them as arguments):

- `consistency`: K = 2 / (R (R - 1)) sum_{r<s} cos(v_r, v_s) of the R CAVs of
  `runs.fit_runs` (raw cosines shrink for noisy high-dimensional CAVs, hence
  "3D-CAVs have lower consistency"); `run_consistency` per run;
- `separation`: the mean over runs of the held-out accuracy (or AUC) of the
  projections w.f + b, dimension-free (`run_separation` per run);
- `combine`: S = separation x consistency;
- `retrieval_stability` for one layer and view, `sweep` over sample counts
  and views (1D/2D/3D, `representations`).

ICE concepts (NMF "non-negative CAVs", Zhang et al. 2021) have no labels:
`ice_consistency` matches each run's components to run 0 with the discovery
package's Hungarian matching and averages the matched cosines.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import check_finite
from jaxcxai.concepts.discovery import matching
from jaxcxai.concepts.stability import representations as views
from jaxcxai.concepts.stability.runs import Runs, features, fit_runs

__all__ = [
    "RetrievalStability",
    "run_consistency",
    "consistency",
    "run_separation",
    "separation",
    "combine",
    "retrieval_stability",
    "sweep",
    "sweep_table",
    "ice_consistency",
]

_HI = jax.lax.Precision.HIGHEST


class RetrievalStability(NamedTuple):
    """S = separation x consistency of one concept, layer and view.

    Attributes:
      stability, separation, consistency: () scalars.
      run_separation: (R,) held-out separation of each run.
      run_consistency: (R,) mean cosine of each run's CAV to the others.
      runs: the fitted `Runs`.
    """

    stability: jax.Array
    separation: jax.Array
    consistency: jax.Array
    run_separation: jax.Array
    run_consistency: jax.Array
    runs: Runs


def _cosines(directions) -> jax.Array:
    v = jnp.asarray(directions, jnp.float32)
    if v.ndim != 2 or v.shape[0] < 2:
        raise ValueError(f"cavs must be (R, D) with R >= 2 runs, got shape {v.shape}")
    check_finite({"cavs": v})
    v = v / jnp.maximum(jnp.linalg.norm(v, axis=1, keepdims=True), 1e-30)
    return jnp.dot(v, v.T, precision=_HI)


def run_consistency(cavs: jax.typing.ArrayLike) -> jax.Array:
    """Each run's mean cosine to the other runs' CAVs, (R, D) -> (R,).

    Their mean is `consistency` (every pair counted twice). Reconstruction
    (not verified against the paper).
    """
    cos = _cosines(cavs)
    return (jnp.sum(cos, axis=1) - jnp.diagonal(cos)) / (cos.shape[0] - 1)


def consistency(cavs: jax.typing.ArrayLike) -> jax.Array:
    """K = 2 / (R (R - 1)) sum_{r<s} cos(v_r, v_s) of R CAVs, (R, D) -> ().

    1 for identical CAVs, about 0 (|K| of order 1/sqrt(D)) for unrelated
    ones. Reconstruction (not verified against the paper).

    Raises:
      ValueError: naming `cavs` (not (R, D) with R >= 2, NaN or inf).
    """
    cos = _cosines(cavs)
    r = cos.shape[0]
    return jnp.sum(jnp.triu(cos, k=1)) / (r * (r - 1) / 2)


@jax.jit
def _auc(weight, pos, neg):
    zp = jnp.dot(weight, pos.T, precision=_HI)  # (R, M); the bias cancels
    zn = jnp.dot(weight, neg.T, precision=_HI)
    diff = zp[:, :, None] - zn[:, None, :]
    return jnp.mean((diff > 0) + 0.5 * (diff == 0), axis=(1, 2))


@jax.jit
def _accuracy(weight, bias, pos, neg):
    """(R,) held-out accuracies of w.f + b > 0, as `cavs.cav_accuracy` (one
    concept set and one shared non-concept set, nothing broadcast per run)."""
    zp = jnp.dot(pos, weight.T, precision=_HI) + bias[None]  # (M, R)
    zn = jnp.dot(neg, weight.T, precision=_HI) + bias[None]
    correct = jnp.sum(zp > 0, 0) + jnp.sum(zn <= 0, 0)
    return correct / (pos.shape[0] + neg.shape[0])


def run_separation(
    runs: Runs,
    pos_heldout: jax.typing.ArrayLike,
    neg_heldout: jax.typing.ArrayLike,
    *,
    metric: str = "accuracy",
    dim: str | None = None,
) -> jax.Array:
    """Held-out separation of each run's classifier, (R,) in [0, 1].

    Args:
      runs: `Runs` (only `weight` (R, D) and `bias` (R,) are used).
      pos_heldout: (M, H, W, C) held-out concept maps (or (M, D) features
        with `dim=None`), never rows the CAVs were fitted on.
      neg_heldout: (M', H, W, C) held-out non-concept maps (or features).
      metric: "accuracy" of w.f + b > 0 (`cavs.cav_accuracy`) or "auc" of
        the projections (ties count 1/2).
      dim: the view the runs were fitted on, or None for features.

    Reconstruction (not verified against the paper).
    """
    pos = features(pos_heldout, dim, "pos_heldout")
    neg = features(neg_heldout, dim, "neg_heldout")
    w = jnp.asarray(runs.weight, jnp.float32)
    for name, a in (("pos_heldout", pos), ("neg_heldout", neg)):
        if a.shape[1] != w.shape[1]:
            raise ValueError(f"{name} has {a.shape[1]} features, the CAVs {w.shape[1]}")
    if metric == "auc":
        return _auc(w, pos, neg)
    if metric != "accuracy":
        raise ValueError(f"metric must be 'accuracy' or 'auc', got {metric!r}")
    bias = jnp.asarray(runs.bias, jnp.float32)
    check_finite({"runs.weight": w, "runs.bias": bias})
    return _accuracy(w, bias, pos, neg)


def separation(
    runs: Runs,
    pos_heldout: jax.typing.ArrayLike,
    neg_heldout: jax.typing.ArrayLike,
    *,
    metric: str = "accuracy",
    dim: str | None = None,
) -> jax.Array:
    """The mean over runs of `run_separation`, (). Reconstruction."""
    per_run = run_separation(runs, pos_heldout, neg_heldout, metric=metric, dim=dim)
    return jnp.mean(per_run)


def combine(separation: jax.Array, consistency: jax.Array) -> jax.Array:
    """S = separation x consistency. Reconstruction (not verified)."""
    return separation * consistency


def retrieval_stability(
    pos_acts: jax.typing.ArrayLike,
    neg_acts: jax.typing.ArrayLike,
    pos_heldout: jax.typing.ArrayLike,
    neg_heldout: jax.typing.ArrayLike,
    key: jax.Array,
    *,
    runs: int = 10,
    samples: int = 50,
    dim: str | None = "1d",
    metric: str = "accuracy",
    consistency_fn: Callable[[jax.Array], jax.Array] = run_consistency,
    separation_fn: Callable[..., jax.Array] | None = None,
    combine_fn: Callable[[jax.Array, jax.Array], jax.Array] = combine,
    **fit_kwargs,
) -> RetrievalStability:
    """Retrieval stability S of one concept in one layer and view.

    Args:
      pos_acts, neg_acts: (N, H, W, C) concept and non-concept maps the runs
        are drawn from (or (N, D) features with `dim=None`).
      pos_heldout, neg_heldout: held-out maps (or features) for separation.
      key: PRNG key of the runs' subsets.
      runs, samples, dim: R runs of n concept + n non-concept samples each,
        in the "1d", "2d" or "3d" view (`runs.fit_runs`).
      metric: "accuracy" or "auc" (`run_separation`).
      consistency_fn: (R, D) directions -> (R,) per-run consistency; its
        mean is the consistency.
      separation_fn: (runs, pos (M, D), neg (M', D)) -> (R,) per-run
        separation; default `run_separation` with `metric`.
      combine_fn: (separation, consistency) -> S.
      **fit_kwargs: `method`, `alpha`, `steps`, `mesh` of `runs.fit_runs`.

    Returns:
      `RetrievalStability` (S, both components, per-run values, the runs).

    References:
      Mikriukov et al. 2023, arXiv 2304.14864 (reconstruction).
    """
    pos_held = features(pos_heldout, dim, "pos_heldout")
    neg_held = features(neg_heldout, dim, "neg_heldout")
    fitted = fit_runs(pos_acts, neg_acts, key, runs=runs, samples=samples, dim=dim,
                      **fit_kwargs)  # fmt: skip
    if separation_fn is None:
        separation_fn = lambda r, p, n: run_separation(r, p, n, metric=metric)
    run_sep = separation_fn(fitted, pos_held, neg_held)
    run_con = consistency_fn(fitted.direction)
    sep, con = jnp.mean(run_sep), jnp.mean(run_con)
    return RetrievalStability(combine_fn(sep, con), sep, con, run_sep, run_con, fitted)


def sweep(
    pos_acts: jax.typing.ArrayLike,
    neg_acts: jax.typing.ArrayLike,
    pos_heldout: jax.typing.ArrayLike,
    neg_heldout: jax.typing.ArrayLike,
    key: jax.Array,
    *,
    samples: Sequence[int] = (10, 25, 50),
    dims: Sequence[str] = views.DIMS,
    **kwargs,
) -> dict[str, dict[int, RetrievalStability]]:
    """`retrieval_stability` of one layer for every view and sample count.

    Every cell uses the same `key`, so at equal sample counts the views are
    fitted on the same subsets (their differences are not sampling noise).

    Args:
      pos_acts, neg_acts, pos_heldout, neg_heldout: (N, H, W, C) maps of one
        layer (the views are taken here, once per view).
      key: PRNG key of the subsets.
      samples: sample counts n per run.
      dims: views, a subset of ("1d", "2d", "3d").
      **kwargs: the other arguments of `retrieval_stability`.

    Returns:
      {dim: {n: RetrievalStability}}; `sweep_table` flattens it.
    """
    out = {}
    for dim in dims:
        sets = [views.represent(a, dim, name) for a, name in (
            (pos_acts, "pos_acts"), (neg_acts, "neg_acts"),
            (pos_heldout, "pos_heldout"), (neg_heldout, "neg_heldout"))]  # fmt: skip
        out[dim] = {int(n): retrieval_stability(*sets, key, samples=int(n), dim=None,
                                                **kwargs) for n in samples}  # fmt: skip
    return out


def sweep_table(results: dict[str, dict[int, RetrievalStability]]) -> list[dict]:
    """One row per (dim, samples): floats of S, separation, consistency."""
    fields = ("stability", "separation", "consistency")
    return [{"dim": dim, "samples": n, **{f: float(getattr(res, f)) for f in fields}}
            for dim, cells in results.items() for n, res in cells.items()]  # fmt: skip


def ice_consistency(
    components: jax.typing.ArrayLike, *, absolute: bool = False
) -> tuple[float, np.ndarray, np.ndarray]:
    """Consistency of ICE concepts across R runs, by matching to run 0.

    Each run's k components are matched one to one to run 0's by the
    Hungarian assignment on cosine (`discovery.matching.match`); the
    consistency is the mean matched cosine over runs 1..R-1.
    Reconstruction (not verified against the paper).

    Args:
      components: (R, k, C) concept vectors (NCAVs) of R runs, R >= 2.
      absolute: match on |cos| (for sign-free components).

    Returns:
      (consistency, per-run mean matched cosine (R - 1,), matched component
      indices (R - 1, k): run r's component matched to run 0's component j).

    Raises:
      ValueError: naming `components` (shape, NaN or inf).

    References:
      Zhang et al. 2021 (ICE); Mikriukov et al. 2023, arXiv 2304.14864.
    """
    comps = np.asarray(components, np.float64)
    if comps.ndim != 3 or comps.shape[0] < 2 or comps.shape[1] < 1:
        raise ValueError(f"components must be (R, k, C) with R >= 2, got {comps.shape}")
    check_finite({"components": comps})
    per_run, cols = [], []
    for r in range(1, comps.shape[0]):
        m = matching.match(comps[0], comps[r], absolute=absolute)
        per_run.append(m.cosine.mean())
        cols.append(m.cols[np.argsort(m.rows)])
    per_run = np.asarray(per_run)
    return float(per_run.mean()), per_run, np.stack(cols)
