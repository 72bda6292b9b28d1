"""Noise-feature focus (E7): signal mass of the lowest / highest-U groups.

Mikriukov, Montavon & Hoehne, "Uncertainty Gating for Cost-Aware XAI"
(arXiv:2603.29915, App. C, Eq. 10, Figure 8): a dataset is augmented with
n_noise = round(r d_signal) i.i.d. N(0, 1) columns, the model is retrained,
and the explanations of the lowest-U, highest-U and random groups are
compared by how much of their global importance I_j = mean |phi_j| falls on
the signal features (SignalMass) and by how many noise features rank among
the top d_signal. The paper's expectation: confident (low-U) explanations
focus on the signal.

`add_noise_features` appends the columns to an already split and scaled
dataset; `focus_groups` measures the groups. The pipeline
(`pipeline._focus`) retrains RF (r in 1, 2, 3, 5, 10) and LR (r in 1, 2, 3).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import check_finite
from jaxcxai.data.tabular import TabularSplits
from jaxcxai.metrics.explanations.sanity import noise_in_top, signal_mass
from jaxcxai.uncertainty.deferral import u_groups

__all__ = ["FOCUS_SEED", "RF_RATIOS", "LR_RATIOS", "add_noise_features", "focus_groups"]

RF_RATIOS = (1, 2, 3, 5, 10)  # App. C: noise columns per signal column, RF
LR_RATIOS = (1, 2, 3)  # and LR
FOCUS_SEED = 42 + 123  # the reference's seed of the noise columns
GROUPS = ("low", "high", "random")


def add_noise_features(
    splits: TabularSplits, ratio: float, seed: int = FOCUS_SEED
) -> TabularSplits:
    """`splits` with round(ratio d) N(0, 1) noise columns appended.

    The reference appends the columns to the raw table before splitting and
    z-scoring. Because the split is by rows and z-scoring is per column,
    appending them to each split and z-scoring them with the training rows'
    statistics gives the same distribution; the draws differ from the
    reference's (its row order is the raw file's). The signal columns are
    untouched.

    Args:
      splits: a z-scored dataset with d signal features.
      ratio: r > 0 (the paper: 1, 2, 3, 5, 10).
      seed: NumPy seed of the noise (train, validation, test rows in order).

    Returns:
      A `TabularSplits` with d + round(r d) features; the first d are the
      signal (`feature_names` of the noise: "noise_0", ...).
    """
    if not ratio > 0:
        raise ValueError(f"ratio must be > 0, got {ratio}")
    d = splits.num_features
    n_noise = int(round(ratio * d))
    sizes = [len(splits.x_train), len(splits.x_val), len(splits.x_test)]
    raw = np.random.default_rng(seed).standard_normal((sum(sizes), n_noise))
    mean, scale = raw[: sizes[0]].mean(0), raw[: sizes[0]].std(0)
    scale = np.where(scale > 0, scale, 1.0)
    z = ((raw - mean) / scale).astype(np.float32)
    parts = np.split(z, np.cumsum(sizes)[:2])
    return dataclasses.replace(
        splits,
        x_train=np.concatenate([splits.x_train, parts[0]], 1),
        x_val=np.concatenate([splits.x_val, parts[1]], 1),
        x_test=np.concatenate([splits.x_test, parts[2]], 1),
        feature_names=splits.feature_names
        + tuple(f"noise_{i}" for i in range(n_noise)),
        train_mean=np.concatenate([splits.train_mean, mean]),
        train_scale=np.concatenate([splits.train_scale, scale]),
    )


def focus_groups(
    u: Any,
    phi: Any,
    num_signal: int,
    key: jax.Array,
    *,
    group_size: int = 50,
    n_random: int = 5,
    dataset: str = "",
    model: str = "",
    ratio: float = 0.0,
) -> tuple[dict[str, Any], list[dict]]:
    """SignalMass and noise-in-top of the lowest / highest / random-U groups.

    arXiv:2603.29915, App. C, Eq. 10: SignalMass = sum_{j in S} I_j /
    sum_j I_j with I_j = mean |phi_j| over the group; the random group's
    value is the mean (and std) over its `n_random` draws, each a group of
    its own. Groups as in the faithfulness analysis (`deferral.u_groups`).

    Args:
      u: (n,) U_epi of the explained samples.
      phi: (n, d) their explanations; the first `num_signal` columns are
        the signal.
      num_signal: d_signal.
      key: PRNG key of the random draws.
      group_size, n_random: the paper's 50 and 5.
      dataset, model, ratio: the rows' labels.

    Returns:
      Arrays {"mass" (3,) and "mass_std" (3,) (std 0 for the fixed groups),
      "noise_top" (3,) (random: mean over draws), "mass_random" (n_random,)}
      and one row per group {"dataset", "model", "ratio", "group",
      "signal_mass", "signal_mass_std", "noise_in_top", "num_signal",
      "num_noise"}.
    """
    check_finite({"u": u, "phi": phi})
    phi = jnp.asarray(phi, jnp.float32)
    if phi.ndim != 2 or phi.shape[0] != np.shape(u)[0]:
        raise ValueError(f"phi must be (n, d) with n = len(u), got {phi.shape}")
    d = phi.shape[1]
    if not 1 <= num_signal < d:
        raise ValueError(f"num_signal must be in [1, {d}), got {num_signal}")
    signal = jnp.arange(d) < num_signal
    low, high, rand = u_groups(u, key, group_size, n_random)
    mass = lambda g: signal_mass(phi[g], signal)
    noise = lambda g: noise_in_top(phi[g], signal)
    m_rand = jnp.stack([mass(g) for g in rand])
    n_rand = jnp.stack([noise(g) for g in rand]).astype(jnp.float32)
    out = {
        "mass": np.asarray([mass(low), mass(high), m_rand.mean()], np.float64),
        "mass_std": np.asarray([0.0, 0.0, m_rand.std()], np.float64),
        "noise_top": np.asarray([noise(low), noise(high), n_rand.mean()], np.float64),
        "mass_random": np.asarray(m_rand, np.float64),
    }
    rows = [
        {"dataset": dataset, "model": model, "ratio": float(ratio), "group": g,
         "signal_mass": float(out["mass"][i]),
         "signal_mass_std": float(out["mass_std"][i]),
         "noise_in_top": float(out["noise_top"][i]),
         "num_signal": int(num_signal), "num_noise": int(d - num_signal)}
        for i, g in enumerate(GROUPS)
    ]  # fmt: skip
    return out, rows
