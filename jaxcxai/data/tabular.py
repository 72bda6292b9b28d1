"""Tabular sets of the uncertainty-gating paper: its splits and embedded roles.

The gating paper (Mikriukov, Montavon, Hoehne, arXiv:2603.29915, section 4)
evaluates on four UCI datasets, each playing a role:

========================  ======================  ===========================
role                      paper's dataset         embedded substitute
========================  ======================  ===========================
``weak_signal_binary``    Wine Quality (binary)   ``make_classification``
``multiclass_separated``  Dry Bean (7 classes)    ``load_digits`` (10 classes)
``clean_binary``          Rice Cammeo/Osmancik    ``load_breast_cancer``
``small_imbalanced``      Ecoli (8 classes)       ``load_wine`` (3 classes)
========================  ======================  ===========================

The substitutes are the first choices of our offline plan, all shipped with
scikit-learn (no download):

* weak-signal binary: ``make_classification(n=6000, d=11, flip_y=0.2,
  class_sep=0.5)``. The other candidate, ``load_wine`` binarised, is close
  to linearly separable and would not reproduce Wine Quality's label noise and
  low CV_epi; the generator does (20% flipped labels, 11 features as in Wine
  Quality, about as many rows as its 6497).
* well-separated multi-class: ``load_digits`` (1797 x 64, 10 classes).
* clean binary: ``load_breast_cancer`` (569 x 30).
* small imbalanced: ``load_wine`` (178 x 13, classes of 59/71/48). ``load_iris``,
  the other candidate, is exactly balanced (50/50/50); no bundled set has
  Ecoli's long tail (classes of 143 down to 2 rows).

Every set, embedded or read from the paper's files (`jaxcxai.data.uci`), goes
through :func:`split_and_scale`: the paper's random, *not stratified* 70/15/15
train/validation/test split with seed 42 (two ``train_test_split`` calls: 30%
held out, then halved into validation and test), and features z-scored with
the training mean and standard deviation only (``StandardScaler`` semantics:
population std, constant columns get scale 1).

References:
  Mikriukov, Montavon, Hoehne. Uncertainty Gating for Cost-Aware XAI.
  arXiv:2603.29915.
"""

import dataclasses

import numpy as np
from sklearn import datasets as skdata
from sklearn.model_selection import train_test_split

__all__ = [
    "EMBEDDED",
    "ROLES",
    "TabularSplits",
    "load_embedded",
    "split_and_scale",
]

ROLES = (
    "weak_signal_binary",
    "multiclass_separated",
    "clean_binary",
    "small_imbalanced",
)
# role -> the scikit-learn set standing in for the paper's dataset.
EMBEDDED = {
    "weak_signal_binary": "make_classification",
    "multiclass_separated": "load_digits",
    "clean_binary": "load_breast_cancer",
    "small_imbalanced": "load_wine",
}
HOLDOUT = 0.30  # validation + test; the holdout is then halved.


@dataclasses.dataclass(frozen=True, eq=False)
class TabularSplits:
    """One dataset after the paper's split and scaling.

    Attributes:
      x_train, x_val, x_test: (n_split, d) float32, z-scored with the training
        statistics.
      y_train, y_val, y_test: (n_split,) int32 class indices into
        ``class_names``.
      feature_names: d column names.
      class_names: K class names.
      name: the dataset (``"wine_quality"``, ``"load_digits"``, ...).
      role: one of ``ROLES``.
      train_mean, train_scale: (d,) float64 statistics of the raw training
        features (``x = (raw - train_mean) / train_scale``).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    name: str
    role: str
    train_mean: np.ndarray
    train_scale: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)


def split_and_scale(
    x: np.ndarray,
    y: np.ndarray,
    *,
    feature_names,
    class_names,
    name: str,
    role: str,
    seed: int = 42,
) -> TabularSplits:
    """The paper's 70/15/15 random split (not stratified) and z-scoring.

    Args:
      x: (N, d) raw features, finite.
      y: (N,) class indices in ``[0, len(class_names))``.
      feature_names: d names; class_names: K names.
      name, role: recorded on the result (``role`` must be one of ``ROLES``).
      seed: ``random_state`` of both ``train_test_split`` calls (paper: 42).

    Returns:
      :class:`TabularSplits`. Sizes: test+val = ceil(0.3 N), of which the
      test part is ceil(half), as ``train_test_split`` rounds.

    Raises:
      ValueError: mismatched shapes, too few rows (< 7), labels out of range,
        non-finite features or an unknown role.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    feature_names, class_names = tuple(feature_names), tuple(class_names)
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if x.ndim != 2 or y.shape != x.shape[:1] or x.shape[1] != len(feature_names):
        raise ValueError(
            f"{name}: x {x.shape}, y {y.shape} and {len(feature_names)} feature "
            "names do not agree"
        )
    if len(x) < 7:  # Fewer rows leave an empty split.
        raise ValueError(f"{name}: {len(x)} rows, need at least 7 to split 70/15/15")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: features hold non-finite values")
    if y.size and (y.min() < 0 or y.max() >= len(class_names)):
        raise ValueError(f"{name}: labels outside [0, {len(class_names)})")
    rows = np.arange(len(x))
    train, hold = train_test_split(rows, test_size=HOLDOUT, random_state=seed)
    val, test = train_test_split(hold, test_size=0.5, random_state=seed)
    mean = x[train].mean(axis=0)
    scale = x[train].std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # StandardScaler keeps constants.

    def part(idx):
        xs = ((x[idx] - mean) / scale).astype(np.float32)
        return xs, y[idx].astype(np.int32)

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = part(train), part(val), part(test)
    return TabularSplits(
        x_tr, y_tr, x_va, y_va, x_te, y_te,
        feature_names, class_names, name, role, mean, scale,
    )  # fmt: skip


def _raw_embedded(role: str, seed: int):
    """(x, y, feature_names, class_names) of the substitute for ``role``."""
    if role == "weak_signal_binary":
        x, y = skdata.make_classification(
            n_samples=6000,
            n_features=11,
            n_informative=5,
            n_redundant=2,
            n_classes=2,
            flip_y=0.2,
            class_sep=0.5,
            random_state=seed,
        )
        return x, y, [f"x{i}" for i in range(11)], ["class 0", "class 1"]
    loader = getattr(skdata, EMBEDDED[role])
    bunch = loader()
    return bunch.data, bunch.target, bunch.feature_names, bunch.target_names


def load_embedded(role: str, seed: int = 42) -> TabularSplits:
    """The bundled scikit-learn set playing ``role``, split and scaled.

    Args:
      role: one of ``ROLES`` (see the module docstring for the mapping and
        why each substitute was chosen).
      seed: the split seed and the generator seed of ``make_classification``
        (paper: 42).

    Returns:
      :class:`TabularSplits` named after the scikit-learn function.

    Raises:
      ValueError: ``role`` is not one of ``ROLES``.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    x, y, features, classes = _raw_embedded(role, seed)
    return split_and_scale(
        x,
        y,
        feature_names=[str(f) for f in features],
        class_names=[str(c) for c in classes],
        name=EMBEDDED[role],
        role=role,
        seed=seed,
    )
