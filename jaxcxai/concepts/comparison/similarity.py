"""Concept similarity of two layers' per-image outputs, batched over layer pairs.

Mikriukov, Schwalbe, Hellert & Bade, "Revealing Similar Semantics Inside
CNNs: An Interpretable Concept-based Comparison of Feature Spaces"
(arXiv:2305.07663) compare layers by how their concept probes *respond to
the same test images*, never by comparing the probe vectors (which live in
different spaces). The measures here are a reconstruction (spec concepts.md
§6.2, not verified against the paper), kept swappable:

* "iou" (`set_iou`): Net2Vec-style masks, sim_c(i, j) =
  sum_x |M_i(x) & M_j(x)| / sum_x |M_i(x) | M_j(x)|, pooled over all images
  (the set IoU of Net2Vec's evaluation, spec §2.1). On (K, N) presence
  flags it is the Jaccard index of predicted presence.
* "pearson" (`projection_pearson`): TCAV-style projections s(x), the Pearson
  correlation over the test images (signed: a CAV's sign means concept vs
  random).
* "agreement" (`binary_agreement`): the fraction of pixels (or images) on
  which two masks agree.

Convention 0/0 = 0: a concept that neither output ever predicts (empty
union), or a constant projection (no variance), has similarity 0, not 1 and
not NaN. No response gives no evidence of shared semantics, so a layer whose
probe never fires cannot look identical to another such layer (with the
smoothed (I + e) / (U + e) of `jaxcxai.metrics.segmentation` it would score
1), and every cell of the layer matrix averages over the same K concepts.
Such concepts therefore enter the concept mean as 0; to drop them instead,
average `LayerSimilarity.per_concept` over the concepts you keep.

Each measure is a `Measure`: `prepare` summarizes one layer's (K, N, ...)
outputs once (bit-packed masks and their areas; standardized projections),
`compare` turns two summaries into (K,) similarities. `layer_similarity`
prepares all La + Lb layers once and vmaps `compare` over every (i, j) pair,
one compiled program per input shape; rows of A go in chunks (`lax.map`) to
bound the working set. Pass your own `Measure` as `kind` to swap the measure.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite

__all__ = [
    "Measure",
    "MEASURES",
    "LayerSimilarity",
    "set_iou",
    "projection_pearson",
    "binary_agreement",
    "layer_similarity",
]

_HI = jax.lax.Precision.HIGHEST
_BLOCK = 32  # summation block of the Pearson dot products (pairwise-like accuracy)
_ROW_BUDGET = 1 << 21  # elements of B's summaries touched per chunk of A's rows
_MASKS = ("masks_a", "masks_b")


class Measure(NamedTuple):
    """A similarity of two (K, N, ...) outputs, split so a layer is prepared once.

    Attributes:
      prepare: (K, N, ...) outputs of one layer -> a pytree summary.
      compare: (summary_a, summary_b) -> (K,) similarities; written for one
        pair, vmapped over layer pairs by `layer_similarity`.
      boolean: whether the outputs are boolean masks (else float scores).
    """

    prepare: Callable[[jax.Array], Any]
    compare: Callable[[Any, Any], jax.Array]
    boolean: bool


def _pack_bits(masks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(K, N, ...) bool -> ((K, W) uint32 words, (K,) int32 areas).

    Bit t of word w holds element t * W + w of the flattened mask (a strided
    layout: the packing is one fused shift-and-sum). Padding bits are 0.
    """
    flat = masks.reshape(masks.shape[0], -1)
    flat = jnp.pad(flat, ((0, 0), (0, -flat.shape[1] % 32)))
    words = flat.reshape(flat.shape[0], 32, -1).astype(jnp.uint32)
    shift = jnp.arange(32, dtype=jnp.uint32)[None, :, None]
    bits = jnp.sum(words << shift, axis=1, dtype=jnp.uint32)  # disjoint bits: sum = or
    return bits, _popcount(bits)


def _popcount(bits: jax.Array) -> jax.Array:
    return jnp.sum(jax.lax.population_count(bits), axis=-1, dtype=jnp.int32)


def _ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    """num / den with 0/0 = 0 (see the module docstring)."""
    num, den = num.astype(jnp.float32), den.astype(jnp.float32)
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def _iou_compare(a, b) -> jax.Array:
    (bits_a, area_a), (bits_b, area_b) = a, b
    inter = _popcount(bits_a & bits_b)
    return _ratio(inter, area_a + area_b - inter)


def _agreement_prepare(masks):
    bits, area = _pack_bits(masks)
    size = jnp.full(area.shape, masks[0].size, jnp.int32)
    return bits, size


def _agreement_compare(a, b) -> jax.Array:
    (bits_a, size), (bits_b, _) = a, b
    return 1.0 - _ratio(_popcount(bits_a ^ bits_b), size)  # padding bits agree


def _standardize(scores):
    """(K, N) -> (K, N / B, B) zero-mean, unit-norm rows (zero rows stay 0)."""
    x = scores.astype(jnp.float32)
    x = x - jnp.mean(x, axis=-1, keepdims=True)
    x = x - jnp.mean(x, axis=-1, keepdims=True)  # second pass: float32 residue
    norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
    x = jnp.where(norm > 0, x / jnp.where(norm > 0, norm, 1.0), 0.0)
    x = jnp.pad(x, ((0, 0), (0, -x.shape[-1] % _BLOCK)))
    return x.reshape(x.shape[0], -1, _BLOCK)


def _pearson_compare(za, zb) -> jax.Array:
    # Blocked sums keep float32 within ~2e-7 of float64 at N ~ 500.
    partial = jnp.einsum("kbn,kbn->kb", za, zb, precision=_HI)
    return jnp.clip(jnp.sum(partial, axis=-1), -1.0, 1.0)


IOU = Measure(_pack_bits, _iou_compare, boolean=True)
PEARSON = Measure(_standardize, _pearson_compare, boolean=False)
AGREEMENT = Measure(_agreement_prepare, _agreement_compare, boolean=True)

# kind -> measure; `layer_similarity` also takes a `Measure` directly.
MEASURES = {"iou": IOU, "pearson": PEARSON, "agreement": AGREEMENT}


def _measure(kind: str | Measure) -> Measure:
    if isinstance(kind, Measure):
        return kind
    if kind not in MEASURES:
        raise ValueError(
            f"unknown kind {kind!r}; use one of {sorted(MEASURES)} or a Measure"
        )
    return MEASURES[kind]


def _check(name: str, x, measure: Measure, lead: int) -> jax.Array:
    """Checks dtype and rank (lead leading axes + (K, N))."""
    x = jnp.asarray(x)
    if x.ndim < lead + 2:
        axes = "(L, K, N, ...)" if lead else "(K, N, ...)"
        raise ValueError(f"{name} must be {axes} outputs, got shape {x.shape}")
    if measure.boolean and x.dtype != jnp.bool_:
        raise ValueError(
            f"{name} must be boolean masks for this kind, got dtype {x.dtype} "
            "(threshold probe outputs first, e.g. outputs.net2vec_masks)"
        )
    if x.shape[lead + 1] == 0:
        raise ValueError(f"{name} holds no images (N = 0): shape {x.shape}")
    return x


def _check_pair(a, b, measure: Measure, lead: int, names: tuple[str, str]):
    a, b = _check(names[0], a, measure, lead), _check(names[1], b, measure, lead)
    if a.shape[lead:] != b.shape[lead:]:
        raise ValueError(
            f"{names[0]} and {names[1]} must agree in (K, N, ...) = shape[{lead}:], "
            f"got {a.shape} and {b.shape}"
        )
    if not measure.boolean:  # one transfer for both
        check_finite({names[0]: a, names[1]: b})
    return a, b


@functools.partial(jax.jit, static_argnums=0)
def _pair(measure: Measure, a: jax.Array, b: jax.Array) -> jax.Array:
    return measure.compare(measure.prepare(a), measure.prepare(b))


def set_iou(masks_a: jax.typing.ArrayLike, masks_b: jax.typing.ArrayLike) -> jax.Array:
    """Set IoU per concept, pooled over images: sum_x |A & B| / sum_x |A | B|.

    (reconstruction - not verified against arXiv:2305.07663; spec §6.2.)

    Args:
      masks_a: (K, N, ...) bool, e.g. (K, N, G, G) masks on a common grid, or
        (K, N) presence flags (then this is their Jaccard index).
      masks_b: bool, same shape.

    Returns:
      (K,) float32 IoUs; 0 where the union is empty (0/0 = 0).
    """
    return _pair(IOU, *_check_pair(masks_a, masks_b, IOU, 0, _MASKS))


def projection_pearson(
    s_a: jax.typing.ArrayLike, s_b: jax.typing.ArrayLike
) -> jax.Array:
    """Pearson correlation per concept of two projections over the same images.

    (reconstruction - not verified against arXiv:2305.07663; spec §6.2.)

    Args:
      s_a: (K, N) scores, e.g. TCAV-style projections (`outputs.cav_projections`).
      s_b: (K, N) scores of another layer on the same images.

    Returns:
      (K,) float32 correlations in [-1, 1]; 0 where either side is constant.
    """
    return _pair(PEARSON, *_check_pair(s_a, s_b, PEARSON, 0, ("s_a", "s_b")))


def binary_agreement(
    masks_a: jax.typing.ArrayLike, masks_b: jax.typing.ArrayLike
) -> jax.Array:
    """Fraction of pixels (or images, for (K, N) flags) where two masks agree.

    Args:
      masks_a, masks_b: (K, N, ...) bool.

    Returns:
      (K,) float32 in [0, 1].
    """
    return _pair(AGREEMENT, *_check_pair(masks_a, masks_b, AGREEMENT, 0, _MASKS))


class LayerSimilarity(NamedTuple):
    """Layer x layer similarity of two networks' concept outputs.

    Attributes:
      mean: (La, Lb) mean over the K concepts (concepts with similarity 0 by
        the 0/0 = 0 convention count as 0).
      per_concept: (La, Lb, K).
    """

    mean: jax.Array
    per_concept: jax.Array


@functools.partial(jax.jit, static_argnums=(0, 3))
def _layer_similarity(measure, outputs_a, outputs_b, rows):
    prep_a = jax.vmap(measure.prepare)(outputs_a)
    prep_b = jax.vmap(measure.prepare)(outputs_b)
    row = lambda p: jax.vmap(measure.compare, (None, 0))(p, prep_b)  # (Lb, K)
    per = jax.lax.map(row, prep_a, batch_size=rows)  # (La, Lb, K)
    return LayerSimilarity(jnp.mean(per, axis=-1), per)


@functools.lru_cache(maxsize=64)
def _auto_rows(measure: Measure, rows_a: int, b: jax.ShapeDtypeStruct) -> int:
    prep_b = jax.eval_shape(jax.vmap(measure.prepare), b)
    size = sum(leaf.size for leaf in jax.tree.leaves(prep_b))
    return max(1, min(rows_a, _ROW_BUDGET // max(size, 1)))


def layer_similarity(
    outputs_a: jax.typing.ArrayLike,
    outputs_b: jax.typing.ArrayLike,
    kind: str | Measure = "iou",
    *,
    row_chunk: int | None = None,
) -> LayerSimilarity:
    """Concept similarity of every layer of A with every layer of B.

    (reconstruction - not verified against arXiv:2305.07663; spec §6.2.)
    Bring each layer's outputs to a common form first (`outputs`): masks on a
    common (G, G) grid, or (N,) projections, per layer and concept.

    Args:
      outputs_a: (La, K, N, ...) outputs of network A's layers on N shared
        test images: bool masks for "iou"/"agreement", scores for "pearson".
      outputs_b: (Lb, K, N, ...) network B's (or A's again, for the
        self-similarity / semantic flow of one network).
      kind: a key of `MEASURES` ("iou", "pearson", "agreement") or a `Measure`.
      row_chunk: layers of A compared per step of the compiled loop; default:
        as many as keep about 2M elements of B's summaries per step (cache
        friendly on CPU; results agree up to float rounding).

    Returns:
      `LayerSimilarity` with `mean` (La, Lb) and `per_concept` (La, Lb, K).

    Raises:
      ValueError: unknown `kind`, wrong dtype or rank, or (K, N, ...) differ.
      NonFiniteError: score outputs hold NaN or inf (names the argument).
    """
    measure = _measure(kind)
    a, b = _check_pair(outputs_a, outputs_b, measure, 1, ("outputs_a", "outputs_b"))
    if row_chunk is not None and int(row_chunk) < 1:
        raise ValueError(f"row_chunk must be >= 1, got {row_chunk}")
    if row_chunk is None:
        rows = _auto_rows(measure, a.shape[0], jax.ShapeDtypeStruct(b.shape, b.dtype))
    else:
        rows = int(row_chunk)
    return _layer_similarity(measure, a, b, min(rows, a.shape[0]))
