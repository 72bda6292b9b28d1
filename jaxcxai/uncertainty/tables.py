"""Plain tables of the gating experiments, in the paper's layout.

Uncertainty gating (Mikriukov, Montavon & Hoehne, arXiv:2603.29915)
reports E1 as Table 2 (one row per dataset x model), E2 as the XEC heatmap
of Figure 2 (one cell per dataset x model x explainer x perturbation), E3 as
the strata of Figure 3 with the p10-vs-p90 test, E4 as Table 3 (precision
and recall of "stable" per deferral rate nu), E5 as Table 4 (stability and
cost q per nu) and the faithfulness groups of Figure 4. Each builder turns
the arrays an experiment of `jaxcxai.uncertainty.experiments` returns into a
list of row dicts of Python scalars and strings (no I/O, no formatting).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "STRATUM_NAMES",
    "faithfulness_rows",
    "figure2_cell",
    "figure3_rows",
    "table2_row",
    "table3_rows",
    "table4_rows",
]

STRATUM_NAMES = ("low", "medium", "high")  # E3's three U_epi strata


def _f(x: Any) -> float:
    return float(np.asarray(x))


def table2_row(dataset: str, model: str, out: Mapping[str, Any]) -> dict:
    """One row of Table 2 (arXiv:2603.29915, section 5.1).

    Args:
      dataset, model: the row's labels.
      out: `e1_model_quality`'s arrays.

    Returns:
      {"dataset", "model", "f1_plain" (None without plain probabilities),
      "f1", "f1_std", "u_epi_mean", "cv_epi"}.
    """
    plain = out.get("f1_plain")
    return {
        "dataset": dataset,
        "model": model,
        "f1_plain": None if plain is None else _f(plain),
        "f1": _f(out["f1"]),
        "f1_std": _f(out["f1_std"]),
        "u_epi_mean": _f(out["u_epi_mean"]),
        "cv_epi": _f(out["cv_epi"]),
    }


def figure2_cell(
    dataset: str,
    model: str,
    explainer: str,
    perturbation: str,
    out: Mapping[str, Any],
    strong_below: float = -0.6,
) -> dict:
    """One heatmap cell of Figure 2 (arXiv:2603.29915, section 5.2).

    Args:
      dataset, model, explainer, perturbation: the cell's labels.
      out: `e2_correlation`'s arrays.
      strong_below: XEC below this counts as "strong" (the paper: -0.6).

    Returns:
      {"dataset", "model", "explainer", "perturbation", "xec", "strong",
      "levels", "xd", "eg"} (the last three as lists over the levels).
    """
    x = _f(out["xec"])
    return {
        "dataset": dataset,
        "model": model,
        "explainer": explainer,
        "perturbation": perturbation,
        "xec": x,
        "strong": bool(x < strong_below),
        "levels": np.asarray(out["levels"], np.float64).tolist(),
        "xd": np.asarray(out["xd"], np.float64).tolist(),
        "eg": np.asarray(out["eg"], np.float64).tolist(),
    }


def figure3_rows(dataset: str, out: Mapping[str, Any]) -> list[dict]:
    """Figure 3's strata and the p10-vs-p90 test, one row per sigma.

    Args:
      dataset: the rows' label.
      out: `e3_stratified_stability`'s arrays.

    Returns:
      Rows {"dataset", "sigma", "tau_low", "tau_medium", "tau_high",
      "std_low", ..., "delta_p10_p90", "t", "p", "passed"}
      (arXiv:2603.29915, section 5.3).
    """
    rows = []
    for i, s in enumerate(np.asarray(out["sigmas"], np.float64)):
        row = {"dataset": dataset, "sigma": float(s)}
        for j, name in enumerate(STRATUM_NAMES[: out["stratum_mean"].shape[1]]):
            row[f"tau_{name}"] = _f(out["stratum_mean"][i, j])
            row[f"std_{name}"] = _f(out["stratum_std"][i, j])
        row["delta_p10_p90"] = _f(out["delta"][i])
        row["t"] = _f(out["t"][i])
        row["p"] = _f(out["p"][i])
        row["passed"] = bool(np.asarray(out["passed"][i]))
        rows.append(row)
    return rows


def table3_rows(dataset: str, out: Mapping[str, Any]) -> list[dict]:
    """Table 3: precision and recall of "stable" among the accepted.

    Args:
      dataset: the rows' label.
      out: `e4_deferral`'s arrays.

    Returns:
      Rows {"dataset", "nu", "precision", "recall", "coverage"} in the
      order of `out["nu"]` (arXiv:2603.29915, section 5.4).
    """
    return [
        {
            "dataset": dataset,
            "nu": _f(nu),
            "precision": _f(out["precision"][i]),
            "recall": _f(out["recall"][i]),
            "coverage": _f(out["coverage"][i]),
        }
        for i, nu in enumerate(np.asarray(out["nu"]))
    ]


def table4_rows(dataset: str, config: str, out: Mapping[str, Any]) -> list[dict]:
    """Table 4: stability of the accepted and the cost q at each nu.

    Args:
      dataset: the rows' label.
      config: the model + explainer label (e.g. "RF + TreeSHAP").
      out: `e5_cost`'s arrays.

    Returns:
      Rows {"dataset", "config", "nu", "tau_mean", "tau_std", "q"}
      (arXiv:2603.29915, section 5.4, Eq. 2-3).
    """
    return [
        {
            "dataset": dataset,
            "config": config,
            "nu": _f(nu),
            "tau_mean": _f(out["tau_mean"][i]),
            "tau_std": _f(out["tau_std"][i]),
            "q": _f(out["q"][i]),
        }
        for i, nu in enumerate(np.asarray(out["nu"]))
    ]


def faithfulness_rows(
    dataset: str, model: str, out: Mapping[str, Any], groups: Sequence[str]
) -> list[dict]:
    """Figure 4's groups: log-odds removal shift, mean and std.

    Args:
      dataset, model: the rows' labels.
      out: `faithfulness_groups`'s arrays.
      groups: group names in the order of `out["mean"]`.

    Returns:
      Rows {"dataset", "model", "group", "shift_mean", "shift_std",
      "per_k"} (per_k: the mean shift at each k, a list) (arXiv:2603.29915,
      section 5.5).
    """
    return [
        {
            "dataset": dataset,
            "model": model,
            "group": g,
            "shift_mean": _f(out["mean"][i]),
            "shift_std": _f(out["std"][i]),
            "per_k": np.asarray(out["mean_k"][i], np.float64).tolist(),
        }
        for i, g in enumerate(groups)
    ]
