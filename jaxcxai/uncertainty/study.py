"""A gating study: the settings of every experiment and the files it writes.

`GatingStudy` holds every setting of `configs/gating.py` (one frozen
dataclass per section, in `settings`, re-exported here); `run.run_study`
runs it. Defaults are the
protocol of Mikriukov, Montavon & Hoehne, "Uncertainty Gating for Cost-Aware
XAI" (arXiv:2603.29915, sections 4-5); the configs shrink the sample counts
to fit a CPU budget and the report names every departure.

Files of a study workdir:
  results.json      every number of the report (written last)
  arrays.npz        per dataset: U, stability pools and per-sample tau
  gating_report.md  the report; PNG figures beside it
"""

from __future__ import annotations

import dataclasses

from jaxcxai.data.tabular import ROLES
from jaxcxai.uncertainty.settings import (
    ADVERSARIAL,
    COMBOS,
    E2,
    E3,
    E4,
    EXPLAINERS,
    MODELS,
    NATURAL,
    PERTURBATIONS,
    UC1,
    Data,
    Explainers,
    Extras,
    Faithfulness,
    Focus,
    Image,
    Models,
)

__all__ = [
    "ADVERSARIAL",
    "NATURAL",
    "ARRAYS",
    "COMBOS",
    "EXPLAINERS",
    "MODELS",
    "PERTURBATIONS",
    "REPORT",
    "RESULTS",
    "Data",
    "E2",
    "E3",
    "E4",
    "Explainers",
    "Extras",
    "Faithfulness",
    "Focus",
    "GatingStudy",
    "Image",
    "Models",
    "UC1",
    "check_study",
]

RESULTS, REPORT, ARRAYS = "results.json", "gating_report.md", "arrays.npz"


@dataclasses.dataclass(frozen=True)
class GatingStudy:
    """Every setting of a gating study (`configs/gating.py`).

    Attributes:
      seed: PRNG seed of the models, perturbations and explainers.
      experiments: which of "e1", "e2", "e3", "e4", "faithfulness", "focus",
        "extras", "uc1", "image" run (E5 comes with E4).
    """

    seed: int = 42
    experiments: tuple[str, ...] = (
        "e1", "e2", "e3", "e4", "faithfulness", "focus", "extras", "uc1", "image",
    )  # fmt: skip
    data: Data = Data()
    models: Models = Models()
    explainers: Explainers = Explainers()
    e2: E2 = E2()
    e3: E3 = E3()
    e4: E4 = E4()
    faithfulness: Faithfulness = Faithfulness()
    focus: Focus = Focus()
    extras: Extras = Extras()
    uc1: UC1 = UC1()
    image: Image = Image()


EXPERIMENTS = (
    "e1", "e2", "e3", "e4", "faithfulness", "focus", "extras", "uc1", "image",
)  # fmt: skip


def _pairs(name: str, values, models) -> None:
    for v in values:
        model, _, expl = v.partition(":")
        if model not in MODELS or expl not in COMBOS.get(model, ()):
            raise ValueError(
                f"{name}: {v!r} is not a 'model:explainer' of the paper "
                f"({', '.join(f'{m}:{e}' for m in MODELS for e in COMBOS[m])})"
            )
        if model not in models:
            raise ValueError(f"{name}: {v!r} needs model {model!r} in models.names")


def check_study(s: GatingStudy) -> None:
    """Raises ValueError naming the first setting the study cannot run."""
    bad = set(s.experiments) - set(EXPERIMENTS)
    if bad:
        raise ValueError(f"experiments: unknown {sorted(bad)}; valid: {EXPERIMENTS}")
    for name, roles in (("data.roles", s.data.roles), ("e3.roles", s.e3.roles),
                        ("e4.roles", s.e4.roles), ("focus.roles", s.focus.roles),
                        ("extras.roles", s.extras.roles)):  # fmt: skip
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"{name}: unknown roles {sorted(unknown)}; valid: {ROLES}")
    for name, roles in (("e3.roles", s.e3.roles), ("e4.roles", s.e4.roles),
                        ("focus.roles", s.focus.roles),
                        ("extras.roles", s.extras.roles)):  # fmt: skip
        if set(roles) - set(s.data.roles):
            raise ValueError(f"{name} must be a subset of data.roles {s.data.roles}")
    bad = set(s.models.names) - set(MODELS)
    if bad:
        raise ValueError(f"models.names: unknown {sorted(bad)}; valid: {MODELS}")
    bad = set(s.e2.perturbations) - set(PERTURBATIONS)
    if bad:
        raise ValueError(
            f"e2.perturbations: unknown {sorted(bad)}; valid: {PERTURBATIONS}"
        )
    _pairs("e2.combos", s.e2.combos, s.models.names)
    _pairs("e4.configs", s.e4.configs, s.models.names)
    _pairs("faithfulness.configs", s.faithfulness.configs, s.models.names)
    _pairs("focus.configs", s.focus.configs, MODELS)  # refits its own models
    if any(c.startswith("mlp:") for c in s.focus.configs):
        raise ValueError(
            "focus.configs: the paper's focus study retrains RF and LR only"
        )
    if "extras" in s.experiments and s.extras.roles:
        _pairs("extras.config", (s.extras.config,), s.models.names)
    if not 1 <= s.extras.keep <= s.extras.base:
        raise ValueError("extras.keep must be in [1, extras.base]")
    if s.focus.group_size * 3 > s.focus.num_samples:
        raise ValueError("focus.group_size x 3 must not exceed focus.num_samples")
    if "e3" in s.experiments and "rf" not in s.models.names:
        raise ValueError("e3 runs RF + TreeSHAP: add 'rf' to models.names")
    if "uc1" in s.experiments and "mlp" not in s.models.names:
        raise ValueError("uc1 routes between the MLP's IG and SmoothIG: add 'mlp'")
    if s.image.source not in ("", "digits", "fashion_mnist"):
        raise ValueError(
            f"image.source must be '', 'digits' or 'fashion_mnist', got {s.image.source!r}"
        )
    if len(s.image.pools) != len(s.image.channels):
        raise ValueError("image.pools needs one entry per image.channels entry")
    if s.e3.per_stratum * 3 > s.e3.num_samples:
        raise ValueError("e3.per_stratum x 3 must not exceed e3.num_samples")
    if s.faithfulness.group_size * 3 > s.e4.num_samples:
        raise ValueError(
            "faithfulness.group_size x 3 must not exceed e4.num_samples "
            "(the groups are drawn from E4's test rows)"
        )


def combos(s: GatingStudy) -> tuple[tuple[str, str], ...]:
    """The E2 cells as (model, explainer) pairs, the paper's by default."""
    if s.e2.combos:
        return tuple(tuple(c.split(":")) for c in s.e2.combos)
    return tuple((m, e) for m in s.models.names for e in COMBOS[m])
