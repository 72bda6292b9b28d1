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
"""

import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcxai import parallel
from jaxcxai.concepts.net2vec import (
    OBJECTIVES,
    Probe,
    apply_thresholds,
    foreground_alpha,
    probe_logits,
    upsample_logits,
)
from jaxcxai.metrics import segmentation as seg

__all__ = [
    "Net2VecConfig",
    "Chunk",
    "init_probes",
    "minibatch_orders",
    "fit_net2vec",
    "fit_net2vec_stream",
    "group_layers",
    "array_source",
    "cache_source",
    "evaluate_net2vec",
    "fit_net2vec_layers",
]

# (acts (L, n, h, w, C), masks (n, K, H, W), weights (n, K) or None)
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray | None]
_HI = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class Net2VecConfig:
    """Probe training hyper-parameters (defaults: hybrid_learning's Net2Vec config).

    Attributes:
      objective: a key of `net2vec.OBJECTIVES`.
      pos_weight: positive-class weight; None = the objective's default
        (dataset-level alpha for "net2vec"/"fuzzy_bce", 0.95 for
        "balanced_bce").
      optimizer: "sgd" (with momentum) or "adamw" (optax, PyTorch semantics).
      learning_rate, momentum: SGD settings (and AdamW's learning rate).
      b1, b2, eps, weight_decay: AdamW settings.
      batch_size: examples per optimizer step.
      epochs: passes over the data.
      init: "uniform" (PyTorch Conv2d default U(-1/sqrt(C), 1/sqrt(C))) or "zeros".
    """

    objective: str = "balanced_bce"
    pos_weight: float | None = None
    optimizer: str = "sgd"
    learning_rate: float = 1e-4
    momentum: float = 0.9
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    batch_size: int = 64
    epochs: int = 30
    init: str = "uniform"

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"unknown objective {self.objective!r}; use one of {sorted(OBJECTIVES)}"
            )
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(
                f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}"
            )
        if self.init not in ("uniform", "zeros"):
            raise ValueError(f"init must be 'uniform' or 'zeros', got {self.init!r}")

    def tx(self) -> optax.GradientTransformation:
        if self.optimizer == "sgd":
            return optax.sgd(self.learning_rate, momentum=self.momentum or None)
        return optax.adamw(self.learning_rate, self.b1, self.b2, self.eps,
                           weight_decay=self.weight_decay)  # fmt: skip


def init_probes(key, channels, num_concepts, num_runs, init="uniform", layer_id=0):
    """Initial probes (K, R, C) / (K, R) for one layer.

    Run r of layer `layer_id` uses fold_in(fold_in(fold_in(key, r), 0), layer_id),
    so a layer's initialization does not depend on which layers share its call.
    """
    if init == "zeros":
        return Probe(jnp.zeros((num_concepts, num_runs, channels)),
                     jnp.zeros((num_concepts, num_runs)))  # fmt: skip
    bound = 1.0 / np.sqrt(channels)

    def one(r):
        k = jax.random.fold_in(
            jax.random.fold_in(jax.random.fold_in(key, r), 0), layer_id
        )
        kw, kb = jax.random.split(k)
        shape = (num_concepts,)
        return (jax.random.uniform(kw, shape + (channels,), minval=-bound, maxval=bound),
                jax.random.uniform(kb, shape, minval=-bound, maxval=bound))  # fmt: skip

    w, b = jax.vmap(one)(jnp.arange(num_runs))
    return Probe(jnp.swapaxes(w, 0, 1), jnp.swapaxes(b, 0, 1))


def minibatch_orders(key, num_runs: int, epoch: int, chunk: int, num_steps: int):
    """(R, S) order of the S minibatches of a chunk for each run.

    Run r permutes with fold_in(fold_in(fold_in(fold_in(key, r), 1), epoch),
    chunk); the order is shared by all layers of a call.
    """

    def one(r):
        k = jax.random.fold_in(jax.random.fold_in(key, r), 1)
        k = jax.random.fold_in(jax.random.fold_in(k, epoch), chunk)
        return jax.random.permutation(k, num_steps)

    return jax.vmap(one)(jnp.arange(num_runs))


def _probe_loss(cfg, size, w, b, acts, masks, weights, pos_weight):
    """Sum over K concepts of the weighted-mean loss of one (layer, run)."""
    z = jnp.einsum("bhwc,kc->kbhw", acts, w, precision=_HI) + b[:, None, None, None]
    logits = upsample_logits(z, size)  # (K, B, H, W)
    target = jnp.swapaxes(masks, 0, 1).astype(jnp.float32)
    per = OBJECTIVES[cfg.objective][0](logits, target, pos_weight[:, None])  # (K, B)
    wsum = jnp.sum(weights, axis=0)  # (K,)
    loss = jnp.sum(per * weights.T, axis=1) / jnp.maximum(wsum, 1e-12)
    return jnp.sum(loss), wsum > 0


def _flatten_probes(tree):
    """(L, R, K, ...) leaves -> (L*R*K, ...): one optimizer per probe."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[3:]), tree)


def _select(mask, new, old):
    """Per-probe `where` for leaves with a leading probe axis."""
    return jnp.where(mask.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _fit_chunk(cfg, size, params, opt_state, acts, masks, weights, orders, pw, thr):
    """Runs the optimizer over one chunk's minibatches (lax.scan over steps).

    params: Probe (L, R, K, C) / (L, R, K); opt_state: per-probe state with a
    leading axis L*R*K; acts (L, S, B, h, w, C); masks (S, B, K, H, W);
    weights (S, B, K); orders (L, R, S) minibatch order; pw (K,); thr (L, C).
    """
    tx = cfg.tx()
    acts = jax.vmap(apply_thresholds)(acts, thr)
    lead = params.b.shape  # (L, R, K)

    def loss_all(params, idx):  # idx (L, R)
        def one(w, b, a_l, i):
            return _probe_loss(cfg, size, w, b, a_l[i], masks[i], weights[i], pw)

        per_run = jax.vmap(one, in_axes=(0, 0, None, 0))  # over R
        losses, active = jax.vmap(per_run)(params.w, params.b, acts, idx)  # over L
        return jnp.sum(losses), (losses, active)

    def step(carry, idx):
        params, opt_state = carry
        grads, (losses, active) = jax.grad(loss_all, has_aux=True)(params, idx)
        p, g = _flatten_probes(params), _flatten_probes(grads)
        updates, new_state = jax.vmap(tx.update)(g, opt_state, p)
        new_p = optax.apply_updates(p, updates)
        # A probe whose concept has no weight in this minibatch is not stepped
        # (its optimizer state, e.g. Adam's count, stays as it was).
        keep = functools.partial(_select, active.reshape(-1))
        new_state = jax.tree.map(keep, new_state, opt_state)
        new_p = jax.tree.map(keep, new_p, p)
        new_p = jax.tree.map(lambda x: x.reshape(lead + x.shape[1:]), new_p)
        return (new_p, new_state), jnp.mean(losses)

    (params, opt_state), losses = jax.lax.scan(
        step, (params, opt_state), jnp.moveaxis(orders, -1, 0)
    )
    return params, opt_state, losses


def _prepare_chunk(chunk: Chunk, batch_size: int, mesh):
    """Pads a chunk to whole minibatches and lays it out as (S, B, ...)."""
    acts, masks, weights = chunk
    n = masks.shape[0]
    if acts.shape[1] != n:
        raise ValueError(f"chunk has {acts.shape[1]} activations but {n} masks")
    weights = np.ones(masks.shape[:2], np.float32) if weights is None else weights
    pad = (-n) % batch_size
    if pad:  # padding examples get weight 0
        acts = np.concatenate(
            [acts, np.zeros((acts.shape[0], pad) + acts.shape[2:], acts.dtype)], 1
        )
        masks = np.concatenate([masks, np.zeros((pad,) + masks.shape[1:], masks.dtype)])
        weights = np.concatenate(
            [weights, np.zeros((pad,) + weights.shape[1:], weights.dtype)]
        )
    s = (n + pad) // batch_size
    acts = acts.reshape((acts.shape[0], s, batch_size) + acts.shape[2:])
    masks = masks.reshape((s, batch_size) + masks.shape[1:])
    weights = np.asarray(weights, np.float32).reshape(
        (s, batch_size) + weights.shape[1:]
    )
    if mesh is None:
        return jax.device_put((acts, masks, weights))
    parallel.check_batch_size(batch_size, mesh)
    put = lambda x, spec: jax.device_put(x, NamedSharding(mesh, spec))  # noqa: E731
    return (put(acts, P(None, None, parallel.DATA_AXIS)),
            put(masks, P(None, parallel.DATA_AXIS)),
            put(weights, P(None, parallel.DATA_AXIS)))  # fmt: skip


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
    """
    pw = _positive_weight(config, alpha)
    state, losses = None, []
    for epoch in range(config.epochs):
        for c, chunk in enumerate(source(epoch)):
            acts, masks, weights = _prepare_chunk(chunk, config.batch_size, mesh)
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
    params = jax.tree.map(lambda x: jnp.swapaxes(x, 1, 2), state[0])  # (L, K, R)
    return params, jnp.concatenate(losses)


def _positive_weight(config: Net2VecConfig, alpha):
    if config.pos_weight is not None:
        return config.pos_weight
    default = OBJECTIVES[config.objective][1]
    if default != "dataset":
        return default
    if alpha is None:
        raise ValueError(
            f"objective {config.objective!r} needs the dataset-level alpha "
            "(foreground_alpha(masks)) or config.pos_weight"
        )
    return alpha


def _init_state(key, config, layer_ids, channels, num_concepts, num_runs):
    """Probes (L, R, K, ...) and per-probe optimizer states (L*R*K, ...)."""
    per_layer = [
        init_probes(key, channels, num_concepts, num_runs, config.init, i)
        for i in layer_ids
    ]
    params = jax.tree.map(lambda *x: jnp.swapaxes(jnp.stack(x), 1, 2), *per_layer)
    return params, jax.vmap(config.tx().init)(_flatten_probes(params))


def array_source(
    acts: np.ndarray | Mapping[str, np.ndarray],
    masks: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    chunk_size: int | None = None,
    shuffle_seed: int | None = 0,
) -> Callable[..., Iterator[Chunk]]:
    """A chunk source over in-memory (or memory-mapped) arrays.

    Args:
      acts: (N, h, w, C) array, or {layer: (N, h, w, C)}.
      masks: (N, K, H, W) labels; weights: optional (N, K).
      chunk_size: examples per chunk (default: all N at once).
      shuffle_seed: examples are permuted per epoch with this seed (None: no
        shuffling); the permutation is shared by all layers and runs.

    Returns:
      `source(epoch, layers=None)` yielding (acts (L, n, ...), masks, weights);
      `layers` picks (and stacks) named layers from a mapping.
    """
    n = masks.shape[0]
    chunk_size = n if chunk_size is None else chunk_size

    def source(epoch: int, layers: Sequence[str] | None = None) -> Iterator[Chunk]:
        order = np.arange(n)
        if shuffle_seed is not None:
            order = np.random.default_rng([shuffle_seed, epoch]).permutation(n)
        for start in range(0, n, chunk_size):
            idx = order[start : start + chunk_size]
            if isinstance(acts, Mapping):
                names = list(acts) if layers is None else layers
                a = np.stack([np.asarray(acts[name][idx]) for name in names])
            else:
                a = np.asarray(acts[idx])[None]
            yield a, masks[idx], None if weights is None else weights[idx]

    return source


def cache_source(
    cache,
    masks: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    shuffle_seed: int | None = 0,
) -> Callable[..., Iterator[Chunk]]:
    """A chunk source over a `jaxcxai.features.FeatureCache`, chunk by chunk.

    Only one cache chunk of the requested layers is read (memory-mapped) at a
    time. Per epoch the chunk order and the examples inside each chunk are
    permuted with `shuffle_seed` (None: file order).

    Args:
      cache: a `FeatureCache` whose layer entries are (N, h, w, C).
      masks: (N, K, H, W) labels aligned with the cache's examples.
      weights: optional (N, K).
    """
    sizes = list(cache.index["chunks"])
    if sum(sizes) != masks.shape[0]:
        raise ValueError(f"cache has {sum(sizes)} examples but masks {masks.shape[0]}")
    starts = np.cumsum([0] + sizes[:-1])

    def source(epoch: int, layers: Sequence[str]) -> Iterator[Chunk]:
        rng = (
            None
            if shuffle_seed is None
            else np.random.default_rng([shuffle_seed, epoch])
        )
        order = range(len(sizes)) if rng is None else rng.permutation(len(sizes))
        for k in order:
            perm = np.arange(sizes[k]) if rng is None else rng.permutation(sizes[k])
            idx = starts[k] + perm
            a = np.stack([np.asarray(cache.chunk(name, k))[perm] for name in layers])
            yield a, masks[idx], None if weights is None else weights[idx]

    return source


@functools.partial(jax.jit, static_argnums=(4, 5))
def _eval_chunk(probe, acts, masks, thr, num_thresholds, num_bins):
    acts = apply_thresholds(acts, thr)
    prob = jax.nn.sigmoid(probe_logits(probe, acts, masks.shape[-2:]))  # (K,R,n,H,W)
    target = jnp.moveaxis(masks, 1, 0)[:, None].astype(jnp.float32)  # (K,1,n,H,W)
    ths = jnp.linspace(0.0, 1.0, num_thresholds)
    return {
        "iou": seg.iou_counts(prob, target),
        "sample_iou": jnp.sum(seg.sample_iou(prob, target), axis=-1),
        "curve": seg.threshold_curve_counts(prob, target, ths),
        "calibration": seg.calibration_counts(prob, target, num_bins),
    }


def evaluate_net2vec(
    probe: Probe,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    thresholds: jax.typing.ArrayLike | None = None,
    num_thresholds: int = 20,
    num_bins: int = 10,
) -> dict[str, jax.Array]:
    """Concept-segmentation KPIs of K x R probes over a stream of chunks.

    Args:
      probe: w (K, R, C), b (K, R).
      chunks: iterable of (acts (n, h, w, C), masks (n, K, H, W)).
      thresholds: (C,) NetDissect thresholds used in training, if any.
      num_thresholds: points of the IoU-vs-threshold curve in [0, 1].
      num_bins: calibration bins.

    Returns:
      Dict of (K, R, ...) arrays: `set_iou`, `mean_sample_iou` (over all
      images), `iou_curve` (K, R, T), `ece`, and `calibration` =
      (confidence, accuracy, fraction), each (K, R, num_bins).
    """
    c = probe.w.shape[-1]
    thr = jnp.full((c,), -jnp.inf) if thresholds is None else jnp.asarray(thresholds)
    total, n = None, 0
    for acts, masks in chunks:
        out = _eval_chunk(probe, jnp.asarray(acts), jnp.asarray(masks), thr,
                          num_thresholds, num_bins)  # fmt: skip
        total = out if total is None else jax.tree.map(jnp.add, total, out)
        n += masks.shape[0]
    if total is None:
        raise ValueError("evaluate_net2vec got no chunks")
    conf, acc, frac, ece = seg.calibration_from_counts(*total["calibration"])
    return {
        "set_iou": seg.iou_from_counts(*total["iou"]),
        "mean_sample_iou": total["sample_iou"] / n,
        "iou_curve": seg.iou_from_counts(*total["curve"]),
        "ece": ece,
        "calibration": (conf, acc, frac),
    }


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
    if kwargs.get("alpha") is None:
        kwargs["alpha"] = foreground_alpha(masks, weights)
    if kwargs.get("thresholds") is not None:
        kwargs["thresholds"] = jnp.asarray(kwargs["thresholds"])[None]
    src = array_source(acts, masks, weights, chunk_size=chunk_size,
                       shuffle_seed=int(jax.random.randint(jax.random.fold_in(key, 2), (), 0, 2**30)))  # fmt: skip
    probes, losses = fit_net2vec_stream(src, key, layer_ids=[layer_id], **kwargs)
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
