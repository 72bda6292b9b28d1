"""Gradients at a named layer of any `f(x) -> (logits, {layer: act})`.

A model that returns its activations does not expose the part of the
network after a layer, which layer gradients (Grad-CAM, concept attribution)
need. `layer_tap` recovers it without touching the model: it traces `f` to a
jaxpr, finds the variable that `f` returns as `acts[layer]`, and re-evaluates
the jaxpr with a perturbation `delta` added to that variable right where it
is computed, so every later use sees `act + delta`. Then

    d outputs / d act = d tapped(x, delta) / d delta at delta = 0.

Nested `jit` / `remat` calls are evaluated inline when they produce the
activation (their later uses live inside them). An activation computed
inside another higher-order primitive (a custom derivative rule, `scan`) is
tapped at that primitive's output, which is exact when nothing inside it
uses the activation again.

The swappable alternative is an explicit split: `head_tap(f, layer, head)`
with `head(act) -> outputs`, the network from the layer on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend.core import ClosedJaxpr, Jaxpr, Literal

from jaxcxai.attribution.core import logits_of

__all__ = ["layer_tap", "head_tap", "layer_output", "tapped_scalar"]

# Call-like primitives whose body is evaluated inline when it produces the
# tapped variable.
_CALLS = ("jit", "pjit", "closed_call", "core_call", "remat2", "checkpoint", "remat")


def layer_output(outputs: Any, layer: str) -> jax.Array:
    """`outputs[1][layer]` with an error that lists the available layers."""
    if not (isinstance(outputs, (tuple, list)) and len(outputs) == 2):
        raise ValueError(
            "layer methods need f(x) -> (logits, {layer: activation}), got "
            f"{type(outputs).__name__}"
        )
    acts = outputs[1]
    if layer not in acts:
        raise ValueError(f"layer {layer!r} is not returned by f; have {list(acts)}")
    return acts[layer]


def _body(eqn) -> tuple[Jaxpr, list] | None:
    if eqn.primitive.name not in _CALLS:
        return None
    for name in ("jaxpr", "call_jaxpr"):
        sub = eqn.params.get(name)
        if isinstance(sub, ClosedJaxpr):
            return sub.jaxpr, list(sub.consts)
        if isinstance(sub, Jaxpr) and not sub.constvars:
            return sub, []
    return None


def _bind(eqn, invals: list) -> Any:
    # jax < 0.11 returns (subfuns, params) here, jax >= 0.11 the params only.
    bound = eqn.primitive.get_bind_params(eqn.params)
    subfuns, params = bound if isinstance(bound, tuple) else ((), bound)
    ctx = getattr(getattr(eqn, "ctx", None), "manager", None)
    if ctx is None:
        return eqn.primitive.bind(*subfuns, *invals, **params)
    with ctx:
        return eqn.primitive.bind(*subfuns, *invals, **params)


def _eval(jaxpr: Jaxpr, consts: list, args: list, target, delta) -> list:
    """Evaluates `jaxpr`, adding `delta` to variable `target` where it is made."""
    env = {}

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    for v, c in zip(jaxpr.constvars, consts):
        env[v] = c
    for v, a in zip(jaxpr.invars, args):
        env[v] = a
    if target in env:
        env[target] = env[target] + delta
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        body = _body(eqn) if target in eqn.outvars else None
        if body is not None:
            inner, inner_consts = body
            inner_target = inner.outvars[eqn.outvars.index(target)]
            if isinstance(inner_target, Literal):
                raise ValueError("the tapped activation is a constant")
            outs = _eval(inner, inner_consts, invals, inner_target, delta)
        else:
            outs = _bind(eqn, invals)
            outs = list(outs) if eqn.primitive.multiple_results else [outs]
            if target in eqn.outvars:
                k = eqn.outvars.index(target)
                outs[k] = outs[k] + delta
        for v, o in zip(eqn.outvars, outs):
            env[v] = o
    return [read(v) for v in jaxpr.outvars]


def layer_tap(
    f: Callable, x_example: Any, layer: str
) -> tuple[Callable[[jax.Array, jax.Array], Any], jax.ShapeDtypeStruct]:
    """Builds `tapped(x, delta) -> (outputs, act + delta)` at acts[layer].

    Args:
      f: `f(x) -> (logits, {layer: act})`, jax-traceable.
      x_example: an array (or ShapeDtypeStruct) with the shape `tapped` will
        be called with (e.g. (1, H, W, C) for per-sample use).
      layer: the activation's name.

    Returns:
      `(tapped, act_shape)`: the tapped function (f's outputs computed with
      acts[layer] + delta, and that perturbed activation) and the
      activation's shape.

    Raises:
      ValueError: `f` does not return the layer, or returns it as a constant.
    """
    spec = jax.ShapeDtypeStruct(x_example.shape, x_example.dtype)
    closed, out_shape = jax.make_jaxpr(f, return_shape=True)(spec)
    act_shape = layer_output(out_shape, layer)
    leaves, treedef = jax.tree.flatten(out_shape)
    index = layer_output(jax.tree.unflatten(treedef, list(range(len(leaves)))), layer)
    target = closed.jaxpr.outvars[index]
    if isinstance(target, Literal):
        raise ValueError(f"layer {layer!r} is a constant of f; it has no gradient")

    def tapped(x: jax.Array, delta: jax.Array) -> Any:
        flat = _eval(closed.jaxpr, list(closed.consts), [x], target, delta)
        return jax.tree.unflatten(treedef, flat), flat[index]

    return tapped, act_shape


def head_tap(
    f: Callable, layer: str, head: Callable[[jax.Array], Any]
) -> Callable[[jax.Array, jax.Array], Any]:
    """`tapped(x, delta) = (head(a + delta), a + delta)`, a = acts[layer].

    The explicit split: use it where `layer_tap` cannot see the layer.

    Args:
      f: `f(x) -> (logits, {layer: act})` (only the activation is used).
      layer: the activation's name.
      head: the network from the layer on, `head(act) -> logits` or
        `(logits, acts)`.
    """

    def tapped(x: jax.Array, delta: jax.Array) -> Any:
        act = layer_output(f(x), layer) + delta
        return head(act), act

    return tapped


def tapped_scalar(
    tapped: Callable, target_fn: Callable | None
) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    """`s(x_single, delta_single, t) -> (scalar, act_single)` for one sample.

    The activation rides along as `has_aux` output of `jax.grad`.
    """

    def s(xs, ds, t):
        outputs, act = tapped(xs[None], ds[None])
        if target_fn is not None:
            value = jnp.reshape(target_fn(outputs), (-1,))[0]
        else:
            value = logits_of(outputs)[0, t]
        return value, act[0]

    return s
