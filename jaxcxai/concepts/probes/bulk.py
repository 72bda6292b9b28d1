"""Net2Vec probes in bulk: K concepts x R runs x L layers per jitted scan.

One call of `fit_net2vec` trains every (concept, run) probe of a layer; layers
of equal activation shape are stacked and trained together
(`fit_net2vec_layers` groups them, `group_layers`). Per chunk of examples a
single jitted `lax.scan` runs the optimizer steps over its minibatches, with
the logits of all K concepts of a (layer, run) computed as one matmul and the
loss of every probe depending only on its own parameters, so summing the
losses gives each probe its own gradient. The optimizer (SGD with momentum or
AdamW, both per-coordinate) is vmapped per probe, so every probe has its own
state, exactly as a per-probe loop.

Data: activations (N, h, w, C) at native resolution, labels (N, K, H, W) in
[0, 1] at label resolution (uint8 / bool / float), optional example weights
(N, K) (0 = image not in concept k's training set; also used for padding).
Memory stays bounded: a *source* yields chunks and only the chunk in use is
on device (never all layers of all images). Examples are sharded over the
`data` axis of a mesh when one is given: the loss is a weighted mean over the
global minibatch, so sharded and unsharded fits agree.

Runs differ by initialization and by the order of minibatches within a chunk
(key per run); examples are shuffled across epochs by the source.

Non-finite input raises `NonFiniteError` naming the argument and the count
(NetDissect thresholding would otherwise zero NaN activations silently):
arrays are checked on entry, streamed chunks on device during the first
epoch, with the counts fetched once at its end (later epochs re-read the
same examples).
"""

from collections.abc import Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import NonFiniteError, check_finite

# Re-exported: the pieces of the fit live in bulk_{state,step,sources,eval}.
from jaxcxai.concepts.probes.net2vec import Probe, foreground_alpha
from jaxcxai.concepts.probes.sources import Chunk, array_source
from jaxcxai.concepts.probes.state import (
    Net2VecConfig,
    _init_state,
    _positive_weight,
    minibatch_orders,
)
from jaxcxai.concepts.probes.step import _fit_chunk, _prepare_chunk

__all__ = [
    "fit_net2vec",
    "fit_net2vec_stream",
    "group_layers",
    "fit_net2vec_layers",
]


def fit_net2vec_stream(
    source: Callable[[int], Iterable[Chunk]],
    key: jax.Array,
    *,
    config: Net2VecConfig = Net2VecConfig(),
    num_runs: int = 1,
    alpha: jax.typing.ArrayLike | None = None,
    thresholds: jax.typing.ArrayLike | None = None,
    mesh=None,
    layer_ids: Sequence[int] | None = None,
) -> tuple[Probe, jax.Array]:
    """Fits K x R probes for L same-shaped layers from a chunk source.

    Args:
      source: `source(epoch)` yields chunks (acts (L, n, h, w, C), masks
        (n, K, H, W), weights (n, K) or None); called once per epoch.
      key: PRNG key (initialization and minibatch order per run).
      config: `Net2VecConfig`.
      num_runs: R runs per (concept, layer).
      alpha: (K,) positive-class weights; required when the objective uses the
        dataset-level alpha and `config.pos_weight` is None (`foreground_alpha`).
      thresholds: (L, C) NetDissect thresholds (`netdissect_thresholds`); None
        disables thresholding.
      mesh: shard examples over its `data` axis (batch_size must divide).
      layer_ids: ids used to derive each layer's init key (default 0..L-1).

    Returns:
      (probes with w (L, K, R, C) and b (L, K, R), per-step mean loss (T,)).

    Raises:
      NonFiniteError: `alpha` or `thresholds` (-inf allowed: no threshold),
        or the chunks' acts, masks or weights hold NaN or inf.
    """
    check_finite({"alpha": alpha, "thresholds": thresholds},
                 allow_neg_inf=["thresholds"])  # fmt: skip
    return _stream(source, key, config, num_runs, alpha, thresholds, mesh,
                   layer_ids, check_chunks=True)  # fmt: skip


def _stream(source, key, config, num_runs, alpha, thresholds, mesh, layer_ids,
            check_chunks: bool):  # fmt: skip
    """`fit_net2vec_stream` after its argument checks."""
    pw = _positive_weight(config, alpha)
    state, losses = None, []
    bad = {"acts": 0, "masks": 0, "weights": 0} if check_chunks else None
    sizes = dict.fromkeys(bad or (), 0)
    for epoch in range(config.epochs):
        if epoch == 1 and bad is not None:
            _raise_bad(bad, sizes)
        for c, chunk in enumerate(source(epoch)):
            acts, masks, weights = _prepare_chunk(chunk, config.batch_size, mesh)
            if epoch == 0 and bad is not None:
                for name, x in zip(bad, (acts, masks, weights)):
                    bad[name] = bad[name] + _num_bad(x)
                    sizes[name] += x.size
            num_layers, s = acts.shape[:2]
            if state is None:
                ids = range(num_layers) if layer_ids is None else layer_ids
                state = _init_state(key, config, list(ids), acts.shape[-1],
                                    masks.shape[2], num_runs)  # fmt: skip
                pw = jnp.broadcast_to(jnp.asarray(pw, jnp.float32), (masks.shape[2],))
                thr = jnp.full((num_layers, acts.shape[-1]), -jnp.inf)
                if thresholds is not None:
                    thr = jnp.asarray(thresholds, jnp.float32).reshape(thr.shape)
            orders = minibatch_orders(key, num_runs, epoch, c, s)
            orders = jnp.broadcast_to(orders, (num_layers,) + orders.shape)
            *state, loss = _fit_chunk(config, masks.shape[-2:], *state, acts, masks,
                                      weights, orders, pw, thr)  # fmt: skip
            losses.append(loss)
    if state is None:
        raise ValueError("the source yielded no chunks")
    if config.epochs == 1 and bad is not None:
        _raise_bad(bad, sizes)
    params = jax.tree.map(lambda x: jnp.swapaxes(x, 1, 2), state[0])  # (L, K, R)
    return params, jnp.concatenate(losses)


def _num_bad(x: jax.Array) -> jax.Array:
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros((), jnp.int32)
    return jnp.sum(~jnp.isfinite(x))


def _raise_bad(bad: dict, sizes: dict) -> None:
    """Fetches the chunks' non-finite counts (one transfer) and raises."""
    for name, count in jax.device_get(bad).items():
        if count:
            raise NonFiniteError(f"source chunks' {name}", int(count), sizes[name])


def fit_net2vec(
    acts, masks, key, *, weights=None, chunk_size=None, layer_id=0, **kwargs
):
    """Fits K concepts x R runs of probes for one layer from arrays.

    Args:
      acts: (N, h, w, C) activations (native resolution).
      masks: (N, K, H, W) labels in [0, 1] at label resolution.
      key: PRNG key.
      weights: optional (N, K) example weights.
      chunk_size: examples moved to device at a time (default: all).
      layer_id: seeds the initialization (see `init_probes`).
      **kwargs: `config`, `num_runs`, `alpha`, `thresholds` ((C,)), `mesh`
        as in `fit_net2vec_stream`. `alpha` defaults to `foreground_alpha`.

    Returns:
      (Probe with w (K, R, C) and b (K, R), per-step mean losses).
    """
    if acts.ndim != 4 or masks.ndim != 4 or acts.shape[0] != masks.shape[0]:
        raise ValueError(
            f"expected acts (N, h, w, C) and masks (N, K, H, W), got {acts.shape} "
            f"and {masks.shape}"
        )
    check_finite({"acts": acts, "masks": masks, "weights": weights,
                  "alpha": kwargs.get("alpha"), "thresholds": kwargs.get("thresholds")},
                 allow_neg_inf=["thresholds"])  # fmt: skip
    if kwargs.get("alpha") is None:
        kwargs["alpha"] = foreground_alpha(masks, weights)
    if kwargs.get("thresholds") is not None:
        kwargs["thresholds"] = jnp.asarray(kwargs["thresholds"])[None]
    src = array_source(acts, masks, weights, chunk_size=chunk_size,
                       shuffle_seed=int(jax.random.randint(jax.random.fold_in(key, 2), (), 0, 2**30)))  # fmt: skip
    kw = dict(config=Net2VecConfig(), num_runs=1, alpha=None, thresholds=None,
              mesh=None) | kwargs  # fmt: skip
    probes, losses = _stream(src, key, layer_ids=[layer_id], check_chunks=False, **kw)
    return jax.tree.map(lambda x: x[0], probes), losses


def group_layers(shapes: Mapping[str, Sequence[int]]) -> list[list[str]]:
    """Groups layer names by activation shape (h, w, C), keeping first-seen order."""
    groups: dict[tuple, list[str]] = {}
    for name, shape in shapes.items():
        groups.setdefault(tuple(shape[-3:]), []).append(name)
    return list(groups.values())


def fit_net2vec_layers(
    source: Callable[..., Iterable[Chunk]],
    layers: Sequence[str],
    shapes: Mapping[str, Sequence[int]],
    key: jax.Array,
    *,
    thresholds: Mapping[str, jax.typing.ArrayLike] | None = None,
    **kwargs,
) -> dict[str, Probe]:
    """Fits probes for many layers; same-shaped layers are trained together.

    Args:
      source: `source(epoch, layers)` yielding chunks whose acts stack the
        requested layers (e.g. `array_source` over a mapping).
      layers: layer names; layer i is initialized with layer_id = i.
      shapes: {layer: activation shape (..., h, w, C)}.
      key: PRNG key shared by all layers.
      thresholds: optional {layer: (C,)} NetDissect thresholds.
      **kwargs: `config`, `num_runs`, `alpha`, `mesh` (see `fit_net2vec_stream`).

    Returns:
      {layer: Probe with w (K, R, C) and b (K, R)}.
    """
    out = {}
    index = {name: i for i, name in enumerate(layers)}
    for group in group_layers({name: shapes[name] for name in layers}):
        thr = None if thresholds is None else np.stack([thresholds[n] for n in group])
        probes, _ = fit_net2vec_stream(
            lambda epoch, g=group: source(epoch, g), key, thresholds=thr,
            layer_ids=[index[n] for n in group], **kwargs,
        )  # fmt: skip
        for i, name in enumerate(group):
            out[name] = jax.tree.map(lambda x, i=i: x[i], probes)
    return out
