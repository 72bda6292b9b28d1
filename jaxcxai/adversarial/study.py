"""The adversarial-dissection study: settings, checks and files.

`AdversarialStudy` holds every setting of the study (Mikriukov, Schwalbe,
Motzkus & Bade 2024, "The Anatomy of Adversarial Attacks: Concept-based XAI
Dissection", arXiv 2403.16782) that `eval.adversarial` and the main job's
`adversarial` stage run: the fields of `configs/adversarial.py`, one
dataclass per section. The pipeline itself is a reconstruction (the paper's
models, data, layers and three of its four attacks are not confirmed):

* models (`models.py`): a SynthAerial backbone trained by
  `train.classifier` (targets: scene classes), the packaged ImageNet
  MobileNetV2 / EfficientNet-Lite0 on the photos bundled with scikit-image
  and scikit-learn (targets: the ImageNet classes the model gives other
  photos), and a small CNN trained inside the study on scikit-learn digits
  (Fashion-MNIST where its Debian package is installed);
* attacks in pixel space [0, 1] (`jaxcxai.adversarial.attacks`, `cw`);
* dissection of the latent perturbations at the configured layers (`latent`,
  `decomposition`, `specificity`, `composition`).

Files of a study workdir:

  adversarial_arrays.npz   "<model>.images" (N, S, S, c) the clean source
                           images in [0, 1]; "<model>.<attack>.<eps>.x_adv"
                           (T, N, S, S, c) the adversarial images per target;
                           "... .success" (T, N) bool; "<model>.<layer>.
                           delta" (R, C) the GAP latent perturbations of the
                           dissected successful examples; "<model>.<layer>.
                           components" (k, C) the global components
  adversarial_results.json, adversarial_report.md, PNG figures
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import read_npz, write_npz_atomic

__all__ = [
    "ARRAYS",
    "ATTACKS",
    "MODELS",
    "PHOTOS",
    "REPORT",
    "RESULTS",
    "AdversarialStudy",
    "AttackSettings",
    "DigitsData",
    "DissectSettings",
    "PhotoData",
    "ProbeSettings",
    "SceneData",
    "check_study",
    "eps_name",
    "load_npz",
    "save_npz",
]

ARRAYS = "adversarial_arrays.npz"
RESULTS, REPORT = "adversarial_results.json", "adversarial_report.md"
# Model sources (`models.SOURCES`): a trained SynthAerial backbone, the two
# packaged ImageNet networks, CNNs trained inside the study.
MODELS = ("synthaerial", "mobilenet_v2", "efficientnet_lite0", "digits",
          "fashion_mnist")  # fmt: skip
ATTACKS = ("fgsm", "bim", "pgd", "mifgsm", "cw_l2")  # `attacks.ATTACKS` names
# Photos bundled with scikit-image (`skimage.data.<name>`) and scikit-learn
# (`load_sample_images`: china.jpg, flower.jpg).
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china",
          "flower")  # fmt: skip
DECOMPOSITIONS = ("pca", "nmf_pm", "ica")


@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """Targeted white-box attacks in pixel space [0, 1] (`attacks.ATTACKS`)."""

    names: tuple[str, ...] = ("bim", "pgd", "mifgsm", "cw_l2")
    eps: tuple[float, ...] = (4 / 255, 8 / 255)  # l_inf budgets (not C&W)
    steps: int = 10  # iterations of BIM / PGD / MI-FGSM
    alpha: float = 0.25  # step size as a fraction of eps
    momentum: float = 1.0  # MI-FGSM decay mu
    restarts: int = 1  # PGD random restarts (best per sample)
    cw_c: float = 1.0  # C&W initial trade-off constant c
    cw_steps: int = 30  # C&W Adam steps per binary-search round
    cw_binary_steps: int = 2  # C&W binary-search rounds over c
    cw_lr: float = 0.01  # C&W Adam learning rate
    cw_kappa: float = 0.0  # C&W confidence margin


@dataclasses.dataclass(frozen=True)
class SceneData:
    """SynthAerial scenes attacked on the trained backbone."""

    sources: tuple[str, ...] = ("forest", "farmland", "beach")
    targets: tuple[str, ...] = ("harbor", "airport", "parking_lot", "freeway")
    per_class: int = 6  # images per source class (and clean per target class)
    seed: int = 90_000  # unseen: the backbone trains on seeds 0 and 10_000
    layers: tuple[str, ...] = ("conv2", "conv3")


@dataclasses.dataclass(frozen=True)
class PhotoData:
    """The bundled photos attacked on the packaged ImageNet networks."""

    photos: tuple[str, ...] = ("chelsea", "coffee", "rocket", "china")
    # Photos whose ImageNet class (the network's clean top-1) is a target.
    targets: tuple[str, ...] = ("coffee", "rocket")
    views: int = 2  # views per photo: whole, mirrored, centre crop, its mirror
    image_size: int = 96  # input side (a multiple of 32)
    attacks: tuple[str, ...] = ("bim",)  # run on these networks; () = all
    mobilenet_layers: tuple[str, ...] = ("features.14", "features.18")
    efficientnet_layers: tuple[str, ...] = ("_blocks.12", "_conv_head")


@dataclasses.dataclass(frozen=True)
class DigitsData:
    """The small CNN trained inside the study (digits or Fashion-MNIST)."""

    sources: tuple[int, ...] = (0, 1, 7)
    targets: tuple[int, ...] = (3, 5, 8)
    per_class: int = 6  # attacked test images per source class
    image_size: int = 32  # side after upsampling (a multiple of 8)
    widths: tuple[int, ...] = (16, 32, 64)  # SmallCNN conv widths
    train_steps: int = 300  # Adam steps
    train_batch: int = 64
    lr: float = 0.003
    layers: tuple[str, ...] = ("conv2", "conv3")
    attacks: tuple[str, ...] = ()  # run on this CNN; () = all of attack.names


@dataclasses.dataclass(frozen=True)
class DissectSettings:
    """Latent dissection of the successful examples (F1-F3)."""

    components: int = 6  # k of the global decomposition (F2)
    method: str = "pca"  # "pca" | "nmf_pm" | "ica"
    order: str = "variance"  # removal order: "variance" | "gradient"
    specific: int = 1  # leading components per (attack, source, target) (F3)
    min_samples: int = 2  # successful examples a (attack, source, target) needs
    permutations: int = 1000  # permutation test of the specificity gap
    concepts: int = 4  # NMF concepts per activation set (F1)
    concept_images: int = 8  # images per set of the NMF fits (F1)
    gamma: float = 0.8  # cosine below which a concept is "new"


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
    """Supervised probes of SynthAerial concepts (F1) and the planted check."""

    concept: str = "boat"  # planted: the object concept defining ...
    target: str = "harbor"  # ... this target scene
    num_images: int = 96  # SynthAerial scenes for the CAVs and Net2Vec probes
    num_concept: int = 16  # images per CAV concept set
    num_random: int = 3  # random sets per CAV
    cav_method: str = "logistic"  # "logistic" | "hinge" | "sgd" | "mean_diff"
    epochs: int = 10  # Net2Vec passes over the scenes


@dataclasses.dataclass(frozen=True)
class AdversarialStudy:
    """Every setting of an adversarial-dissection study (`configs/adversarial.py`).

    Attributes:
      seed: seed of the attacks' random starts, decompositions and tests.
      backbone: workdir of the trained SynthAerial backbone (used when
        `models` holds "synthaerial").
      models: model sources, names from `MODELS`.
      batch_size: activation-extraction batch.
    """

    seed: int
    backbone: str
    models: tuple[str, ...]
    batch_size: int
    attack: AttackSettings = AttackSettings()
    scenes: SceneData = SceneData()
    photos: PhotoData = PhotoData()
    digits: DigitsData = DigitsData()
    dissect: DissectSettings = DissectSettings()
    probes: ProbeSettings = ProbeSettings()


def eps_name(eps: float | None) -> str:
    """The key of an l_inf budget in files and tables ("8/255"; C&W: "l2")."""
    return "l2" if eps is None else f"{round(eps * 255, 2):g}/255"


def _bad(values, valid) -> list:
    return [v for v in values if v not in valid]


def check_study(st: AdversarialStudy) -> None:
    """Rejects settings the study would fail on late, naming the field."""
    a, s, p, d, x, q = st.attack, st.scenes, st.photos, st.digits, st.dissect, st.probes
    scenes_on, photos_on = "synthaerial" in st.models, set(st.models) & {
        "mobilenet_v2", "efficientnet_lite0"}  # fmt: skip
    digits_on = set(st.models) & {"digits", "fashion_mnist"}
    rules = [
        (not st.models or _bad(st.models, MODELS),
         f"models {{}} must be non-empty names from {MODELS}"),
        (len(set(st.models)) != len(st.models), "models has duplicates"),
        (not a.names or _bad(a.names, ATTACKS),
         f"attack.names {{}} must be non-empty names from {ATTACKS}"),
        (not a.eps or [e for e in a.eps if not 0 < e <= 1],
         "attack.eps {} must be non-empty budgets in (0, 1] (pixel range [0, 1])"),
        (scenes_on and (not s.sources or _bad(s.sources, synthaerial.SCENES)),
         f"scenes.sources {{}} must be non-empty SynthAerial scenes {synthaerial.SCENES}"),
        (scenes_on and (not s.targets or _bad(s.targets, synthaerial.SCENES)),
         f"scenes.targets {{}} must be non-empty SynthAerial scenes {synthaerial.SCENES}"),
        (scenes_on and sorted(set(s.sources) & set(s.targets)),
         "scenes.sources and scenes.targets share {}"),
        (scenes_on and not s.layers, "scenes.layers is empty"),
        (scenes_on and q.concept not in synthaerial.CONCEPTS,
         f"probes.concept {q.concept!r} is not a SynthAerial concept "
         f"{synthaerial.CONCEPTS}"),
        (scenes_on and q.target not in s.targets,
         f"probes.target {q.target!r} must be one of scenes.targets {s.targets}"),
        (photos_on and (len(p.photos) < 2 or _bad(p.photos, PHOTOS)),
         f"photos.photos {{}} must be at least 2 names from {PHOTOS}"),
        (photos_on and (not p.targets or _bad(p.targets, p.photos)),
         "photos.targets {} must be non-empty names from photos.photos"),
        (photos_on and p.image_size % 32, f"photos.image_size={p.image_size} "
         "must be a multiple of 32"),
        (photos_on and not 1 <= p.views <= 4, "photos.views must be in 1..4"),
        (photos_on and _bad(p.attacks, a.names),
         "photos.attacks {} must be names from attack.names"),
        (digits_on and (not d.sources or _bad(d.sources, range(10))),
         "digits.sources {} must be non-empty classes 0..9"),
        (digits_on and (not d.targets or _bad(d.targets, range(10))),
         "digits.targets {} must be non-empty classes 0..9"),
        (digits_on and sorted(set(d.sources) & set(d.targets)),
         "digits.sources and digits.targets share {}"),
        (digits_on and d.image_size % 8, f"digits.image_size={d.image_size} "
         "must be a multiple of 8"),
        (digits_on and len(d.widths) != 3, "digits.widths needs 3 conv widths"),
        (digits_on and _bad(d.attacks, a.names),
         "digits.attacks {} must be names from attack.names"),
        (scenes_on and q.cav_method not in ("logistic", "hinge", "sgd", "mean_diff"),
         f"probes.cav_method {q.cav_method!r} must be 'logistic', 'hinge', 'sgd' or "
         "'mean_diff'"),
        (x.method not in DECOMPOSITIONS,
         f"dissect.method {x.method!r} must be one of {DECOMPOSITIONS}"),
        (x.order not in ("variance", "gradient"),
         "dissect.order must be 'variance' or 'gradient'"),
        (not 0 < x.gamma <= 1, f"dissect.gamma={x.gamma} must be in (0, 1]"),
    ]  # fmt: skip
    problems = [msg.replace("{}", str(bad)) for bad, msg in rules if bad]
    if problems:
        raise ValueError("; ".join(problems))


def save_npz(path: str, arrays: dict) -> None:
    """`np.savez_compressed` to a temporary name, then renamed."""
    write_npz_atomic(path, {k: np.asarray(v) for k, v in arrays.items()})


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an `.npz` file of the study, loaded into memory."""
    return read_npz(path, "run `python -m eval.adversarial`")
