"""Global importance from uncertainty-filtered batches (arXiv:2603.29915).

Uncertainty gating (Mikriukov, Montavon & Hoehne, arXiv:2603.29915) uses U
to decide which local explanations to trust. The reference code
(comrados/uq-xai, scripts `10_global_approximation` and
`11_contamination_and_recovery`, not in the paper's text) carries this to
the global importance G = mean_i |phi_i| (global SHAP):

- `global_approximation`: G of the K lowest-U and of the K highest-U
  samples against G of all samples, Spearman rho per sample fraction;
- `contamination_recovery`: a clean batch mixed with high-U contaminants
  at growing rates; rho of G of the whole batch (naive), of random
  subsets, and of the `keep` lowest-U rows (filtered), and how much of the
  lost agreement the filter recovers.

Spearman rho is scipy's (average ranks; `rank.spearman_rho`), NaN (a
constant importance) counts as 0, as the reference code. Groups take the
lowest / highest U by a stable sort (as `deferral.faithfulness_groups`).

Reconstruction choices (the reference's setting in brackets): group size
K = max(2, round(frac n)) [max(1, floor(frac n))], `group_size`; default
fractions 0.02, 0.05, 0.1, .., 0.3 [0.02, 0.04, .., 0.30]; contaminants
m = round(r B) [floor] taken from the C candidates in order, cycling when
m > C, `contaminant_rows` [each pass through its 50-sample pool is noised
afresh, with a seed per rate: pass C >= max m distinct noisy rows to avoid
duplicates]; default rates 0, 0.5, 1, 2, .., 5 [0, 0.5, .., 5]; recovery
rate 0 where 1 - rho_naive <= `min_degradation` = 0 [0.01].
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import check_finite
from jaxcxai.metrics.explanations import spearman_rho

__all__ = [
    "FRACS",
    "RATES",
    "contaminant_rows",
    "contamination_recovery",
    "global_approximation",
    "global_importance",
    "group_size",
    "random_subset",
]

FRACS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
RATES = (0, 0.5, 1, 2, 3, 4, 5)


def _table(name: str, x: Any, rows: int | None = None) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2 or (rows is not None and x.shape[0] != rows):
        want = "(n, d)" if rows is None else f"({rows}, d)"
        raise ValueError(f"{name} must be {want}, got shape {x.shape}")
    return x


def _vector(name: str, x: Any, n: int) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    if x.shape != (n,):
        raise ValueError(f"{name} must be ({n},), got shape {x.shape}")
    return x


def _rho(g: jax.Array, ref: jax.Array) -> jax.Array:
    # importances are non-negative already: rank them as they are
    g2 = g.reshape(-1, g.shape[-1])
    ref = jnp.broadcast_to(ref, g2.shape)
    rho = spearman_rho(g2, ref, use_abs=False, nan_to_zero=True)
    return rho.reshape(g.shape[:-1])


def global_importance(phi: Any) -> jax.Array:
    """Global importance: mean |phi| over samples (global SHAP).

    Args:
      phi: (n, d) local explanations.

    Returns:
      (d,) mean absolute attribution per feature (scripts 10-11 of the
      reference code of arXiv:2603.29915).
    """
    check_finite({"phi": phi})
    return jnp.mean(jnp.abs(_table("phi", phi)), axis=0)


def group_size(frac: float, n: int) -> int:
    """K = max(2, round(frac n)), Python's round (half to even).

    Reconstruction: the reference script uses max(1, int(frac n)), whose
    floor loses a sample where frac n is a hair below an integer (0.29 * 100).
    """
    return max(2, int(round(frac * n)))


@jax.jit
def _approx_core(u, phi, ks, ref):
    n = u.shape[0]
    rank = jnp.zeros(n, jnp.int32).at[jnp.argsort(u, stable=True)].set(jnp.arange(n))
    low = (rank[None, :] < ks[:, None]).astype(jnp.float32)  # (F, n)
    high = (rank[None, :] >= n - ks[:, None]).astype(jnp.float32)
    a = jnp.abs(phi)
    kf = ks[:, None].astype(jnp.float32)
    return _rho(low @ a / kf, ref), _rho(high @ a / kf, ref)


def global_approximation(
    u: Any, phi: Any, fracs: Sequence[float] = FRACS, *, reference: Any = None
) -> dict[str, jax.Array]:
    """Global importance of the lowest- and highest-U groups vs all samples.

    Script 10 of the reference code of arXiv:2603.29915: for each fraction,
    the K = `group_size(frac, n)` lowest-U and K highest-U samples; Spearman
    rho between each group's `global_importance` and the reference R.

    Args:
      u: (n,) U per sample.
      phi: (n, d) their explanations (the reference: random-forest TreeSHAP
        of at most 1000 test rows, subsampled by the caller).
      fracs: (F,) sample fractions in (0, 1].
      reference: (d,) R; default `global_importance(phi)` over all n rows
        (the reference script takes R over 1000 random test rows and the
        groups from the whole test set: pass that R here).

    Returns:
      {"fracs" (F,), "k" (F,) int32, "rho_low" (F,), "rho_high" (F,),
      "reference" (d,)}.
    """
    check_finite({"u": u, "phi": phi, "reference": reference})
    phi = _table("phi", phi)
    n, d = phi.shape
    u = _vector("u", u, n)
    ref = global_importance(phi) if reference is None else reference
    ref = _vector("reference", ref, d)
    fr = np.atleast_1d(np.asarray(fracs, np.float64))
    if fr.ndim != 1 or np.any((fr <= 0) | (fr > 1)):
        raise ValueError(f"fracs must be (F,) in (0, 1], got {fr}")
    ks = np.array([group_size(f, n) for f in fr], np.int32)
    if ks.max() > n:
        raise ValueError(f"groups of {ks.max()} samples need n >= {ks.max()}, got {n}")
    low, high = _approx_core(u, phi, jnp.asarray(ks), ref)
    return {
        "fracs": jnp.asarray(fr, jnp.float32),
        "k": jnp.asarray(ks),
        "rho_low": low,
        "rho_high": high,
        "reference": ref,
    }


def contaminant_rows(m: int, c: int) -> np.ndarray:
    """Candidate row of each of m contaminants: 0, 1, .., c - 1, 0, 1, ...

    Reconstruction detail: the reference re-noises its pool on every pass.
    """
    return np.arange(m) % max(c, 1)


def random_subset(key: jax.Array, n_valid: Any, n_rows: int, keep: int) -> jax.Array:
    """`keep` distinct rows drawn uniformly from the first `n_valid` of n_rows.

    Rows past `n_valid` (padding) score above every valid row, so the `keep`
    smallest uniform scores are a uniform subset of the valid rows. Returns
    (keep,) int32 row indices; jittable, `n_valid` may be traced.
    """
    pad = (jnp.arange(n_rows) >= n_valid) * 2.0
    score = jax.random.uniform(key, (n_rows,)) + pad
    return jnp.argsort(score)[:keep].astype(jnp.int32)


@partial(jax.jit, static_argnames=("keep", "n_random"))
def _recovery_core(u, phi, is_cont, n_valid, ref, key, keep, n_random):
    a, rows = jnp.abs(phi), jnp.arange(u.shape[0])

    def one(i, nv):
        valid = rows < nv
        naive = valid.astype(jnp.float32) @ a / nv
        # padding rows sort last (check_finite rules out an infinite U)
        kept = jnp.argsort(jnp.where(valid, u, jnp.inf), stable=True)[:keep]
        k_rate = jax.random.fold_in(key, i)
        draw = lambda j: random_subset(
            jax.random.fold_in(k_rate, j), nv, u.shape[0], keep
        )
        rand = jax.vmap(draw)(jnp.arange(n_random))  # (n_random, keep)
        filt = jnp.mean(a[kept], axis=0)
        g = jnp.concatenate([naive[None], filt[None], jnp.mean(a[rand], axis=1)])
        return g, kept, rand, jnp.mean(is_cont[kept])

    g, kept, rand, share = jax.vmap(one)(jnp.arange(n_valid.shape[0]), n_valid)
    rho = _rho(g, ref)  # (R, 2 + n_random)
    return rho, kept, rand, share


def contamination_recovery(
    u_base: Any,
    phi_base: Any,
    u_cont: Any,
    phi_cont: Any,
    reference: Any,
    key: jax.Array,
    *,
    rates: Sequence[float] = RATES,
    keep: int = 40,
    n_random: int = 5,
    min_degradation: float = 0.0,
) -> dict[str, jax.Array]:
    """Contamination of a clean batch by high-U samples, and its recovery.

    Script 11 of the reference code of arXiv:2603.29915. At rate r the batch
    is the B base rows followed by m = round(r B) contaminants
    (`contaminant_rows`). Per rate, Spearman rho against `reference` of
    the `global_importance` of: the whole batch (naive); `n_random` random
    subsets of `keep` rows (`random_subset`, key fold_in(fold_in(key,
    rate index), repeat)); the `keep` lowest-U rows (filtered, stable sort).
    recovery = rho_filtered - rho_naive; recovery_rate = recovery / (1 -
    rho_naive), 0 where 1 - rho_naive <= `min_degradation` (no loss).

    Args:
      u_base: (B,) U of the base batch (the reference: the 50 lowest-U test
        samples).
      phi_base: (B, d) their explanations.
      u_cont: (C,) U of the candidate contaminants (the reference: the 50
        highest-U test samples plus Gaussian noise sigma = 0.5, U and phi
        computed on the noisy copies by the caller).
      phi_cont: (C, d) their explanations.
      reference: (d,) clean global importance; None: `global_importance(
        phi_base)`, what the reference script uses (mean |SHAP| of its base
        batch; clean test data, `global_importance(phi_test)`, is the
        alternative).
      key: PRNG key of the random subsets.
      rates: (R,) contamination rates r >= 0 (contaminants per base row).
      keep: rows kept by the filter and by each random subset, 1..B (the
        reference: int(0.8 B) = 40).
      n_random: random subsets per rate.
      min_degradation: see above (the reference script: 0.01).

    Returns:
      (R,) arrays "rates", "n_contaminants", "rho_naive", "rho_random"
      (mean over the subsets), "rho_random_std" (ddof 0), "rho_filtered",
      "recovery", "recovery_rate", "contaminant_share" (of the kept rows);
      indices into each rate's batch "filtered_idx" (R, keep) and
      "random_idx" (R, n_random, keep).
    """
    arrays = dict(u_base=u_base, phi_base=phi_base, u_cont=u_cont, phi_cont=phi_cont)
    check_finite({**arrays, "reference": reference})
    phi_base = _table("phi_base", phi_base)
    b, d = phi_base.shape
    u_base = _vector("u_base", u_base, b)
    u_cont = jnp.asarray(u_cont, jnp.float32)
    if u_cont.ndim != 1:
        raise ValueError(f"u_cont must be (C,), got shape {u_cont.shape}")
    c = u_cont.shape[0]
    phi_cont = _table("phi_cont", phi_cont, c)
    if phi_cont.shape[1] != d:
        raise ValueError(f"phi_cont must be ({c}, {d}), got shape {phi_cont.shape}")
    ref = global_importance(phi_base) if reference is None else reference
    ref = _vector("reference", ref, d)
    r = np.atleast_1d(np.asarray(rates, np.float64))
    if r.ndim != 1 or np.any(r < 0):
        raise ValueError(f"rates must be (R,) >= 0, got {r}")
    if not 1 <= keep <= b or n_random < 1:
        raise ValueError(
            f"need 1 <= keep <= B = {b} and n_random >= 1, "
            f"got keep={keep}, n_random={n_random}"
        )
    m = np.array([int(round(x * b)) for x in r], np.int32)
    if m.max() > 0 and c == 0:
        raise ValueError("u_cont holds no candidate contaminant, rates need some")
    rows = contaminant_rows(int(m.max()), c)
    u_all = jnp.concatenate([u_base, u_cont[rows]])
    phi_all = jnp.concatenate([phi_base, phi_cont[rows]])
    is_cont = (jnp.arange(u_all.shape[0]) >= b).astype(jnp.float32)
    rho, kept, rand, share = _recovery_core(
        u_all, phi_all, is_cont, jnp.asarray(b + m), ref, key, keep, n_random
    )
    naive, filt, rnd = rho[:, 0], rho[:, 1], rho[:, 2:]
    recovery = filt - naive
    deg = 1.0 - naive
    ok = deg > min_degradation
    return {
        "rates": jnp.asarray(r, jnp.float32),
        "n_contaminants": jnp.asarray(m),
        "rho_naive": naive,
        "rho_random": jnp.mean(rnd, axis=1),
        "rho_random_std": jnp.std(rnd, axis=1),
        "rho_filtered": filt,
        "recovery": recovery,
        "recovery_rate": jnp.where(ok, recovery / jnp.where(ok, deg, 1.0), 0.0),
        "contaminant_share": share,
        "filtered_idx": kept,
        "random_idx": rand,
    }
