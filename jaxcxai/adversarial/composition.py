"""Change of the concept composition under an attack (F1).

Reconstruction (xai.md 2.2, step 3) of "The Anatomy of Adversarial Attacks:
Concept-based XAI Dissection" (Mikriukov et al., xAI 2024), finding F1:
attacks change the concept composition in feature space, adding new concepts
or modifying existing ones. ICE concepts (NMF of spatial post-ReLU
activations, Zhang et al. 2021; `jaxcxai.concepts.discovery.fit_ice`) are
discovered separately on clean activations of the source class s, on the
adversarial activations (s -> t) and on clean activations of the target t.
The three dictionaries are matched pairwise by the Hungarian method on
cosine similarity (`discovery.match`); an adversarial concept is "new" when
its best cosine with the reference dictionary is below gamma. Mean concept
weights are the per-set means of the presence codes of every set on one
dictionary (unit-norm concepts, so weights are comparable), and their shift
shows which concepts the attack adds or removes.
"""

from typing import Any

import jax
import numpy as np

from jaxcxai import checks
from jaxcxai.concepts.discovery import cosine_matrix, fit_ice, ice_presence, match

__all__ = ["SETS", "concept_change", "mean_weights", "new_concepts"]

SETS = ("src", "adv", "tgt")


def new_concepts(concepts, reference, gamma: float) -> np.ndarray:
    """(k,) bool: concepts whose best cosine with any reference row < gamma."""
    return cosine_matrix(concepts, reference).max(axis=1) < gamma


def mean_weights(acts, concepts, *, iters: int = 200) -> np.ndarray:
    """(k,) mean presence of unit-norm `concepts` (k, C) over all positions
    of acts (N, h, w, C), by non-negative least squares (`ice_presence`)."""
    p = np.asarray(concepts, np.float64)
    norm = np.linalg.norm(p, axis=1, keepdims=True)
    unit = (p / np.where(norm > 0, norm, 1.0)).astype(np.float32)
    pres = ice_presence(acts, unit, iters=iters)
    return np.asarray(pres, np.float64).reshape(-1, p.shape[0]).mean(0)


def _cosine_shift(a, b) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def concept_change(
    clean_src,
    adv,
    clean_tgt,
    k: int,
    key: jax.Array,
    gamma: float = 0.8,
    *,
    solver: str = "hals",
    init: str = "nndsvd",
    iters: int = 200,
) -> dict[str, Any]:
    """ICE concepts of source, adversarial and target activations, compared.

    Reconstruction (xai.md 2.2, step 3).

    Args:
      clean_src: (N_s, h, w, C) >= 0 clean activations of the source class.
      adv: (N_a, h, w, C) >= 0 activations of its adversarial examples.
      clean_tgt: (N_t, h, w, C) >= 0 clean activations of the target class.
      k: concepts per set (1 <= k <= C).
      key: PRNG key (split over the three NMF fits; unused by "nndsvd").
      gamma: cosine below which an adversarial concept counts as new.
      solver, init, iters: NMF settings of `fit_ice` ("nndsvd" with HALS:
        deterministic, and HALS can leave the zeros NNDSVD starts with,
        which multiplicative updates cannot).

    Returns:
      dict with
        "concepts": {set: (k, C)} for set in `SETS`;
        "cos_adv_src", "cos_adv_tgt", "cos_src_tgt": (k,) Hungarian-matched
          cosines (rows in the first set's order) and "mean_cos_*" floats;
        "new_vs_src", "new_vs_tgt", "new": counts of adversarial concepts
          whose best cosine with the source, target, or both dictionaries is
          below gamma;
        "weights_on_src", "weights_on_adv": {set: (k,)} mean weights of each
          set on the source / adversarial dictionary;
        "weight_shift": (k,) adv minus src on the source dictionary;
        "shift_toward_target": cosine between that shift and tgt minus src
          (> 0: the attack moves the composition toward the target's).
    """
    acts = {"src": clean_src, "adv": adv, "tgt": clean_tgt}
    acts = {name: np.asarray(a) for name, a in acts.items()}
    for name, a in acts.items():
        if a.ndim != 4:
            raise ValueError(f"{name} must be (N, h, w, C) activations, got {a.shape}")
        if a.shape[-1] != acts["src"].shape[-1]:
            raise ValueError(
                f"{name} has C={a.shape[-1]} channels, clean_src has "
                f"{acts['src'].shape[-1]}"
            )
    checks.check_finite(acts)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    keys = dict(zip(SETS, jax.random.split(key, len(SETS))))
    concepts = {
        name: np.asarray(
            fit_ice(
                acts[name], k, keys[name], solver=solver, iters=iters, init=init
            ).concepts,
            np.float64,
        )
        for name in SETS
    }
    out: dict[str, Any] = {"concepts": concepts}
    for a, b in (("adv", "src"), ("adv", "tgt"), ("src", "tgt")):
        pair = match(concepts[a], concepts[b])
        cos = np.zeros(k)
        cos[pair.rows] = pair.cosine
        out[f"cos_{a}_{b}"] = cos
        out[f"mean_cos_{a}_{b}"] = float(pair.cosine.mean())
    new_src = new_concepts(concepts["adv"], concepts["src"], gamma)
    new_tgt = new_concepts(concepts["adv"], concepts["tgt"], gamma)
    out["new_vs_src"] = int(new_src.sum())
    out["new_vs_tgt"] = int(new_tgt.sum())
    out["new"] = int((new_src & new_tgt).sum())
    for d in ("src", "adv"):
        out[f"weights_on_{d}"] = {
            name: mean_weights(acts[name], concepts[d], iters=iters) for name in SETS
        }
    w = out["weights_on_src"]
    out["weight_shift"] = w["adv"] - w["src"]
    out["shift_toward_target"] = _cosine_shift(w["adv"] - w["src"], w["tgt"] - w["src"])
    return out
