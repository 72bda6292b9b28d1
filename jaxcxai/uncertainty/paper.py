"""The gating paper's published numbers, for the report's side-by-side tables.

Copied from Mikriukov, Montavon & Hoehne, "Uncertainty Gating for Cost-Aware
XAI" (arXiv:2603.29915): Table 1 (dataset sizes), Table 2 (E1), Table 3
(E4), Table 4 (E5) and the image experiment's statements. Keys are the
paper's datasets; `ROLE_DATASET` maps each embedded role of
`jaxcxai.data.tabular` to the dataset whose role it plays, so a report can
set "paper, on Wine Quality" beside "ours, on make_classification".
"""

from __future__ import annotations

__all__ = [
    "IMAGE",
    "ROLE_DATASET",
    "TABLE1",
    "TABLE2",
    "TABLE3",
    "TABLE4",
    "FINDINGS",
]

ROLE_DATASET = {
    "weak_signal_binary": "Wine Quality",
    "multiclass_separated": "Dry Bean",
    "clean_binary": "Rice",
    "small_imbalanced": "Ecoli",
}

# features, classes, train, val, test
TABLE1 = {
    "Wine Quality": (11, 2, 4547, 975, 975),
    "Dry Bean": (16, 7, 9527, 2042, 2042),
    "Rice": (7, 2, 2667, 571, 572),
    "Ecoli": (7, 8, 235, 50, 51),
}

# model -> (F1 non-UQ, F1 UQ, mean U_epi, CV_epi); GBDTs report F1 only.
TABLE2 = {
    "Wine Quality": {
        "lr": (0.736, 0.733, 0.0004, 1.40),
        "rf": (0.810, 0.810, 0.083, 0.50),
        "mlp": (0.764, 0.773, 0.023, 0.71),
        "lgbm": (0.808, 0.806, None, None),
        "cb": (0.780, 0.780, None, None),
    },
    "Dry Bean": {
        "lr": (0.921, 0.923, 0.0001, 3.71),
        "rf": (0.925, 0.925, 0.0083, 1.57),
        "mlp": (0.936, 0.935, 0.026, 1.41),
        "lgbm": (0.930, 0.930, None, None),
        "cb": (0.931, 0.931, None, None),
    },
    "Rice": {
        "lr": (0.921, 0.923, 0.0003, 2.21),
        "rf": (0.919, 0.919, 0.026, 1.44),
        "mlp": (0.930, 0.921, 0.0066, 1.12),
        "lgbm": (0.918, 0.916, None, None),
        "cb": (0.916, 0.916, None, None),
    },
    "Ecoli": {
        "lr": (0.842, 0.875, 0.0016, 2.25),
        "rf": (0.845, 0.845, 0.0197, 0.74),
        "mlp": (0.869, 0.869, 0.044, 0.71),
        "lgbm": (0.824, 0.809, None, None),
        "cb": (0.841, 0.841, None, None),
    },
}

# nu -> (precision, recall) of "stable" (tau >= 0.7), RF + TreeSHAP.
TABLE3 = {
    "Wine Quality": {0.9: (0.932, 0.144), 0.7: (0.788, 0.367), 0.5: (0.735, 0.570),
                     0.3: (0.687, 0.746), 0.1: (0.648, 0.904)},
    "Dry Bean": {0.9: (1.000, 0.123), 0.7: (1.000, 0.370), 0.5: (0.996, 0.614),
                 0.3: (0.989, 0.854), 0.1: (0.890, 0.987)},
    "Rice": {0.9: (1.000, 0.114), 0.7: (1.000, 0.342), 0.5: (1.000, 0.570),
             0.3: (0.998, 0.797), 0.1: (0.937, 0.962)},
}  # fmt: skip

# config -> nu -> (tau mean, tau std, q)
TABLE4 = {
    "Wine Quality": {
        "rf:treeshap": {0.7: (0.797, 0.121, 0.30), 0.5: (0.777, 0.130, 0.50),
                        0.3: (0.758, 0.141, 0.70), 0.0: (0.740, 0.149, 1.00)},
        "mlp:lime": {0.7: (0.722, 0.106, 0.31), 0.5: (0.725, 0.108, 0.51),
                     0.3: (0.729, 0.108, 0.71), 0.0: (0.747, 0.107, 1.00)},
    },
    "Dry Bean": {
        "rf:treeshap": {0.7: (0.959, 0.031, 0.30), 0.5: (0.937, 0.050, 0.50),
                        0.3: (0.908, 0.072, 0.70), 0.0: (0.821, 0.179, 1.00)},
        "mlp:lime": {0.7: (0.712, 0.120, 0.31), 0.5: (0.692, 0.144, 0.51),
                     0.3: (0.669, 0.156, 0.71), 0.0: (0.635, 0.165, 1.00)},
    },
    "Rice": {
        "rf:treeshap": {0.7: (0.976, 0.034, 0.30), 0.5: (0.965, 0.042, 0.50),
                        0.3: (0.947, 0.058, 0.70), 0.0: (0.879, 0.150, 1.00)},
        "mlp:lime": {0.7: (0.828, 0.109, 0.31), 0.5: (0.811, 0.120, 0.51),
                     0.3: (0.787, 0.132, 0.71), 0.0: (0.751, 0.151, 1.00)},
    },
}  # fmt: skip

# The image experiment (PlantVillage, 3 classes, CNN with MC dropout).
IMAGE = {
    "xec": {"ig": -1.0, "smoothgrad": -1.0},
    "low_u_below": 2.5e-3,  # low-epistemic images keep SSIM > 0.47 at 0.2
    "low_u_ssim_at_0.2": 0.47,
    "high_u_above": 4e-2,  # high-epistemic images reach SSIM ~ 0.3 at 0.2
    "high_u_ssim_at_0.2": 0.3,
}

# The paper's qualitative findings (section 5), checked in direction.
FINDINGS = (
    "XEC is strongly negative (< -0.6) in nearly all settings",
    "SHAP gives stronger (more negative) XEC than LIME",
    "IG gives stronger XEC than SmoothIG",
    "permutation is the weakest perturbation",
    "E3: tau falls from the low to the high U_epi stratum",
    "E4: precision of 'stable' rises with the deferral rate nu",
    "E5: accepted-sample stability rises with nu for RF + TreeSHAP",
    "E7: low-U explanations keep more SignalMass than high-U ones",
    "faithfulness: low-U rows have a larger log-odds shift than high-U rows",
    "image: XEC = -1 for IG and SmoothGrad",
)
