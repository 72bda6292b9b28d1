"""Threshold calibration: which U threshold best separates stable explanations.

Uncertainty gating (Mikriukov, Montavon & Hoehne, arXiv:2603.29915, section 3)
accepts an explanation iff U <= tau. The reference code (comrados/uq-xai,
script `8_threshold_calibration`, not in the paper's text) calibrates tau at
one noise level:

- `stability_metrics`: per-sample agreement of phi(x) and phi(x~) on the
  ranks of |phi|: Kendall tau-b, Spearman rho, top-k overlap, Jaccard@k;
- `stability_labels`: 1 stable (s >= 0.7), 0 unstable (s <= 0.5), -1
  ambiguous (in between, left out of the scores);
- `threshold_sweep`: per target coverage c, accept U <= Q_c(U) (c = 1 - nu
  of `gating.calibrate`) and score "accepted" as a prediction of "stable"
  on the labelled samples: precision, recall, F1, plus ROC-AUC(-U -> stable);
- `best_coverage`: the coverage of highest F1 within a window;
- `threshold_calibration`: all of it for each metric.

The reference explains x~ = x + sigma std_j eps (sigma = 0.1, five noise
realisations, `perturb.gaussian_noise`); the caller makes the noisy copies
and their explanations (phi_noisy (R, n, d): the metrics average over R).

Reconstruction choices, each a keyword (the reference's setting in brackets):
the default coverages are 0.20, 0.25, .., 0.80 [0.3, .., 0.7]; the quantile
is taken over all samples, `pool="all"` [`"labelled"`: the non-ambiguous
ones only]; the F1 window applies to the target coverage, `by="coverage"`
[`"accepted"`: the realised share of labelled samples accepted]; the label
thresholds are 0.7 / 0.5 for every metric [top-k overlap 0.8 / 0.6:
`REFERENCE_STABLE_AT`, `REFERENCE_UNSTABLE_AT`]. Precision and recall are
0 where undefined (sklearn's zero_division=0, as the reference) and so is
F1 where precision + recall = 0. The reference skips metrics with fewer than
10 labelled samples or one class; here the AUC is NaN with one class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import check_finite
from jaxcxai.metrics.explanations import average_ranks, rank

__all__ = [
    "COVERAGES",
    "METRICS",
    "REFERENCE_STABLE_AT",
    "REFERENCE_UNSTABLE_AT",
    "best_coverage",
    "stability_labels",
    "stability_metrics",
    "threshold_calibration",
    "threshold_sweep",
]

METRICS = ("kendall", "spearman", "top_k_overlap", "jaccard")
COVERAGES = tuple(round(0.05 * i, 2) for i in range(4, 17))  # 0.20 .. 0.80
# The reference script's label thresholds (top-k overlap is stricter).
REFERENCE_STABLE_AT = dict(kendall=0.7, spearman=0.7, top_k_overlap=0.8, jaccard=0.7)
REFERENCE_UNSTABLE_AT = dict(kendall=0.5, spearman=0.5, top_k_overlap=0.6, jaccard=0.5)
_TOL = 1e-6  # float32 coverages (0.8 -> 0.80000001) must stay inside [lo, hi]


@partial(jax.jit, static_argnums=2)
def _metrics_core(a, b, k):
    aa = jnp.broadcast_to(a, b.shape).reshape(-1, a.shape[-1])
    bb = b.reshape(-1, a.shape[-1])
    out = {
        "kendall": rank.kendall_tau(aa, bb, nan_to_zero=True),
        "spearman": rank.spearman_rho(aa, bb, nan_to_zero=True),
        "top_k_overlap": rank.top_k_intersection(aa, bb, k),
        "jaccard": rank.top_k_jaccard(aa, bb, k),
    }
    return {m: v.reshape(b.shape[0], -1).mean(axis=0) for m, v in out.items()}


def stability_metrics(phi_clean: Any, phi_noisy: Any, k: int = 5) -> dict:
    """Per-sample rank agreement of clean and noisy explanations.

    All four compare the ranks of |phi| (arXiv:2603.29915, Eq. 4-5; script
    8 of the reference). Kendall and Spearman of a constant row are 0
    instead of NaN (as `correlation.sample_stability`); top-k ties go to
    the lower feature index (`rank.top_k_intersection`).

    Args:
      phi_clean: (n, d) explanations of the clean inputs.
      phi_noisy: (n, d) or (R, n, d) explanations of noisy copies; the
        metrics are averaged over R (the reference: 5 realisations).
      k: top-k size, clipped to d (the reference's min(TOP_K, d)).

    Returns:
      {"kendall", "spearman", "top_k_overlap" (|top-k & top-k'| / k),
      "jaccard" (Jaccard@k)}: (n,) each.
    """
    check_finite({"phi_clean": phi_clean, "phi_noisy": phi_noisy})
    a = jnp.asarray(phi_clean, jnp.float32)
    b = jnp.asarray(phi_noisy, jnp.float32)
    if a.ndim != 2:
        raise ValueError(f"phi_clean must be (n, d), got shape {a.shape}")
    if b.shape[-2:] != a.shape or b.ndim not in (2, 3):
        raise ValueError(f"phi_noisy must be ([R,] {a.shape}), got shape {b.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return _metrics_core(a, b.reshape(-1, *a.shape), min(int(k), a.shape[1]))


def stability_labels(
    s: Any, stable_at: float = 0.7, unstable_at: float = 0.5
) -> jax.Array:
    """Stable / unstable / ambiguous labels of a stability score.

    Args:
      s: (n,) stability per sample (one `stability_metrics` entry).
      stable_at: s >= stable_at is stable.
      unstable_at: s <= unstable_at is unstable (checked after stable).

    Returns:
      (n,) int8: 1 stable, 0 unstable, -1 ambiguous (script 8 of the
      reference code of arXiv:2603.29915).
    """
    check_finite({"s": s})
    s = jnp.asarray(s, jnp.float32)
    if s.ndim != 1:
        raise ValueError(f"s must be (n,), got shape {s.shape}")
    if unstable_at > stable_at:
        raise ValueError(f"unstable_at {unstable_at} exceeds stable_at {stable_at}")
    lab = jnp.where(s >= stable_at, 1, jnp.where(s <= unstable_at, 0, -1))
    return lab.astype(jnp.int8)


def _positions(q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # numpy.quantile's linear method with the positions (n - 1) q in float64
    # on the host: at an integer position the threshold is exactly that
    # sample, which U <= tau must accept; a float32 position (as in
    # `gating.calibrate`) can fall just short of it and reject the sample.
    pos = q * (n - 1)
    lo = np.floor(pos).astype(np.int32)
    return lo, np.minimum(lo + 1, n - 1), (pos - lo).astype(np.float32)


@jax.jit
def _sweep_core(u, labels, in_pool, lo, hi, g):
    # Masks instead of subsets keep the shapes fixed: one compilation
    # serves every metric's labels. Left-out samples sort last (+inf).
    s = jnp.sort(jnp.where(in_pool, u, jnp.inf))
    thr = s[lo] + g * (s[hi] - s[lo])
    lab = (labels >= 0).astype(jnp.float32)
    pos = (labels == 1).astype(jnp.float32)
    acc = (u[None, :] <= thr[:, None]).astype(jnp.float32) * lab[None, :]
    n_acc, tp, n_pos = jnp.sum(acc, axis=1), acc @ pos, jnp.sum(pos)
    prec = jnp.where(n_acc > 0, tp / jnp.maximum(n_acc, 1.0), 0.0)
    rec = jnp.where(n_pos > 0, tp / jnp.maximum(n_pos, 1.0), 0.0)
    den = prec + rec
    f1 = jnp.where(den > 0, 2 * prec * rec / jnp.where(den > 0, den, 1.0), 0.0)
    # `gating.roc_auc` (Mann-Whitney) on the labelled samples, whose ranks
    # among themselves are unchanged by the unlabelled ones ranked last
    r = average_ranks(jnp.where(labels >= 0, -u, jnp.inf))
    n0 = jnp.sum(lab) - n_pos
    auc = (pos @ r - n_pos * (n_pos + 1) / 2) / (n_pos * n0)
    out = {"threshold": thr, "accepted": n_acc / jnp.sum(lab), "precision": prec}
    return {**out, "recall": rec, "f1": f1, "auc": auc}


def threshold_sweep(
    u: Any, labels: Any, coverages: Sequence[float], *, pool: str = "all"
) -> dict[str, jax.Array]:
    """Precision, recall and F1 of "U <= Q_c(U)" as a stable-predictor.

    Script 8 of the reference code of arXiv:2603.29915: for each coverage
    c the threshold is the linear quantile tau_c = Q_c (numpy's default,
    = `gating.calibrate` at nu = 1 - c); accepted samples are predicted
    stable. Scores count the labelled (non-ambiguous) samples only.

    Args:
      u: (n,) U per sample (on the clean inputs, as the reference).
      labels: (n,) `stability_labels` (1, 0, -1).
      coverages: (C,) target coverages c in [0, 1].
      pool: the quantile's sample: "all" (reconstruction) or "labelled"
        (the reference script).

    Returns:
      {"coverage", "threshold", "accepted" (share of the labelled samples
      accepted), "precision", "recall", "f1"}: (C,) each (0 where
      undefined), and "auc": () ROC-AUC(-U -> stable) on the labelled
      samples (NaN with one class).
    """
    check_finite({"u": u, "coverages": coverages})
    u = jnp.asarray(u, jnp.float32)
    labels = np.asarray(labels)
    cov = np.atleast_1d(np.asarray(coverages, np.float64))
    if u.ndim != 1:
        raise ValueError(f"u must be (n,), got shape {u.shape}")
    if labels.shape != u.shape or not np.isin(labels, (-1, 0, 1)).all():
        raise ValueError(
            f"labels must be {u.shape} of -1/0/1 like u, got shape {labels.shape}"
        )
    if cov.ndim != 1 or np.any((cov < 0) | (cov > 1)):
        raise ValueError(f"coverages must be (C,) in [0, 1], got {cov}")
    if pool not in ("all", "labelled"):
        raise ValueError(f"pool must be 'all' or 'labelled', got {pool!r}")
    in_pool = labels >= 0 if pool == "labelled" else np.ones(u.shape, bool)
    if not (labels >= 0).any():
        raise ValueError("labels holds no labelled (stable or unstable) sample")
    lo, hi, g = _positions(cov, int(in_pool.sum()))
    out = _sweep_core(u, jnp.asarray(labels, jnp.int32), in_pool, lo, hi, g)
    return {"coverage": jnp.asarray(cov, jnp.float32), **out}


def best_coverage(
    sweep: Mapping[str, Any],
    lo: float = 0.2,
    hi: float = 0.8,
    *,
    by: str = "coverage",
    fallback: bool = True,
) -> tuple[float, float]:
    """The coverage of highest F1 within [lo, hi], the first on ties.

    Args:
      sweep: a `threshold_sweep` result.
      lo, hi: the window, inclusive (the reference: 20 % .. 80 %).
      by: the column windowed and returned: "coverage" (target;
        reconstruction) or "accepted" (realised, as the reference script).
      fallback: with no entry inside the window, pick over all entries
        (the reference script); False raises ValueError.

    Returns:
      (coverage, F1) as floats (script 8 of the code of arXiv:2603.29915).
    """
    if by not in ("coverage", "accepted"):
        raise ValueError(f"by must be 'coverage' or 'accepted', got {by!r}")
    w = np.asarray(sweep[by], np.float64)
    f1 = np.asarray(sweep["f1"], np.float64)
    inside = np.flatnonzero((w >= lo - _TOL) & (w <= hi + _TOL))
    if inside.size == 0 and not fallback:
        raise ValueError(f"no {by} of the sweep lies in [{lo}, {hi}]: {w}")
    cand = inside if inside.size else np.arange(w.shape[0])
    i = cand[np.argmax(f1[cand])]  # argmax: first maximum, as Python's max
    return float(w[i]), float(f1[i])


def _per_metric(x: float | Mapping[str, float], metric: str) -> float:
    return float(x[metric]) if isinstance(x, Mapping) else float(x)


def threshold_calibration(
    u: Any,
    phi_clean: Any,
    phi_noisy: Any,
    *,
    coverages: Sequence[float] = COVERAGES,
    k: int = 5,
    stable_at: float | Mapping[str, float] = 0.7,
    unstable_at: float | Mapping[str, float] = 0.5,
    pool: str = "all",
    window: tuple[float, float] = (0.2, 0.8),
    by: str = "coverage",
) -> dict[str, dict[str, Any]]:
    """Threshold calibration for each stability metric (script 8, 2603.29915).

    Args:
      u: (n,) U of the clean inputs.
      phi_clean: (n, d) clean explanations.
      phi_noisy: (n, d) or (R, n, d) explanations of noisy copies (the
        reference: sigma = 0.1 Gaussian noise, R = 5; made by the caller).
      coverages: (C,) target coverages of the sweep.
      k: top-k size of the overlap metrics.
      stable_at, unstable_at: label thresholds, one for all metrics or a
        mapping per metric (`REFERENCE_STABLE_AT`, `REFERENCE_UNSTABLE_AT`).
      pool, by: see `threshold_sweep` and `best_coverage`.
      window: (lo, hi) of `best_coverage`.

    Returns:
      {metric: {"stability" (n,), "labels" (n,), "sweep" (`threshold_sweep`),
      "best_coverage", "best_f1", "n_stable", "n_unstable", "n_ambiguous"}}
      for the metrics of `METRICS`.
    """
    check_finite({"u": u})
    stab = stability_metrics(phi_clean, phi_noisy, k)
    if np.shape(u) != stab["kendall"].shape:
        raise ValueError(f"u must be {stab['kendall'].shape}, got shape {np.shape(u)}")
    out = {}
    for m in METRICS:
        lab = stability_labels(
            stab[m], _per_metric(stable_at, m), _per_metric(unstable_at, m)
        )
        sweep = threshold_sweep(u, lab, coverages, pool=pool)
        cov, f1 = best_coverage(sweep, *window, by=by)
        counts = np.bincount(np.asarray(lab) + 1, minlength=3)  # -1, 0, 1
        out[m] = dict(stability=stab[m], labels=lab, sweep=sweep)
        out[m].update(best_coverage=cov, best_f1=f1, n_stable=int(counts[2]))
        out[m].update(n_unstable=int(counts[1]), n_ambiguous=int(counts[0]))
    return out
