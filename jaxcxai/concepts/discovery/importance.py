"""Concept importance for a prediction: code gradients and Sobol indices.

The model after the layer, `head(acts) -> logits`, is evaluated on the
activations rebuilt from a dictionary, acts = codes @ components + mean
(+ an optional residual, so the head sees the true activations at the
unperturbed point). Concept j's importance for class c of an image is:

* `code_gradients`: d logit_c / d codes_j at each position (N, ..., k);
  summed over positions (and multiplied by the codes, the gradient x input
  form) by `gradient_importance`.
* `concept_sobol`: CRAFT's total Sobol index (Fel et al. 2023, CVPR,
  "CRAFT: Concept recursive activation factorization for explainability";
  the estimator of Fel et al. 2021, "Look at the variance! Efficient
  black-box explanations with Sobol-based sensitivity analysis"). Random
  masks M in [0, 1]^k scale each concept's codes at every position of the
  image, codes * M, and the total index
  ST_j = E[(f(A) - f(A_B^j))^2] / (2 Var f) (Jansen 1999) measures the
  share of the output variance that involves concept j, interactions
  included. Masks form the Saltelli design (A, B and A_B^j, which is A with
  column j from B) built from a scrambled Sobol sequence (scipy.stats.qmc,
  seeded: reproducible), n (k + 2) head calls per image, batched.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import qmc

from jaxcxai.concepts.discovery.common import check_finite

__all__ = [
    "code_gradients",
    "gradient_importance",
    "saltelli_design",
    "sobol_indices",
    "sobol_from_outputs",
    "concept_sobol",
    "scale_codes",
]


def _rebuild(codes, components, mean, residual):
    acts = codes @ components
    if mean is not None:
        acts = acts + jnp.reshape(mean, (1,) * (acts.ndim - 1) + (-1,))
    if residual is not None:
        acts = acts + residual
    return acts


def _check(codes, components):
    codes, components = jnp.asarray(codes), jnp.asarray(components)
    check_finite(codes, "codes")
    check_finite(components, "components")
    if components.ndim != 2 or codes.ndim < 2 or codes.shape[-1] != components.shape[0]:
        raise ValueError(
            f"codes (N, ..., k) and components (k, d) disagree: {codes.shape} "
            f"and {components.shape}"
        )
    return codes, components


def _targets(target, n):
    return jnp.broadcast_to(jnp.asarray(target, jnp.int32), (n,))


def code_gradients(head, codes, components, target, *, mean=None, residual=None):
    """d logit_target / d codes for every image, (N, ..., k).

    Args:
      head: `acts (N, ..., d) -> logits (N, classes)`; examples independent.
      codes: (N, ..., k) concept codes (spatial positions in the middle).
      components: (k, d) concept vectors.
      target: class index, scalar or (N,).
      mean: optional (d,) added to the rebuilt activations.
      residual: optional (N, ..., d) added too (e.g. acts - codes @
        components, so the gradient is taken at the true activations).
    """
    codes, components = _check(codes, components)
    t = _targets(target, codes.shape[0])

    def total(c):
        logits = head(_rebuild(c, components, mean, residual))
        return jnp.sum(jnp.take_along_axis(logits, t[:, None], axis=1))

    return jax.grad(total)(codes)


def gradient_importance(head, codes, components, target, *, times_codes=True, **kw):
    """Per-image concept importance (N, k): gradient (x codes) summed over
    positions. `kw` goes to `code_gradients` (mean, residual)."""
    codes = jnp.asarray(codes)
    g = code_gradients(head, codes, components, target, **kw)
    g = g * codes if times_codes else g
    return jnp.sum(g.reshape(g.shape[0], -1, g.shape[-1]), axis=1)


def saltelli_design(k, num_designs, seed=0):
    """The (num_designs (k + 2), k) Saltelli mask design in [0, 1].

    Rows are [A; B; A_B^1; ...; A_B^k], each block num_designs rows, from a
    scrambled 2k-dimensional Sobol sequence (power of two recommended).
    """
    sobol = qmc.Sobol(d=2 * k, scramble=True, seed=seed)
    ab = sobol.random(num_designs)
    a, b = ab[:, :k], ab[:, k:]
    blocks = [a, b]
    for j in range(k):
        aj = a.copy()
        aj[:, j] = b[:, j]
        blocks.append(aj)
    return np.concatenate(blocks).astype(np.float32)


def sobol_from_outputs(y, k):
    """Jansen total and first-order indices from outputs of `saltelli_design`.

    Args:
      y: (..., n (k + 2)) outputs in design order.
      k: number of inputs.

    Returns:
      (total (..., k), first (..., k)); first-order is Jansen's
      (V - E[(f(B) - f(A_B^j))^2] / 2) / V.
    """
    y = jnp.asarray(y)
    n = y.shape[-1] // (k + 2)
    ya, yb = y[..., :n], y[..., n : 2 * n]
    yab = y[..., 2 * n :].reshape(y.shape[:-1] + (k, n))
    var = jnp.var(jnp.concatenate([ya, yb], axis=-1), axis=-1)[..., None]
    var = jnp.maximum(var, jnp.finfo(y.dtype).tiny)
    total = jnp.mean((ya[..., None, :] - yab) ** 2, axis=-1) / (2.0 * var)
    first = 1.0 - jnp.mean((yb[..., None, :] - yab) ** 2, axis=-1) / (2.0 * var)
    return total, first


def sobol_indices(fn, k, num_designs=1024, seed=0):
    """Total and first-order Sobol indices of `fn` on [0, 1]^k (uniform).

    Args:
      fn: batched function, masks (M, k) -> outputs (M,).
      k: number of inputs.
      num_designs: base sample size n (n (k + 2) evaluations).
      seed: seed of the scrambled Sobol sequence.

    Returns:
      (total (k,), first (k,)).
    """
    design = jnp.asarray(saltelli_design(k, num_designs, seed))
    return sobol_from_outputs(fn(design), k)


def scale_codes(codes, masks):
    """CRAFT's perturbation: codes (B, ..., k) scaled per concept by masks
    (B, k), the same factor at every position of an image."""
    shape = (masks.shape[0],) + (1,) * (codes.ndim - 2) + (masks.shape[-1],)
    return codes * masks.reshape(shape)


@functools.partial(jax.jit, static_argnames=("head", "batch_size", "perturb"))
def _sobol_outputs(
    head, codes, components, target, design, mean, residual, batch_size, perturb
):
    m, k = design.shape
    pad = -m % batch_size
    blocks = jnp.pad(design, ((0, pad), (0, 0))).reshape(-1, batch_size, k)

    def one_image(c, t, r):
        def block(masks):  # (B, k) -> (B,)
            pert = perturb(
                jnp.broadcast_to(c[None], (masks.shape[0],) + c.shape), masks
            )
            acts = _rebuild(pert, components, mean, None)
            if r is not None:
                acts = acts + r[None]
            return head(acts)[:, t]

        return jax.lax.map(block, blocks).reshape(-1)[:m]

    return jax.vmap(one_image)(codes, target, residual)


def concept_sobol(
    head,
    codes,
    components,
    target,
    *,
    num_designs=32,
    seed=0,
    batch_size=256,
    mean=None,
    residual=None,
    perturb=scale_codes,
):
    """CRAFT total Sobol importance of each concept for each image.

    (reconstruction - not verified against the paper; keep it swappable:
    the perturbation is `perturb`, by default `scale_codes`, uniform masks
    scaling each concept's codes, and the estimator is Jansen's.)

    Args:
      head: `acts (B, ..., d) -> logits (B, classes)`; examples independent.
      codes: (N, ..., k) concept codes of N images (positions in between).
      components: (k, d) concept vectors.
      target: class index, scalar or (N,).
      num_designs: n; the head runs n (k + 2) times per image (CRAFT uses
        32).
      seed: seed of the Sobol sequence (same masks for every image).
      batch_size: masks per head call.
      mean, residual: as `code_gradients`; the residual is not masked.
      perturb: `(codes (B, ..., k), masks (B, k)) -> codes`, the masking
        operator (static; default `scale_codes`).

    Returns:
      (total (N, k), first (N, k)) Sobol indices.
    """
    codes, components = _check(codes, components)
    k = codes.shape[-1]
    design = jnp.asarray(saltelli_design(k, num_designs, seed), codes.dtype)
    t = _targets(target, codes.shape[0])
    y = _sobol_outputs(
        head, codes, components, t, design, mean, residual, batch_size, perturb
    )
    return sobol_from_outputs(y, k)
