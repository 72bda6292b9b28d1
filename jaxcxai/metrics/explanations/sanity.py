"""Sanity checks: focus on signal features and model-parameter randomisation.

Signal mass (uncertainty gating, arXiv 2603.29915, App. C, Eq. 10): with
global importances I_j = mean_n |phi_nj|, SignalMass = sum_{j in S} I_j /
sum_j I_j for the planted signal features S; `noise_in_top` counts the
noise features among the top |S| by I_j (the paper's second focus number).

Model-parameter randomisation (Adebayo et al. 2018, "Sanity Checks for
Saliency Maps"): randomise the layers from the top (output) down, one more
at a time ("cascading"), or each alone ("independent"), and measure how
similar each explanation stays to the original one. An explanation that
does not change is insensitive to the model. Re-initialisation is ours (a
reconstruction, swappable through `randomizer`): each weight array is
redrawn from N(0, s^2) with s its own standard deviation; arrays with s = 0
(zero biases, unit scales) stay, as a re-initialisation to their constant
initial value would leave them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxcxai.metrics.explanations.rank import spearman_rho

__all__ = [
    "signal_mass",
    "noise_in_top",
    "gaussian_reinit",
    "randomize_layers",
    "parameter_randomization",
]


def _importance(phi: Any, signal: Any) -> tuple[jax.Array, jax.Array]:
    phi = jnp.asarray(phi, jnp.float32)
    signal = jnp.asarray(signal, bool)
    if phi.ndim != 2 or signal.shape != phi.shape[1:]:
        raise ValueError(
            f"phi must be (N, d) and signal (d,), got {phi.shape} and {signal.shape}"
        )
    return jnp.mean(jnp.abs(phi), axis=0), signal


def signal_mass(phi: Any, signal: Any) -> jax.Array:
    """Share of the global |phi| mass on the signal features; () in [0, 1].

    Args:
      phi: (N, d) attributions of a group of samples.
      signal: (d,) bool, True for the planted signal features.
    """
    imp, sig = _importance(phi, signal)
    return jnp.sum(jnp.where(sig, imp, 0.0)) / jnp.sum(imp)


def noise_in_top(phi: Any, signal: Any, top: int | None = None) -> jax.Array:
    """Noise features among the `top` (default: the number of signal
    features) most important by I_j; ties broken by the lower index. ()."""
    imp, sig = _importance(phi, signal)
    k = int(jnp.sum(sig)) if top is None else int(top)
    if not 1 <= k <= imp.shape[0]:
        raise ValueError(f"top must be in [1, {imp.shape[0]}], got {k}")
    _, idx = jax.lax.top_k(imp, k)
    return jnp.sum(~sig[idx])


def gaussian_reinit(key: jax.Array, leaf: jax.Array) -> jax.Array:
    """N(0, std(leaf)^2) of the leaf's shape; constant leaves unchanged."""
    leaf = jnp.asarray(leaf)
    if not jnp.issubdtype(leaf.dtype, jnp.floating):
        return leaf
    std = jnp.std(leaf)
    return jnp.where(
        std > 0, std * jax.random.normal(key, leaf.shape, leaf.dtype), leaf
    )


def _matches(path: tuple, layer: str) -> bool:
    keys = [
        str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))) for p in path
    ]
    joined = "/".join(keys)
    return (
        any(k == layer or k.startswith(layer + ".") for k in keys)
        or joined == layer
        or joined.startswith(layer + "/")
    )


def randomize_layers(
    params: Any,
    layers: Sequence[str],
    key: jax.Array,
    randomizer: Callable[[jax.Array, jax.Array], jax.Array] = gaussian_reinit,
) -> Any:
    """A copy of `params` with every leaf of the named layers re-drawn.

    A leaf belongs to layer `name` when a key on its path equals `name` or
    starts with `name + "."` (flax names such as "conv1.bn"), or its
    "/"-joined path starts with `name + "/"`. Leaf i of the flattened tree
    draws from fold_in(key, i), so the result does not depend on `layers`'
    order.

    Raises:
      ValueError: a name matches no leaf (naming it).
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    for name in layers:
        if not any(_matches(p, name) for p, _ in leaves):
            raise ValueError(f"layer {name!r} matches no parameter")
    out = []
    for i, (path, leaf) in enumerate(leaves):
        if any(_matches(path, name) for name in layers):
            leaf = randomizer(jax.random.fold_in(key, i), leaf)
        out.append(leaf)
    return jax.tree.unflatten(treedef, out)


def parameter_randomization(
    explain: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    layers: Sequence[str],
    x: Any,
    key: jax.Array,
    *,
    mode: str = "cascading",
    similarity: Callable[[jax.Array, jax.Array], jax.Array] = spearman_rho,
    randomizer: Callable[[jax.Array, jax.Array], jax.Array] = gaussian_reinit,
) -> dict[str, Any]:
    """Similarity of explanations before and after randomising layers.

    Args:
      explain: `explain(params, x) -> (N, ...)` attributions (e.g. a jitted
        `lambda p, x: saliency(lambda v: model.apply(p, v), x)`).
      params: the trained parameters (any pytree, e.g. flax variables).
      layers: layer names ordered from the output to the input.
      x: (N, ...) inputs.
      key: PRNG key of the re-draws.
      mode: "cascading" (layers[: i + 1] randomised at step i) or
        "independent" (layers[i] alone).
      similarity: `similarity(a, b) -> (N,)`, default Spearman rho of |phi|
        ranks; `ssim.ssim` for maps.
      randomizer: `randomizer(key, leaf) -> leaf`.

    Returns:
      {"layers": list of names, "scores": (L, N) similarities to the
      original explanation, "original": (N, ...) original attributions}.
    """
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode must be 'cascading' or 'independent', got {mode!r}")
    if not layers:
        raise ValueError("layers must name at least one layer")
    x = jnp.asarray(x)
    original = explain(params, x)
    scores = []
    for i, name in enumerate(layers):
        chosen = layers[: i + 1] if mode == "cascading" else [name]
        randomized = randomize_layers(params, chosen, key, randomizer)
        scores.append(similarity(original, explain(randomized, x)))
    return {"layers": list(layers), "scores": jnp.stack(scores), "original": original}
