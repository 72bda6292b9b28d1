"""CHNR's "wrong caption" noise injection and clean subsets (comrados/noisy_captions).

Replays the reference's CPython `random` sequence exactly:
  1. `random.seed(seed)` and the per-image caption choice (`select_idxs`,
     one `sample(range(K), 1)` per train image);
  2. the same generator continues: for every train position i,
     `u = random()`; if `u < p`, `j = choice(range(N))` redrawn until
     `label_j != label_i`, and i takes j's caption (the code counts it as
     "replaced");
  3. afterwards an always-clean subset of `int(clean_fraction * N)` positions
     (reseeded, `sorted(sample(range(N), k))`) gets its true caption back.
     QUIRK: `clean_fraction` is hard-coded to 0.2 in the reference, whatever
     `--clean-captions` says, so the effective noise rate is about 0.8 p.

Indices here are positions inside the train subset (0..N-1), not image ids.
"""

import dataclasses
import random

import numpy as np

from jaxcxai.data.duch_h5 import caption_offsets

__all__ = ["NoisyCaptions", "clean_subset", "clean_subset_labels", "inject_noise"]


def clean_subset(num: int, fraction: float, seed: int = 42) -> np.ndarray:
    """`select_k_idxs_from_pop(int(num*fraction), seed)`: sorted positions.

    UCM train (1050) with fraction 0.3 gives 315 positions, RSICD train
    (5460) with 0.2 gives 1092.
    """
    rng = random.Random(seed)
    return np.asarray(sorted(rng.sample(range(num), int(num * fraction))), np.int64)


def clean_subset_labels(
    labels: np.ndarray, clean_idx: np.ndarray, faithful: bool = True
) -> np.ndarray:
    """Labels the reference's clean dataset yields for its items.

    QUIRK (the reference's
    `DatasetQuadrupletAugmentedTxtImgNoiseWrongCaptionClean`): item `t` of the
    clean dataset returns `labels[t]` instead of `labels[clean_idx[t]]`.
    `faithful=True` replicates that; False gives the true labels of the clean
    samples.
    """
    labels = np.asarray(labels)
    clean_idx = np.asarray(clean_idx)
    return labels[: len(clean_idx)] if faithful else labels[clean_idx]


@dataclasses.dataclass(frozen=True)
class NoisyCaptions:
    """Result of the noise injection over N train positions.

    Attributes:
      source: (N,) int64; position whose caption i is trained with
        (i itself when clean).
      replaced: (N,) bool; the reference's "replaced" flag (u < p), which
        includes always-clean rows that got their caption back.
      always_clean: (N,) bool; the hard-coded always-clean subset.
      offsets: (N,) int64 caption offsets of the seeded caption choice.
    """

    source: np.ndarray
    replaced: np.ndarray
    always_clean: np.ndarray
    offsets: np.ndarray

    @property
    def noisy(self) -> np.ndarray:
        """(N,) bool: rows that really train with another image's caption."""
        return self.source != np.arange(len(self.source))

    @property
    def num_replaced(self) -> int:
        """The count the reference prints."""
        return int(self.replaced.sum())

    @property
    def num_noisy(self) -> int:
        return int(self.noisy.sum())


def inject_noise(
    labels: np.ndarray,
    p: float,
    captions_per_image: int = 5,
    seed: int = 42,
    clean_fraction: float = 0.2,
) -> NoisyCaptions:
    """Replays CHNR's wrong-caption noise for train labels `labels` (N,).

    Args:
      labels: (N,) class codes of the train subset, in subset order.
      p: replacement probability in [0, 1].
      captions_per_image: K of the preceding caption choice (its draws
        advance the generator, so K matters for the result).
      seed: the seed of the caption choice and of the always-clean subset.
      clean_fraction: size of the always-clean subset (reference: 0.2).

    Returns:
      A `NoisyCaptions`; for UCM (N=1050) and p = 0.05, 0.1, 0.2, 0.3, 0.4,
      0.5 the printed counts are 46, 117, 212, 300, 409, 524 and the really
      noisy counts 38, 90, 175, 241, 313, 412.

    Raises:
      ValueError: `labels` is not 1-D, `p` is outside [0, 1], or a
        replacement is needed while all labels are equal (the reference's
        rejection loop would never end).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {labels.shape}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"noise probability must be in [0, 1], got {p}")
    n = labels.shape[0]
    rng = random.Random(seed)
    offsets = caption_offsets(n, captions_per_image, rng=rng)
    single_class = len(np.unique(labels)) < 2
    lab = labels.tolist()
    source = list(range(n))
    replaced = np.zeros(n, bool)
    for i in range(n):
        if rng.random() < p:
            if single_class:
                raise ValueError("cannot draw a wrong caption: all labels are equal")
            j = rng.choice(range(n))
            while lab[j] == lab[i]:
                j = rng.choice(range(n))
            source[i] = j
            replaced[i] = True
    always_clean = np.zeros(n, bool)
    always_clean[clean_subset(n, clean_fraction, seed)] = True
    source = np.where(always_clean, np.arange(n), np.asarray(source, np.int64))
    return NoisyCaptions(source, replaced, always_clean, offsets)
