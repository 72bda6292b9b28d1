"""ICE: invertible concept-based explanations (Zhang et al. 2021, AAAI,
"Invertible concept-based explanations for CNN models with non-negative
concept activation vectors").

A layer's spatial activations A (N, h, w, C) >= 0 (post-ReLU) are reshaped
to (N h w, C) and factorized by NMF, A ~ S P: the k rows of P (k, C) are the
non-negative concept activation vectors (NCAVs) and S reshaped to
(N, h, w, k) gives each concept's presence map per image. The explanation is
"invertible": the layer can be rebuilt from the k concept maps, S P, and the
rest of the model run on it. Its fidelity is how well the model's
predictions survive that reconstruction.

`ice_fidelity` reports agreement (fraction of images whose arg-max class is
unchanged), the accuracy on original and on reconstructed activations when
labels are given, and the relative logit error. (reconstruction - not
verified against the paper; keep it swappable: the paper's fidelity is
described as the classifier's accuracy on reconstructed features relative
to the original; the exact normalization is not verified.)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.concepts.discovery import nmf as nmf_lib
from jaxcxai.concepts.discovery.bulk import fit_nmf
from jaxcxai.concepts.discovery.common import Factorization, as_rows

__all__ = [
    "Ice",
    "fit_ice",
    "presence_maps",
    "ice_presence",
    "reconstruct",
    "ice_fidelity",
]


class Ice(NamedTuple):
    """ICE concepts of one layer.

    Attributes:
      concepts: (k, C) non-negative concept vectors (NCAVs).
      presence: (N, h, w, k) concept presence maps (NMF codes).
      factorization: the underlying `Factorization` (losses included).
    """

    concepts: jax.Array
    presence: jax.Array
    factorization: Factorization


def _spatial(acts, name="acts"):
    a = jnp.asarray(acts)
    if a.ndim != 4:
        raise ValueError(
            f"{name} must be (N, h, w, C) spatial activations, got {a.shape}"
        )
    return a


def presence_maps(codes, spatial_shape):
    """Reshapes codes (..., N h w, k) to presence maps (..., N, h, w, k)."""
    codes = jnp.asarray(codes)
    return codes.reshape(codes.shape[:-2] + tuple(spatial_shape) + codes.shape[-1:])


def fit_ice(acts, k, key, *, solver="mu", iters=200, l1=0.0, init="random"):
    """Discovers k ICE concepts of a layer by NMF of its spatial activations.

    Args:
      acts: (N, h, w, C) non-negative activations.
      k: number of concepts, k <= C.
      key: PRNG key of the NMF init.
      solver, iters, l1, init: as `fit_nmf`.

    Returns:
      `Ice` (concepts (k, C), presence (N, h, w, k), factorization).
    """
    a = _spatial(acts)
    fac = fit_nmf(a, k, key, solver=solver, iters=iters, l1=l1, init=init)
    return Ice(fac.components, presence_maps(fac.codes, a.shape[:3]), fac)


def ice_presence(acts, concepts, *, iters=200):
    """Presence maps (N, h, w, k) of new images for fixed ICE concepts.

    Non-negative least squares of each position's activation on the concept
    vectors, solved by multiplicative updates of the codes only.
    """
    a = _spatial(acts)
    x = as_rows(a, "acts", nonnegative=True)
    p = jnp.asarray(concepts, x.dtype)
    if p.ndim != 2 or p.shape[1] != x.shape[1] or int(jnp.sum(p < 0)):
        raise ValueError(
            f"concepts must be non-negative (k, {x.shape[1]}), got {p.shape}"
        )
    return presence_maps(nmf_lib.transform_codes(x, p, iters=iters), a.shape[:3])


def reconstruct(presence, concepts):
    """Activations (..., C) rebuilt from presence (..., k) and concepts (k, C)."""
    return jnp.asarray(presence) @ jnp.asarray(concepts)


def ice_fidelity(
    head, acts, concepts, *, presence=None, labels=None, batch_size=256, iters=200
):
    """How well the model's predictions survive the k-concept reconstruction.

    Args:
      head: `acts (B, h, w, C) -> logits (B, classes)`, the rest of the
        model after the layer (must treat examples independently).
      acts: (N, h, w, C) original activations.
      concepts: (k, C) ICE concepts.
      presence: optional (N, h, w, k) presence maps (default: `ice_presence`).
      labels: optional (N,) integer labels for accuracies.
      batch_size: images per `head` call.
      iters: NNLS iterations when `presence` is None.

    Returns:
      dict of floats: "agreement" (arg-max unchanged), "logit_rel_error"
      (||z_rec - z|| / ||z|| over all logits), "r2" of the reconstructed
      activations and, with labels, "accuracy_original",
      "accuracy_reconstructed" and "accuracy_drop".
    """
    a = _spatial(acts)
    as_rows(a, "acts")
    pres = (
        ice_presence(a, concepts, iters=iters)
        if presence is None
        else jnp.asarray(presence)
    )
    if pres.shape[:3] != a.shape[:3]:
        raise ValueError(
            f"presence must have shape {a.shape[:3]} + (k,), got {pres.shape}"
        )
    rec = reconstruct(pres, concepts)
    run = jax.jit(head)
    z, z_rec = [], []
    for i in range(0, a.shape[0], batch_size):
        z.append(np.asarray(run(a[i : i + batch_size])))
        z_rec.append(np.asarray(run(rec[i : i + batch_size])))
    z, z_rec = np.concatenate(z), np.concatenate(z_rec)
    pred, pred_rec = z.argmax(-1), z_rec.argmax(-1)
    a64, rec64 = np.asarray(a, np.float64), np.asarray(rec, np.float64)
    sst = np.sum((a64 - a64.reshape(-1, a64.shape[-1]).mean(0)) ** 2)
    out = {
        "agreement": float(np.mean(pred == pred_rec)),
        "logit_rel_error": float(
            np.linalg.norm(z_rec - z) / max(np.linalg.norm(z), 1e-30)
        ),
        "r2": float(1.0 - np.sum((a64 - rec64) ** 2) / max(sst, 1e-30)),
    }
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != (a.shape[0],):
            raise ValueError(f"labels must have shape ({a.shape[0]},), got {y.shape}")
        out["accuracy_original"] = float(np.mean(pred == y))
        out["accuracy_reconstructed"] = float(np.mean(pred_rec == y))
        out["accuracy_drop"] = out["accuracy_original"] - out["accuracy_reconstructed"]
    return out
