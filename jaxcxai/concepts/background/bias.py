"""Test-time background bias: view IoUs, group statistics, embedding shift.

Evaluation helpers of Schwalbe et al. (arXiv 2504.08602), following the
reference code (gesina/bg_randomized_loce, `eval_util.py`; spec concepts.md
§7.3 and §11.7):

* IoU of a global concept vector u on one view, on the T x T = 80 x 80 grid
  (activations and masks resized with torch-style bilinear, no anti-aliasing,
  spec §1.4): ``(|[sigmoid(u.a) > 0.5] & [t > 0]| + 1e-4) / (|[..] | [..]| +
  1e-4)``. Thresholds are strict, so an empty prediction on an empty mask
  scores 1, and a zero vector (sigmoid = 0.5) never predicts anything. NaN
  entries of u are replaced by 1000 before projecting, as the reference does.
* `group_stats`: mean and sample std (ddof 1, pandas' default, which the
  reference's `pivot_table(aggfunc=['mean', 'std'])` uses) per group.
* `embedding_cosine`: cos(CE_randomised, CE_vanilla) with the paper's
  convention, which the reference code lacks (spec §11.6): 1 if both vectors
  are about 0, 0 if only one is. "About 0" means max |entry| <= `atol`; the
  spec gives no tolerance, so the default 1e-8 is our choice.
"""

import functools

import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite
from jaxcxai.data.resample import resize

__all__ = [
    "EPS",
    "GRID",
    "NAN_FILL",
    "ZERO_ATOL",
    "cosine_matrix",
    "embedding_cosine",
    "group_stats",
    "iou",
    "project",
    "view_ious",
]

GRID = (80, 80)
EPS = 1e-4
NAN_FILL = 1000.0
ZERO_ATOL = 1e-8


def project(vector, acts) -> jax.Array:
    """Logits u . a per pixel, (h, w), with NaN entries of u set to 1000.

    Args:
      vector: (C,) concept vector.
      acts: (C, h, w) activations.
    """
    v = jnp.nan_to_num(jnp.asarray(vector, jnp.float32), nan=NAN_FILL)
    acts = jnp.asarray(acts, jnp.float32)
    return jnp.einsum("c,chw->hw", v, acts, precision=jax.lax.Precision.HIGHEST)


def iou(probs, targets, *, threshold=0.5, mask_threshold=0.0, eps=EPS):
    """Smoothed IoU of `probs > threshold` and `targets > mask_threshold`.

    Args:
      probs: (..., T, T) predicted probabilities (sigmoid of the logits).
      targets: (..., T, T) (soft) masks on the same grid.
      threshold, mask_threshold: strict thresholds (0.5 and 0 in the paper).
      eps: smoothing added to both counts (1e-4): empty vs empty gives 1.

    Returns:
      (...) float32 IoUs.
    """
    pred = jnp.asarray(probs) > threshold
    true = jnp.asarray(targets) > mask_threshold
    inter = jnp.sum(pred & true, axis=(-2, -1)).astype(jnp.float32)
    union = jnp.sum(pred | true, axis=(-2, -1)).astype(jnp.float32)
    return (inter + eps) / (union + eps)


@functools.partial(jax.jit, static_argnames=("grid",))
def _view_ious(vectors, acts, targets, grid):
    up = resize(jnp.asarray(acts, jnp.float32), grid, "bilinear")
    t = resize(jnp.asarray(targets, jnp.float32), grid, "bilinear")
    logits = jax.vmap(lambda v: jax.vmap(lambda a: project(v, a))(up))(vectors)
    return iou(jax.nn.sigmoid(logits), t[None]).T


def view_ious(vectors, acts, targets, grid=GRID) -> jax.Array:
    """IoU of every concept vector on every view, (V, K).

    The reference order: activations and masks to the grid with bilinear
    (align_corners=False, no anti-aliasing), then project, sigmoid, `iou`.

    Args:
      vectors: (K, C) global concept vectors (NaN -> 1000).
      acts: (V, C, h, w) activations of the views.
      targets: (V, Hm, Wm) concept masks of the views (soft or binary).
      grid: static (T, T) evaluation grid, (80, 80) in the paper.

    Raises:
      ValueError: mismatched shapes; `NonFiniteError` for NaN / inf in acts
        or targets (NaN in vectors is the reference's "large parameter").
    """
    vectors, acts, targets = map(jnp.asarray, (vectors, acts, targets))
    if vectors.ndim != 2 or acts.ndim != 4 or vectors.shape[1] != acts.shape[1]:
        raise ValueError(f"vectors must be (K, C) and acts (V, C, h, w), got "
                         f"{vectors.shape} and {acts.shape}")  # fmt: skip
    if targets.ndim != 3 or targets.shape[0] != acts.shape[0]:
        raise ValueError(f"targets must be (V, Hm, Wm) with V = {acts.shape[0]}, "
                         f"got {targets.shape}")  # fmt: skip
    check_finite({"acts": acts, "targets": targets})
    return _view_ious(vectors, acts, targets, tuple(int(g) for g in grid))


@functools.partial(jax.jit, static_argnames=("n_groups", "ddof"))
def group_stats(values, groups, n_groups: int, ddof: int = 1) -> dict:
    """Mean, std and count of `values` per group (jittable).

    Args:
      values: (M,) e.g. view IoUs.
      groups: (M,) int group index in [0, n_groups).
      n_groups: static number of groups.
      ddof: std degrees of freedom (1 = pandas' sample std, the reference's).

    Returns:
      {"mean", "std", "count"}, each (n_groups,); mean and std are NaN for an
      empty group, std is NaN for a group of <= ddof values (as pandas).
    """
    values = jnp.asarray(values, jnp.float32)
    count = jax.ops.segment_sum(jnp.ones_like(values), groups, n_groups)
    total = jax.ops.segment_sum(values, groups, n_groups)
    mean = total / jnp.where(count > 0, count, jnp.nan)
    dev = (values - mean[groups]) ** 2
    var = jax.ops.segment_sum(dev, groups, n_groups) / jnp.where(
        count > ddof, count - ddof, jnp.nan
    )
    return {"mean": mean, "std": jnp.sqrt(var), "count": count.astype(jnp.int32)}


def embedding_cosine(a, b, *, atol: float = ZERO_ATOL) -> jax.Array:
    """Cosine of concept embeddings along the last axis, with the paper's rule.

    1 if both vectors are about 0 (max |entry| <= atol), 0 if exactly one is,
    else the cosine, computed on max-scaled vectors so tiny or huge norms
    neither underflow nor overflow. NaN inputs give NaN.

    Args:
      a, b: (..., D) broadcastable embeddings.
      atol: the "about 0" tolerance (our choice; the spec gives none).
    """
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    amax = jnp.max(jnp.abs(a), axis=-1, keepdims=True)
    bmax = jnp.max(jnp.abs(b), axis=-1, keepdims=True)
    a0, b0 = amax[..., 0] <= atol, bmax[..., 0] <= atol
    a_s = a / jnp.where(amax > 0, amax, 1.0)
    b_s = b / jnp.where(bmax > 0, bmax, 1.0)
    dot = jnp.sum(a_s * b_s, axis=-1)
    norms = jnp.linalg.norm(a_s, axis=-1) * jnp.linalg.norm(b_s, axis=-1)
    cos = jnp.clip(dot / jnp.where(norms > 0, norms, 1.0), -1.0, 1.0)
    nan = jnp.isnan(dot)
    out = jnp.where(a0 & b0, 1.0, jnp.where(a0 | b0, 0.0, cos))
    return jnp.where(nan, jnp.nan, out)


def cosine_matrix(a, b, *, atol: float = ZERO_ATOL) -> jax.Array:
    """(M, K) `embedding_cosine` of every row of a (M, D) with every row of b."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    return embedding_cosine(a[:, None, :], b[None, :, :], atol=atol)
