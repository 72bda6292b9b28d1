"""Linear CKA of raw activations: the concept-free baseline for layer comparison.

Linear centered kernel alignment (Kornblith, Norouzi, Lee & Hinton,
"Similarity of Neural Network Representations Revisited", ICML 2019) of two
layers' activations X (N, p) and Y (N, q) on the same N images, each
flattened per image and centred over the images (Xc = H X, H = I - 11'/N):

  CKA(X, Y) = <K, L>_F / (||K||_F ||L||_F),  K = Xc Xc', L = Yc Yc'   (Gram form)
            = ||Yc' Xc||_F^2 / (||Xc' Xc||_F ||Yc' Yc||_F)            (feature form)

The two are equal (<K, L>_F = ||Yc' Xc||_F^2); the Gram form costs O(N^2 d),
the feature form O(N p q) and is the cheaper one when N exceeds the feature
sizes. CKA lies in [0, 1] and is invariant to orthogonal transforms and
isotropic scaling of either side. A layer that is constant over the images
(no variance) has CKA 0 with everything (0/0 = 0), as in `similarity`.

Layers of different shapes cannot be stacked, but their normalized centred
Grams (N, N) can: `cka_matrix` builds one per layer (one compiled program per
layer shape) and gets the whole (La, Lb) matrix from one GEMM.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite

__all__ = ["FORMS", "centered_gram", "linear_cka", "cka_matrix"]

FORMS = ("auto", "gram", "feature")
_HI = jax.lax.Precision.HIGHEST


def _centered(x: jax.Array) -> jax.Array:
    """(N, ...) -> (N, d) flattened, centred over N, scaled to unit Frobenius norm.

    CKA is scale-invariant; the scaling keeps float32 products in range.
    """
    x = x.reshape(x.shape[0], -1).astype(jnp.float32)
    x = x - jnp.mean(x, axis=0, keepdims=True)
    norm = jnp.sqrt(jnp.sum(x * x))
    return x / jnp.where(norm > 0, norm, 1.0)


def _unit(m: jax.Array) -> jax.Array:
    norm = jnp.sqrt(jnp.sum(m * m))
    return m / jnp.where(norm > 0, norm, 1.0)


@jax.jit
def centered_gram(x: jax.Array) -> jax.Array:
    """Centred linear Gram matrix K = Xc Xc' of (N, ...) activations; (N, N).

    Xc is flattened per image, centred over images and scaled to unit
    Frobenius norm (CKA does not see the scale).
    """
    xc = _centered(x)
    return jnp.einsum("nd,md->nm", xc, xc, precision=_HI)


@jax.jit
def _gram_cka(x, y):
    gx, gy = _unit(centered_gram(x)), _unit(centered_gram(y))
    return jnp.clip(jnp.sum(gx * gy), 0.0, 1.0)


def _features(x) -> int:
    return int(jnp.size(x) // x.shape[0])


def _check(name: str, x, n: int | None) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{name} must be (N, ...) activations, got shape {x.shape}")
    if n is not None and x.shape[0] != n:
        raise ValueError(
            f"{name} has {x.shape[0]} images, expected N = {n} (the same images "
            "for every layer)"
        )
    return x


def _form(form: str, n: int, dims: Sequence[int]) -> str:
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; use one of {FORMS}")
    if form == "auto":
        return "feature" if n > max(dims) else "gram"
    return form


def linear_cka(
    x: jax.typing.ArrayLike, y: jax.typing.ArrayLike, *, form: str = "auto"
) -> jax.Array:
    """Linear CKA of two layers' activations on the same N images.

    Args:
      x: (N, ...) activations of one layer (flattened per image).
      y: (N, ...) activations of another layer (any per-image shape).
      form: "gram" (O(N^2 d)), "feature" (O(N p q)), or "auto": "feature"
        when N exceeds both feature sizes, else "gram". Equal up to rounding.

    Returns:
      () float32 in [0, 1].

    Raises:
      ValueError: unknown `form`, or x and y differ in N.
      NonFiniteError: x or y holds NaN or inf.
    """
    x = _check("x", x, None)
    y = _check("y", y, x.shape[0])
    check_finite({"x": x, "y": y})
    use = _form(form, x.shape[0], [_features(x), _features(y)])
    return _gram_cka(x, y) if use == "gram" else _feature_cka(x, y)


@jax.jit
def _gram_rows(grams_a, grams_b):
    a = jax.vmap(_unit)(grams_a).reshape(grams_a.shape[0], -1)
    b = jax.vmap(_unit)(grams_b).reshape(grams_b.shape[0], -1)
    return jnp.clip(jnp.einsum("ix,jx->ij", a, b, precision=_HI), 0.0, 1.0)


@jax.jit
def _self_norm(x):
    xc = _centered(x)
    xx = jnp.einsum("np,nq->pq", xc, xc, precision=_HI)
    return xc, jnp.sqrt(jnp.sum(xx * xx))


@jax.jit
def _feature_entry(xc, nx, yc, ny):
    cross = jnp.einsum("np,nq->pq", xc, yc, precision=_HI)
    den = nx * ny
    num = jnp.sum(cross * cross)
    return jnp.clip(jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0), 0, 1)


def _feature_cka(x, y):
    return _feature_entry(*_self_norm(x), *_self_norm(y))


def cka_matrix(
    acts_a: Sequence[jax.typing.ArrayLike],
    acts_b: Sequence[jax.typing.ArrayLike],
    *,
    form: str = "auto",
) -> jax.Array:
    """Linear CKA of every layer of A with every layer of B.

    Args:
      acts_a: La arrays (N, ...) of network A's layers, any per-image shapes.
      acts_b: Lb arrays (N, ...) of network B's layers (or A's again).
      form: "gram": one centred Gram (N, N) per layer, then all La x Lb
        entries from one GEMM of the stacked, normalized Grams (memory
        (La + Lb) N^2); "feature": per pair ||Yc' Xc||_F^2 (memory p q per
        pair); "auto": "feature" when N exceeds every layer's feature size.

    Returns:
      (La, Lb) float32 in [0, 1].

    Raises:
      ValueError: no layers, unknown `form`, or layers that differ in N.
      NonFiniteError: a layer holds NaN or inf (named `acts_a[i]`).
    """
    if not len(acts_a) or not len(acts_b):
        raise ValueError("cka_matrix needs at least one layer in acts_a and acts_b")
    n = jnp.shape(acts_a[0])[0]
    a = [_check(f"acts_a[{i}]", x, n) for i, x in enumerate(acts_a)]
    b = [_check(f"acts_b[{j}]", y, n) for j, y in enumerate(acts_b)]
    check_finite({f"acts_a[{i}]": x for i, x in enumerate(a)})
    check_finite({f"acts_b[{j}]": y for j, y in enumerate(b)})
    use = _form(form, n, [_features(x) for x in a + b])
    if use == "gram":
        grams_a = jnp.stack([centered_gram(x) for x in a])
        grams_b = jnp.stack([centered_gram(y) for y in b])
        return _gram_rows(grams_a, grams_b)
    fa, fb = [_self_norm(x) for x in a], [_self_norm(y) for y in b]
    rows = [jnp.stack([_feature_entry(*p, *q) for q in fb]) for p in fa]
    return jnp.stack(rows)
