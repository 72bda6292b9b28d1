"""Ontology-guided alignment of an embedding space (Schwalbe et al. 2026).

"Explaining, Verifying, and Aligning Semantic Hierarchies in VLM Embeddings"
(arXiv:2603.26798): a light transform g of the class embeddings, trained so
that their UMAP neighbourhoods follow a desired hierarchy while a fidelity
term keeps them usable; sweeping the fidelity weight traces the trade-off
between zero-shot accuracy and ontological plausibility.

Reconstruction (xai.md 3.2 step 6): the paper's formulas are not verified.
Each step is a small swappable function: `fuzzy.target_distances` (i,
re-exported here), `fuzzy.fuzzy_graph` (ii), `init_transform` with `linear`
or `mlp` (iii), `alignment_loss` (iv), `lambda_sweep` with
`cophenetic_score` (v).

Usage::

    dist = target_distances(trees.lca_depth(onto.parent, leaves))
    p = fuzzy.fuzzy_graph(dist, n_neighbors=10)
    params, apply = fit_transform(key, text_centroids, p, lam=1.0)
    aligned = apply(params, text_centroids)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai.checks import check_finite
from jaxcxai.hierarchy import fuzzy
from jaxcxai.hierarchy.fuzzy import target_distances as target_distances

__all__ = [
    "Sweep",
    "ZeroShot",
    "alignment_loss",
    "cophenetic_score",
    "fit_transform",
    "init_transform",
    "lambda_sweep",
    "linear",
    "mlp",
    "target_distances",
]


def _normalize(y):
    return y / jnp.maximum(jnp.linalg.norm(y, axis=-1, keepdims=True), 1e-12)


def linear(params, z: jax.Array) -> jax.Array:
    """g(z) = normalize(z W): (N, D) -> (N, D) on the unit sphere."""
    return _normalize(z @ params["w"])


def mlp(params, z: jax.Array) -> jax.Array:
    """g(z) = normalize(z + h(z)), h(z) = relu(z W1 + b1) W2 + b2."""
    h = jax.nn.relu(z @ params["w1"] + params["b1"][None]) @ params["w2"]
    return _normalize(z + h + params["b2"][None])


APPLY = {"linear": linear, "mlp": mlp}


def init_transform(key, dim: int, kind: str = "linear", hidden: int | None = None):
    """Parameters of g at the identity (on unit-norm inputs).

    Reconstruction (xai.md 3.2 step 6 (iii)): "linear" W = I (D, D); "mlp" a
    residual MLP whose last layer is zero, so z + h(z) = z at the start
    (W1 LeCun-normal from `key`, hidden width `hidden` or D).

    Returns:
      (params, apply): a dict pytree and `linear` or `mlp`.
    """
    if kind == "linear":
        return {"w": jnp.eye(dim, dtype=jnp.float32)}, linear
    if kind != "mlp":
        raise ValueError(f"unknown transform kind {kind!r}; use 'linear' or 'mlp'")
    h = int(hidden or dim)
    w1 = jax.nn.initializers.lecun_normal()(key, (dim, h), jnp.float32)
    zeros = partial(jnp.zeros, dtype=jnp.float32)
    return {"w1": w1, "b1": zeros(h), "w2": zeros((h, dim)), "b2": zeros(dim)}, mlp


class ZeroShot(NamedTuple):
    """Optional zero-shot term: CE of `images` (N, D) against g(z) as classes.

    logits = <x, g(z_c)> / temperature with x = g(image) if `transform_images`
    else the image embedding itself; labels (N,) index the rows of z.
    """

    images: Any
    labels: Any
    weight: float = 1.0
    temperature: float = 0.01
    transform_images: bool = False


def alignment_loss(params, apply, z, p, lam, a, b, zero_shot=None):
    """Total loss and its terms for one transform.

    Reconstruction (xai.md 3.2 step 6 (iv)): L = L_nbr + lam mean_i ||g(z_i) -
    z_i||^2 (+ weight * zero-shot CE), with L_nbr UMAP's fuzzy cross-entropy
    between P and Q(g(z)) (`fuzzy.fuzzy_cross_entropy`).

    Returns:
      (total, {"nbr", "fidelity", "zero_shot"}) scalars.
    """
    y = apply(params, z)
    nbr = fuzzy.fuzzy_cross_entropy(p, *fuzzy.log_membership(y, a, b))
    fid = jnp.mean(jnp.sum((y - z) ** 2, axis=-1))
    zs = jnp.zeros(())
    if zero_shot is not None:
        x = jnp.where(zero_shot.transform_images, apply(params, zero_shot.images),
                      zero_shot.images)  # fmt: skip
        logits = x @ y.T / zero_shot.temperature
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, zero_shot.labels)
        zs = zero_shot.weight * jnp.mean(ce)
    return nbr + lam * fid + zs, {"nbr": nbr, "fidelity": fid, "zero_shot": zs}


@partial(jax.jit, static_argnames=("apply", "loss"))
def _train(init, apply, z, p, lams, a, b, lr, zero_shot, steps, loss):
    """Adam from `init` for every lambda at once (vmapped over `lams`).

    `steps` is traced (a while loop), so other step counts reuse the compile.
    """
    tx = optax.adam(lr)
    grad_fn = jax.value_and_grad(loss, has_aux=True)

    def one(lam):
        finite = jnp.isfinite(lam)
        lam_ = jnp.where(finite, lam, 0.0)  # inf would give inf * 0 = NaN

        def step(_, carry):
            params, opt = carry
            _, g = grad_fn(params, apply, z, p, lam_, a, b, zero_shot)
            updates, opt = tx.update(g, opt, params)
            return optax.apply_updates(params, updates), opt

        params, _ = jax.lax.fori_loop(0, steps, step, (init, tx.init(init)))
        # lam = inf is the hard fidelity limit: the identity itself.
        params = jax.tree.map(lambda t, i: jnp.where(finite, t, i), params, init)
        return params, loss(params, apply, z, p, lam_, a, b, zero_shot)[1]

    return jax.vmap(one)(lams)


def _prepare(z, p, steps, lr, zero_shot):
    z = np.asarray(z)
    if z.ndim != 2:
        raise ValueError(f"z must be (n, D), got shape {z.shape}")
    p = np.asarray(p)
    if p.shape != (z.shape[0], z.shape[0]):
        raise ValueError(f"p must be ({z.shape[0]}, {z.shape[0]}) for z, got {p.shape}")
    check_finite({"z": z, "p": p})
    if (p < 0).any() or (p > 1).any():
        raise ValueError("p must hold memberships in [0, 1]")
    if int(steps) < 0 or not lr > 0:
        raise ValueError(f"need steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
    if zero_shot is not None:
        img, lab = np.asarray(zero_shot.images), np.asarray(zero_shot.labels)
        if img.ndim != 2 or img.shape[1] != z.shape[1] or lab.shape != img.shape[:1]:
            raise ValueError(f"zero_shot needs images (N, {z.shape[1]}), labels (N,)")
        check_finite({"zero_shot.images": img})
        if lab.min() < 0 or lab.max() >= z.shape[0]:
            raise ValueError(f"zero_shot.labels must lie in [0, {z.shape[0]})")
        zero_shot = ZeroShot(
            jnp.asarray(img, jnp.float32),
            jnp.asarray(lab, jnp.int32),
            jnp.float32(zero_shot.weight),
            jnp.float32(zero_shot.temperature),
            jnp.bool_(zero_shot.transform_images),
        )
    z = _normalize(jnp.asarray(z, jnp.float32))  # the spec's unit-norm inputs
    return z, jnp.asarray(p, jnp.float32), zero_shot


def _fit(key, z, p, lams, *, kind, steps, lr, min_dist, spread, hidden, zero_shot,
         loss):  # fmt: skip
    lams = np.atleast_1d(np.asarray(lams, np.float64))
    if lams.ndim != 1 or not lams.size or np.isnan(lams).any() or (lams < 0).any():
        raise ValueError(f"lam must be >= 0 (or +inf), got {lams.tolist()}")
    z, p, zero_shot = _prepare(z, p, steps, lr, zero_shot)
    init, apply = init_transform(key, z.shape[1], kind, hidden)
    a, b = fuzzy.curve_params(spread, min_dist)
    params, terms = _train(init, apply, z, p, jnp.asarray(lams, jnp.float32),
                           a, b, lr, zero_shot, int(steps), loss)  # fmt: skip
    return z, params, apply, terms


def fit_transform(key, z, p, kind="linear", lam=1.0, steps=500, lr=1e-2, *,
                  min_dist=0.1, spread=1.0, hidden=None, zero_shot=None,
                  loss=alignment_loss):  # fmt: skip
    """Trains the light transform g of `z` towards the target graph `p`.

    Reconstruction (xai.md 3.2 step 6 (iii)-(iv)): Adam (optax) on
    `loss` (default `alignment_loss`) from the identity, `steps` full-batch
    steps in one jitted loop; `z` is L2-normalised first.

    Args:
      key: PRNG key (initialises the MLP's first layer).
      z: (n, D) class (or sample) embeddings.
      p: (n, n) target memberships (`fuzzy.fuzzy_graph`).
      kind: "linear" or "mlp". lam: fidelity weight (>= 0; inf = identity).
      steps, lr: Adam steps and learning rate.
      min_dist, spread: UMAP's kernel shape (`fuzzy.curve_params`).
      hidden: MLP width (default D). zero_shot: optional `ZeroShot` term.
      loss: swappable loss with `alignment_loss`'s signature.

    Returns:
      (params, apply): apply(params, x (N, D)) -> (N, D) unit-norm.
    """
    _, params, apply, _ = _fit(key, z, p, [lam], kind=kind, steps=steps, lr=lr,
                               min_dist=min_dist, spread=spread, hidden=hidden,
                               zero_shot=zero_shot, loss=loss)  # fmt: skip
    return jax.tree.map(lambda t: t[0], params), apply


def cophenetic_score(emb, target, method: str = "average") -> float:
    """Spearman correlation of a tree's cophenetic distances with `target`.

    The agglomerative tree of `emb` (scipy `linkage` on cosine distances;
    "ward" on Euclidean distances of the unit-normalised rows) against the
    target distances, over all pairs (xai.md 3.2 step 4(a), secondary
    measure). Returns a float in [-1, 1].
    """
    from scipy.cluster.hierarchy import cophenet, linkage
    from scipy.spatial.distance import pdist, squareform
    from scipy.stats import spearmanr

    x = np.asarray(emb, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    y = pdist(x, "euclidean" if method == "ward" else "cosine")
    coph = cophenet(linkage(y, method))
    t = squareform(fuzzy.check_distances(target, "target"), checks=False)
    return float(spearmanr(coph, t).statistic)


class Sweep(NamedTuple):
    """`lambda_sweep`'s result: per-lambda metrics (L,) and stacked params."""

    lams: np.ndarray
    metrics: dict[str, np.ndarray]
    params: Any
    apply: Callable


def lambda_sweep(key, z, p, lams: Sequence[float], *, evaluate=None, target=None,
                 kind="linear", steps=500, lr=1e-2, min_dist=0.1, spread=1.0,
                 hidden=None, zero_shot=None, loss=alignment_loss) -> Sweep:  # fmt: skip
    """Fits g for every fidelity weight (vmapped) and evaluates each.

    Reconstruction (xai.md 3.2 step 6 (v)): the accuracy-vs-plausibility
    trade-off. All lambdas share `key` (same initial transform); lam = inf
    is the unaligned baseline. Metrics always include the final loss terms
    ("nbr", "fidelity", "zero_shot").

    Args:
      evaluate: evaluate(aligned (n, D), transform) -> {name: float}, where
        transform(x (N, D)) applies that lambda's g; default
        {"cophenetic": cophenetic_score(aligned, target)}.
      target: (n, n) target distances for the default `evaluate`.
      Others: as `fit_transform`.
    """
    if evaluate is None:
        if target is None:
            raise ValueError("the default evaluate needs target distances")
        evaluate = lambda aligned, _: {"cophenetic": cophenetic_score(aligned, target)}  # noqa: E731
    z, params, apply, terms = _fit(key, z, p, lams, kind=kind, steps=steps, lr=lr,
                                   min_dist=min_dist, spread=spread, hidden=hidden,
                                   zero_shot=zero_shot, loss=loss)  # fmt: skip
    rows: list[Mapping[str, float]] = []
    for i in range(len(np.atleast_1d(lams))):
        one = jax.tree.map(lambda t, i=i: t[i], params)
        transform = partial(apply, one)
        rows.append(evaluate(np.asarray(transform(z)), transform))
    metrics = {k: np.asarray(v, np.float64) for k, v in jax.device_get(terms).items()}
    metrics |= {k: np.asarray([r[k] for r in rows], np.float64) for k in rows[0]}
    return Sweep(np.atleast_1d(np.asarray(lams, np.float64)), metrics, params, apply)
