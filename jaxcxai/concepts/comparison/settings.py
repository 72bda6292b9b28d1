"""The settings of a comparison study: `CompareStudy` and its sections.

`CompareStudy` holds every setting of the study (the fields of
`configs/compare.py`), one frozen dataclass per section; `CHOICES` lists the
settings with a fixed set of values, which `study.check_study` enforces.
`study` re-exports every name here.
"""

from __future__ import annotations

import dataclasses

from jaxcxai.concepts.probes import cavs, net2vec

__all__ = ["CHOICES", "CavSettings", "CheckSettings", "CompareData", "CompareStudy",
           "Net2VecSettings"]  # fmt: skip

# Settings with a fixed set of values.
CHOICES = {
    "net2vec.objective": tuple(net2vec.OBJECTIVES),
    "net2vec.optimizer": ("adamw", "sgd"),
    "cav.method": cavs.METHODS,
    "cav.pool": ("mean", "flatten"),
}


@dataclasses.dataclass(frozen=True)
class CompareData:
    """SynthAerial scenes: a split to fit the probes on, one to compare on.

    Attributes:
      image_size: side of the generated scenes; 0 = the trained backbone's
        training size. Every network resizes them to its own input size.
      num_train, num_test: scenes per split.
      seed, test_seed: SynthAerial seeds (unseen by the backbones).
      boat_on_water_p: SynthAerial's boat/water correlation.
    """

    image_size: int = 0
    num_train: int = 300
    num_test: int = 100
    seed: int = 60_000
    test_seed: int = 70_000
    boat_on_water_p: float = 0.9


@dataclasses.dataclass(frozen=True)
class Net2VecSettings:
    """Net2Vec probes (bulk fit, `jaxcxai.concepts.probes.bulk`)."""

    objective: str = "balanced_bce"  # a key of net2vec.OBJECTIVES
    optimizer: str = "adamw"  # "adamw" | "sgd"
    lr: float = 0.03
    batch_size: int = 32
    epochs: int = 10
    runs: int = 2  # R probes per (concept, layer), aggregated (mean distance)


@dataclasses.dataclass(frozen=True)
class CavSettings:
    """Concept-vs-random CAVs (TCAV's protocol, `cavs.fit_cavs`)."""

    method: str = "logistic"  # "logistic" | "hinge" | "sgd" | "mean_diff"
    alpha: float = 0.01  # L2 strength of the CAV classifier
    pool: str = "mean"  # "mean" (1D-CAV) | "flatten" (3D-CAV)
    num_random: int = 5  # R random sets; projections average the R CAVs
    num_concept_images: int = 40
    num_random_images: int = 40


@dataclasses.dataclass(frozen=True)
class CheckSettings:
    """The relative-depth check against random assignment of best matches."""

    draws: int = 10_000  # Monte Carlo draws of random assignments
    significance: float = 0.05  # one-sided level of "nearer than random"


@dataclasses.dataclass(frozen=True)
class CompareStudy:
    """Every setting of a comparison study (see `configs/compare.py`).

    Attributes:
      seed: seed of probe inits, minibatch orders, CAV sets and the checks.
      backbone: workdir of the trained backbone (always compared).
      backbones: workdirs of further trained backbones; one without
        `backbone.json` is skipped (and reported).
      pretrained: packaged ImageNet networks (`models.pretrained.PRETRAINED`).
      pretrained_size: their input side (a multiple of 32).
      num_layers: blocks compared per network, evenly spaced over `BLOCKS`.
      layers: "network:layer" entries; a network named here is compared at
        exactly these layers (in depth order) instead.
      concepts: SynthAerial object concepts probed.
      grid: side G of the common mask grid; 0 = the scenes' side.
      batch_size: activation-extraction batch (a multiple of the devices).
    """

    seed: int
    backbone: str
    backbones: tuple[str, ...]
    pretrained: tuple[str, ...]
    pretrained_size: int
    num_layers: int
    layers: tuple[str, ...]
    concepts: tuple[str, ...]
    grid: int
    batch_size: int
    data: CompareData = CompareData()
    net2vec: Net2VecSettings = Net2VecSettings()
    cav: CavSettings = CavSettings()
    checks: CheckSettings = CheckSettings()
